//! A schedule with `verification.cron` verifies on a cron of its own: at each of its times the
//! newest backup that succeeded and was not verified yet is verified. Pure, with `now` passed
//! in, so every case is tested without waiting.
//!
//! Verifying apart from the backups suits a team that backs up every two hours but wants one
//! restore a night (or a week) to prove them: each verification holds a throwaway mongod and
//! a copy of the data for as long as the restore takes.

use chrono::{DateTime, Utc};
use kube::ResourceExt;

use super::policy::to_chrono;
use super::schedule::Schedule;
use super::verification::{VERIFY_REQUESTED, pending, requested};
use crate::api::{BackupPhase, MongoBackup};

/// What a verification time asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerificationTick {
    /// No verification time has come since the last one handled.
    Idle,
    /// The time `at` has come: verify the backup `backup`.
    Verify { at: DateTime<Utc>, backup: String },
    /// The time `at` has come while the verification of `backup` is still going: it is
    /// skipped, as overlapping backups are.
    Busy { at: DateTime<Utc>, backup: String },
    /// The time `at` has come, and no backup is left that succeeded and was not verified.
    NothingNew { at: DateTime<Utc> },
    /// The time `at` was handled already: `backup` carries it. A reconcile from a cache older
    /// than the status write that recorded it sees it again, and must not act twice.
    Chosen { at: DateTime<Utc>, backup: String },
}

