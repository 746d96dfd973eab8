//! The MongoBackup controller. A MongoBackup without a schedule is one backup, run as a Job
//! ([`one_off`]); with a schedule it is a policy that creates one-off MongoBackups at the
//! scheduled times and prunes old ones ([`policy`]). Scheduling is the operator's own (not a
//! CronJob's), so missed runs, overlap and retention follow the rules in [`schedule`] and
//! [`retention`].

pub mod archive_report;
mod archiver;
mod one_off;
mod policy;
pub mod prune;
pub mod retention;
pub mod schedule;
pub mod source;
pub mod status;
pub mod trust;
pub mod verification;
mod verification_schedule;

pub use one_off::no_route_to_stores;

use std::sync::Arc;

use futures::Future;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use super::watch::{Scope, drive, metadata, primary};
use super::{Context, Error};
use crate::api::{BackupPhase, MongoBackup, MongoCluster};
use crate::build::archiver_deployment::OPLOG_ARCHIVER_COMPONENT;
use crate::build::backup_job::{BACKUP_COMPONENT, PRUNE_COMPONENT};
use crate::build::labels::MANAGED_BY;
use crate::build::verify_job::VERIFY_COMPONENT;
use crate::mongo::MongoAdmin;

/// The label that marks a MongoBackup created by a schedule, with the schedule's name.
pub const SCHEDULE_LABEL: &str = "mongo.operator.rs/schedule";

/// One reconcile of a MongoBackup. Public so that tests can hand it the object as an older
/// cache would, which the running controller only does by chance.
pub async fn reconcile<A: MongoAdmin>(backup: Arc<MongoBackup>, ctx: Arc<Context<A>>) -> Result<Action, Error> {
    if backup.spec.schedule.is_some() {
        policy::reconcile(&backup, &ctx).await
    } else {
        one_off::reconcile(&backup, &ctx).await
    }
}

/// One-off backups that have not started, for `cluster` in `namespace`: they wait for the
/// cluster or for another backup of it, and are woken when either changes.
fn waiting_for(store: &Store<MongoBackup>, namespace: &str, cluster: &str) -> Vec<ObjectRef<MongoBackup>> {
    store
        .state()
        .into_iter()
        .filter(|b| b.namespace().as_deref() == Some(namespace) && b.spec.cluster_ref.name == cluster)
        .filter(|b| b.spec.schedule.is_none())
        .filter(|b| {
            let phase = b.status.as_ref().and_then(|s| s.phase);
            let verifying = phase == Some(BackupPhase::Succeeded) && verification::pending(b);
            matches!(phase, None | Some(BackupPhase::Pending)) || verifying
        })
        .map(|b| ObjectRef::from_obj(&*b))
        .collect()
}

/// Runs the MongoBackup controller until `shutdown` resolves.
pub async fn run<A: MongoAdmin + 'static>(
    ctx: Arc<Context<A>>,
    scope: Scope,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let (reader, backups) = primary::<MongoBackup>(&client, &scope);
    ctx.metrics.watch_backups_of(reader.clone());
    let jobs = watcher::Config::default()
        .labels(&format!(
            "app.kubernetes.io/managed-by={MANAGED_BY},app.kubernetes.io/component in ({BACKUP_COMPONENT},{PRUNE_COMPONENT},{VERIFY_COMPONENT})"
        ));
    let (for_jobs, for_clusters) = (reader.clone(), reader.clone());
    let archivers = watcher::Config::default().labels(&format!(
        "app.kubernetes.io/managed-by={MANAGED_BY},app.kubernetes.io/component={OPLOG_ARCHIVER_COMPONENT}"
    ));
    let controller = Controller::for_stream(backups, reader)
        .owns_stream(metadata::<Job>(&client, &scope, jobs.clone()))
        // A schedule's oplog archiver: re-applied when edited or deleted, its readiness shown.
        .owns_stream(metadata::<Deployment>(&client, &scope, archivers))
        // A schedule hears of its backups' progress through their owner reference.
        .owns_stream(metadata::<MongoBackup>(&client, &scope, watcher::Config::default()))
        // A finished backup Job lets the next backup of the same cluster start.
        .watches_stream(metadata::<Job>(&client, &scope, jobs), move |job| {
            let cluster = job.labels().get("app.kubernetes.io/instance").cloned().unwrap_or_default();
            waiting_for(&for_jobs, &job.namespace().unwrap_or_default(), &cluster)
        })
        // A cluster that appears or gets a primary lets its waiting backups start; only its
        // name matters here, so its body is not held (the cluster controller holds that).
        .watches_stream(metadata::<MongoCluster>(&client, &scope, watcher::Config::default()), move |cluster| {
            waiting_for(&for_clusters, &cluster.namespace().unwrap_or_default(), &cluster.name_any())
        })
        .graceful_shutdown_on(shutdown);
    drive("backup", controller, scope, ctx, reconcile).await;
}
