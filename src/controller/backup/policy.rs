//! A schedule: create the backup that is due (at most one, never overlapping the previous
//! one), record runs that were missed, prune what retention no longer keeps (the stored
//! copies first, by a Job, then the MongoBackup: [`super::prune`]), and come back at the next
//! scheduled time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::SCHEDULE_LABEL;
use super::schedule::{Decision, Schedule, ScheduleState, backup_name, decide};
use super::status::{LAST_BACKUP_FAILED, set_phase, set_schedule_failing, write};
use super::verification::VERIFY_REQUESTED;
use super::verification_schedule::{self, VerificationTick, requested_for};
use crate::api::{BackupPhase, MongoBackup, MongoBackupSpec, VerificationPhase, condition_type};
use crate::build::labels::labels;
use crate::controller::error::{Error, KubeContext};
use crate::controller::{Context, Events, to_time};
use crate::mongo::MongoAdmin;

pub(super) fn to_chrono(t: &Time) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32).unwrap_or_default()
}

/// The one-off spec of the backups a schedule takes.
/// The spec of a backup the schedule takes: the schedule's, less what only a schedule has;
/// verified only when `verify`.
fn child_spec(spec: &MongoBackupSpec, verify: bool) -> MongoBackupSpec {
    let verification = if verify { spec.verification.clone() } else { None };
    MongoBackupSpec { verification, ..spec.one_backup() }
}

/// Whether the schedule's backup due `at` is verified: one in `every`, counted in scheduled
/// times since its newest backup that asked for verification (the first one always does).
/// Counted on the schedule itself, not in the backups that exist: retention may have
/// deleted some in between, and it always keeps the newest verified one.
pub fn verification_due(children: &[MongoBackup], every: u32, schedule: &Schedule, at: DateTime<Utc>) -> bool {
    let every = every.max(1) as usize;
    let newest_verified = children
        .iter()
        .filter(|c| c.spec.verification.is_some())
        .filter_map(|c| c.metadata.creation_timestamp.as_ref().map(to_chrono))
        .max();
    let Some(since) = newest_verified else { return true };
    // Scheduled times after that backup was created, up to and including `at`.
    let mut runs = 0;
    let mut t = since;
    while runs < every {
        match schedule.next_after(t) {
            Some(next) if next <= at => {
                runs += 1;
                t = next;
            }
            _ => break,
        }
    }
    runs >= every
}

