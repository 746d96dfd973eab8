//! Extra mongod.conf settings from the user, in mongod.conf's own nested YAML form.
//!
//! The schema keeps unknown fields (mongod has hundreds of options and new ones with every
//! release) but declares the keys it refuses, so that CEL rules can refuse them at admission.
//! A schema cannot see the dotted spelling (`"net.port": 1`, which mongod.conf also accepts),
//! nor judge a value against the Pod's file system, so [`MongodConfig::refusals`] repeats every
//! check in code; the operator reports what it finds as a condition and an Event and changes
//! nothing until the spec is fixed.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// mongod.conf keys the operator refuses, as dotted paths, with their type in mongod.conf and
/// why. The first group the operator sets itself; the second would weaken authentication, or
/// cannot work in the operator's Pods.
pub const REFUSED_KEYS: &[(&str, KeyType, &str)] = &[
    ("replication.replSetName", KeyType::String, "the replica set is named after the MongoCluster"),
    ("net.port", KeyType::Integer, "members, Services, probes and NetworkPolicies all use port 27017"),
    ("net.bindIp", KeyType::String, "mongod must listen on the Pod's addresses"),
    ("net.bindIpAll", KeyType::Boolean, "mongod must listen on the Pod's addresses"),
    ("security.keyFile", KeyType::String, "members authenticate each other with the operator's keyFile"),
    ("security.authorization", KeyType::String, "authentication is always on"),
    ("security.clusterAuthMode", KeyType::String, "members authenticate each other with the operator's keyFile"),
    ("storage.dbPath", KeyType::String, "data lives on the member's volume"),
    ("processManagement.fork", KeyType::Boolean, "mongod must run in the foreground as the container's process"),
    (
        "security.transitionToAuth",
        KeyType::Boolean,
        "it lets clients in without credentials; authentication is always required",
    ),
    (
        "setParameter.enableLocalhostAuthBypass",
        KeyType::Boolean,
        "the localhost exception is a way in without credentials; the operator never needs it",
    ),
    (
        "net.tls",
        KeyType::Object,
        "the operator manages TLS: set spec.tls (mode, certificateSecretRef or issuerRef) instead, so that the \
         operator's own connections, the probes and the backup Jobs follow",
    ),
    ("net.ssl", KeyType::Object, "the deprecated spelling of net.tls, which the operator manages through spec.tls"),
];

/// Directories mongod may write to in the Pod (the root file system is read-only): its volume,
/// and the `/tmp` emptyDir.
pub const WRITABLE_DIRS: &[&str] = &["/data/db/", "/tmp/"];

/// A refused key's type in mongod.conf, for the schema (CEL only sees declared fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    String,
    Integer,
    Boolean,
    Object,
}

impl KeyType {
    fn schema(self) -> Value {
        match self {
            KeyType::String => serde_json::json!({"type": "string"}),
            KeyType::Integer => serde_json::json!({"type": "integer"}),
            KeyType::Boolean => serde_json::json!({"type": "boolean"}),
            KeyType::Object => serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        }
    }
}

/// Extra mongod.conf settings, nested as in mongod.conf.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct MongodConfig(pub Map<String, Value>);

impl MongodConfig {
    /// Why each setting of this config is refused, nested or dotted: refused keys, and log or
    /// pid files outside the directories mongod can write to. Empty when it is acceptable.
    pub fn refusals(&self) -> Vec<String> {
        let mut out: Vec<String> = REFUSED_KEYS
            .iter()
            .filter(|(path, _, _)| lookup(&self.0, path).is_some())
            .map(|(path, _, why)| format!("mongod.config must not set {path}: {why}"))
            .collect();
        let text = |path: &str| lookup(&self.0, path).and_then(Value::as_str);
        if text("systemLog.destination") == Some("file") {
            match text("systemLog.path") {
                Some(path) if writable(path) => {}
                Some(path) => out.push(format!(
                    "mongod.config sets systemLog.path {path}, which mongod cannot write in its Pod (only under {}); \
                     leave systemLog.destination unset to log to the container's output",
                    WRITABLE_DIRS.join(" and ")
                )),
                None => out.push("mongod.config sets systemLog.destination: file without systemLog.path".into()),
            }
        }
        if let Some(path) = text("processManagement.pidFilePath")
            && !writable(path)
        {
            out.push(format!(
                "mongod.config sets processManagement.pidFilePath {path}, which mongod cannot write in its Pod (only \
                 under {})",
                WRITABLE_DIRS.join(" and ")
            ));
        }
        out
    }
}

fn writable(path: &str) -> bool {
    !path.split('/').any(|part| part == "..") && WRITABLE_DIRS.iter().any(|dir| path.starts_with(dir))
}

/// Finds a dotted path in nested maps, accepting any mix of nesting and dotted keys
/// (`{"net": {"port": 1}}`, `{"net.port": 1}`, `{"net": {"tls.mode": "x"}}`) and, for a key
/// that is itself a section, anything under it (`{"net.tls.mode": "x"}` sets `net.tls`).
fn lookup<'a>(map: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(path) {
        return Some(v);
    }
    if let Some((_, v)) = map.iter().find(|(k, _)| k.strip_prefix(path).is_some_and(|rest| rest.starts_with('.'))) {
        return Some(v);
    }
    path.match_indices('.').find_map(|(i, _)| {
        let (head, rest) = (&path[..i], &path[i + 1..]);
        map.get(head).and_then(Value::as_object).and_then(|inner| lookup(inner, rest))
    })
}

