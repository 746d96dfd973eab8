//! Writing a MongoBackup's status: phase, conditions in the kstatus shape, and the rest.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

use crate::api::{
    BackupPhase, MongoBackup, MongoBackupStatus, Standing, condition, condition_type, kstatus_conditions,
};
use crate::controller::error::{Error, KubeContext};

/// Sets phase and conditions on `status`: Ready when a backup succeeded (or a schedule is
/// running), Progressing while it is being taken, Degraded when it failed.
pub fn set_phase(
    status: &mut MongoBackupStatus,
    phase: BackupPhase,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let now = Timestamp::now();
    let previous = status.conditions.clone();
    let ready = matches!(phase, BackupPhase::Succeeded | BackupPhase::Scheduled | BackupPhase::Suspended);
    let progressing = matches!(phase, BackupPhase::Pending | BackupPhase::Running);
    let degraded = phase == BackupPhase::Failed;
    let word = |on: bool, yes: &str| if on { reason.to_string() } else { yes.to_string() };
    status.conditions = vec![
        condition(&previous, condition_type::READY, ready, reason, message, generation, now),
        condition(
            &previous,
            condition_type::PROGRESSING,
            progressing,
            &word(progressing, "Idle"),
            message,
            generation,
            now,
        ),
        condition(
            &previous,
            condition_type::DEGRADED,
            degraded,
            &word(degraded, "AsExpected"),
            message,
            generation,
            now,
        ),
    ];
    let standing = match phase {
        BackupPhase::Pending | BackupPhase::Running => Standing::Reconciling(reason, message),
        BackupPhase::Failed => Standing::Stalled(reason, message),
        BackupPhase::Succeeded | BackupPhase::Scheduled | BackupPhase::Suspended => Standing::Current,
    };
    status.conditions.extend(kstatus_conditions(&previous, standing, generation, now));
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
}
