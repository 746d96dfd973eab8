//! `kubectl mongo restart NAME [--member M] [--wait]`: restarts members through the operator,
//! which deletes their Pods in its rollout order (secondaries first, one at a time, each only
//! when the others are healthy and caught up, the primary last after stepping down). The
//! plugin only names the Pods, by UID, in the restart annotation; it never deletes a Pod.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::{Client, ResourceExt};

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, reflector, watcher};

use super::common::{PluginError, annotate, get, member_pods, watch_error};
use crate::api::{MongoCluster, RESTART_ANNOTATION, restart_requested};
use crate::build::labels;

/// What was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartRequest {
    /// The member Pods named, by name.
    pub pods: Vec<String>,
    /// The annotation's new value.
    pub annotation: String,
}

/// The restart annotation's value: the UIDs of the `chosen` Pods, and of Pods asked for
/// before that still exist (`pods`, every member). Pure.
pub fn plan(cluster: &str, pods: &[Pod], chosen: &[Pod], current: Option<&str>) -> Result<RestartRequest, PluginError> {
    if chosen.is_empty() {
        return Err(PluginError::Refused(format!("{cluster} has no member Pods to restart")));
    }
    let existing: BTreeSet<String> = pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
    let mut uids: BTreeSet<String> =
        restart_requested(current).into_iter().filter(|u| existing.contains(*u)).map(str::to_string).collect();
    uids.extend(chosen.iter().filter_map(|p| p.metadata.uid.clone()));
    let names: Vec<String> = chosen.iter().map(ResourceExt::name_any).collect();
    Ok(RestartRequest { pods: names, annotation: uids.into_iter().collect::<Vec<_>>().join(",") })
}

/// Asks for the restart; returns what was asked and whether the cluster is paused (then
/// nothing happens until it is resumed).
pub async fn request(
    client: &Client,
    namespace: &str,
    name: &str,
    member: Option<&str>,
) -> Result<(RestartRequest, bool), PluginError> {
    let cluster: MongoCluster = get(client, namespace, name).await?;
    let pods = member_pods(client, namespace, name, None).await?;
    let chosen = member_pods(client, namespace, name, member).await?;
    let current = cluster.annotations().get(RESTART_ANNOTATION).map(String::as_str);
    let request = plan(name, &pods, &chosen, current)?;
    annotate(client, namespace, name, RESTART_ANNOTATION, &request.annotation).await?;
    Ok((request, cluster.spec.paused))
}

/// Follows the restart until every Pod it named is back (a new Pod of that name, ready) and every
/// member Pod is ready, printing a line as each named member is replaced; false when `timeout`
/// passes first.
pub async fn wait(
    client: &Client,
    namespace: &str,
    name: &str,
    asked: &RestartRequest,
    timeout: Duration,
) -> Result<bool, PluginError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().labels(&labels::selector_query(name));
    let (store, writer) = reflector::store();
    let mut stream = reflector(writer, watcher(api, config).default_backoff()).touched_objects().boxed();
    let uids = restart_requested(Some(&asked.annotation));
    let mut replaced = BTreeSet::new();
    let followed = tokio::time::timeout(timeout, async {
        while let Some(event) = stream.next().await {
            event
                .map_err(|e| PluginError::Kube { what: "watching the members' Pods".into(), source: watch_error(e) })?;
            let pods = store.state();
            // A named member is back once a Pod of its name exists, is not the one asked for
            // (a new UID), and is ready.
            let back = |name: &str| {
                pods.iter().any(|p| {
                    p.name_any() == name && p.uid().is_some_and(|u| !uids.contains(u.as_str())) && pod_ready(p)
                })
            };
            for pod in asked.pods.iter().filter(|n| back(n)) {
                if replaced.insert(pod.clone()) {
                    println!("{pod} restarted");
                }
            }
            let all_back = asked.pods.iter().all(|n| back(n));
            if all_back && !pods.is_empty() && pods.iter().all(|p| pod_ready(p)) {
                return Ok(true);
            }
        }
        Ok(false)
    })
    .await;
    followed.unwrap_or(Ok(false))
}

fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
