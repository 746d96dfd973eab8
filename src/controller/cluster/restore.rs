//! The restore stage of a cluster created from a backup (`spec.bootstrap.fromBackup`). Once the
//! new replica set is whole and its backup user exists, one Job verifies the backup and
//! restores it; until that Job has succeeded the cluster is not Ready and its application users
//! do not exist, so nothing writes into a half-restored database.
//!
//! Safety: a restore only ever goes into an empty replica set, or one this cluster's own
//! earlier restore Job was filling. A success is recorded on the internal Secret, which
//! outlives the MongoCluster under `deletionPolicy: Retain`, so re-applying the same manifest
//! over kept volumes never restores the old backup over newer data.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;

use super::objects::{self, InternalCredentials};
use super::replica_set;
use super::status::Progress;
use super::validate::Problem;
use crate::api::{
    BackupLocation, BackupPhase, FromBackupSpec, MongoBackup, MongoCluster, RestorePhase, RestoreStatus,
    RestoredPointInTime, SecretKeyReference,
};
use crate::backup::files::{ENCRYPTION_KEY, MONGODB_PASSWORD};
use crate::backup::plan::{Expected, Outcome, PointInTimeOutcome, PointInTimePlan, RestorePlan};
use crate::backup::store::{destination_prefix, manifest_key};
use crate::build::backup_job::{self, JobInputs, RESTORE_COMPONENT, SecretFile, destination_files, job_name};
use crate::build::names::ClusterNames;
use crate::build::secrets::KEY_FILE_KEY;
use crate::controller::backup::{no_route_to_stores, trust};
use crate::controller::credentials::SecretsRead;
use crate::controller::error::{Error, KubeContext};
use crate::controller::job_outcome::{self, JobState};
use crate::controller::ssa::apply;
use crate::controller::{Context, Events};
use crate::mongo::{AdminError, MongoAdmin, Target, UserInfo};

/// The reason a failed restore gives Ready and Degraded; the cluster waits for the user then.
pub const RESTORE_FAILED: &str = "RestoreFailed";

/// How often to look again while an input (the MongoBackup, a Secret) is missing: neither is
/// watched by the cluster controller.
const INPUT_RETRY: Duration = Duration::from_secs(30);

/// Databases every replica set has; anything else is data.
const SYSTEM_DATABASES: &[&str] = &["admin", "config", "local"];

/// The restore Job's name for a cluster.
pub fn restore_job_name(names: &ClusterNames) -> String {
    job_name(&names.cluster, RESTORE_COMPONENT)
}

/// The backup to restore, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub location: BackupLocation,
    /// The backup's other copies, in the order its destinations are listed: the restore
    /// tries them when `location` cannot be read or is damaged.
    pub fallbacks: Vec<BackupLocation>,
    pub encryption_key: Option<SecretKeyReference>,
    /// What the API or the spec says of the backup, which its manifest must agree with.
    pub expected: Expected,
    /// How status and Events name it: the MongoBackup, or the manifest's store and key.
    pub description: String,
    /// A restore to a point in time: the Job picks the base and the archived oplog itself
    /// from `location`'s destination (then the fallbacks'); `location.path` is not read.
    pub point_in_time: Option<PointInTimePlan>,
}

