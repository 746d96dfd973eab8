//! `mongo-operator verify`: proves a backup restores, copy by copy. Each copy goes through the
//! restore's own path (manifest, checksum, decryption, decompression) into a throwaway mongod
//! on the Pod's loopback, without replaying its oplog, and is then compared with what the
//! backup recorded from the archive while it was written ([`super::archive`]), in this order:
//! mongorestore reports no failed document; the same namespaces, of the same kind, with the
//! same options and indexes; in each collection the same number of documents with the same
//! digest; `validate` passes on every collection. The throwaway is emptied before the next
//! copy. Nothing is ever written to the backup's stores.

use std::collections::BTreeMap;
use std::time::Instant;

use futures::TryStreamExt;
use mongodb::bson::{Bson, RawDocumentBuf, doc};

use super::RestoreError;
use super::archive::{Contents, DigestSum};
use super::files::SecretFiles;
use super::plan::{CopyVerification, MISMATCHES_REPORTED, Mismatch, Outcome, VerifyPlan};
use super::restore::{Failed, OplogReplay, SYSTEM_DATABASES, restore_copy, wipe};
use super::server::client;
use super::tools::Tools;

/// The users and roles of a backup: restored by mongorestore through `_mergeAuthzCollections`,
/// which rewrites them, so only their numbers are compared.
const AUTHORIZATION: [&str; 2] = ["system.users", "system.roles"];

/// Why a verification could not run at all (a copy that fails its checks is not this).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the plan names no copy to verify")]
    NoCopies,
    #[error("the throwaway mongod cannot be set up: {0}")]
    Throwaway(String),
    #[error("the throwaway mongod cannot be emptied after copy {copy}: {reason}")]
    Wipe { copy: String, reason: String },
}

/// Verifies every copy the plan names.
pub async fn verify(plan: &VerifyPlan, secrets: &SecretFiles, tools: &Tools) -> Result<Outcome, VerifyError> {
    if plan.copies.is_empty() {
        return Err(VerifyError::NoCopies);
    }
    initiate(plan).await.map_err(VerifyError::Throwaway)?;
    let mut copies = Vec::new();
    for location in &plan.copies {
        let copy = location.destination.name.clone();
        let started = Instant::now();
        let restored =
            restore_copy(location, &plan.expected, &plan.throwaway, None, secrets, tools, OplogReplay::Never).await;
        let mut result = CopyVerification { destination: copy.clone(), ..CopyVerification::default() };
        let mut mismatches = Vec::new();
        match restored {
            Err(Failed { error, .. }) => mismatches.push(whole("restore", "a restore", &error)),
            Ok(restored) => {
                result.restore_seconds = started.elapsed().as_secs_f64();
                result.restored_bytes = restored.manifest.dump_bytes;
                if let Some(failed) = failed_documents(&restored.output).filter(|n| *n > 0) {
                    mismatches.push(Mismatch {
                        namespace: String::new(),
                        check: "restore".into(),
                        expected: "no document failing to restore".into(),
                        found: format!("{failed} failed to restore"),
                    });
                }
                match &restored.manifest.contents {
                    None => mismatches.push(Mismatch {
                        namespace: String::new(),
                        check: "contents".into(),
                        expected: "the namespaces, counts and digests recorded when the backup was taken".into(),
                        found: "a manifest without them (taken by an earlier version, or its archive could not be \
                                read while it was written)"
                            .into(),
                    }),
                    Some(contents) => {
                        result.namespaces = contents.namespaces.len() as u32;
                        // Over what is verified: the collections, and the users and roles.
                        result.documents_expected = contents
                            .namespaces
                            .iter()
                            .filter(|n| checked(&n.db, &n.collection).is_some())
                            .map(|n| n.documents)
                            .sum();
                        match inspect(plan).await {
                            Ok(found) => {
                                result.documents_restored = found.values().map(|f| f.documents).sum();
                                mismatches.extend(compare(contents, &found));
                            }
                            Err(reason) => mismatches.push(Mismatch {
                                namespace: String::new(),
                                check: "inspect".into(),
                                expected: "the restored data readable".into(),
                                found: reason,
                            }),
                        }
                    }
                }
            }
        }
        tracing::info!(%copy, mismatches = mismatches.len(), seconds = result.restore_seconds, "copy verified");
        result.passed = mismatches.is_empty();
        result.mismatch_count = mismatches.len() as u32;
        mismatches.truncate(MISMATCHES_REPORTED);
        result.mismatches = mismatches;
        copies.push(result);
        wipe(&plan.throwaway, None).await.map_err(|reason| VerifyError::Wipe { copy, reason })?;
    }
    Ok(Outcome::Verified { copies })
}

