//! Writing a MongoBackup's status: phase, conditions in the kstatus shape, and the rest.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

use crate::api::{
    BackupPhase, MongoBackup, MongoBackupStatus, Standing, condition, condition_type, kstatus_conditions,
};
use crate::controller::error::{Error, KubeContext};

/// The reason a schedule gives while its newest finished backup is a failure.
pub const LAST_BACKUP_FAILED: &str = "LastBackupFailed";

/// What the conditions say about a MongoBackup, apart from its phase.
struct Health<'a> {
    ready: bool,
    progressing: bool,
    degraded: bool,
    standing: Standing<'a>,
}

/// Sets phase and conditions on `status`: Ready when a backup succeeded (or a schedule is
/// running), Progressing while it is being taken, Degraded when it failed.
pub fn set_phase(
    status: &mut MongoBackupStatus,
    phase: BackupPhase,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let health = Health {
        ready: matches!(phase, BackupPhase::Succeeded | BackupPhase::Scheduled | BackupPhase::Suspended),
        progressing: matches!(phase, BackupPhase::Pending | BackupPhase::Running),
        degraded: phase == BackupPhase::Failed,
        standing: match phase {
            BackupPhase::Pending | BackupPhase::Running => Standing::Reconciling(reason, message),
            BackupPhase::Failed => Standing::Stalled(reason, message),
            BackupPhase::Succeeded | BackupPhase::Scheduled | BackupPhase::Suspended => Standing::Current,
        },
    };
    apply(status, phase, health, reason, message, generation);
}

/// A schedule whose newest finished backup failed. It is still `Scheduled` (the next run will
/// start), but it is not Ready and is Degraded and Stalled until a later backup succeeds: the
/// backups it is there to take are not being taken, and `kubectl wait`, Flux and Argo CD
/// should say so rather than show a healthy policy.
pub fn set_schedule_failing(status: &mut MongoBackupStatus, reason: &str, message: &str, generation: Option<i64>) {
    let health =
        Health { ready: false, progressing: false, degraded: true, standing: Standing::Stalled(reason, message) };
    apply(status, BackupPhase::Scheduled, health, reason, message, generation);
}

fn apply(
    status: &mut MongoBackupStatus,
    phase: BackupPhase,
    health: Health<'_>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let now = Timestamp::now();
    let previous = status.conditions.clone();
    let word = |on: bool, yes: &str| if on { reason.to_string() } else { yes.to_string() };
    status.conditions = vec![
        condition(&previous, condition_type::READY, health.ready, reason, message, generation, now),
        condition(
            &previous,
            condition_type::PROGRESSING,
            health.progressing,
            &word(health.progressing, "Idle"),
            message,
            generation,
            now,
        ),
        condition(
            &previous,
            condition_type::DEGRADED,
            health.degraded,
            &word(health.degraded, "AsExpected"),
            message,
            generation,
            now,
        ),
    ];
    status.conditions.extend(kstatus_conditions(&previous, health.standing, generation, now));
    status.phase = Some(phase);
    status.observed_generation = generation;
}

/// The time now, as the API wants it.
pub fn now() -> Time {
    Time(Timestamp::now())
}

/// Writes `status` if it differs from what the object has.
pub async fn write(api: &Api<MongoBackup>, backup: &MongoBackup, status: &MongoBackupStatus) -> Result<(), Error> {
    if backup.status.as_ref() == Some(status) {
        return Ok(());
    }
    let patch = serde_json::json!({ "status": status });
    api.patch_status(&backup.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .doing(|| format!("writing the status of MongoBackup {}", backup.name_any()))?;
    Ok(())
}

/// Bytes for people: "1.2 GiB".
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn a_failed_backup_is_degraded_and_not_ready() {
        let mut status = MongoBackupStatus::default();
        set_phase(&mut status, BackupPhase::Failed, "BackupFailed", "mongodump exited with 1", Some(1));
        let get =
            |t: &str| status.conditions.iter().find(|c| c.type_ == t).map(|c| (c.status.clone(), c.reason.clone()));
        assert_eq!(get("Ready"), Some(("False".into(), "BackupFailed".into())));
        assert_eq!(get("Degraded"), Some(("True".into(), "BackupFailed".into())));
        assert_eq!(get("Progressing"), Some(("False".into(), "Idle".into())));
    }

    #[test]
    fn a_failing_schedule_stays_scheduled_but_is_degraded_and_stalled() {
        let mut status = MongoBackupStatus::default();
        set_schedule_failing(&mut status, "LastBackupFailed", "b-1 failed", Some(2));
        let get = |t: &str| status.conditions.iter().find(|c| c.type_ == t).map(|c| c.status.clone());
        assert_eq!(status.phase, Some(BackupPhase::Scheduled));
        assert_eq!(get("Ready").as_deref(), Some("False"));
        assert_eq!(get("Degraded").as_deref(), Some("True"));
        assert_eq!(get("Stalled").as_deref(), Some("True"));
        assert_eq!(get("Reconciling").as_deref(), Some("False"));
        // Written again unchanged, nothing moves: no status write, no reconcile loop.
        let before = status.clone();
        set_schedule_failing(&mut status, "LastBackupFailed", "b-1 failed", Some(2));
        assert_eq!(status, before);
    }
}
