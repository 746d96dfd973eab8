//! Checks a simulator command log against the rules every replica-set step must keep, so a
//! test can show that whatever happened (an operator killed mid-step, members restarting),
//! no illegal step was ever sent.

use std::collections::BTreeSet;

use serde_json::Value;

/// Codes a replica-set command may fail with for reasons of timing (a primary that stepped
/// down, a config not yet committed, a member restarting), which the next reconcile handles.
/// Codes meaning the operator asked for something illegal (93 InvalidReplicaSetConfig, 103
/// NewReplicaSetConfigurationIncompatible, 23 AlreadyInitialized after a lost reply aside) are
/// not in this list.
const TIMING_CODES: &[i64] = &[
    10107, // NotWritablePrimary
    109,   // ConfigurationInProgress
    308,   // CurrentConfigNotCommittedYet
    11602, // InterruptedDueToReplStateChange
    74,    // NodeNotFound (quorum check: a member restarting)
    262,   // ExceededTimeLimit (step-down: no secondary caught up in time)
    50,    // MaxTimeMSExpired
];

/// One command of the log.
pub struct Entry {
    pub command: String,
    pub ok: bool,
    pub code: Option<i64>,
    pub doc: Value,
}

pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| Entry {
            command: v["command"].as_str().unwrap_or_default().to_string(),
            ok: v["ok"] == true,
            code: v["code"].as_i64(),
            doc: v["doc"].clone(),
        })
        .collect()
}

fn number(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v["$numberLong"].as_str()?.parse().ok()).or_else(|| v.as_f64().map(|f| f as i64))
}

fn voters(config: &Value) -> BTreeSet<String> {
    config["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter(|m| m.get("votes").and_then(number).unwrap_or(1) == 1)
                .filter_map(|m| m["host"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn hosts(config: &Value) -> BTreeSet<String> {
    config["members"]
        .as_array()
        .map(|ms| ms.iter().filter_map(|m| m["host"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Asserts the log's replica-set steps are legal; returns (successful reconfigs, step-downs).
pub fn assert_legal(entries: &[Entry]) -> (usize, usize) {
    let initiated: Vec<&Entry> = entries.iter().filter(|e| e.command == "replSetInitiate" && e.ok).collect();
    assert_eq!(initiated.len(), 1, "the set is initiated exactly once");
    let mut config = initiated[0].doc["replSetInitiate"].clone();
    assert_eq!(number(&config["version"]), Some(1), "initiated with version 1");
    let (mut reconfigs, mut step_downs) = (0, 0);
    // Users created so far, as (db, name): an operator killed after `createUser` succeeded
    // but before it recorded that, asks again and meets 51003 UserExists, which it answers
    // with `updateUser`. That is a lost reply, not an illegal step; UserExists for a user
    // never created is.
    let mut created: BTreeSet<(String, String)> = BTreeSet::new();
    for e in entries {
        let user = || {
            (
                e.doc["$db"].as_str().unwrap_or_default().to_string(),
                e.doc["createUser"].as_str().unwrap_or_default().to_string(),
            )
        };
        let lost_reply = e.command == "createUser" && e.code == Some(51003) && created.contains(&user());
        let refused = !e.ok && !lost_reply && !e.code.is_some_and(|c| TIMING_CODES.contains(&c));
        if e.command == "createUser" && e.ok {
            created.insert(user());
        }
        if e.command == "dropUser" && e.ok {
            let db = e.doc["$db"].as_str().unwrap_or_default().to_string();
            created.remove(&(db, e.doc["dropUser"].as_str().unwrap_or_default().to_string()));
        }
        match e.command.as_str() {
            "replSetInitiate" => {
                assert!(
                    e.ok || e.code == Some(23),
                    "a second initiation may only meet AlreadyInitialized: {:?}",
                    e.code
                )
            }
            "replSetReconfig" | "replSetStepDown" | "createUser" | "updateUser" | "dropUser" => {
                assert!(!refused, "{} refused with code {:?}: {}", e.command, e.code, e.doc);
            }
            _ => {}
        }
        if e.command == "replSetReconfig" && e.ok {
            let next = e.doc["replSetReconfig"].clone();
            assert!(e.doc.get("force").is_none_or(|f| f != true), "never a forced reconfig");
            assert_eq!(number(&next["version"]), number(&config["version"]).map(|v| v + 1), "versions go up by one");
            let (before, after) = (voters(&config), voters(&next));
            let changed = before.symmetric_difference(&after).count();
            assert!(changed <= 1, "one voting change per reconfig: {before:?} -> {after:?}");
            assert!(after.len() <= 7, "at most 7 voters");
            assert!(!after.is_empty(), "never without a voter");
            let removed: Vec<String> = hosts(&config).difference(&hosts(&next)).cloned().collect();
            assert!(removed.len() <= 1, "one member leaves at a time: {removed:?}");
            config = next;
            reconfigs += 1;
        }
        if e.command == "replSetStepDown" && e.ok {
            step_downs += 1;
        }
    }
    (reconfigs, step_downs)
}

/// Logins that failed (18 AuthenticationFailed): credentials tried before they existed, or
/// after they changed.
pub fn failed_logins(entries: &[Entry]) -> usize {
    entries.iter().filter(|e| e.command.starts_with("sasl") && e.code == Some(18)).count()
}