/// The value of [`VERIFY_REQUESTED`] on the backup chosen at `at`.
pub fn requested_for(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Decides what the verification cron asks for at `now`. Only the latest time due counts:
/// after an outage one verification runs, not one per missed time. `handled_until` is the
/// last time already handled, or the schedule's creation.
pub fn decide(
    cron: &Schedule,
    handled_until: DateTime<Utc>,
    suspended: bool,
    children: &[MongoBackup],
    now: DateTime<Utc>,
) -> VerificationTick {
    if suspended {
        return VerificationTick::Idle;
    }
    let Some(at) = cron.latest_at_or_before(now) else { return VerificationTick::Idle };
    if at <= handled_until {
        return VerificationTick::Idle;
    }
    let marked = requested_for(at);
    if let Some(chosen) = children.iter().find(|c| c.annotations().get(VERIFY_REQUESTED) == Some(&marked)) {
        return VerificationTick::Chosen { at, backup: chosen.name_any() };
    }
    let succeeded = |c: &&MongoBackup| c.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Succeeded);
    if let Some(going) = children.iter().filter(succeeded).find(|c| pending(c)) {
        return VerificationTick::Busy { at, backup: going.name_any() };
    }
    let completed = |c: &&MongoBackup| {
        let completion = c.status.as_ref().and_then(|s| s.completion_time.as_ref()).map(to_chrono);
        (completion, c.name_any())
    };
    match children.iter().filter(succeeded).filter(|c| !requested(c)).max_by_key(completed) {
        Some(newest) => VerificationTick::Verify { at, backup: newest.name_any() },
        None => VerificationTick::NothingNew { at },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;

    use super::*;
    use crate::api::{MongoBackupStatus, VerificationPhase, VerificationStatus};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    /// Sundays at 04:30.
    fn weekly() -> Schedule {
        Schedule::of("verification.cron", "30 4 * * 0", None).expect("parses")
    }

    fn backup(name: &str, phase: BackupPhase, completed: &str, verification: Option<VerificationPhase>) -> MongoBackup {
        let mut annotations = BTreeMap::new();
        if verification.is_some() {
            annotations.insert(VERIFY_REQUESTED.to_string(), "2026-11-29T04:30:00Z".to_string());
        }
        let mut b = MongoBackup::new(name, serde_json::from_value(serde_json::json!({
            "clusterRef": {"name": "orders"},
            "destinations": [{"name": "s3", "s3": {"bucket": "b", "region": "r", "credentialsSecretRef": {"name": "k"}}}],
        })).expect("spec"));
        b.metadata = ObjectMeta { name: Some(name.into()), annotations: Some(annotations), ..ObjectMeta::default() };
        let completion = Time(completed.parse().expect("time"));
        b.status = Some(MongoBackupStatus {
            phase: Some(phase),
            completion_time: Some(completion),
            verification: verification
                .filter(|p| *p != VerificationPhase::Pending)
                .map(|phase| VerificationStatus { phase, ..VerificationStatus::default() }),
            ..MongoBackupStatus::default()
        });
        b
    }

    #[test]
    fn at_its_time_the_newest_unverified_success_is_verified_once() {
        let children = [
            backup("n-0200", BackupPhase::Succeeded, "2026-12-06T02:01:00Z", None),
            backup("n-0400", BackupPhase::Succeeded, "2026-12-06T04:01:00Z", None),
            backup("n-0000", BackupPhase::Succeeded, "2026-12-06T00:01:00Z", None),
            backup("n-0430", BackupPhase::Failed, "2026-12-06T04:29:00Z", None),
        ];
        let handled = at("2026-11-29T04:30:00Z");
        assert_eq!(
            decide(&weekly(), handled, false, &children, at("2026-12-06T04:30:02Z")),
            VerificationTick::Verify { at: at("2026-12-06T04:30:00Z"), backup: "n-0400".into() }
        );
        // Before the time, and once it is handled, nothing.
        assert_eq!(decide(&weekly(), handled, false, &children, at("2026-12-06T04:29:59Z")), VerificationTick::Idle);
        let handled = at("2026-12-06T04:30:00Z");
        assert_eq!(decide(&weekly(), handled, false, &children, at("2026-12-06T05:00:00Z")), VerificationTick::Idle);
        // Suspended: nothing either.
        let handled = at("2026-11-29T04:30:00Z");
        assert_eq!(decide(&weekly(), handled, true, &children, at("2026-12-06T04:30:02Z")), VerificationTick::Idle);
    }

    #[test]
    fn verified_backups_are_passed_over_and_a_running_verification_skips_the_time() {
        let handled = at("2026-11-29T04:30:00Z");
        let now = at("2026-12-06T04:31:00Z");
        let due = at("2026-12-06T04:30:00Z");
        let children = [
            backup("n-0200", BackupPhase::Succeeded, "2026-12-06T02:01:00Z", None),
            backup("n-0400", BackupPhase::Succeeded, "2026-12-06T04:01:00Z", Some(VerificationPhase::Passed)),
        ];
        assert_eq!(
            decide(&weekly(), handled, false, &children, now),
            VerificationTick::Verify { at: due, backup: "n-0200".into() }
        );
        let children = [
            backup("n-0200", BackupPhase::Succeeded, "2026-12-06T02:01:00Z", Some(VerificationPhase::Failed)),
            backup("n-0400", BackupPhase::Succeeded, "2026-12-06T04:01:00Z", Some(VerificationPhase::Passed)),
        ];
        assert_eq!(decide(&weekly(), handled, false, &children, now), VerificationTick::NothingNew { at: due });
        assert_eq!(decide(&weekly(), handled, false, &[], now), VerificationTick::NothingNew { at: due });
        let children = [
            backup("n-0200", BackupPhase::Succeeded, "2026-12-06T02:01:00Z", None),
            backup("n-0400", BackupPhase::Succeeded, "2026-12-06T04:01:00Z", Some(VerificationPhase::Pending)),
        ];
        assert_eq!(
            decide(&weekly(), handled, false, &children, now),
            VerificationTick::Busy { at: due, backup: "n-0400".into() }
        );
    }

    #[test]
    fn a_time_already_acted_on_is_not_acted_on_again() {
        // The backup chosen for Sunday's time carries it; a reconcile that still sees the
        // time as due (its cache is older than the status write) finds it there.
        let mut chosen =
            backup("n-0400", BackupPhase::Succeeded, "2026-12-06T04:01:00Z", Some(VerificationPhase::Pending));
        chosen.annotations_mut().insert(VERIFY_REQUESTED.into(), requested_for(at("2026-12-06T04:30:00Z")));
        let children = [backup("n-0200", BackupPhase::Succeeded, "2026-12-06T02:01:00Z", None), chosen];
        let tick = decide(&weekly(), at("2026-11-29T04:30:00Z"), false, &children, at("2026-12-06T04:31:00Z"));
        assert_eq!(tick, VerificationTick::Chosen { at: at("2026-12-06T04:30:00Z"), backup: "n-0400".into() });
    }

    #[test]
    fn after_an_outage_one_verification_runs_for_the_latest_time() {
        let children = [backup("n-0400", BackupPhase::Succeeded, "2026-12-06T04:01:00Z", None)];
        // Handled up to three Sundays ago.
        let tick = decide(&weekly(), at("2026-11-15T04:30:00Z"), false, &children, at("2026-12-07T10:00:00Z"));
        assert_eq!(tick, VerificationTick::Verify { at: at("2026-12-06T04:30:00Z"), backup: "n-0400".into() });
    }
}