fn whole(check: &str, expected: &str, error: &RestoreError) -> Mismatch {
    Mismatch { namespace: String::new(), check: check.into(), expected: expected.into(), found: error.to_string() }
}

/// Makes the throwaway a one-member replica set, as the cluster is, and waits for it to be
/// primary: the driver's server selection waits for both the process and the election (no
/// loop here).
async fn initiate(plan: &VerifyPlan) -> Result<(), String> {
    let direct = client(&plan.throwaway, None, "mongo-operator-verify").await.map_err(|e| e.to_string())?;
    let host = plan
        .throwaway
        .uri
        .trim_start_matches("mongodb://")
        .split(['/', '?', ','])
        .next()
        .unwrap_or_default()
        .to_string();
    let config = doc! { "_id": plan.set_name.clone(), "members": [{ "_id": 0, "host": host }] };
    match direct.database("admin").run_command(doc! { "replSetInitiate": config }).await {
        Ok(_) => {}
        // AlreadyInitialized (23): a retried Pod finds it done.
        Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::Command(ref c) if c.code == 23) => {}
        Err(e) => return Err(format!("replSetInitiate: {e}")),
    }
    direct.shutdown().await;
    let set = plan.throwaway.clone();
    let uri = set.uri.replace("directConnection=true", &format!("replicaSet={}", plan.set_name));
    let set = super::plan::Source { uri, ..set };
    let primary = client(&set, None, "mongo-operator-verify").await.map_err(|e| e.to_string())?;
    primary
        .database("admin")
        .run_command(doc! { "ping": 1 })
        .selection_criteria(mongodb::options::SelectionCriteria::ReadPreference(
            mongodb::options::ReadPreference::Primary,
        ))
        .await
        .map_err(|e| format!("no primary: {e}"))?;
    primary.shutdown().await;
    Ok(())
}

/// mongorestore's summary, its last line: "N document(s) restored successfully. M
/// document(s) failed to restore." (`mongorestore/main/mongorestore.go`).
pub fn failed_documents(output: &str) -> Option<u64> {
    let line = output.lines().rev().find(|l| l.contains("failed to restore"))?;
    let before = line.split(" document(s) failed to restore").next()?;
    before.rsplit(['.', ' ', '\t']).find(|w| !w.is_empty())?.parse().ok()
}

/// What the throwaway holds of one namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Found {
    pub kind: String,
    pub options: serde_json::Value,
    pub indexes: Vec<serde_json::Value>,
    pub documents: u64,
    pub digest: String,
    /// `validate`'s verdict, when it did not pass.
    pub invalid: Option<String>,
}

fn key(db: &str, collection: &str) -> String {
    format!("{db}.{collection}")
}

/// Whether `db.collection` is checked (None: not at all), and how far (false: its count only).
fn checked(db: &str, collection: &str) -> Option<bool> {
    if db == "admin" && AUTHORIZATION.contains(&collection) {
        return Some(false);
    }
    if SYSTEM_DATABASES.contains(&db) || collection.starts_with("system.") {
        return None;
    }
    Some(true)
}

fn canonical(value: Bson) -> serde_json::Value {
    value.into_canonical_extjson()
}