pub async fn reconcile<A: MongoAdmin>(policy: &MongoBackup, ctx: &Context<A>) -> Result<Action, Error> {
    let namespace = policy.namespace().ok_or(Error::Incomplete("MongoBackup", "namespace"))?;
    let name = policy.name_any();
    let api: Api<MongoBackup> = Api::namespaced(ctx.client.clone(), &namespace);
    let events = Events::new(&ctx.recorder, policy.object_ref(&()));
    let generation = policy.metadata.generation;
    let mut status = policy.status.clone().unwrap_or_default();
    let Some(schedule_spec) = &policy.spec.schedule else { return Ok(Action::await_change()) };
    let parsed = Schedule::parse(schedule_spec).and_then(|backups| {
        let verifications = match policy.spec.verification.as_ref().and_then(|v| v.cron.as_deref()) {
            Some(cron) => Some(Schedule::of("verification.cron", cron, schedule_spec.time_zone.as_deref())?),
            None => None,
        };
        Ok((backups, verifications))
    });
    let (schedule, verification_cron) = match parsed {
        Ok(s) => s,
        Err(error) => {
            let changed = status.error.as_deref() != Some(&error.to_string());
            status.error = Some(error.to_string());
            status.next_schedule_time = None;
            set_phase(&mut status, BackupPhase::Failed, "InvalidSchedule", &error.to_string(), generation);
            write(&api, policy, &status).await?;
            if changed {
                events.warning("InvalidSchedule", "Schedule", error.to_string()).await;
            }
            return Ok(Action::await_change());
        }
    };
    status.error = None;

    let uid = policy.uid().unwrap_or_default();
    let children: Vec<MongoBackup> = api
        .list(&ListParams::default().labels(&format!("{SCHEDULE_LABEL}={name}")))
        .await
        .doing(|| format!("listing the backups of schedule {name}"))?
        .items
        .into_iter()
        .filter(|c| c.owner_references().iter().any(|o| o.uid == uid))
        .collect();
    let phase_of = |c: &MongoBackup| c.status.as_ref().and_then(|s| s.phase);
    let busy = children.iter().any(|c| matches!(phase_of(c), None | Some(BackupPhase::Pending | BackupPhase::Running)));
    let created = policy.metadata.creation_timestamp.as_ref().map(to_chrono).unwrap_or_else(Utc::now);
    let state = ScheduleState {
        handled_until: status.last_schedule_time.as_ref().map(to_chrono).unwrap_or(created),
        busy,
        suspended: policy.spec.suspend,
        deadline: chrono::Duration::seconds(schedule_spec.starting_deadline_seconds),
    };
    let now = Utc::now();
    match decide(&schedule, &state, now) {
        Decision::Start { at } => {
            let child_name = backup_name(&name, at);
            let child = MongoBackup {
                metadata: ObjectMeta {
                    name: Some(child_name.clone()),
                    namespace: Some(namespace.clone()),
                    labels: Some({
                        let mut l: BTreeMap<String, String> = labels(&policy.spec.cluster_ref.name, "backup");
                        l.insert(SCHEDULE_LABEL.into(), name.clone());
                        l
                    }),
                    owner_references: policy.controller_owner_ref(&()).map(|o| vec![o]),
                    ..ObjectMeta::default()
                },
                // Verified as it is taken, unless verification has a cron of its own.
                spec: child_spec(
                    &policy.spec,
                    policy
                        .spec
                        .verification
                        .as_ref()
                        .is_some_and(|v| v.cron.is_none() && verification_due(&children, v.every, &schedule, at)),
                ),
                status: None,
            };
            match api.create(&PostParams::default(), &child).await {
                Ok(_) => {
                    let note = format!("created MongoBackup {child_name} for {at}");
                    events.normal("BackupScheduled", "Schedule", note).await;
                }
                // The name is the scheduled time's: an earlier reconcile (from a cache older
                // than its status write) created it already, and said so.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(source) => {
                    return Err(Error::Kube { action: format!("creating MongoBackup {child_name}"), source });
                }
            }
            status.last_schedule_time = to_time(at);
        }
        Decision::Missed { at } => {
            status.last_schedule_time = to_time(at);
            let late = (now - at).num_seconds();
            events
                .warning(
                    "MissedSchedule",
                    "Schedule",
                    format!("the backup due at {at} was not started: {late} s late, past startingDeadlineSeconds ({}); was the operator down?", schedule_spec.starting_deadline_seconds),
                )
                .await;
        }
        Decision::Overlap { at } => {
            status.last_schedule_time = to_time(at);
            events
                .warning(
                    "SkippedOverlap",
                    "Schedule",
                    format!("the backup due at {at} was skipped: the previous one is still running"),
                )
                .await;
        }
        Decision::Idle => {}
    }

    let next_verification = match &verification_cron {
        Some(cron) => {
            let handled_until = status.last_verification_schedule_time.as_ref().map(to_chrono).unwrap_or(created);
            let tick = verification_schedule::decide(cron, handled_until, policy.spec.suspend, &children, now);
            if let Some(at) = verify_at_its_time(&api, &events, tick).await? {
                status.last_verification_schedule_time = to_time(at);
            }
            if policy.spec.suspend { None } else { cron.next_after(now) }
        }
        None => None,
    };
    status.next_verification_time = next_verification.and_then(to_time);

    super::prune::prune(ctx, policy, &api, &children, &events).await?;

    let succeeded = children
        .iter()
        .filter(|c| phase_of(c) == Some(BackupPhase::Succeeded))
        .max_by_key(|c| c.status.as_ref().and_then(|s| s.completion_time.clone()).map(|t| t.0));
    status.last_successful_backup = succeeded.map(|c| c.name_any());
    status.last_successful_time = succeeded.and_then(|c| c.status.as_ref()?.completion_time.clone());
    let verified = children
        .iter()
        .filter_map(|c| {
            let v = c.status.as_ref()?.verification.as_ref()?;
            (v.phase == VerificationPhase::Passed).then_some((c, v.completion_time.clone()?))
        })
        .max_by_key(|(_, at)| at.0);
    status.last_verified_backup = verified.as_ref().map(|(c, _)| c.name_any());
    status.last_verified_time = verified.map(|(_, at)| at);
    let next = if policy.spec.suspend { None } else { schedule.next_after(now) };
    status.next_schedule_time = next.and_then(to_time);
    let (phase, reason, message) = match (policy.spec.suspend, next) {
        (true, _) => (BackupPhase::Suspended, "Suspended", "suspended: no new backups start".to_string()),
        (false, Some(next)) => (BackupPhase::Scheduled, "Scheduled", format!("next backup at {next}")),
        (false, None) => (BackupPhase::Scheduled, "NoFutureRun", "the schedule has no future run".to_string()),
    };
    match newest_failure(&children) {
        Some(failed) if phase == BackupPhase::Scheduled => {
            let message = failing_message(failed, status.last_successful_backup.as_deref(), &message);
            let already = policy.status.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|c| c.type_ == condition_type::READY && c.reason == LAST_BACKUP_FAILED)
            });
            if !already {
                events.warning(LAST_BACKUP_FAILED, "Schedule", message.clone()).await;
            }
            set_schedule_failing(&mut status, LAST_BACKUP_FAILED, &message, generation);
        }
        _ => set_phase(&mut status, phase, reason, &message, generation),
    }
    let (pitr, pitr_retry) = super::archiver::reconcile(policy, ctx, &events).await?;
    status.pitr = pitr;
    write(&api, policy, &status).await?;

    // Come back at the next scheduled time (a second late, so it is due), or earlier when a
    // child or the spec changes, or when the archiver waits for an input nothing watched brings.
    let after = |t: DateTime<Utc>| (t - now).to_std().unwrap_or_default() + std::time::Duration::from_secs(1);
    let at_next = crate::controller::sooner(next.map(after), next_verification.map(after));
    Ok(match crate::controller::sooner(at_next, pitr_retry) {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// Does what a verification time asks: marks the backup chosen for verification (its own
/// reconcile runs it), or says why none is. Returns the time handled, if one was.
async fn verify_at_its_time(
    api: &Api<MongoBackup>,
    events: &Events<'_>,
    tick: VerificationTick,
) -> Result<Option<DateTime<Utc>>, Error> {
    match tick {
        VerificationTick::Idle => Ok(None),
        VerificationTick::Verify { at, backup } => {
            let patch = serde_json::json!({"metadata": {"annotations": {VERIFY_REQUESTED: requested_for(at)}}});
            api.patch(&backup, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .doing(|| format!("marking MongoBackup {backup} for verification"))?;
            events
                .normal(
                    "VerificationScheduled",
                    "Verify",
                    format!("verifying {backup}, the newest backup not verified yet, for {at}"),
                )
                .await;
            Ok(Some(at))
        }
        VerificationTick::Busy { at, backup } => {
            let note = format!("the verification due at {at} was skipped: the verification of {backup} is still going");
            events.normal("VerificationSkipped", "Verify", note).await;
            Ok(Some(at))
        }
        VerificationTick::Chosen { at, .. } => Ok(Some(at)),
        VerificationTick::NothingNew { at } => {
            let note = format!("nothing to verify at {at}: every backup that succeeded was verified already");
            events.normal("VerificationSkipped", "Verify", note).await;
            Ok(Some(at))
        }
    }
}

/// The schedule's newest finished backup, when it failed. Retention always keeps the newest
/// failure and the newest success, so this stays true until a later backup succeeds.
fn newest_failure(children: &[MongoBackup]) -> Option<&MongoBackup> {
    let finished = |c: &&MongoBackup| {
        matches!(c.status.as_ref().and_then(|s| s.phase), Some(BackupPhase::Succeeded | BackupPhase::Failed))
    };
    let finished_at = |c: &&MongoBackup| {
        let completion = c.status.as_ref().and_then(|s| s.completion_time.as_ref()).map(|t| t.0);
        (completion.or_else(|| c.metadata.creation_timestamp.as_ref().map(|t| t.0)), c.name_any())
    };
    children
        .iter()
        .filter(finished)
        .max_by_key(finished_at)
        .filter(|c| c.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Failed))
}

/// Why a schedule is failing, what is still restorable, and when it will try again.
fn failing_message(failed: &MongoBackup, last_success: Option<&str>, next: &str) -> String {
    let error = failed.status.as_ref().and_then(|s| s.error.as_deref()).unwrap_or("no reason recorded");
    let restorable = match last_success {
        Some(name) => format!("the newest restorable backup is {name}"),
        None => "no backup of this schedule has succeeded yet".to_string(),
    };
    format!("the newest backup, {}, failed: {error}; {restorable}; {next}", failed.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(minute: u32, verified: bool) -> MongoBackup {
        let mut spec: MongoBackupSpec = serde_json::from_value(serde_json::json!({
            "clusterRef": {"name": "orders"}, "unencrypted": true,
            "destinations": [{"name": "s3", "s3": {"bucket": "b", "credentialsSecretRef": {"name": "k"}}}],
        }))
        .expect("spec");
        if verified {
            spec.verification = serde_json::from_value(serde_json::json!({})).expect("verification");
        }
        let mut backup = MongoBackup::new(&format!("nightly-20261205{minute:04}"), spec);
        // Created a few seconds after its scheduled minute.
        backup.metadata.creation_timestamp =
            Some(Time(k8s_openapi::jiff::Timestamp::from_second(minute_at(minute).timestamp() + 3).expect("time")));
        backup
    }

    fn minute_at(minute: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_796_428_800 + i64::from(minute) * 60, 0).expect("time")
    }

    fn every_minute() -> Schedule {
        Schedule::parse(&serde_json::from_value(serde_json::json!({"cron": "* * * * *"})).expect("spec")).expect("cron")
    }

    #[test]
    fn one_backup_in_every_is_verified_counted_in_scheduled_runs() {
        let s = every_minute();
        assert!(verification_due(&[], 3, &s, minute_at(0)), "the first one is");
        assert!(verification_due(&[child(0, false)], 3, &s, minute_at(1)), "none asked so far: the next one does");
        let taken = [child(0, true), child(1, false)];
        assert!(!verification_due(&taken, 3, &s, minute_at(2)));
        let taken = [child(0, true), child(1, false), child(2, false)];
        assert!(verification_due(&taken, 3, &s, minute_at(3)));
        assert!(verification_due(&[child(0, true)], 1, &s, minute_at(1)), "every: 1 verifies each one");
        // Retention deleted the runs in between: they still count.
        assert!(verification_due(&[child(0, true)], 3, &s, minute_at(3)));
        assert!(!verification_due(&[child(0, true)], 3, &s, minute_at(2)));
    }
}
