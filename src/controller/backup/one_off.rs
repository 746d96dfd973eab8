//! One backup: wait for the cluster and for any other backup of it, start the Job, and record
//! what it reported.

use crate::telemetry::{BackupOutcome, Metrics};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::source::dump_member;
use super::status::{human_size, now, set_phase, write};
use super::trust;
use crate::api::{BackupCopy, BackupPhase, MongoBackup, MongoCluster};
use crate::backup::files::{ENCRYPTION_KEY, MONGODB_PASSWORD};
use crate::backup::plan::{BackupPlan, Outcome};
use crate::build::backup_job::{
    self, BACKUP_COMPONENT, JobInputs, SecretFile, destination_files, job_name, member_source,
};
use crate::build::labels::{labels, query};
use crate::build::names::ClusterNames;
use crate::build::secrets::BACKUP_PASSWORD_KEY;
use crate::controller::credentials::SecretsRead;
use crate::controller::error::{Error, KubeContext};
use crate::controller::job_outcome::{self, JobState};
use crate::controller::ssa::apply;
use crate::controller::{Context, Events};
use crate::mongo::MongoAdmin;

/// How often to look again while a Secret the backup needs is missing (Secrets are not
/// watched by this controller).
pub(super) const SECRET_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// The secret files a backup of `cluster` with `backup`'s spec reads; with `tls`, the CAs of
/// the members' certificate too.
pub fn secret_files(names: &ClusterNames, backup: &MongoBackup, tls: bool) -> Vec<SecretFile> {
    let mut files = vec![SecretFile {
        secret: names.internal_secret(),
        key: BACKUP_PASSWORD_KEY.into(),
        path: MONGODB_PASSWORD.into(),
    }];
    if let Some(encryption) = &backup.spec.encryption {
        let r = &encryption.key_secret_ref;
        files.push(SecretFile { secret: r.name.clone(), key: r.key.clone(), path: ENCRYPTION_KEY.into() });
    }
    files.extend(backup.spec.destinations.iter().flat_map(destination_files));
    if tls {
        files.push(crate::build::backup_job::members_ca_file(names));
    }
    files
}

/// Why the secret files a data-path Pod of `backup` reads are not usable yet, if they are not:
/// a key missing, a weak encryption key, store credentials without the label that lets them
/// be used (a reason and a message for status).
pub(super) async fn inputs_problem<A: MongoAdmin>(
    ctx: &Context<A>,
    namespace: &str,
    backup: &MongoBackup,
    files: &[SecretFile],
) -> Result<Option<(&'static str, String)>, Error> {
    let secrets = SecretsRead::of(&ctx.client, namespace, files).await?;
    let absent = secrets.missing(files);
    if !absent.is_empty() {
        return Ok(Some(("SecretMissing", format!("missing Secret keys: {}", absent.join(", ")))));
    }
    if let Some(message) = backup.spec.encryption.as_ref().and_then(|e| trust::weak_key(&secrets, &e.key_secret_ref)) {
        return Ok(Some(("WeakEncryptionKey", message)));
    }
    Ok(trust::unlabelled_credentials(&secrets, &backup.spec.destinations).map(|m| ("CredentialsNotLabelled", m)))
}

/// The backup ended, and so did its verification if it asked for one.
fn is_finished(backup: &MongoBackup) -> bool {
    match backup.status.as_ref().and_then(|s| s.phase) {
        Some(BackupPhase::Failed) => true,
        Some(BackupPhase::Succeeded) => !super::verification::pending(backup),
        _ => false,
    }
}