/// Reads back every namespace the throwaway holds: kind, options, indexes, documents and
/// their digest, and `validate`'s verdict.
async fn inspect(plan: &VerifyPlan) -> Result<BTreeMap<String, Found>, String> {
    let client = client(&plan.throwaway, None, "mongo-operator-verify").await.map_err(|e| e.to_string())?;
    let mut found = BTreeMap::new();
    for db_name in client.list_database_names().await.map_err(|e| e.to_string())? {
        let db = client.database(&db_name);
        let mut collections = db.list_collections().await.map_err(|e| format!("listCollections on {db_name}: {e}"))?;
        while let Some(spec) = collections.try_next().await.map_err(|e| e.to_string())? {
            let name = spec.name.clone();
            let kind = match spec.collection_type {
                mongodb::results::CollectionType::View => "view",
                mongodb::results::CollectionType::Timeseries => "timeseries",
                _ => "collection",
            };
            let options = mongodb::bson::to_bson(&spec.options).map(canonical).unwrap_or_default();
            let Some(full) = checked(&db_name, &name) else { continue };
            let mut entry = Found { kind: kind.into(), options, ..Found::default() };
            if kind == "view" {
                found.insert(key(&db_name, &name), entry);
                continue;
            }
            // A time-series collection's documents are its buckets (what mongodump dumps).
            let stored = if kind == "timeseries" { format!("system.buckets.{name}") } else { name.clone() };
            let collection = db.collection::<RawDocumentBuf>(&stored);
            let mut digest = DigestSum::default();
            let mut cursor = collection.find(doc! {}).await.map_err(|e| format!("find on {db_name}.{stored}: {e}"))?;
            while let Some(document) = cursor.try_next().await.map_err(|e| e.to_string())? {
                entry.documents += 1;
                digest.add(document.as_bytes());
            }
            entry.digest = digest.render();
            if full {
                // At most 64 indexes per collection: the first batch holds them all.
                let reply = db
                    .run_command(doc! { "listIndexes": name.clone() })
                    .await
                    .map_err(|e| format!("listIndexes on {db_name}.{name}: {e}"))?;
                entry.indexes = reply
                    .get_document("cursor")
                    .and_then(|c| c.get_array("firstBatch"))
                    .map(|batch| batch.iter().cloned().map(canonical).collect())
                    .unwrap_or_default();
                let verdict = db.run_command(doc! { "validate": stored.clone() }).await;
                entry.invalid = match verdict {
                    Ok(reply) if reply.get_bool("valid").unwrap_or(false) => None,
                    Ok(reply) => Some(format!(
                        "not valid: {}",
                        reply
                            .get_array("errors")
                            .map(|e| format!("{e:?}"))
                            .unwrap_or_else(|_| "no reason given".into())
                    )),
                    Err(e) => Some(e.to_string()),
                };
            }
            found.insert(key(&db_name, &name), entry);
        }
    }
    client.shutdown().await;
    Ok(found)
}

/// Fields of an index specification a restore may leave out or rewrite without changing the
/// index: the index version, the legacy namespace and build flags.
const INDEX_FIELDS_IGNORED: [&str; 3] = ["v", "ns", "background"];

fn index_by_name(indexes: &[serde_json::Value]) -> BTreeMap<String, serde_json::Value> {
    indexes
        .iter()
        .filter_map(|spec| {
            let mut spec = spec.as_object()?.clone();
            let name = spec.get("name")?.as_str()?.to_string();
            for field in INDEX_FIELDS_IGNORED {
                spec.remove(field);
            }
            Some((name, serde_json::Value::Object(spec)))
        })
        .collect()
}

