//! What the plugin's commands share: their errors, the field manager their changes are
//! recorded under, and following a MongoCluster until its status says something.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::api::MongoCluster;
use crate::build::labels;

/// The field manager the plugin's changes are recorded under.
pub const FIELD_MANAGER: &str = "kubectl-mongo";

/// Why a command could not do what it says.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{kind} {name} not found in namespace {namespace}")]
    NotFound { kind: String, name: String, namespace: String },
    #[error("you may not {action} in namespace {namespace}: {reason}")]
    Forbidden { action: String, namespace: String, reason: String },
    #[error("{0}")]
    Refused(String),
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Turns an API error into one that says what the user may not do (403) or what failed.
pub fn classify(action: &str, namespace: &str) -> impl FnOnce(kube::Error) -> PluginError {
    let (action, namespace) = (action.to_string(), namespace.to_string());
    move |source| match source {
        kube::Error::Api(e) if e.code == 403 => PluginError::Forbidden { action, namespace, reason: e.message.clone() },
        source => PluginError::Kube { what: action, source },
    }
}

/// Reads one object; NotFound when it does not exist.
pub async fn get<K>(client: &Client, namespace: &str, name: &str) -> Result<K, PluginError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let kind = K::kind(&());
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name)
        .await
        .map_err(classify(&format!("read {kind} {name}"), namespace))?
        .ok_or_else(|| PluginError::NotFound { kind: kind.to_string(), name: name.into(), namespace: namespace.into() })
}

/// Sets one annotation on a MongoCluster (a merge patch: the other annotations stay).
pub async fn annotate(client: &Client, namespace: &str, name: &str, key: &str, value: &str) -> Result<(), PluginError> {
    let api: Api<MongoCluster> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({ "metadata": { "annotations": { key: value } } });
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
    api.patch(name, &params, &Patch::Merge(&patch))
        .await
        .map_err(classify(&format!("annotate MongoCluster {name}"), namespace))?;
    Ok(())
}

/// The API error inside a watch error.
pub fn watch_error(e: watcher::Error) -> kube::Error {
    match e {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            e
        }
        other => kube::Error::Service(Box::new(other)),
    }
}

/// Follows one object until `done` returns a value, or `timeout` passes (None).
pub async fn follow<K, T>(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
    mut done: impl FnMut(&K) -> Option<T>,
) -> Result<Option<T>, PluginError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api, config).default_backoff().applied_objects().boxed();
    let followed = tokio::time::timeout(timeout, async {
        while let Some(event) = stream.next().await {
            let object = event.map_err(|e| PluginError::Kube {
                what: format!("watching {} {name}", K::kind(&())),
                source: watch_error(e),
            })?;
            if let Some(value) = done(&object) {
                return Ok(Some(value));
            }
        }
        Ok(None)
    })
    .await;
    followed.unwrap_or(Ok(None))
}

/// The Pods a command about `member` (a Pod name, an ordinal, or every member) concerns.
pub async fn member_pods(
    client: &Client,
    namespace: &str,
    cluster: &str,
    member: Option<&str>,
) -> Result<Vec<Pod>, PluginError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = labels::selector_query(cluster);
    let mut pods =
        api.list(&ListParams::default().labels(&selector)).await.map_err(classify("list Pods", namespace))?.items;
    pods.sort_by_key(ResourceExt::name_any);
    let Some(m) = member else { return Ok(pods) };
    let wanted = if m.parse::<u32>().is_ok() { format!("{cluster}-{m}") } else { m.to_string() };
    let known: Vec<String> = pods.iter().map(ResourceExt::name_any).collect();
    pods.retain(|p| p.name_any() == wanted);
    if pods.is_empty() {
        return Err(PluginError::Refused(format!(
            "{cluster} has no member {wanted} (its members: {})",
            known.join(", ")
        )));
    }
    Ok(pods)
}