/// Why there is no source to restore yet, or never will be.
#[derive(Debug, Clone, PartialEq)]
pub enum Unresolved {
    /// It may appear (a MongoBackup still running, or applied after the cluster).
    Waiting(&'static str, String),
    /// It cannot be restored as specified.
    Invalid(&'static str, String),
}

/// Resolves `fromBackup`; `backup` is the MongoBackup it names, when it names one that exists.
pub fn resolve(from: &FromBackupSpec, backup: Option<&MongoBackup>) -> Result<Source, Unresolved> {
    if let Some(location) = &from.location {
        if let Some(target) = &from.point_in_time {
            return resolve_point_in_time_at(from, target, location);
        }
        let expected =
            Expected { checksum: from.checksum.clone(), encrypted: from.encryption_key_secret_ref.is_some() };
        if !expected.vouches() {
            return Err(Unresolved::Invalid(
                "RestoreUnauthenticated",
                "bootstrap.fromBackup.location needs encryptionKeySecretRef or checksum: nothing else vouches for \
                 what is in the bucket"
                    .into(),
            ));
        }
        return Ok(Source {
            location: location.clone(),
            fallbacks: Vec::new(),
            encryption_key: from.encryption_key_secret_ref.clone(),
            expected,
            description: format!("{}:{}", location.destination.name, location.path),
            point_in_time: None,
        });
    }
    let name = from.backup_name.as_deref().unwrap_or_default();
    let Some(backup) = backup else {
        return Err(Unresolved::Waiting("BackupNotFound", format!("waiting for MongoBackup {name} to exist")));
    };
    if let Some(target) = &from.point_in_time {
        return resolve_point_in_time(from, target, backup);
    }
    if backup.spec.schedule.is_some() {
        return Err(Unresolved::Invalid(
            "BackupIsASchedule",
            format!("MongoBackup {name} is a schedule; name one of the backups it took (kubectl get mongobackups)"),
        ));
    }
    let status = backup.status.clone().unwrap_or_default();
    match status.phase {
        Some(BackupPhase::Succeeded) => {}
        Some(BackupPhase::Failed) => {
            return Err(Unresolved::Invalid(
                "BackupFailed",
                format!("MongoBackup {name} failed; it cannot be restored"),
            ));
        }
        _ => {
            return Err(Unresolved::Waiting(
                "BackupNotSucceeded",
                format!("waiting for MongoBackup {name} to succeed"),
            ));
        }
    }
    // The copies whose destinations the MongoBackup still describes (their credentials are
    // needed to read them), in the order the backup lists its destinations: the first is
    // restored, the others are fallbacks.
    let mut copies = backup.spec.destinations.iter().filter_map(|d| {
        let copy = status.copies.iter().find(|c| c.destination == d.name)?;
        let path = copy.path.clone().unwrap_or_else(|| manifest_key(d, &backup.spec.cluster_ref.name, name));
        Some(BackupLocation { destination: d.clone(), path })
    });
    let Some(location) = copies.next() else {
        return Err(Unresolved::Invalid("BackupHasNoCopy", format!("MongoBackup {name} records no stored copy")));
    };
    let Some(checksum) = status.checksum.clone() else {
        return Err(Unresolved::Invalid(
            "BackupHasNoChecksum",
            format!("MongoBackup {name} records no checksum, so nothing can vouch for the copy in the bucket"),
        ));
    };
    // Backups recorded before their status said how they were encrypted: the spec says it.
    let encrypted = status.encryption.is_some() || backup.spec.encryption.is_some();
    Ok(Source {
        location,
        fallbacks: copies.collect(),
        expected: Expected { checksum: Some(checksum), encrypted },
        encryption_key: from
            .encryption_key_secret_ref
            .clone()
            .or_else(|| backup.spec.encryption.as_ref().map(|e| e.key_secret_ref.clone())),
        description: format!("MongoBackup {name}"),
        point_in_time: None,
    })
}

/// `fromBackup.pointInTime`: `backup` must be the schedule whose `spec.pitr` archives the
/// oplog. Its destinations are read in the order they are listed; only its encryption key
/// vouches for what the Job picks there (no status records the chunks' checksums).
fn resolve_point_in_time(from: &FromBackupSpec, target: &str, backup: &MongoBackup) -> Result<Source, Unresolved> {
    let name = backup.name_any();
    if backup.spec.schedule.is_none() || backup.spec.pitr.is_none() {
        return Err(Unresolved::Invalid(
            "NoOplogArchive",
            format!(
                "pointInTime needs the MongoBackup schedule whose spec.pitr archives the oplog; MongoBackup {name} is {}",
                if backup.spec.schedule.is_none() { "a single backup" } else { "a schedule without pitr" }
            ),
        ));
    }
    let encryption_key = from
        .encryption_key_secret_ref
        .clone()
        .or_else(|| backup.spec.encryption.as_ref().map(|e| e.key_secret_ref.clone()));
    let Some(encryption_key) = encryption_key else {
        return Err(Unresolved::Invalid(
            "RestoreUnauthenticated",
            format!(
                "MongoBackup {name} is not encrypted: the key is what vouches for the base and the oplog a restore to a point in time picks"
            ),
        ));
    };
    let cluster = backup.spec.cluster_ref.name.clone();
    let mut locations = backup
        .spec
        .destinations
        .iter()
        .map(|d| BackupLocation { destination: d.clone(), path: manifest_key(d, &cluster, "") });
    let Some(location) = locations.next() else {
        return Err(Unresolved::Invalid("BackupHasNoCopy", format!("MongoBackup {name} has no destination")));
    };
    Ok(Source {
        location,
        fallbacks: locations.collect(),
        encryption_key: Some(encryption_key),
        expected: Expected { checksum: None, encrypted: true },
        description: format!("MongoBackup {name} to {target}"),
        point_in_time: Some(PointInTimePlan { cluster, target: target.to_string() }),
    })
}

/// `fromBackup.pointInTime` with `location`: the schedule's object is gone, and `location.path`
/// names the source cluster's directory, `<prefix>/<cluster>`, in the one destination given.
/// The encryption key is the only thing that vouches for what the Job picks there.
fn resolve_point_in_time_at(
    from: &FromBackupSpec,
    target: &str,
    location: &BackupLocation,
) -> Result<Source, Unresolved> {
    let Some(encryption_key) = from.encryption_key_secret_ref.clone() else {
        return Err(Unresolved::Invalid(
            "RestoreUnauthenticated",
            "bootstrap.fromBackup.pointInTime with location needs encryptionKeySecretRef: the key is what vouches for \
             the base and the oplog the restore picks"
                .into(),
        ));
    };
    let cluster = archive_cluster(location).map_err(|m| Unresolved::Invalid("BadArchiveLocation", m))?;
    Ok(Source {
        location: location.clone(),
        fallbacks: Vec::new(),
        encryption_key: Some(encryption_key),
        expected: Expected { checksum: None, encrypted: true },
        description: format!("{}:{} to {target}", location.destination.name, location.path),
        point_in_time: Some(PointInTimePlan { cluster, target: target.to_string() }),
    })
}

/// The source cluster whose archive `location.path` names: the one path segment after the
/// destination's prefix.
fn archive_cluster(location: &BackupLocation) -> Result<String, String> {
    let prefix = destination_prefix(&location.destination);
    let path = location.path.trim_matches('/');
    let rest = match prefix.as_str() {
        "" => Some(path),
        prefix => path.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')),
    };
    match rest {
        Some(cluster) if !cluster.is_empty() && !cluster.contains('/') => Ok(cluster.to_string()),
        _ => {
            let under = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
            Err(format!(
                "with pointInTime, location.path names the source cluster's directory in destination {}: \
                 {under}<cluster> (for example {under}orders), not {:?}",
                location.destination.name, location.path
            ))
        }
    }
}

/// What status shows of a restore to a point in time.
pub fn restored_point_in_time(target: &str, outcome: PointInTimeOutcome) -> RestoredPointInTime {
    RestoredPointInTime {
        target: target.to_string(),
        resolved: crate::controller::to_time(outcome.resolved).unwrap_or(Time(Timestamp::UNIX_EPOCH)),
        oplog_limit: outcome.limit,
        base_backup: outcome.base,
        entries_replayed: outcome.entries,
        chunks: outcome.chunks,
    }
}

/// How a restore that succeeded before is reported: as its success was recorded on the
/// internal Secret, or, for a Secret an older operator marked without the record, by source.
pub fn recorded_success(source: &str, record: Option<&RestoreStatus>) -> RestoreStatus {
    match record {
        Some(record) if record.phase == RestorePhase::Succeeded => record.clone(),
        _ => RestoreStatus {
            phase: RestorePhase::Succeeded,
            source: Some(source.to_owned()),
            message: Some(format!("the data was restored from {source} earlier; it is never restored again")),
            ..RestoreStatus::default()
        },
    }
}

/// The databases in `names` that hold user data.
pub fn user_databases(names: &[String]) -> Vec<String> {
    names.iter().filter(|n| !SYSTEM_DATABASES.contains(&n.as_str())).cloned().collect()
}

/// The secret keys the restore Job reads: the keyFile (it logs in as `__system`), the backup's
/// key and the store's credentials.
pub fn secret_files(names: &ClusterNames, source: &Source) -> Vec<SecretFile> {
    let mut files =
        vec![SecretFile { secret: names.internal_secret(), key: KEY_FILE_KEY.into(), path: MONGODB_PASSWORD.into() }];
    if let Some(r) = &source.encryption_key {
        files.push(SecretFile { secret: r.name.clone(), key: r.key.clone(), path: ENCRYPTION_KEY.into() });
    }
    files.extend(destination_files(&source.location.destination));
    files
}

/// What the stage decided.
pub enum RestoreStep {
    /// Nothing to restore, or restored: go on. The status to record, when it changed.
    Done(Option<RestoreStatus>),
    /// Restoring, waiting or failed: the cluster is held here.
    Holding { progress: Progress, problem: Option<Problem>, status: RestoreStatus, next: Option<Duration> },
}

/// Everything the stage reads.
pub struct Inputs<'a, A: MongoAdmin> {
    pub cluster: &'a MongoCluster,
    pub ctx: &'a Context<A>,
    pub names: &'a ClusterNames,
    pub creds: &'a InternalCredentials,
    pub owner: &'a OwnerReference,
    pub primary: &'a Target,
    pub events: &'a Events<'a>,
}

impl<A: MongoAdmin> Inputs<'_, A> {
    fn previous(&self) -> Option<&RestoreStatus> {
        self.cluster.status.as_ref().and_then(|s| s.restore.as_ref())
    }

