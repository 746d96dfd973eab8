//! Verifying a backup that succeeded, when its spec asks for it: one verification Job per
//! cluster at a time, and its findings recorded in `status.verification`, a `Verified`
//! condition, an Event and the metrics. A failed verification never deletes the backup.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::one_off::secret_files;
use super::status::{now, write};
use crate::api::{
    MongoBackup, MongoBackupStatus, MongoCluster, VerificationMismatch, VerificationPhase, VerificationSpec,
    VerifiedCopy, condition,
};
use crate::backup::plan::{CopyVerification, Expected, Outcome, VerifyPlan};
use crate::build::backup_job::{self, JobInputs, job_name};
use crate::build::labels::{labels, query};
use crate::build::names::ClusterNames;
use crate::build::verify_job::{THROWAWAY_HOST, THROWAWAY_SET, VERIFY_COMPONENT, add_throwaway, throwaway_source};
use crate::controller::credentials::SecretsRead;
use crate::controller::error::{Error, KubeContext};
use crate::controller::job_outcome::{self, JobState};
use crate::controller::ssa::apply;
use crate::controller::{Context, Events};
use crate::mongo::MongoAdmin;

/// The condition a verified backup carries.
pub const VERIFIED: &str = "Verified";

/// The annotation a schedule with `verification.cron` puts on the backup it chose at a
/// verification time (the value is that time): a one-off backup's spec cannot change once
/// created, and the backup's own reconcile runs the verification as for one that asked.
pub const VERIFY_REQUESTED: &str = "mongo.operator.rs/verify-requested";

/// Whether `backup` is to be verified: its spec asks, or its schedule chose it.
pub fn requested(backup: &MongoBackup) -> bool {
    backup.spec.verification.is_some() || backup.annotations().contains_key(VERIFY_REQUESTED)
}

/// Whether `backup` still has a verification to run or to finish.
pub fn pending(backup: &MongoBackup) -> bool {
    requested(backup)
        && !backup
            .status
            .as_ref()
            .and_then(|s| s.verification.as_ref())
            .is_some_and(|v| matches!(v.phase, VerificationPhase::Passed | VerificationPhase::Failed))
}

/// What the API shows of one copy's verification.
pub fn shown(copy: &CopyVerification) -> VerifiedCopy {
    let throughput = if copy.restore_seconds > 0.0 { copy.restored_bytes as f64 / copy.restore_seconds } else { 0.0 };
    VerifiedCopy {
        destination: copy.destination.clone(),
        passed: copy.passed,
        restore_seconds: (copy.restore_seconds * 1000.0).round() / 1000.0,
        throughput_bytes_per_second: throughput as i64,
        documents_expected: i64::try_from(copy.documents_expected).unwrap_or(i64::MAX),
        documents_restored: i64::try_from(copy.documents_restored).unwrap_or(i64::MAX),
        mismatches: copy
            .mismatches
            .iter()
            .map(|m| VerificationMismatch {
                namespace: m.namespace.clone(),
                check: m.check.clone(),
                expected: m.expected.clone(),
                found: m.found.clone(),
            })
            .collect(),
        mismatch_count: i32::try_from(copy.mismatch_count).unwrap_or(i32::MAX),
    }
}

/// The verdict over every copy, for the condition, the Event and `message`.
pub fn verdict(copies: &[VerifiedCopy]) -> (bool, String) {
    if copies.is_empty() {
        return (false, "the verification reported no copy".into());
    }
    let failed: Vec<String> = copies
        .iter()
        .filter(|c| !c.passed)
        .map(|c| match c.mismatches.first() {
            Some(m) if m.namespace.is_empty() => format!("copy {}: {}: {}", c.destination, m.check, m.found),
            Some(m) => format!(
                "copy {}: {} {}: expected {}, found {} ({} difference(s))",
                c.destination, m.namespace, m.check, m.expected, m.found, c.mismatch_count
            ),
            None => format!("copy {}: failed", c.destination),
        })
        .collect();
    if failed.is_empty() {
        let slowest = copies.iter().map(|c| c.restore_seconds).fold(0.0, f64::max);
        let documents = copies.first().map(|c| c.documents_restored).unwrap_or(0);
        (
            true,
            format!(
                "{} cop{} restored and matched what was recorded ({documents} documents; restore took {slowest:.1} s at most)",
                copies.len(),
                if copies.len() == 1 { "y" } else { "ies" }
            ),
        )
    } else {
        (false, failed.join("; "))
    }
}