pub async fn reconcile<A: MongoAdmin>(cached: &MongoBackup, ctx: &Context<A>) -> Result<Action, Error> {
    if is_finished(cached) {
        return Ok(Action::await_change());
    }
    let namespace = cached.namespace().ok_or(Error::Incomplete("MongoBackup", "namespace"))?;
    let name = cached.name_any();
    let backups: Api<MongoBackup> = Api::namespaced(ctx.client.clone(), &namespace);
    // The cache can be older than this controller's own last status write: the Job's final
    // changes queue a reconcile before that write is seen. An unfinished backup is read again,
    // so a finished one is never finished twice (a second completion time, Event and count).
    let Some(fresh) = backups.get_opt(&name).await.doing(|| format!("reading MongoBackup {name}"))? else {
        return Ok(Action::await_change());
    };
    if is_finished(&fresh) {
        return Ok(Action::await_change());
    }
    let backup = &fresh;
    if backup.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Succeeded) {
        return super::verification::reconcile(backup, ctx).await;
    }
    let mut status = backup.status.clone().unwrap_or_default();
    let generation = backup.metadata.generation;
    let events = Events::new(&ctx.recorder, backup.object_ref(&()));
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let job_name = job_name(&name, BACKUP_COMPONENT);

    if let Some(job_state) = job_outcome::read(&ctx.client, &namespace, &job_name, BACKUP_COMPONENT).await? {
        match job_state {
            JobState::Active => {
                if status.phase != Some(BackupPhase::Running) {
                    status.start_time.get_or_insert_with(now);
                    set_phase(&mut status, BackupPhase::Running, "Running", "the backup Job is running", generation);
                    write(&backups, backup, &status).await?;
                }
            }
            JobState::Succeeded(Some(Outcome::BackedUp { manifest, copies })) => {
                status.completion_time = Some(now());
                status.size_bytes = i64::try_from(manifest.size_bytes).ok();
                status.size_human = Some(human_size(manifest.size_bytes));
                status.checksum = Some(manifest.checksum.clone());
                status.dump_bytes = i64::try_from(manifest.dump_bytes).ok();
                status.encryption = manifest.encryption.clone();
                status.mongodb_version = manifest.mongodb_version.clone();
                status.copies = copies
                    .iter()
                    .map(|c| BackupCopy {
                        destination: c.destination.clone(),
                        url: c.url.clone(),
                        path: Some(c.path.clone()),
                    })
                    .collect();
                status.error = None;
                let message = format!(
                    "{} stored in {} destination(s), {}",
                    human_size(manifest.size_bytes),
                    copies.len(),
                    manifest.checksum
                );
                set_phase(&mut status, BackupPhase::Succeeded, "BackupSucceeded", &message, generation);
                write(&backups, backup, &status).await?;
                ctx.metrics.backup_finished(BackupOutcome::Succeeded);
                // A verification, when asked for, starts from the reconcile this status write
                // brings (the MongoBackup watch has no filter).
                events.normal("BackupSucceeded", "Backup", message).await;
            }
            JobState::Succeeded(_) => {
                fail(
                    &backups,
                    backup,
                    &mut status,
                    (&events, &ctx.metrics),
                    "the backup Job completed without reporting its result; it is not trusted",
                )
                .await?;
            }
            JobState::Failed(error) => fail(&backups, backup, &mut status, (&events, &ctx.metrics), &error).await?,
        }
        return Ok(Action::await_change());
    }

    // Where the credentials go is the administrator's say, not only the MongoBackup editor's;
    // which Secrets, their owners' (below).
    if let Some(message) = trust::endpoint_refusal(&ctx.settings.admin_policy, &backup.spec.destinations) {
        return pending(&backups, backup, status, &events, "EndpointNotAllowed", message, None).await;
    }
    let clusters: Api<MongoCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let cluster_name = &backup.spec.cluster_ref.name;
    let Some(cluster) =
        clusters.get_opt(cluster_name).await.doing(|| format!("reading MongoCluster {cluster_name}"))?
    else {
        let message = format!("MongoCluster {cluster_name} does not exist in {namespace}");
        return pending(&backups, backup, status, &events, "ClusterNotFound", message, None).await;
    };
    if !cluster.spec.network_isolation.stores_reachable() {
        let message = no_route_to_stores(cluster_name);
        return pending(&backups, backup, status, &events, "NoRouteToStores", message, Some(SECRET_RETRY)).await;
    }
    let from = cluster.status.as_ref().and_then(dump_member);
    let Some((from, ordinal)) = from.and_then(|f| f.ordinal().map(|o| (f, o))) else {
        let message = format!(
            "waiting for MongoCluster {cluster_name} to have a healthy member to dump from (a secondary or its primary)"
        );
        return pending(&backups, backup, status, &events, "ClusterNotReady", message, None).await;
    };
    let others = jobs
        .list(&ListParams::default().labels(&query(&labels(cluster_name, BACKUP_COMPONENT))))
        .await
        .doing(|| "listing backup Jobs".into())?;
    if let Some(other) = others.items.iter().find(|j| j.name_any() != job_name && job_outcome::is_active(j)) {
        let message = format!("waiting for backup Job {} of the same cluster to finish", other.name_any());
        return pending(&backups, backup, status, &events, "WaitingForAnotherBackup", message, None).await;
    }
    let names = ClusterNames::new(cluster_name, &namespace);
    let tls = cluster.members_speak_tls();
    let files = secret_files(&names, backup, tls);
    if let Some((reason, message)) = inputs_problem(ctx, &namespace, backup, &files).await? {
        return pending(&backups, backup, status, &events, reason, message, Some(SECRET_RETRY)).await;
    }

    let plan = BackupPlan {
        cluster: cluster_name.clone(),
        backup: name.clone(),
        source: member_source(&names.member_host(ordinal, &ctx.settings.cluster_domain)).over_tls(tls),
        oplog: true,
        destinations: backup.spec.destinations.clone(),
        compression: backup.spec.compression,
        encrypted: backup.spec.encryption.is_some(),
    };
    let plan_json =
        serde_json::to_string(&plan).map_err(|e| Error::Secret { secret: name.clone(), problem: e.to_string() })?;
    let owner = backup.controller_owner_ref(&()).ok_or(Error::Incomplete("MongoBackup", "uid"))?;
    let job = backup_job::build(&JobInputs {
        name: &job_name,
        namespace: &namespace,
        cluster: cluster_name,
        component: BACKUP_COMPONENT,
        subcommand: "backup",
        for_name: &name,
        spec: &cluster.spec,
        operator_image: &ctx.settings.operator_image,
        plan_json: &plan_json,
        secret_files: &files,
        owner: &owner,
        resources: backup.spec.resources.as_ref(),
        ttl_seconds_after_finished: None,
    });
    apply(&jobs, &job).await?;
    status.start_time = Some(now());
    status.source_member = Some(format!("{} ({})", from.pod, from.state));
    let message = format!(
        "backup Job {job_name} started for MongoCluster {cluster_name}, dumping from {} ({})",
        from.pod, from.state
    );
    set_phase(&mut status, BackupPhase::Running, "Running", &message, generation);
    write(&backups, backup, &status).await?;
    events.normal("BackupStarted", "Backup", message).await;
    Ok(Action::await_change())
}

