//! Retention's deletions. The stored copies of the backups a schedule no longer keeps are
//! deleted by a Job in the schedule's namespace (`mongo-operator prune`), with the network
//! and the store credentials the backups themselves had: the operator's own Pod never talks
//! to an object store, and needs no egress to one. Once the Job reports a backup's copies
//! gone, the operator deletes its MongoBackup. A backup with no stored copy (a failed one) is
//! deleted at once.
//!
//! One Job per set of backups, named after the set: a Job that failed stands for
//! [`PRUNE_JOB_TTL_SECONDS`] (its reason in an Event) and is then removed by the Job
//! controller, so the next attempt comes ten minutes later, not in a tight loop.

use std::collections::BTreeMap;

use chrono::Utc;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams};
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use super::retention::{Taken, to_prune};
use super::trust;
use crate::api::{Destination, MongoBackup, MongoCluster};
use crate::backup::plan::{MANIFEST_NAME, Manifest, Outcome, PrunePlan, PruneTarget};
use crate::backup::store::backup_dir;
use crate::build::backup_job::{
    self, JobInputs, PRUNE_COMPONENT, PRUNE_JOB_TTL_SECONDS, SecretFile, destination_files, job_name,
};
use crate::controller::credentials::SecretsRead;
use crate::controller::error::{Error, KubeContext};
use crate::controller::job_outcome::{self, JobState};
use crate::controller::ssa::apply;
use crate::controller::{Context, Events};
use crate::mongo::MongoAdmin;

/// Backups per prune Job: its outcome, one name each, fits a termination message.
const BATCH: usize = 20;

/// Deletes what retention no longer keeps, or moves that along by one step.
pub async fn prune<A: MongoAdmin>(
    ctx: &Context<A>,
    policy: &MongoBackup,
    api: &Api<MongoBackup>,
    children: &[MongoBackup],
    events: &Events<'_>,
) -> Result<(), Error> {
    let taken: Vec<Taken> = children
        .iter()
        .map(|c| Taken {
            name: c.name_any(),
            phase: c.status.as_ref().and_then(|s| s.phase),
            verified: c
                .status
                .as_ref()
                .and_then(|s| s.verification.as_ref())
                .is_some_and(|v| v.phase == crate::api::VerificationPhase::Passed),
            time: c
                .status
                .as_ref()
                .and_then(|s| s.completion_time.as_ref())
                .or(c.metadata.creation_timestamp.as_ref())
                .map(super::policy::to_chrono)
                .unwrap_or_else(Utc::now),
        })
        .collect();
    let doomed: Vec<&MongoBackup> = to_prune(&taken, policy.spec.retention.as_ref(), Utc::now())
        .iter()
        .filter_map(|name| children.iter().find(|c| c.name_any() == *name))
        .collect();
    let (stored, bare): (Vec<&MongoBackup>, Vec<&MongoBackup>) =
        doomed.into_iter().partition(|c| c.status.as_ref().is_some_and(|s| !s.copies.is_empty()));
    for child in bare {
        delete_backup(api, &child.name_any()).await?;
        events
            .normal(
                "BackupPruned",
                "Retention",
                format!("deleted MongoBackup {} (it stored nothing)", child.name_any()),
            )
            .await;
    }
    let batch: Vec<&MongoBackup> = stored.into_iter().take(BATCH).collect();
    if batch.is_empty() {
        return Ok(());
    }
    let namespace = policy.namespace().unwrap_or_default();
    let job = job_name(&policy.name_any(), &format!("prune-{}", digest(&batch)));
    match job_outcome::read(&ctx.client, &namespace, &job, PRUNE_COMPONENT).await? {
        Some(JobState::Active) => {}
        Some(JobState::Succeeded(Some(Outcome::Pruned { deleted, failed }))) => {
            for name in deleted.iter().filter(|d| batch.iter().any(|b| b.name_any() == **d)) {
                delete_backup(api, name).await?;
                events
                    .normal("BackupPruned", "Retention", format!("deleted MongoBackup {name} and its stored copies"))
                    .await;
            }
            for failure in failed {
                let note = format!(
                    "cannot delete the stored copies of {}: {}; kept for now, tried again in {} minutes",
                    failure.backup,
                    failure.error,
                    PRUNE_JOB_TTL_SECONDS / 60
                );
                events.warning("PruneFailed", "Retention", note).await;
            }
        }
        Some(JobState::Succeeded(_)) => {
            events.warning("PruneFailed", "Retention", format!("prune Job {job} reported nothing it deleted")).await;
        }
        Some(JobState::Failed(error)) => {
            let note =
                format!("prune Job {job} failed: {error}; tried again in {} minutes", PRUNE_JOB_TTL_SECONDS / 60);
            events.warning("PruneFailed", "Retention", note).await;
        }
        None => start(ctx, policy, &namespace, &job, &batch, events).await?,
    }
    Ok(())
}

