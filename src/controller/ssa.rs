//! Server-side apply of the objects the builders return, as the `mongo-operator` field manager.
//! `force` takes over fields another manager set (the operator is the source of truth for what
//! it builds); fields it does not build stay with whoever set them.
//!
//! Quiet when nothing changes: the API server stores an object's empty lists as absent (Go's
//! `omitempty`), so an applied `[]` never matches what is stored, and every apply of it would
//! be a change (a new `resourceVersion` and `generation`, a watch event, the next reconcile:
//! a loop). Empty lists are therefore left out of every apply, so that applying what is
//! already stored changes nothing; `tests/idle.rs` applies every built object twice and
//! checks the second apply leaves it untouched.

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{Error, KubeContext};
use crate::build::labels::FIELD_MANAGER;

/// Applies `object` (which carries its name; k8s-openapi serializes its apiVersion and kind).
pub async fn apply<K>(api: &Api<K>, object: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = object.name_any();
    let body = as_stored(object).map_err(|e| Error::Encode { what: format!("{} {name}", K::kind(&())), source: e })?;
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
        .await
        .doing(|| format!("applying {} {name}", K::kind(&())))
}

/// `object` as the API server would store it: without empty lists, which it drops.
pub fn as_stored<K: Serialize>(object: &K) -> Result<serde_json::Value, serde_json::Error> {
    let mut value = serde_json::to_value(object)?;
    drop_empty_lists(&mut value);
    Ok(value)
}

fn drop_empty_lists(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !matches!(v, serde_json::Value::Array(a) if a.is_empty()));
            map.values_mut().for_each(drop_empty_lists);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_empty_lists),
        _ => {}
    }
}

/// Deletes `name` when it exists; an object already gone is what was wanted.
pub async fn delete_if_exists<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(Error::Kube { action: format!("deleting {} {name}", K::kind(&())), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_lists_are_left_out_at_every_depth_and_empty_objects_kept() {
        let object = serde_json::json!({
            "spec": {"ingress": [], "egress": [{"to": [], "ports": [{"port": 53}]}], "emptyDir": {}},
            "metadata": {"name": "x"},
        });
        let stored = as_stored(&object).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({
                "spec": {"egress": [{"ports": [{"port": 53}]}], "emptyDir": {}},
                "metadata": {"name": "x"},
            })
        );
    }
}