fn set_verified(status: &mut MongoBackupStatus, passed: bool, reason: &str, message: &str, generation: Option<i64>) {
    let previous = status.conditions.clone();
    status.conditions.retain(|c| c.type_ != VERIFIED);
    status.conditions.push(condition(&previous, VERIFIED, passed, reason, message, generation, Timestamp::now()));
}

/// Runs or follows the verification of `backup`, which succeeded.
pub async fn reconcile<A: MongoAdmin>(backup: &MongoBackup, ctx: &Context<A>) -> Result<Action, Error> {
    let namespace = backup.namespace().ok_or(Error::Incomplete("MongoBackup", "namespace"))?;
    let name = backup.name_any();
    let api: Api<MongoBackup> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(spec) = &settings(&api, backup).await? else { return Ok(Action::await_change()) };
    let events = Events::new(&ctx.recorder, backup.object_ref(&()));
    let generation = backup.metadata.generation;
    let mut status = backup.status.clone().unwrap_or_default();
    let mut verification = status.verification.clone().unwrap_or_default();
    let job_name = job_name(&name, VERIFY_COMPONENT);

    if let Some(state) = job_outcome::read(&ctx.client, &namespace, &job_name, "verify").await? {
        match state {
            JobState::Active => {
                if verification.phase != VerificationPhase::Running {
                    verification.phase = VerificationPhase::Running;
                    verification.message = Some(format!("verification Job {job_name} is restoring each copy"));
                    status.verification = Some(verification);
                    write(&api, backup, &status).await?;
                }
                return Ok(Action::await_change());
            }
            JobState::Succeeded(Some(Outcome::Verified { copies })) => {
                verification.copies = copies.iter().map(shown).collect();
                let (passed, message) = verdict(&verification.copies);
                verification.phase = if passed { VerificationPhase::Passed } else { VerificationPhase::Failed };
                verification.completion_time = Some(now());
                verification.message = Some(message.clone());
                status.verification = Some(verification);
                let reason = if passed { "BackupVerified" } else { "VerificationFailed" };
                set_verified(&mut status, passed, reason, &message, generation);
                write(&api, backup, &status).await?;
                ctx.metrics.backup_verified(passed);
                if passed {
                    events.normal(reason, "Verify", message).await;
                } else {
                    events.warning(reason, "Verify", message).await;
                }
            }
            JobState::Succeeded(_) | JobState::Failed(_) => {
                let message = match state {
                    JobState::Failed(error) => format!("the verification did not run to its end: {error}"),
                    _ => "the verification Job completed without reporting its result".to_string(),
                };
                verification.phase = VerificationPhase::Failed;
                verification.completion_time = Some(now());
                verification.message = Some(message.clone());
                status.verification = Some(verification);
                set_verified(&mut status, false, "VerificationFailed", &message, generation);
                write(&api, backup, &status).await?;
                ctx.metrics.backup_verified(false);
                events.warning("VerificationFailed", "Verify", message).await;
            }
        }
        return Ok(Action::await_change());
    }

    let cluster_name = &backup.spec.cluster_ref.name;
    let clusters: Api<MongoCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(cluster) =
        clusters.get_opt(cluster_name).await.doing(|| format!("reading MongoCluster {cluster_name}"))?
    else {
        return wait(
            &api,
            backup,
            status,
            format!("MongoCluster {cluster_name} does not exist; its image is the throwaway's"),
        )
        .await;
    };
    // One verification per cluster at a time: each holds a mongod and a copy of the data.
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let others = jobs
        .list(&ListParams::default().labels(&query(&labels(cluster_name, VERIFY_COMPONENT))))
        .await
        .doing(|| "listing verification Jobs".into())?;
    if let Some(other) = others.items.iter().find(|j| j.name_any() != job_name && job_outcome::is_active(j)) {
        let message = format!("waiting for verification Job {} of the same cluster to finish", other.name_any());
        return wait(&api, backup, status, message).await;
    }
    let names = ClusterNames::new(cluster_name, &namespace);
    // The backup's own secret files, less the MongoDB password: the throwaway needs none.
    let files: Vec<_> = secret_files(&names, backup, false)
        .into_iter()
        .filter(|f| f.path != crate::backup::files::MONGODB_PASSWORD)
        .collect();
    let secrets = SecretsRead::of(&ctx.client, &namespace, &files).await?;
    let absent = secrets.missing(&files);
    if !absent.is_empty() {
        return wait(&api, backup, status, format!("missing Secret keys: {}", absent.join(", "))).await;
    }
    let copies: Vec<_> = status
        .copies
        .iter()
        .filter_map(|copy| {
            let destination = backup.spec.destinations.iter().find(|d| d.name == copy.destination)?;
            Some(crate::api::BackupLocation { destination: destination.clone(), path: copy.path.clone()? })
        })
        .collect();
    let plan = VerifyPlan {
        copies,
        throwaway: throwaway_source(THROWAWAY_HOST),
        set_name: THROWAWAY_SET.into(),
        expected: Expected { checksum: status.checksum.clone(), encrypted: status.encryption.is_some() },
    };
    let plan_json =
        serde_json::to_string(&plan).map_err(|e| Error::Secret { secret: name.clone(), problem: e.to_string() })?;
    let owner = backup.controller_owner_ref(&()).ok_or(Error::Incomplete("MongoBackup", "uid"))?;
    let mut job = backup_job::build(&JobInputs {
        name: &job_name,
        namespace: &namespace,
        cluster: cluster_name,
        component: VERIFY_COMPONENT,
        subcommand: "verify",
        for_name: &name,
        spec: &cluster.spec,
        operator_image: &ctx.settings.operator_image,
        plan_json: &plan_json,
        secret_files: &files,
        owner: &owner,
        resources: backup.spec.resources.as_ref(),
        ttl_seconds_after_finished: None,
    });
    let dump_bytes = status.dump_bytes.and_then(|b| u64::try_from(b).ok()).unwrap_or(0);
    add_throwaway(&mut job, &cluster.spec, spec.resources.as_ref(), dump_bytes, spec.deadline_seconds);
    apply(&jobs, &job).await?;
    verification.phase = VerificationPhase::Running;
    verification.start_time = Some(now());
    let message = format!("verification Job {job_name} started: each copy is restored into a throwaway mongod");
    verification.message = Some(message.clone());
    status.verification = Some(verification);
    write(&api, backup, &status).await?;
    events.normal("VerificationStarted", "Verify", message).await;
    Ok(Action::await_change())
}

