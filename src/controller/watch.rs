//! What the controllers share about watching: the namespaces in scope, and metadata-only
//! watches of the objects they own.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};

use super::{Context, Error};
use crate::mongo::MongoAdmin;

/// Which namespaces to watch.
#[derive(Clone, Debug)]
pub enum Scope {
    All,
    Namespace(String),
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
pub async fn measured<K, A, R, F>(
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
pub async fn report_synced<K, A>(store: kube::runtime::reflector::Store<K>, ctx: Arc<Context<A>>, scope: Scope)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
    A: MongoAdmin,
{
    if store.wait_until_ready().await.is_ok() {
        let namespace = match &scope {
            Scope::All => None,
            Scope::Namespace(ns) => Some(ns.as_str()),
        };
        ctx.readiness.synced(crate::telemetry::readiness::cache_name(&K::kind(&()), namespace));
    }
}

/// What every controller does with a failed reconcile: log it with its reason, and look again
/// soon when retrying may help (the API server or a member was briefly away), later otherwise.
pub fn error_policy<K, A>(object: Arc<K>, error: &Error, _: Arc<Context<A>>) -> Action
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
pub async fn log_result<K, E>(result: Result<(ObjectRef<K>, Action), E>)
where
    K: kube::Resource,
    E: std::fmt::Display,
{
    match result {
        Ok((object, _)) => tracing::debug!(%object, "reconciled"),
        Err(error) => tracing::debug!(%error, "reconcile error"),
    }
}
