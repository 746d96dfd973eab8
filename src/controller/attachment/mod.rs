//! The NetworkPolicyAttachment controller: one NetworkPolicy per attachment, owned by it (so
//! deleting the attachment revokes the access at once), and a status that says which peers
//! are in effect and how many Pods each selects now. Wiring here; the reconcile in
//! [`reconcile`], the pure descriptions in [`peers`].

pub mod peers;
mod reconcile;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::Future;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};

use super::Context;
use super::watch::{Scope, drive, metadata, primary};
use crate::api::{MongoCluster, NetworkPolicyAttachment};
use crate::build::labels::MANAGED_BY;
use crate::mongo::MongoAdmin;

/// The attachments of `cluster` in `namespace`.
fn of_cluster(
    store: &Store<NetworkPolicyAttachment>,
    namespace: &str,
    cluster: &str,
) -> Vec<ObjectRef<NetworkPolicyAttachment>> {
    store
        .state()
        .into_iter()
        .filter(|a| a.namespace().as_deref() == Some(namespace) && a.spec.cluster_ref.name == cluster)
        .map(|a| ObjectRef::from_obj(&*a))
        .collect()
}

/// The attachments whose peer counts a Pod's labels may change: those of its namespace (Pods
/// in other namespaces are never counted).
fn concerning_pod(
    store: &Store<NetworkPolicyAttachment>,
    pod: &PartialObjectMeta<Pod>,
) -> Vec<ObjectRef<NetworkPolicyAttachment>> {
    let ns = pod.namespace().unwrap_or_default();
    store
        .state()
        .into_iter()
        .filter(|a| a.namespace().as_deref() == Some(ns.as_str()))
        .map(|a| ObjectRef::from_obj(&*a))
        .collect()
}

/// A Pod matters to attachments when it appears, goes, or changes its labels.
fn labels_hash(pod: &PartialObjectMeta<Pod>) -> Option<u64> {
    let mut h = DefaultHasher::new();
    pod.labels().hash(&mut h);
    Some(h.finish())
}

/// Runs the NetworkPolicyAttachment controller until `shutdown` resolves.
pub async fn run<A: MongoAdmin + 'static>(
    ctx: Arc<Context<A>>,
    scope: Scope,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let (reader, attachments) = primary::<NetworkPolicyAttachment>(&client, &scope);
    let attachments = attachments.predicate_filter(predicates::generation, Default::default());
    let owned = watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
    let (for_clusters, for_pods) = (reader.clone(), reader.clone());
    let pods =
        metadata::<Pod>(&client, &scope, watcher::Config::default()).predicate_filter(labels_hash, Default::default());
    let controller = Controller::for_stream(attachments, reader)
        // Pod churn comes in bursts (a rollout); one count per burst is enough.
        .with_config(Config::default().debounce(Duration::from_secs(1)))
        .owns_stream(metadata::<NetworkPolicy>(&client, &scope, owned))
        // A cluster that appears (or goes) changes whether the attachment can take effect.
        .watches_stream(metadata::<MongoCluster>(&client, &scope, watcher::Config::default()), move |cluster| {
            of_cluster(&for_clusters, &cluster.namespace().unwrap_or_default(), &cluster.name_any())
        })
        .watches_stream(pods, move |pod| concerning_pod(&for_pods, &pod))
        .graceful_shutdown_on(shutdown);
    drive("attachment", controller, scope, ctx, reconcile::reconcile).await;
}
