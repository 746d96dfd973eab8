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
use super::statefulset::TLS_DIR;
use super::tls_secrets::{CA_CRT, TLS_PEM};
use crate::api::{MongodConfig, TlsMode};

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

/// The TLS settings: the mode, the members' certificate and key in one file, the CAs they
/// trust. Clients need no certificate of their own (they log in with SCRAM); one they present
/// is still verified against the CAs.
fn tls(mode: TlsMode) -> Value {
    json!({ "net": { "tls": {
        "mode": mode.mongod(),
        "certificateKeyFile": format!("{TLS_DIR}/{TLS_PEM}"),
        "CAFile": format!("{TLS_DIR}/{CA_CRT}"),
        "allowConnectionsWithoutCertificates": true,
    } } })
}

/// The rendered mongod.conf (YAML) for the user's settings and the TLS mode (no TLS section
/// when Disabled).
pub fn render(user: Option<&MongodConfig>, mode: TlsMode) -> Result<String, serde_yaml::Error> {
    let mut config = defaults();
    if let Some(user) = user {
        merge(&mut config, &Value::Object(user.0.clone()));
    }
    if mode.on() {
        merge(&mut config, &tls(mode));
    }
    let header = "# Written by mongo-operator from spec.mongod.config and spec.tls; edits here are overwritten.\n";
    Ok(format!("{header}{}", serde_yaml::to_string(&config)?))
}

/// A content hash for the Pod template annotation, so a config change rolls the members. The
/// TLS mode is hashed as on or off only: the moves between TLS modes that need no restart
/// happen at run time (`tlsMode` is a server parameter), and the file only keeps them for the
/// next start; the moves that do need one change the template's restart token.
pub fn hash(user: Option<&MongodConfig>, mode: TlsMode) -> Result<String, serde_yaml::Error> {
    let rendered = render(user, if mode.on() { TlsMode::Require } else { TlsMode::Disabled })?;
    let digest = Sha256::digest(rendered.as_bytes());
    Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
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
        let out = render(Some(&user), TlsMode::Disabled).unwrap();
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
    fn the_hash_changes_with_the_content_and_tls_on_or_off_but_not_between_tls_modes() {
        let user: MongodConfig = serde_json::from_value(json!({"operationProfiling": {"mode": "all"}})).unwrap();
        let h = |u: Option<&MongodConfig>, m| hash(u, m).unwrap();
        assert_eq!(h(None, TlsMode::Disabled).len(), 16);
        assert_ne!(h(None, TlsMode::Disabled), h(Some(&user), TlsMode::Disabled));
        assert_ne!(h(None, TlsMode::Disabled), h(None, TlsMode::Allow));
        assert_eq!(h(None, TlsMode::Allow), h(None, TlsMode::Require));
    }

    #[test]
    fn tls_settings_name_the_mode_the_combined_file_and_the_cas() {
        let parsed: Value = serde_yaml::from_str(&render(None, TlsMode::Prefer).unwrap()).unwrap();
        let tls = &parsed["net"]["tls"];
        assert_eq!(tls["mode"], "preferTLS");
        assert_eq!(tls["certificateKeyFile"], "/etc/mongod-tls/tls.pem");
        assert_eq!(tls["CAFile"], "/etc/mongod-tls/ca.crt");
        assert_eq!(tls["allowConnectionsWithoutCertificates"], true);
        let plain: Value = serde_yaml::from_str(&render(None, TlsMode::Disabled).unwrap()).unwrap();
        assert!(plain["net"].get("tls").is_none());
    }
}