/// Why a Job of an isolated cluster whose policy admits no object store is not started.
pub fn no_route_to_stores(cluster: &str) -> String {
    format!(
        "MongoCluster {cluster} is network-isolated and spec.networkIsolation.objectStores names no address, so a Job could not reach any object store; add the stores' cidrs, or set anyAddress: true"
    )
}

/// Records a wait; an Event only when the reason changes, so a long wait is one Event.
async fn pending(
    api: &Api<MongoBackup>,
    backup: &MongoBackup,
    mut status: crate::api::MongoBackupStatus,
    events: &Events<'_>,
    reason: &str,
    message: String,
    retry: Option<std::time::Duration>,
) -> Result<Action, Error> {
    let same = status.phase == Some(BackupPhase::Pending)
        && status.conditions.iter().any(|c| c.type_ == "Ready" && c.reason == reason);
    set_phase(&mut status, BackupPhase::Pending, reason, &message, backup.metadata.generation);
    write(api, backup, &status).await?;
    if !same {
        events.normal(reason, "Backup", message).await;
    }
    Ok(retry.map(Action::requeue).unwrap_or_else(Action::await_change))
}

async fn fail(
    api: &Api<MongoBackup>,
    backup: &MongoBackup,
    status: &mut crate::api::MongoBackupStatus,
    (events, metrics): (&Events<'_>, &Metrics),
    error: &str,
) -> Result<(), Error> {
    status.completion_time = Some(now());
    status.error = Some(error.to_string());
    set_phase(status, BackupPhase::Failed, "BackupFailed", error, backup.metadata.generation);
    write(api, backup, status).await?;
    metrics.backup_finished(BackupOutcome::Failed);
    events.warning("BackupFailed", "Backup", error.to_string()).await;
    Ok(())
}
