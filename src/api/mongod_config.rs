//! Extra mongod.conf settings from the user, in mongod.conf's own nested YAML form.
//!
//! The schema keeps unknown fields (mongod has hundreds of options and new ones with every
//! release) but declares the keys the operator owns, so that CEL rules can refuse them at
//! admission. `MongodConfig::owned_keys_in_use` repeats the check in code for the dotted
//! spelling (`"net.port": 1`) that a schema cannot see.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// mongod.conf keys the operator sets itself, as dotted paths, with why.
pub const OWNED_KEYS: &[(&str, &str)] = &[
    ("replication.replSetName", "the replica set is named after the MongoCluster"),
    ("net.port", "members, Services, probes and NetworkPolicies all use port 27017"),
    ("net.bindIp", "mongod must listen on the Pod's addresses"),
    ("net.bindIpAll", "mongod must listen on the Pod's addresses"),
    ("security.keyFile", "members authenticate each other with the operator's keyFile"),
    ("security.authorization", "authentication is always on"),
    ("security.clusterAuthMode", "members authenticate each other with the operator's keyFile"),
    ("storage.dbPath", "data lives on the member's volume"),
    ("processManagement.fork", "mongod must run in the foreground as the container's process"),
];

/// The mongod.conf type of each owned key, so that the schema can declare it (CEL only sees
/// declared, typed fields).
fn owned_key_type(key: &str) -> &'static str {
    match key {
        "port" => "integer",
        "bindIpAll" | "fork" => "boolean",
        _ => "string",
    }
}

/// Extra mongod.conf settings, nested as in mongod.conf.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct MongodConfig(pub Map<String, Value>);

impl MongodConfig {
    /// The operator-owned keys this config sets, nested or dotted, with the reason each is
    /// owned.
    pub fn owned_keys_in_use(&self) -> Vec<(&'static str, &'static str)> {
        OWNED_KEYS.iter().filter(|(path, _)| lookup(&self.0, path).is_some()).copied().collect()
    }
}

/// Finds a dotted path in nested maps, accepting any mix of nesting and dotted keys
/// (`{"net": {"port": 1}}`, `{"net.port": 1}`).
fn lookup<'a>(map: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(path) {
        return Some(v);
    }
    path.match_indices('.').find_map(|(i, _)| {
        let (head, rest) = (&path[..i], &path[i + 1..]);
        map.get(head).and_then(Value::as_object).and_then(|inner| lookup(inner, rest))
    })
}

fn section(owned: &[&str]) -> Value {
    let properties: Map<String, Value> =
        owned.iter().map(|k| (k.to_string(), serde_json::json!({"type": owned_key_type(k)}))).collect();
    serde_json::json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": properties,
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
        for (path, _) in OWNED_KEYS {
            let (head, _) = path.split_once('.').unwrap_or((path, ""));
            let keys: Vec<&str> = OWNED_KEYS
                .iter()
                .filter_map(|(p, _)| p.split_once('.').filter(|(h, _)| *h == head).map(|(_, k)| k))
                .collect();
            sections.insert(head.to_string(), section(&keys));
        }
        // One rule per owned key, so the message names the key and says why it is refused.
        let rules: Vec<Value> = OWNED_KEYS
            .iter()
            .map(|(path, why)| {
                let (head, key) = path.split_once('.').unwrap_or((path, ""));
                serde_json::json!({
                    "rule": format!("!has(self.{head}) || !has(self.{head}.{key})"),
                    "message": format!("mongod.config must not set {path}: {why}"),
                    "reason": "FieldValueForbidden",
                })
            })
            .collect();
        json_schema!({
            "description": "Extra mongod.conf settings in mongod.conf's nested form, for example {operationProfiling: {mode: slowOp}}. The operator owns replication.replSetName, net.port, net.bindIp, net.bindIpAll, security.keyFile, security.authorization, security.clusterAuthMode, storage.dbPath and processManagement.fork; those are refused.",
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

    #[test]
    fn nested_and_dotted_owned_keys_are_found() {
        let nested = config(serde_json::json!({"net": {"port": 1}, "operationProfiling": {"mode": "slowOp"}}));
        assert_eq!(nested.owned_keys_in_use().iter().map(|k| k.0).collect::<Vec<_>>(), ["net.port"]);
        let dotted = config(serde_json::json!({"storage.dbPath": "/x", "security": {"keyFile": "/k"}}));
        assert_eq!(
            dotted.owned_keys_in_use().iter().map(|k| k.0).collect::<Vec<_>>(),
            ["security.keyFile", "storage.dbPath"]
        );
    }

    #[test]
    fn user_settings_beside_owned_sections_are_allowed() {
        let c = config(serde_json::json!({"net": {"maxIncomingConnections": 2000}, "storage": {"wiredTiger": {}}}));
        assert!(c.owned_keys_in_use().is_empty());
    }

    #[test]
    fn schema_declares_every_owned_key_with_a_rule() {
        let schema = serde_json::to_value(MongodConfig::json_schema(&mut SchemaGenerator::default())).unwrap();
        let rules = schema["x-kubernetes-validations"].as_array().unwrap();
        assert_eq!(rules.len(), OWNED_KEYS.len());
        for (path, _) in OWNED_KEYS {
            let (head, key) = path.split_once('.').unwrap();
            assert!(schema["properties"][head]["properties"][key].is_object(), "{path} not declared");
        }
    }
}