    /// The status so far, with `phase` and `message`.
    fn status(&self, phase: RestorePhase, message: String) -> RestoreStatus {
        RestoreStatus { phase, message: Some(message), ..self.previous().cloned().unwrap_or_default() }
    }

    /// Holds the cluster with a failure: Degraded, not Ready, an Event when it is new.
    async fn failed(&self, reason: &'static str, message: String) -> RestoreStep {
        let previous = self.previous();
        if !(previous.is_some_and(|p| p.phase == RestorePhase::Failed && p.message.as_deref() == Some(&message))) {
            self.events.warning(reason, "Restore", message.clone()).await;
        }
        let mut status = self.status(RestorePhase::Failed, message.clone());
        status.completion_time.get_or_insert_with(|| Time(Timestamp::now()));
        RestoreStep::Holding {
            progress: Progress::Blocked,
            problem: Some(Problem { reason, message, blocks_all: true, secret: None }),
            status,
            next: None,
        }
    }

    async fn waiting(&self, reason: &'static str, message: String) -> RestoreStep {
        let previous = self.previous();
        if !(previous.is_some_and(|p| p.phase == RestorePhase::Pending && p.message.as_deref() == Some(&message))) {
            self.events.normal(reason, "Restore", message.clone()).await;
        }
        RestoreStep::Holding {
            progress: Progress::Waiting(reason, message.clone()),
            problem: None,
            status: self.status(RestorePhase::Pending, message),
            next: Some(INPUT_RETRY),
        }
    }

