//! `kubectl mongo backup NAME [--to DESTINATION]... [--wait]`: a one-off backup now, with the
//! settings of the cluster's backup schedule (its stores, compression, encryption and
//! verification), as a MongoBackup the operator then takes like any other.

use std::time::Duration;

use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};

use super::common::{PluginError, classify};

use crate::api::{BackupPhase, MongoBackup, MongoBackupSpec, VerificationPhase};

/// Why the backup could not be asked for, or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum BackupCommandError {
    #[error(
        "MongoCluster {cluster} has no backup schedule in namespace {namespace} to take the stores and keys from; create a MongoBackup with spec.destinations instead"
    )]
    NoSchedule { cluster: String, namespace: String },
    #[error("the schedule {schedule} has no destination named {name} (it has: {known})")]
    UnknownDestination { schedule: String, name: String, known: String },
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

/// The spec of a one-off backup from `schedule`'s, to the destinations named in `to` (all
/// when empty): pure.
pub fn one_off_spec(schedule: &MongoBackup, to: &[String]) -> Result<MongoBackupSpec, BackupCommandError> {
    let mut spec = schedule.spec.one_backup();
    if !to.is_empty() {
        for name in to {
            if !spec.destinations.iter().any(|d| &d.name == name) {
                let known: Vec<&str> = spec.destinations.iter().map(|d| d.name.as_str()).collect();
                return Err(BackupCommandError::UnknownDestination {
                    schedule: schedule.name_any(),
                    name: name.clone(),
                    known: known.join(", "),
                });
            }
        }
        spec.destinations.retain(|d| to.contains(&d.name));
    }
    Ok(spec)
}

/// Creates the backup; returns its name.
pub async fn request(
    client: &Client,
    namespace: &str,
    cluster: &str,
    to: &[String],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, BackupCommandError> {
    let api: Api<MongoBackup> = Api::namespaced(client.clone(), namespace);
    let mut schedules: Vec<MongoBackup> = api
        .list(&ListParams::default())
        .await
        .map_err(classify("list MongoBackups", namespace))?
        .items
        .into_iter()
        .filter(|b| b.spec.cluster_ref.name == cluster && b.spec.schedule.is_some())
        .collect();
    schedules.sort_by_key(|b| b.name_any());
    let schedule = schedules.first().ok_or_else(|| BackupCommandError::NoSchedule {
        cluster: cluster.to_string(),
        namespace: namespace.to_string(),
    })?;
    let name = format!("{cluster}-manual-{}", now.format("%Y%m%d%H%M%S"));
    let mut backup = MongoBackup::new(&name, one_off_spec(schedule, to)?);
    backup.metadata.labels =
        Some([("app.kubernetes.io/created-by".to_string(), "kubectl-mongo".to_string())].into_iter().collect());
    api.create(&PostParams::default(), &backup).await.map_err(classify("create MongoBackups", namespace))?;
    Ok(name)
}

/// One line for a state of the backup, when it is worth printing.
pub fn progress(backup: &MongoBackup) -> Option<String> {
    let status = backup.status.as_ref()?;
    let phase = status.phase?;
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.message.clone()).unwrap_or_default();
    let line = match (phase, &status.verification) {
        (BackupPhase::Succeeded, Some(v)) => {
            format!("Succeeded; verification {:?}: {}", v.phase, v.message.clone().unwrap_or_default())
        }
        (BackupPhase::Failed, _) => format!("Failed: {}", status.error.clone().unwrap_or(ready)),
        (phase, _) => format!("{phase:?}: {ready}"),
    };
    Some(line)
}

/// Whether the backup (and its verification, if it has one) has ended, and how.
pub fn ended(backup: &MongoBackup) -> Option<bool> {
    let status = backup.status.as_ref()?;
    match status.phase? {
        BackupPhase::Failed => Some(false),
        BackupPhase::Succeeded if !crate::controller::backup::verification::requested(backup) => Some(true),
        BackupPhase::Succeeded => match status.verification.as_ref()?.phase {
            VerificationPhase::Passed => Some(true),
            VerificationPhase::Failed => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Follows the backup until it ends, printing a line for each new state: whether it
/// succeeded (and passed its verification).
pub async fn follow(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<bool, BackupCommandError> {
    let mut last = None;
    let ended = super::common::follow(client, namespace, name, timeout, |backup: &MongoBackup| {
        if let Some(line) = progress(backup)
            && last.as_ref() != Some(&line)
        {
            println!("{line}");
            last = Some(line);
        }
        ended(backup)
    })
    .await?;
    Ok(ended.unwrap_or_else(|| {
        println!(
            "still running after {} s; `kubectl mongo status` and `kubectl get mongobackup {name}` follow it",
            timeout.as_secs()
        );
        false
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> MongoBackup {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "mongo.operator.rs/v1alpha1", "kind": "MongoBackup",
            "metadata": {"name": "nightly", "namespace": "shop"},
            "spec": {"clusterRef": {"name": "orders"}, "schedule": {"cron": "0 2 * * *"}, "unencrypted": true,
                "retention": {"keepLast": 3}, "verification": {},
                "destinations": [
                    {"name": "ovh", "s3": {"bucket": "b", "credentialsSecretRef": {"name": "k"}}},
                    {"name": "scw", "s3": {"bucket": "b", "credentialsSecretRef": {"name": "k"}}}]},
        }))
        .expect("schedule")
    }

    #[test]
    fn a_one_off_takes_the_schedules_settings_less_what_only_a_schedule_has() {
        let spec = one_off_spec(&schedule(), &[]).expect("spec");
        assert!(spec.schedule.is_none() && spec.retention.is_none() && spec.verification.is_some());
        assert_eq!(spec.destinations.len(), 2);
        let spec = one_off_spec(&schedule(), &["scw".into()]).expect("spec");
        assert_eq!(spec.destinations.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["scw"]);
        let refused = one_off_spec(&schedule(), &["aws".into()]).expect_err("unknown");
        assert_eq!(refused.to_string(), "the schedule nightly has no destination named aws (it has: ovh, scw)");
    }

    #[test]
    fn a_backup_with_verification_ends_when_its_verification_does() {
        let mut backup = MongoBackup::new("b", one_off_spec(&schedule(), &[]).expect("spec"));
        assert_eq!(ended(&backup), None);
        let mut status = crate::api::MongoBackupStatus { phase: Some(BackupPhase::Succeeded), ..Default::default() };
        backup.status = Some(status.clone());
        assert_eq!(ended(&backup), None, "succeeded, not yet verified");
        status.verification =
            Some(crate::api::VerificationStatus { phase: VerificationPhase::Failed, ..Default::default() });
        backup.status = Some(status);
        assert_eq!(ended(&backup), Some(false));
        assert!(progress(&backup).is_some_and(|l| l.starts_with("Succeeded; verification Failed")));
    }
}
