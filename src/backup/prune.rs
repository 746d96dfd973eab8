//! `mongo-operator prune`: deletes the stored copies of the backups retention no longer keeps,
//! inside a Job in the backups' namespace. The operator then deletes the MongoBackups whose
//! copies are all gone.

use std::collections::BTreeMap;

use object_store::ObjectStoreExt;

use super::files::SecretFiles;
use super::plan::{Outcome, PruneFailure, PrunePlan};
use super::store::{open, summary};

/// Deletes every target's objects; a backup is reported deleted only when all of its are.
/// Objects already gone count as deleted, so a prune run twice ends the same.
pub async fn prune(plan: &PrunePlan, secrets: &SecretFiles) -> Outcome {
    let mut errors: BTreeMap<&str, String> = BTreeMap::new();
    for target in &plan.targets {
        if errors.contains_key(target.backup.as_str()) {
            continue;
        }
        let destination = &target.destination;
        let store = match secrets
            .store_credentials(destination)
            .map_err(|e| e.to_string())
            .and_then(|credentials| open(destination, &credentials).map_err(|e| e.to_string()))
        {
            Ok(store) => store,
            Err(error) => {
                errors.insert(&target.backup, error);
                continue;
            }
        };
        for key in &target.keys {
            let key = store.key(key);
            match store.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    tracing::info!(backup = %target.backup, object = %store.url(&key), "deleted");
                }
                Err(error) => {
                    tracing::warn!(backup = %target.backup, object = %store.url(&key), %error, "cannot delete");
                    errors.insert(&target.backup, format!("{}: {}", store.url(&key), summary(&error)));
                    break;
                }
            }
        }
    }
    let mut deleted: Vec<String> = plan.targets.iter().map(|t| t.backup.clone()).collect();
    deleted.dedup();
    deleted.retain(|b| !errors.contains_key(b.as_str()));
    let failed = errors.into_iter().map(|(backup, error)| PruneFailure { backup: backup.to_string(), error }).collect();
    Outcome::Pruned { deleted, failed }
}