    fn running(&self, message: String) -> RestoreStep {
        RestoreStep::Holding {
            progress: Progress::Waiting("Restoring", message.clone()),
            problem: None,
            status: self.status(RestorePhase::Running, message),
            // The Job and its Pods are watched.
            next: None,
        }
    }
}

/// The restore stage, run once the replica set is whole and the operator's users exist.
pub async fn step<A: MongoAdmin>(i: &Inputs<'_, A>) -> Result<RestoreStep, Error> {
    let Some(bootstrap) = &i.cluster.spec.bootstrap else { return Ok(RestoreStep::Done(None)) };
    if let Some(source) = &i.creds.restored_from {
        let recorded = recorded_success(source, i.creds.restore_result.as_ref());
        return Ok(RestoreStep::Done((i.previous() != Some(&recorded)).then_some(recorded)));
    }
    let ns = &i.names.namespace;
    let jobs: Api<Job> = Api::namespaced(i.ctx.client.clone(), ns);
    let job_name = restore_job_name(i.names);
    if let Some(job_state) = job_outcome::read(&i.ctx.client, ns, &job_name, RESTORE_COMPONENT).await? {
        let source = i.previous().and_then(|p| p.source.clone()).unwrap_or_else(|| job_name.clone());
        return Ok(match job_state {
            JobState::Active => i.running(format!("Job {job_name} is restoring {source}")),
            JobState::Succeeded(Some(Outcome::Restored { manifest, copy, point_in_time })) => {
                let users = settle_users(i).await?;
                let from = copy.map(|c| format!(" from the copy in {c}")).unwrap_or_default();
                let replayed = point_in_time.as_ref().map_or_else(String::new, |p| {
                    format!(
                        " (base backup {}, then {} archived oplog entries from {} chunks replayed up to {}, exclusive)",
                        p.base,
                        p.entries,
                        p.chunks,
                        p.resolved.to_rfc3339()
                    )
                });
                let message = format!(
                    "restored {source}{from}{replayed}: {} bytes verified ({}), taken {}; {users}",
                    manifest.size_bytes, manifest.checksum, manifest.completed_at
                );
                let mut status = i.status(RestorePhase::Succeeded, message.clone());
                status.source = Some(source.clone());
                status.checksum = Some(manifest.checksum);
                let target = bootstrap.from_backup.point_in_time.as_deref().unwrap_or("latest");
                status.point_in_time = point_in_time.map(|p| restored_point_in_time(target, p));
                status.completion_time = Some(Time(Timestamp::now()));
                // Recorded before it is reported: the next reconcile sees the record and
                // reports this very status, never a second success or a second restore.
                objects::mark_restored(&i.ctx.client, i.names, &source, &status).await?;
                i.events.normal("RestoreSucceeded", "Restore", message).await;
                RestoreStep::Done(Some(status))
            }
            JobState::Succeeded(_) => {
                let message = format!(
                    "restore Job {job_name} completed without reporting its result; it is not trusted. Delete the Job to retry"
                );
                i.failed(RESTORE_FAILED, message).await
            }
            JobState::Failed(error) => {
                // mongorestore may have put the backup's users in before it failed; they go
                // once, when the failure is first seen.
                let first = i.previous().is_none_or(|p| p.phase != RestorePhase::Failed);
                let users = if first { format!(" ({})", settle_users(i).await?) } else { String::new() };
                let message = format!("{error}. Fix the cause, then delete Job {job_name} to retry{users}");
                let message = match i.previous() {
                    Some(p) if !first => p.message.clone().unwrap_or(message),
                    _ => message,
                };
                i.failed(RESTORE_FAILED, message).await
            }
        });
    }

    let backup = match &bootstrap.from_backup.backup_name {
        Some(name) => {
            let backups: Api<MongoBackup> = Api::namespaced(i.ctx.client.clone(), ns);
            backups.get_opt(name).await.doing(|| format!("reading MongoBackup {name}"))?
        }
        None => None,
    };
    let source = match resolve(&bootstrap.from_backup, backup.as_ref()) {
        Ok(source) => source,
        Err(Unresolved::Waiting(reason, message)) => return Ok(i.waiting(reason, message).await),
        Err(Unresolved::Invalid(reason, message)) => return Ok(i.failed(reason, message).await),
    };
    // A Job of ours was started before (it was deleted to retry, or mid-run): what the set
    // holds is that Job's partial work, which the restore's --drop replaces.
    let ours = i.previous().is_some_and(|p| p.job_name.is_some());
    if !ours {
        let databases = i
            .ctx
            .admin
            .database_names(i.primary)
            .await
            .map_err(|source| Error::Mongo { action: "listing databases before the restore".into(), source })?;
        let data = user_databases(&databases);
        if !data.is_empty() {
            let message = format!(
                "the replica set already holds databases {}; a backup is only restored into a new, empty cluster",
                data.join(", ")
            );
            return Ok(i.failed("RestoreRefused", message).await);
        }
    }
    if !i.cluster.spec.network_isolation.stores_reachable() {
        return Ok(i.waiting("NoRouteToStores", no_route_to_stores(&i.names.cluster)).await);
    }
    let policy = &i.ctx.settings.admin_policy;
    if let Some(message) = trust::endpoint_refusal(policy, [&source.location.destination]) {
        return Ok(i.failed("EndpointNotAllowed", message).await);
    }
    // The set being restored into was just created in the mode its spec asks for.
    let tls = i.cluster.members_speak_tls();
    let mut files = secret_files(i.names, &source);
    if tls {
        files.push(backup_job::members_ca_file(i.names));
    }
    let candidates: Vec<(&BackupLocation, Vec<SecretFile>)> =
        source.fallbacks.iter().map(|f| (f, destination_files(&f.destination))).collect();
    let every_file: Vec<SecretFile> =
        files.iter().chain(candidates.iter().flat_map(|(_, keys)| keys)).cloned().collect();
    let secrets = SecretsRead::of(&i.ctx.client, ns, &every_file).await?;
    let absent = secrets.missing(&files);
    if !absent.is_empty() {
        return Ok(i.waiting("SecretMissing", format!("missing Secret keys: {}", absent.join(", "))).await);
    }
    if let Some(message) = trust::unlabelled_credentials(&secrets, [&source.location.destination]) {
        return Ok(i.waiting("CredentialsNotLabelled", message).await);
    }
    // A fallback copy goes in only when its store's credentials are here (and may be used
    // there): a clone in another namespace may have been given one provider's keys only, and
    // that must not hold it up.
    let mut fallbacks = Vec::new();
    for (fallback, keys) in candidates {
        let usable = trust::endpoint_refusal(policy, [&fallback.destination]).is_none()
            && trust::unlabelled_credentials(&secrets, [&fallback.destination]).is_none();
        if usable && secrets.missing(&keys).is_empty() {
            files.extend(keys);
            fallbacks.push(fallback.clone());
        }
    }

    let spec = &i.cluster.spec;
    let plan = RestorePlan {
        location: source.location.clone(),
        fallbacks,
        target: backup_job::restore_target(i.names, spec.members, &i.ctx.settings.cluster_domain).over_tls(tls),
        expected: source.expected.clone(),
        point_in_time: source.point_in_time.clone(),
    };
    let plan_json =
        serde_json::to_string(&plan).map_err(|e| Error::Secret { secret: job_name.clone(), problem: e.to_string() })?;
    let job = backup_job::build(&JobInputs {
        name: &job_name,
        namespace: ns,
        cluster: &i.names.cluster,
        component: RESTORE_COMPONENT,
        subcommand: "restore",
        for_name: &i.names.cluster,
        spec,
        operator_image: &i.ctx.settings.operator_image,
        plan_json: &plan_json,
        secret_files: &files,
        owner: i.owner,
        resources: bootstrap.from_backup.resources.as_ref(),
        ttl_seconds_after_finished: None,
    });
    apply(&jobs, &job).await?;
    let message = format!("Job {job_name} started to restore {}", source.description);
    i.events.normal("RestoreStarted", "Restore", message.clone()).await;
    let mut status = i.status(RestorePhase::Running, message.clone());
    status.source = Some(source.description);
    status.job_name = Some(job_name);
    status.start_time = Some(Time(Timestamp::now()));
    status.completion_time = None;
    Ok(RestoreStep::Holding { progress: Progress::Waiting("Restoring", message), problem: None, status, next: None })
}