fn short(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if text.len() <= 200 {
        return text;
    }
    let mut cut = 200;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// Every difference between what the manifest recorded and what the throwaway holds, in the
/// order of the checks.
pub fn compare(recorded: &Contents, found: &BTreeMap<String, Found>) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut push = |namespace: &str, check: &str, expected: String, found: String| {
        out.push(Mismatch { namespace: namespace.into(), check: check.into(), expected, found })
    };
    let mut expected_names = Vec::new();
    for n in &recorded.namespaces {
        let Some(full) = checked(&n.db, &n.collection) else { continue };
        let name = key(&n.db, &n.collection);
        expected_names.push(name.clone());
        let Some(f) = found.get(&name) else {
            push(&name, "missing", format!("{} {}", n.kind, name), "not restored".into());
            continue;
        };
        if full {
            if f.kind != n.kind {
                push(&name, "kind", n.kind.clone(), f.kind.clone());
            }
            if n.options != f.options && !(n.options.is_null() && f.options == serde_json::json!({})) {
                push(&name, "options", short(&n.options), short(&f.options));
            }
            let (want, have) = (index_by_name(&n.indexes), index_by_name(&f.indexes));
            if want != have {
                let describe = |m: &BTreeMap<String, serde_json::Value>| {
                    short(&serde_json::Value::Array(m.values().cloned().collect()))
                };
                push(&name, "indexes", describe(&want), describe(&have));
            }
        }
        if n.kind == "view" {
            continue;
        }
        if f.documents != n.documents {
            push(&name, "documents", n.documents.to_string(), f.documents.to_string());
        } else if full && f.digest != n.digest {
            push(&name, "digest", n.digest.clone(), f.digest.clone());
        }
        if let Some(reason) = &f.invalid {
            push(&name, "validate", "valid".into(), reason.clone());
        }
    }
    for (name, f) in found {
        let authorization = AUTHORIZATION.iter().any(|c| *name == key("admin", c));
        if !expected_names.contains(name) && !authorization {
            push(name, "unexpected", "not in the backup".into(), format!("a {} after the restore", f.kind));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::archive::Namespace;

    fn recorded() -> Contents {
        let ns = |db: &str, c: &str, documents: u64, digest: &str| Namespace {
            db: db.into(),
            collection: c.into(),
            kind: "collection".into(),
            options: serde_json::json!({}),
            indexes: vec![
                serde_json::json!({"v": {"$numberInt": "2"}, "key": {"_id": {"$numberInt": "1"}}, "name": "_id_"}),
            ],
            documents,
            digest: digest.into(),
        };
        Contents {
            namespaces: vec![
                ns("shop", "orders", 10, "d1"),
                ns("shop", "customers", 3, "d2"),
                ns("admin", "system.users", 2, "u"),
                ns("admin", "system.version", 2, "v"),
            ],
            oplog_entries: 4,
            oplog_first: None,
            oplog_last: None,
            tool_version: None,
        }
    }

    fn restored() -> BTreeMap<String, Found> {
        let f = |documents: u64, digest: &str| Found {
            kind: "collection".into(),
            options: serde_json::json!({}),
            // A server may write the version differently, or add build flags.
            indexes: vec![
                serde_json::json!({"v": {"$numberInt": "2"}, "key": {"_id": {"$numberInt": "1"}}, "name": "_id_", "background": false}),
            ],
            documents,
            digest: digest.into(),
            invalid: None,
        };
        BTreeMap::from([
            ("shop.orders".to_string(), f(10, "d1")),
            ("shop.customers".to_string(), f(3, "d2")),
            ("admin.system.users".to_string(), Found { digest: "rewritten".into(), ..f(2, "") }),
        ])
    }

    #[test]
    fn a_faithful_restore_has_no_mismatch() {
        assert_eq!(compare(&recorded(), &restored()), vec![]);
    }

    #[test]
    fn every_kind_of_difference_is_named_with_its_namespace() {
        let mut found = restored();
        found.remove("shop.customers");
        found.get_mut("shop.orders").expect("orders").digest = "changed".into();
        found.insert("shop.extra".into(), Found { kind: "collection".into(), ..Found::default() });
        found.get_mut("admin.system.users").expect("users").documents = 1;
        let mismatches = compare(&recorded(), &found);
        let checks: Vec<(&str, &str)> = mismatches.iter().map(|m| (m.namespace.as_str(), m.check.as_str())).collect();
        assert_eq!(
            checks,
            [
                ("shop.orders", "digest"),
                ("shop.customers", "missing"),
                ("admin.system.users", "documents"),
                ("shop.extra", "unexpected")
            ]
        );
        let mut found = restored();
        let orders = found.get_mut("shop.orders").expect("orders");
        orders.documents = 9;
        orders.indexes.push(serde_json::json!({"key": {"sku": 1}, "name": "sku_1"}));
        orders.options = serde_json::json!({"capped": true});
        orders.invalid = Some("not valid".into());
        let checks: Vec<String> = compare(&recorded(), &found).into_iter().map(|m| m.check).collect();
        assert_eq!(checks, ["options", "indexes", "documents", "validate"]);
    }

    #[test]
    fn mongorestores_summary_gives_the_failed_documents() {
        let output = "2026-12-05T09:00:00 finished restoring shop.orders (10 documents, 0 failures)\n\
                      2026-12-05T09:00:00.123+0000\t13 document(s) restored successfully. 2 document(s) failed to restore.";
        assert_eq!(failed_documents(output), Some(2));
        assert_eq!(failed_documents("13 document(s) restored successfully. 0 document(s) failed to restore."), Some(0));
        assert_eq!(failed_documents("nothing"), None);
    }
}