impl JsonSchema for MongodConfig {
    fn schema_name() -> Cow<'static, str> {
        "MongodConfig".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let mut sections: Map<String, Value> = Map::new();
        for (path, key_type, _) in REFUSED_KEYS {
            let Some((head, key)) = path.split_once('.') else { continue };
            let section = sections.entry(head.to_string()).or_insert_with(|| {
                serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {}})
            });
            section["properties"][key] = key_type.schema();
        }
        // One rule per refused key, so the message names the key and says why it is refused.
        let rules: Vec<Value> = REFUSED_KEYS
            .iter()
            .map(|(path, _, why)| {
                let (head, key) = path.split_once('.').unwrap_or((path, ""));
                serde_json::json!({
                    "rule": format!("!has(self.{head}) || !has(self.{head}.{key})"),
                    "message": format!("mongod.config must not set {path}: {why}"),
                    "reason": "FieldValueForbidden",
                })
            })
            .collect();
        let refused: Vec<&str> = REFUSED_KEYS.iter().map(|(path, _, _)| *path).collect();
        json_schema!({
            "description": format!(
                "Extra mongod.conf settings in mongod.conf's nested form, for example {{operationProfiling: {{mode: \
                 slowOp}}}}. Refused, nested or dotted: {}; and log or pid files outside {}.",
                refused.join(", "),
                WRITABLE_DIRS.join(" and ")
            ),
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": sections,
            "x-kubernetes-validations": rules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: Value) -> MongodConfig {
        serde_json::from_value(v).unwrap()
    }

    fn refused(v: Value) -> Vec<String> {
        config(v).refusals()
    }

    #[test]
    fn nested_and_dotted_refused_keys_are_found() {
        let nested = refused(serde_json::json!({"net": {"port": 1}, "operationProfiling": {"mode": "slowOp"}}));
        assert_eq!(nested.len(), 1);
        assert!(nested[0].contains("net.port"), "{nested:?}");
        let dotted = refused(serde_json::json!({"storage.dbPath": "/x", "security": {"keyFile": "/k"}}));
        assert!(dotted.iter().any(|r| r.contains("storage.dbPath")), "{dotted:?}");
        assert!(dotted.iter().any(|r| r.contains("security.keyFile")), "{dotted:?}");
        for spelling in [
            serde_json::json!({"net.port": 27018}),
            serde_json::json!({"processManagement.fork": true}),
            serde_json::json!({"replication.replSetName": "other"}),
            serde_json::json!({"security.transitionToAuth": true}),
            serde_json::json!({"setParameter": {"enableLocalhostAuthBypass": 1}}),
            serde_json::json!({"setParameter.enableLocalhostAuthBypass": "true"}),
            serde_json::json!({"net": {"tls": {"mode": "requireTLS"}}}),
            serde_json::json!({"net.tls.mode": "requireTLS"}),
            serde_json::json!({"net": {"tls.certificateKeyFile": "/x"}}),
            serde_json::json!({"net": {"ssl": {"mode": "requireSSL"}}}),
        ] {
            assert_eq!(refused(spelling.clone()).len(), 1, "{spelling} must be refused");
        }
    }

    #[test]
    fn log_and_pid_files_must_be_where_mongod_can_write() {
        assert!(
            refused(serde_json::json!({"systemLog": {"destination": "file", "path": "/tmp/mongod.log"}})).is_empty()
        );
        assert_eq!(
            refused(serde_json::json!({"systemLog": {"destination": "file", "path": "/var/log/mongod.log"}})).len(),
            1
        );
        assert_eq!(
            refused(serde_json::json!({"systemLog.destination": "file", "systemLog.path": "/tmp/../etc/x"})).len(),
            1
        );
        assert_eq!(refused(serde_json::json!({"systemLog": {"destination": "file"}})).len(), 1);
        assert!(refused(serde_json::json!({"systemLog": {"destination": "syslog"}})).is_empty());
        assert_eq!(refused(serde_json::json!({"processManagement": {"pidFilePath": "/var/run/mongod.pid"}})).len(), 1);
    }

    #[test]
    fn user_settings_beside_refused_sections_are_allowed() {
        let c = serde_json::json!({"net": {"maxIncomingConnections": 2000}, "storage": {"wiredTiger": {}}, "setParameter": {"diagnosticDataCollectionEnabled": false}});
        assert!(refused(c).is_empty());
    }

    #[test]
    fn schema_declares_every_refused_key_with_a_rule() {
        let schema = serde_json::to_value(MongodConfig::json_schema(&mut SchemaGenerator::default())).unwrap();
        let rules = schema["x-kubernetes-validations"].as_array().unwrap();
        assert_eq!(rules.len(), REFUSED_KEYS.len());
        for (path, _, _) in REFUSED_KEYS {
            let (head, key) = path.split_once('.').unwrap();
            assert!(schema["properties"][head]["properties"][key].is_object(), "{path} not declared");
        }
    }
}