/// After mongorestore: it replaced the set's users with the backup's (`_mergeAuthzCollections`
/// with `drop: true`). Logged in as `__system` (the keyFile, which a restore does not change),
/// the operator puts its own users back with their passwords, then drops every other user the
/// backup brought, unless `keepSourceUsers`: a clone of production keeps no production
/// credentials. The users of `spec.users` are left for the users stage, which sets their
/// roles and passwords. Idempotent; says what it did.
async fn settle_users<A: MongoAdmin>(i: &Inputs<'_, A>) -> Result<String, Error> {
    let system = Target { credentials: Some(i.creds.system.clone()), ..i.primary.clone() };
    replica_set::ensure_operator_user(&i.ctx.admin, &system, i.creds).await?;
    objects::mark_operator_applied(&i.ctx.client, i.names, &i.creds.operator_digest).await?;
    replica_set::ensure_agent_users(&i.ctx.admin, &system, i.creds).await?;
    let keep = i.cluster.spec.bootstrap.as_ref().is_some_and(|b| b.from_backup.keep_source_users);
    if keep {
        return Ok("the backup's users were kept (keepSourceUsers)".into());
    }
    let users = i
        .ctx
        .admin
        .all_users(&system)
        .await
        .map_err(|source| Error::Mongo { action: "listing the users the backup brought".into(), source })?;
    let foreign = foreign_users(&users, i.cluster, i.creds);
    for (db, name) in &foreign {
        match i.ctx.admin.drop_user(&system, db, name).await {
            Ok(()) | Err(AdminError::UserNotFound(_)) => {}
            Err(source) => return Err(Error::Mongo { action: format!("dropping user {name}@{db}"), source }),
        }
    }
    if foreign.is_empty() {
        return Ok("the backup brought no other users".into());
    }
    let list: Vec<String> = foreign.iter().map(|(db, name)| format!("{name}@{db}")).collect();
    let message = format!("dropped the {} users the backup brought: {}", foreign.len(), list.join(", "));
    i.events.normal("SourceUsersDropped", "Restore", message.clone()).await;
    Ok(message)
}

