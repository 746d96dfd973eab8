//! `kubectl mongo pause NAME` and `resume NAME`: `spec.paused`, which the operator already
//! watches (a paused cluster gets no change from the operator; its members keep running).

use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::api::MongoCluster;

use super::common::FIELD_MANAGER;

/// Sets `spec.paused`; returns whether it changed.
pub async fn set_paused(client: &Client, namespace: &str, name: &str, paused: bool) -> Result<bool, kube::Error> {
    let api: Api<MongoCluster> = Api::namespaced(client.clone(), namespace);
    let cluster = api.get(name).await?;
    if cluster.spec.paused == paused {
        return Ok(false);
    }
    let patch = serde_json::json!({ "spec": { "paused": paused } });
    api.patch(
        name,
        &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() },
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(true)
}
