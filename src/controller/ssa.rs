//! Server-side apply of the objects the builders return, as the `mongo-operator` field manager.
//! `force` takes over fields another manager set (the operator is the source of truth for what
//! it builds); fields it does not build stay with whoever set them.

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
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(object))
        .await
        .doing(|| format!("applying {} {name}", K::kind(&())))
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
