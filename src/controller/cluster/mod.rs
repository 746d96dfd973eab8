//! The MongoCluster controller: wiring (what wakes a reconcile) here, the reconcile itself in
//! [`reconcile`], one stage per module.

mod cert_manager;
mod certificates;
mod client_pods;
mod external;
mod objects;
mod pod_monitor;
mod reconcile;
mod replica_set;
mod restore;
mod rollout;
mod status;
mod step_down;
mod tls_mode;
mod tls_stage;
mod upgrade;
mod users;
mod validate;
mod world;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::Future;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

/// Public so that tests can hand a reconcile the object as an older cache would.
pub use reconcile::reconcile;
pub use validate::{Version, version_path};

use super::Context;
pub use super::watch::Scope;
use super::watch::{drive, metadata, primary};
use crate::api::MongoCluster;
use crate::build::labels::MANAGED_BY;
use crate::mongo::MongoAdmin;

/// An annotation whose change asks for a reconcile now (like Flux's `reconcile.fluxcd.io/requestedAt`).
pub const RECONCILE_REQUEST_ANNOTATION: &str = "mongo.operator.rs/reconcile-requested-at";

/// Reconcile when the spec changes (its generation) or a reconcile, CA renewal, restart or
/// step-down is requested; status writes
/// (the operator's own) do not wake it.
fn spec_or_request(cluster: &MongoCluster) -> Option<u64> {
    let mut h = DefaultHasher::new();
    cluster.metadata.generation.hash(&mut h);
    cluster.annotations().get(RECONCILE_REQUEST_ANNOTATION).hash(&mut h);
    cluster.annotations().get(crate::api::RENEW_CA_ANNOTATION).hash(&mut h);
    cluster.annotations().get(crate::api::RESTART_ANNOTATION).hash(&mut h);
    cluster.annotations().get(crate::api::STEP_DOWN_ANNOTATION).hash(&mut h);
    Some(h.finish())
}

/// The clusters a Secret concerns: its owner, the cluster named by its instance label (Secrets
/// kept under `Retain` have no owner), every cluster whose users read a password from it, and
/// every cluster whose members' certificate comes from it (a renewal is followed at once).
fn clusters_of_secret(
    store: &Store<MongoCluster>,
    secret: &kube::core::PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<MongoCluster>> {
    let ns = secret.namespace().unwrap_or_default();
    let name = secret.name_any();
    let mut refs: Vec<ObjectRef<MongoCluster>> = Vec::new();
    if secret.labels().get("app.kubernetes.io/managed-by").map(String::as_str) == Some(MANAGED_BY)
        && let Some(instance) = secret.labels().get("app.kubernetes.io/instance")
    {
        refs.push(ObjectRef::new(instance).within(&ns));
    }
    for c in store.state() {
        let references = c.spec.users.iter().any(|u| u.password_secret_ref.as_ref().is_some_and(|r| r.name == name))
            || c.spec.tls.certificate_secret_ref.as_ref().is_some_and(|r| r.name == name);
        if references && c.namespace().as_deref() == Some(ns.as_str()) {
            refs.push(ObjectRef::from_obj(&*c));
        }
    }
    refs
}

/// Member Pods belong to a cluster by their instance label (their owner is the StatefulSet).
fn cluster_of_pod(pod: kube::core::PartialObjectMeta<Pod>) -> Option<ObjectRef<MongoCluster>> {
    let instance = pod.labels().get("app.kubernetes.io/instance")?;
    Some(ObjectRef::new(instance).within(&pod.namespace()?))
}

/// Runs the MongoCluster controller until `shutdown` resolves; in-flight reconciles finish.
pub async fn run<A: MongoAdmin + 'static>(
    ctx: Arc<Context<A>>,
    scope: Scope,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let (reader, clusters) = primary::<MongoCluster>(&client, &scope);
    let clusters = clusters.predicate_filter(spec_or_request, Default::default());
    let owned = watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
    let secrets_store = reader.clone();
    ctx.metrics.count_clusters_of(reader.clone());
    let controller = Controller::for_stream(clusters, reader)
        .owns_stream(metadata::<StatefulSet>(&client, &scope, owned.clone()))
        .owns_stream(metadata::<Service>(&client, &scope, owned.clone()))
        .owns_stream(metadata::<ConfigMap>(&client, &scope, owned.clone()))
        .owns_stream(metadata::<PodDisruptionBudget>(&client, &scope, owned.clone()))
        .owns_stream(metadata::<PersistentVolumeClaim>(&client, &scope, owned.clone()))
        // The restore Job of a cluster created from a backup.
        .owns_stream(metadata::<Job>(&client, &scope, owned.clone()))
        // The baseline NetworkPolicies, re-applied when someone edits or deletes them.
        .owns_stream(metadata::<NetworkPolicy>(&client, &scope, owned.clone()))
        .watches_stream(metadata::<Pod>(&client, &scope, owned), cluster_of_pod)
        .watches_stream(metadata::<Secret>(&client, &scope, watcher::Config::default()), move |s| {
            clusters_of_secret(&secrets_store, &s)
        })
        .graceful_shutdown_on(shutdown);
    drive("cluster", controller, scope, ctx, reconcile::reconcile).await;
}