async fn delete_backup(api: &Api<MongoBackup>, name: &str) -> Result<(), Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(Error::Kube { action: format!("deleting MongoBackup {name}"), source }),
    }
}

/// Eight hex digits naming a set of backups.
fn digest(batch: &[&MongoBackup]) -> String {
    let mut h = Sha256::new();
    for b in batch {
        h.update(b.name_any().as_bytes());
        h.update(b"\0");
    }
    hex::encode(&h.finalize()[..4])
}

/// What the Job deletes: each copy's manifest, then its archive.
pub fn plan(batch: &[&MongoBackup]) -> PrunePlan {
    let mut targets = Vec::new();
    for child in batch {
        let dir = backup_dir(&child.spec.cluster_ref.name, &child.name_any());
        let archive = Manifest::archive_name(child.spec.compression, child.spec.encryption.is_some());
        for copy in child.status.as_ref().map(|s| s.copies.clone()).unwrap_or_default() {
            let Some(destination) = child.spec.destinations.iter().find(|d| d.name == copy.destination) else {
                continue;
            };
            targets.push(PruneTarget {
                backup: child.name_any(),
                destination: destination.clone(),
                keys: vec![format!("{dir}/{MANIFEST_NAME}"), format!("{dir}/{archive}")],
            });
        }
    }
    PrunePlan { targets }
}

/// Starts the Job, once the stores may be reached and their credentials used.
async fn start<A: MongoAdmin>(
    ctx: &Context<A>,
    policy: &MongoBackup,
    namespace: &str,
    job: &str,
    batch: &[&MongoBackup],
    events: &Events<'_>,
) -> Result<(), Error> {
    let wait = |why: String| async move {
        events.warning("PruneWaiting", "Retention", format!("old backups are kept for now: {why}")).await;
        Ok(())
    };
    let cluster_name = &policy.spec.cluster_ref.name;
    let clusters: Api<MongoCluster> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(cluster) =
        clusters.get_opt(cluster_name).await.doing(|| format!("reading MongoCluster {cluster_name}"))?
    else {
        return wait(format!("MongoCluster {cluster_name}, whose Pods' settings the prune Job uses, does not exist"))
            .await;
    };
    if !cluster.spec.network_isolation.stores_reachable() {
        return wait(super::no_route_to_stores(cluster_name)).await;
    }
    let plan = plan(batch);
    let mut destinations: BTreeMap<&str, &Destination> = BTreeMap::new();
    for target in &plan.targets {
        destinations.entry(target.destination.name.as_str()).or_insert(&target.destination);
    }
    if let Some(refusal) = trust::endpoint_refusal(&ctx.settings.admin_policy, destinations.values().copied()) {
        return wait(refusal).await;
    }
    let files: Vec<SecretFile> = destinations.values().flat_map(|d| destination_files(d)).collect();
    let secrets = SecretsRead::of(&ctx.client, namespace, &files).await?;
    let absent = secrets.missing(&files);
    if !absent.is_empty() {
        return wait(format!("missing Secret keys: {}", absent.join(", "))).await;
    }
    if let Some(problem) = trust::unlabelled_credentials(&secrets, destinations.values().copied()) {
        return wait(problem).await;
    }
    let plan_json =
        serde_json::to_string(&plan).map_err(|e| Error::Secret { secret: job.into(), problem: e.to_string() })?;
    let owner = policy.controller_owner_ref(&()).ok_or(Error::Incomplete("MongoBackup", "uid"))?;
    // Deleting a few objects needs little; the defaults are sized for mongodump.
    let small = backup_job::resources("10m", "32Mi", "128Mi");
    let built = backup_job::build(&JobInputs {
        name: job,
        namespace,
        cluster: cluster_name,
        component: PRUNE_COMPONENT,
        subcommand: "prune",
        for_name: &policy.name_any(),
        spec: &cluster.spec,
        operator_image: &ctx.settings.operator_image,
        plan_json: &plan_json,
        secret_files: &files,
        owner: &owner,
        resources: Some(&small),
        ttl_seconds_after_finished: Some(PRUNE_JOB_TTL_SECONDS),
    });
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    apply(&jobs, &built).await?;
    let names: Vec<String> = batch.iter().map(|b| b.name_any()).collect();
    events
        .normal("PruneStarted", "Retention", format!("Job {job} deletes the stored copies of {}", names.join(", ")))
        .await;
    Ok(())
}
