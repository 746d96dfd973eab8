//! What the controllers share about watching and running: the namespaces in scope, the watch
//! of each controller's own kind, metadata-only watches of the objects they own, and how a
//! controller is run (measured reconciles, one error policy, readiness once its cache syncs).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use super::{Context, Error};
use crate::mongo::MongoAdmin;

/// Which namespaces to watch.
#[derive(Clone, Debug)]
pub enum Scope {
    All,
    Namespace(String),
}

impl Scope {
    /// The one namespace watched, if not all.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Scope::All => None,
            Scope::Namespace(ns) => Some(ns),
        }
    }
}

pub fn api<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        Scope::All => Api::all(client.clone()),
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
    }
}

/// The watch of a controller's own kind: every object applied, kept in the returned cache.
pub fn primary<K>(
    client: &Client,
    scope: &Scope,
) -> (Store<K>, impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static)
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api::<K>(client, scope), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    (reader, stream)
}

/// Runs `controller` until its shutdown: each reconcile measured under `name`, failures
/// through [`error_policy`], and readiness told once its cache holds every object.
pub async fn drive<K, A, R, F>(
    name: &'static str,
    controller: Controller<K>,
    scope: Scope,
    ctx: Arc<Context<A>>,
    reconcile: R,
) where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    A: MongoAdmin + 'static,
    R: Fn(Arc<K>, Arc<Context<A>>) -> F + Copy + Send + Sync + 'static,
    F: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    let synced = report_synced(controller.store(), ctx.clone(), scope);
    let run = controller.run(move |o, c| measured(name, o, c, reconcile), error_policy, ctx).for_each(log_result);
    futures::future::join(run, synced).await;
}

/// Metadata-only watch of a kind: owned objects only matter for whom they belong to and when
/// they change, so their bodies are never held in memory.
pub fn metadata<K>(
    client: &Client,
    scope: &Scope,
    config: watcher::Config,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    watcher(api::<PartialObjectMeta<K>>(client, scope), config).default_backoff().touched_objects()
}

/// Runs one reconcile inside a span naming the controller and the object, and counts it in
/// the metrics (result, error reason, duration, in flight).
async fn measured<K, A, R, F>(
    controller: &'static str,
    object: Arc<K>,
    ctx: Arc<Context<A>>,
    reconcile: R,
) -> Result<Action, Error>
where
    K: kube::Resource<DynamicType = ()>,
    A: MongoAdmin,
    R: FnOnce(Arc<K>, Arc<Context<A>>) -> F,
    F: std::future::Future<Output = Result<Action, Error>>,
{
    let span = tracing::info_span!("reconcile", controller, object = %ObjectRef::from_obj(&*object));
    let timer = ctx.metrics.reconcile(controller);
    let result = tracing::Instrument::instrument(reconcile(object, ctx.clone()), span).await;
    timer.finish(result.as_ref().err().map(Error::reason));
    result
}

/// Tells readiness when a controller's cache holds the full list of its objects.
async fn report_synced<K, A>(store: Store<K>, ctx: Arc<Context<A>>, scope: Scope)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
    A: MongoAdmin,
{
    if store.wait_until_ready().await.is_ok() {
        ctx.readiness.synced(crate::telemetry::readiness::cache_name(&K::kind(&()), scope.namespace()));
    }
}

/// What every controller does with a failed reconcile: log it with its reason, and look again
/// soon when retrying may help (the API server or a member was briefly away), later otherwise.
fn error_policy<K, A>(object: Arc<K>, error: &Error, _: Arc<Context<A>>) -> Action
where
    K: kube::Resource<DynamicType = ()>,
    A: MongoAdmin,
{
    let object = ObjectRef::from_obj(&*object);
    tracing::warn!(%object, reason = error.reason(), %error, "reconcile failed");
    Action::requeue(if error.is_transient() { Duration::from_secs(5) } else { Duration::from_secs(30) })
}

/// Logs what a controller's run stream yields: each reconcile's object, or its error (the
/// error policy has already logged the error with its reason).
async fn log_result<K, E>(result: Result<(ObjectRef<K>, Action), E>)
where
    K: kube::Resource,
    E: std::fmt::Display,
{
    match result {
        Ok((object, _)) => tracing::debug!(%object, "reconciled"),
        Err(error) => tracing::debug!(%error, "reconcile error"),
    }
}
