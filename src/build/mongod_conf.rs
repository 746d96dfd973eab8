//! mongod.conf: the user's settings, with the operator's own defaults underneath. The keys that
//! identify the member (replica set, port, bind, keyFile, dbPath) are command-line flags the
//! StatefulSet shows, never here (mongod refuses an option given twice).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::names::ClusterNames;
use super::owned_meta;
use crate::api::MongodConfig;

/// The file name inside the ConfigMap and the mounted directory.
pub const FILE_NAME: &str = "mongod.conf";

/// Settings the operator puts under the user's: the unix socket stated explicitly in the
/// writable `/tmp` emptyDir (the root filesystem is read-only). Logs stay on stdout, mongod's
/// default.
fn defaults() -> Value {
    json!({ "net": { "unixDomainSocket": { "pathPrefix": "/tmp" } } })
}

fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// The rendered mongod.conf (YAML) for the user's settings.
pub fn render(user: Option<&MongodConfig>) -> Result<String, serde_yaml::Error> {
    let mut config = defaults();
    if let Some(user) = user {
        merge(&mut config, &Value::Object(user.0.clone()));
    }
    let header = "# Written by mongo-operator from spec.mongod.config; edits here are overwritten.\n";
    Ok(format!("{header}{}", serde_yaml::to_string(&config)?))
}

/// A content hash for the Pod template annotation, so a config change rolls the members.
pub fn hash(rendered: &str) -> String {
    let digest = Sha256::digest(rendered.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The ConfigMap the members mount at `/etc/mongod`.
pub fn config_map(names: &ClusterNames, rendered: &str, owner: &OwnerReference) -> ConfigMap {
    ConfigMap {
        metadata: owned_meta(names, names.config_map(), owner),
        data: Some(BTreeMap::from([(FILE_NAME.to_string(), rendered.to_string())])),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_settings_merge_over_the_defaults() {
        let user: MongodConfig = serde_json::from_value(json!({
            "operationProfiling": {"mode": "slowOp"},
            "net": {"maxIncomingConnections": 2000},
        }))
        .unwrap();
        let out = render(Some(&user)).unwrap();
        let parsed: Value = serde_yaml::from_str(&out).unwrap();
        assert_eq!(parsed["net"]["maxIncomingConnections"], 2000);
        assert_eq!(parsed["net"]["unixDomainSocket"]["pathPrefix"], "/tmp");
        assert_eq!(parsed["operationProfiling"]["mode"], "slowOp");
        assert!(parsed.get("replication").is_none() && parsed["net"].get("port").is_none());
    }

    #[test]
    fn the_config_map_carries_the_file_and_the_owner() {
        let names = ClusterNames::new("orders", "prod");
        let owner = OwnerReference { uid: "u1".into(), ..OwnerReference::default() };
        let cm = config_map(&names, "net: {}\n", &owner);
        assert_eq!(cm.metadata.name.as_deref(), Some("orders-mongod-config"));
        assert_eq!(cm.data.unwrap()[FILE_NAME], "net: {}\n");
        assert_eq!(cm.metadata.owner_references.unwrap()[0].uid, "u1");
    }

    #[test]
    fn the_hash_changes_with_the_content() {
        let a = render(None).unwrap();
        let user: MongodConfig = serde_json::from_value(json!({"operationProfiling": {"mode": "all"}})).unwrap();
        let b = render(Some(&user)).unwrap();
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&a).len(), 16);
    }
}