/// How `backup` is verified, if it is: its own `verification`, or for one its schedule chose
/// on `verification.cron`, the schedule's (the defaults once the schedule is gone).
async fn settings(api: &Api<MongoBackup>, backup: &MongoBackup) -> Result<Option<VerificationSpec>, Error> {
    if let Some(spec) = &backup.spec.verification {
        return Ok(Some(spec.clone()));
    }
    if !requested(backup) {
        return Ok(None);
    }
    let schedule = match backup.labels().get(super::SCHEDULE_LABEL) {
        Some(schedule) => api.get_opt(schedule).await.doing(|| format!("reading schedule {schedule}"))?,
        None => None,
    };
    Ok(Some(schedule.and_then(|s| s.spec.verification).unwrap_or_default()))
}

/// Records why the verification waits. Secrets are not watched here: look again as a
/// backup waiting for one does.
async fn wait(
    api: &Api<MongoBackup>,
    backup: &MongoBackup,
    mut status: MongoBackupStatus,
    message: String,
) -> Result<Action, Error> {
    let mut verification = status.verification.clone().unwrap_or_default();
    verification.phase = VerificationPhase::Pending;
    verification.message = Some(message);
    status.verification = Some(verification);
    write(api, backup, &status).await?;
    Ok(Action::requeue(super::one_off::SECRET_RETRY))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(destination: &str, passed: bool, mismatches: Vec<VerificationMismatch>) -> VerifiedCopy {
        VerifiedCopy {
            destination: destination.into(),
            passed,
            restore_seconds: 2.5,
            documents_restored: 3402,
            mismatch_count: mismatches.len() as i32,
            mismatches,
            ..VerifiedCopy::default()
        }
    }

    #[test]
    fn the_verdict_names_each_copy_that_failed_and_what_differed_first() {
        let (passed, message) = verdict(&[copy("ovh", true, vec![]), copy("scaleway", true, vec![])]);
        assert!(passed);
        assert_eq!(
            message,
            "2 copies restored and matched what was recorded (3402 documents; restore took 2.5 s at most)"
        );
        let digest = VerificationMismatch {
            namespace: "shop.orders".into(),
            check: "digest".into(),
            expected: "a".into(),
            found: "b".into(),
        };
        let (passed, message) = verdict(&[copy("ovh", true, vec![]), copy("scaleway", false, vec![digest])]);
        assert!(!passed);
        assert_eq!(message, "copy scaleway: shop.orders digest: expected a, found b (1 difference(s))");
        assert!(!verdict(&[]).0);
    }
}