/// The users that are neither the operator's own nor declared in the spec, as (db, name).
pub fn foreign_users(users: &[UserInfo], cluster: &MongoCluster, creds: &InternalCredentials) -> Vec<(String, String)> {
    let own = [creds.operator.username.as_str(), creds.backup.username.as_str(), creds.monitor.username.as_str()];
    users
        .iter()
        .filter(|u| !(u.db == "admin" && own.contains(&u.user.as_str())))
        .filter(|u| !cluster.spec.users.iter().any(|d| d.name == u.user && d.db == u.db))
        .map(|u| (u.db.clone(), u.user.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        BackupCopy, ClusterReference, Compression, Destination, EncryptionSpec, MongoBackupSpec, MongoBackupStatus,
        S3CredentialsReference, S3Destination, ScheduleSpec,
    };

    fn destination(name: &str) -> Destination {
        Destination {
            name: name.into(),
            s3: Some(S3Destination {
                bucket: "b".into(),
                prefix: Some("prod".into()),
                endpoint: None,
                region: "eu-west-3".into(),
                force_path_style: false,
                credentials_secret_ref: S3CredentialsReference {
                    name: format!("{name}-keys"),
                    access_key_id_key: "id".into(),
                    secret_access_key_key: "secret".into(),
                },
                ca_secret_ref: None,
            }),
            gcs: None,
            azure: None,
        }
    }

    fn backup(phase: BackupPhase, copies: &[(&str, Option<&str>)]) -> MongoBackup {
        let mut b = MongoBackup::new(
            "orders-202611231200",
            MongoBackupSpec {
                cluster_ref: ClusterReference { name: "orders".into() },
                schedule: None,
                destinations: vec![destination("ovh"), destination("scw")],
                compression: Compression::Zstd,
                encryption: Some(EncryptionSpec {
                    key_secret_ref: SecretKeyReference { name: "backup-key".into(), key: "key".into() },
                }),
                unencrypted: false,
                retention: None,
                suspend: false,
                verification: None,
                resources: None,
                pitr: None,
            },
        );
        b.status = Some(MongoBackupStatus {
            phase: Some(phase),
            copies: copies
                .iter()
                .map(|(d, p)| BackupCopy {
                    destination: (*d).into(),
                    url: format!("s3://b/{d}"),
                    path: p.map(str::to_string),
                })
                .collect(),
            checksum: Some(CHECKSUM.into()),
            ..MongoBackupStatus::default()
        });
        b
    }

    const CHECKSUM: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    fn by_name() -> FromBackupSpec {
        FromBackupSpec {
            backup_name: Some("orders-202611231200".into()),
            location: None,
            encryption_key_secret_ref: None,
            checksum: None,
            keep_source_users: false,
            point_in_time: None,
            resources: None,
        }
    }

    #[test]
    fn a_point_in_time_reads_the_archive_of_the_schedule_from_each_destination_in_turn() {
        let mut schedule = backup(BackupPhase::Scheduled, &[]);
        schedule.metadata.name = Some("orders-nightly".into());
        schedule.spec.schedule =
            Some(ScheduleSpec { cron: "0 */2 * * *".into(), time_zone: None, starting_deadline_seconds: 3600 });
        let from = FromBackupSpec {
            backup_name: Some("orders-nightly".into()),
            point_in_time: Some("2026-12-05T10:15:00Z".into()),
            ..by_name()
        };
        let refused = resolve(&from, Some(&schedule)).expect_err("no pitr");
        assert!(
            matches!(&refused, Unresolved::Invalid("NoOplogArchive", m) if m.contains("a schedule without pitr")),
            "{refused:?}"
        );
        let one = backup(BackupPhase::Succeeded, &[("ovh", None)]);
        assert!(matches!(resolve(&from, Some(&one)), Err(Unresolved::Invalid("NoOplogArchive", _))));

        schedule.spec.pitr = Some(serde_json::from_value(serde_json::json!({})).expect("pitr"));
        let source = resolve(&from, Some(&schedule)).expect("resolves");
        assert_eq!(
            source.point_in_time,
            Some(PointInTimePlan { cluster: "orders".into(), target: "2026-12-05T10:15:00Z".into() })
        );
        let order: Vec<&str> =
            std::iter::once(&source.location).chain(&source.fallbacks).map(|l| l.destination.name.as_str()).collect();
        assert_eq!(order, ["ovh", "scw"], "the destinations in the order the schedule lists them");
        assert_eq!(source.expected, Expected { checksum: None, encrypted: true }, "the key vouches");
        assert_eq!(source.encryption_key, Some(SecretKeyReference { name: "backup-key".into(), key: "key".into() }));
        assert_eq!(source.description, "MongoBackup orders-nightly to 2026-12-05T10:15:00Z");

        schedule.spec.encryption = None;
        assert!(matches!(resolve(&from, Some(&schedule)), Err(Unresolved::Invalid("RestoreUnauthenticated", _))));
    }

    #[test]
    fn a_point_in_time_by_location_reads_the_archive_of_the_cluster_its_path_names() {
        let key = SecretKeyReference { name: "old-key".into(), key: "key".into() };
        let at = |path: &str| FromBackupSpec {
            backup_name: None,
            location: Some(BackupLocation { destination: destination("ovh"), path: path.into() }),
            encryption_key_secret_ref: Some(key.clone()),
            point_in_time: Some("latest".into()),
            ..by_name()
        };
        for path in ["prod/orders", "/prod/orders/"] {
            let source = resolve(&at(path), None).expect("resolves");
            assert_eq!(
                source.point_in_time,
                Some(PointInTimePlan { cluster: "orders".into(), target: "latest".into() })
            );
            assert_eq!((source.location.destination.name.as_str(), source.fallbacks.len()), ("ovh", 0));
            assert_eq!(source.expected, Expected { checksum: None, encrypted: true }, "the key vouches");
            assert_eq!(source.encryption_key, Some(key.clone()));
        }
        // Not the cluster's directory under the destination's prefix: named, with an example.
        for path in ["orders", "prod", "prod/orders/nightly-202612050200/manifest.json", "staging/orders"] {
            let refused = resolve(&at(path), None).expect_err(path);
            assert!(
                matches!(&refused, Unresolved::Invalid("BadArchiveLocation", m) if m.contains("for example prod/orders")),
                "{path}: {refused:?}"
            );
        }
        // Only the key vouches for what the Job picks: a checksum names one archive, not a base and chunks.
        let unkeyed =
            FromBackupSpec { encryption_key_secret_ref: None, checksum: Some(CHECKSUM.into()), ..at("prod/orders") };
        assert!(matches!(resolve(&unkeyed, None), Err(Unresolved::Invalid("RestoreUnauthenticated", _))));
    }

    #[test]
    fn a_backup_by_name_resolves_to_its_first_listed_copy_then_the_others_and_its_own_key() {
        let b = backup(BackupPhase::Succeeded, &[("scw", Some("prod/x/manifest.json")), ("ovh", None)]);
        let source = resolve(&by_name(), Some(&b)).expect("resolves");
        // ovh is listed first in the spec; its copy recorded no path, so the key is computed.
        assert_eq!(source.location.destination.name, "ovh");
        assert_eq!(source.location.path, "prod/orders/orders-202611231200/manifest.json");
        // scw's copy is the fallback.
        let fallbacks: Vec<(&str, &str)> =
            source.fallbacks.iter().map(|l| (l.destination.name.as_str(), l.path.as_str())).collect();
        assert_eq!(fallbacks, [("scw", "prod/x/manifest.json")]);
        assert_eq!(source.encryption_key, Some(SecretKeyReference { name: "backup-key".into(), key: "key".into() }));
        // The manifest is checked against what the API says: its checksum, and that it was
        // encrypted (its spec says so when its status predates the record).
        assert_eq!(source.expected, Expected { checksum: Some(CHECKSUM.into()), encrypted: true });
        let only_scw = backup(BackupPhase::Succeeded, &[("scw", Some("prod/x/manifest.json"))]);
        let source = resolve(&by_name(), Some(&only_scw)).expect("resolves");
        assert_eq!(source.location.path, "prod/x/manifest.json");
        assert!(source.fallbacks.is_empty());
    }

    #[test]
    fn backups_that_cannot_be_restored_wait_or_fail_with_a_reason() {
        let reason = |r: Result<Source, Unresolved>| match r {
            Err(Unresolved::Waiting(r, _)) => format!("wait:{r}"),
            Err(Unresolved::Invalid(r, _)) => format!("fail:{r}"),
            Ok(_) => "ok".into(),
        };
        assert_eq!(reason(resolve(&by_name(), None)), "wait:BackupNotFound");
        assert_eq!(reason(resolve(&by_name(), Some(&backup(BackupPhase::Running, &[])))), "wait:BackupNotSucceeded");
        assert_eq!(reason(resolve(&by_name(), Some(&backup(BackupPhase::Failed, &[])))), "fail:BackupFailed");
        assert_eq!(reason(resolve(&by_name(), Some(&backup(BackupPhase::Succeeded, &[])))), "fail:BackupHasNoCopy");
        let mut schedule = backup(BackupPhase::Scheduled, &[]);
        schedule.spec.schedule =
            Some(ScheduleSpec { cron: "0 */2 * * *".into(), time_zone: None, starting_deadline_seconds: 3600 });
        assert_eq!(reason(resolve(&by_name(), Some(&schedule))), "fail:BackupIsASchedule");
        let mut unchecked = backup(BackupPhase::Succeeded, &[("ovh", None)]);
        if let Some(status) = unchecked.status.as_mut() {
            status.checksum = None;
        }
        assert_eq!(reason(resolve(&by_name(), Some(&unchecked))), "fail:BackupHasNoChecksum");
    }

    #[test]
    fn a_location_that_nothing_vouches_for_is_refused() {
        let location = BackupLocation { destination: destination("ovh"), path: "prod/a/b/manifest.json".into() };
        let from = FromBackupSpec { location: Some(location), backup_name: None, ..by_name() };
        assert!(matches!(resolve(&from, None), Err(Unresolved::Invalid("RestoreUnauthenticated", _))));
        let checked = FromBackupSpec { checksum: Some(CHECKSUM.into()), ..from };
        let source = resolve(&checked, None).expect("a checksum vouches for it");
        assert_eq!(source.expected, Expected { checksum: Some(CHECKSUM.into()), encrypted: false });
    }

    #[test]
    fn a_location_uses_the_key_given_next_to_it() {
        let key = SecretKeyReference { name: "old-key".into(), key: "k".into() };
        let from = FromBackupSpec {
            backup_name: None,
            location: Some(BackupLocation { destination: destination("ovh"), path: "prod/a/b/manifest.json".into() }),
            encryption_key_secret_ref: Some(key.clone()),
            checksum: None,
            keep_source_users: false,
            point_in_time: None,
            resources: None,
        };
        let source = resolve(&from, None).expect("resolves");
        assert_eq!(source.encryption_key, Some(key));
        assert_eq!(source.expected, Expected { checksum: None, encrypted: true });
        assert_eq!(source.description, "ovh:prod/a/b/manifest.json");
        let names = ClusterNames::new("clone", "shop");
        let files: Vec<(String, String)> =
            secret_files(&names, &source).into_iter().map(|f| (f.secret, f.path)).collect();
        assert_eq!(
            files,
            vec![
                ("clone-internal".into(), "mongodb/password".into()),
                ("old-key".into(), "encryption/key".into()),
                ("ovh-keys".into(), "destinations/ovh/access-key-id".into()),
                ("ovh-keys".into(), "destinations/ovh/secret-access-key".into()),
            ]
        );
    }

    #[test]
    fn a_past_success_is_reported_as_recorded_or_by_its_source() {
        let recorded = RestoreStatus {
            phase: RestorePhase::Succeeded,
            source: Some("MongoBackup nightly".into()),
            checksum: Some("sha256:ab".into()),
            message: Some("restored MongoBackup nightly from the copy in ovh".into()),
            ..RestoreStatus::default()
        };
        assert_eq!(recorded_success("MongoBackup nightly", Some(&recorded)), recorded);
        // Marked by an operator that kept no record, or a record that is not a success.
        let failed = RestoreStatus { phase: RestorePhase::Failed, ..recorded.clone() };
        for record in [None, Some(&failed)] {
            let status = recorded_success("MongoBackup nightly", record);
            assert_eq!(status.phase, RestorePhase::Succeeded);
            assert_eq!(status.source.as_deref(), Some("MongoBackup nightly"));
            assert_eq!(status.checksum, None);
            assert!(status.message.is_some_and(|m| m.contains("never restored again")));
        }
    }

    #[test]
    fn users_the_backup_brought_are_foreign_unless_declared_or_the_operators_own() {
        let cluster: MongoCluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "mongo.operator.rs/v1alpha1", "kind": "MongoCluster",
            "metadata": {"name": "clone"},
            "spec": {"version": "8.0.4", "users": [{"name": "app", "db": "admin", "roles": [{"name": "read", "db": "x"}]}]},
        }))
        .expect("cluster");
        let creds = InternalCredentials {
            system: crate::mongo::Credentials::from_key_file("a2V5ZmlsZQ=="),
            operator: crate::mongo::Credentials::scram("mongo-operator-admin", "admin", "p"),
            backup: crate::mongo::Credentials::scram("mongo-operator-backup", "admin", "b"),
            monitor: crate::mongo::Credentials::scram("mongo-operator-monitor", "admin", "m"),
            monitor_digest: String::new(),
            agents_digest: String::new(),
            agents_applied: None,
            operator_digest: String::new(),
            operator_applied: None,
            restored_from: None,
            restore_result: None,
        };
        let user = |db: &str, name: &str| UserInfo { user: name.into(), db: db.into(), roles: vec![] };
        let users = [
            user("admin", "mongo-operator-admin"),
            user("admin", "mongo-operator-backup"),
            user("admin", "mongo-operator-monitor"),
            user("admin", "app"),
            user("orders", "app"),
            user("admin", "prod-dba"),
            user("admin", "mongo-operator-restore"),
        ];
        assert_eq!(
            foreign_users(&users, &cluster, &creds),
            vec![
                ("orders".to_string(), "app".to_string()),
                ("admin".to_string(), "prod-dba".to_string()),
                ("admin".to_string(), "mongo-operator-restore".to_string()),
            ]
        );
    }

    #[test]
    fn only_databases_beyond_admin_config_and_local_count_as_data() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(user_databases(&names(&["admin", "config", "local"])).is_empty());
        assert_eq!(user_databases(&names(&["admin", "orders", "local"])), vec!["orders".to_string()]);
    }
}
