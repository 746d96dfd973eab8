//! One reconcile of a NetworkPolicyAttachment, in stages: read the cluster, apply the policy,
//! count what each peer selects, write the status.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::core::Selector;
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};

use super::peers::describe;
use crate::api::{
    AttachmentPeer, MongoCluster, NetworkPolicyAttachment, NetworkPolicyAttachmentStatus, PeerStatus, Standing,
    condition, condition_type, kstatus_conditions,
};
use crate::build::names::ClusterNames;
use crate::build::network_policy;
use crate::controller::error::{Error, KubeContext};
use crate::controller::ssa::apply;
use crate::controller::{Context, Events};
use crate::mongo::MongoAdmin;

/// Something that keeps the attachment from doing all it says.
struct Problem {
    reason: &'static str,
    message: String,
}

pub async fn reconcile<A: MongoAdmin>(
    attachment: Arc<NetworkPolicyAttachment>,
    ctx: Arc<Context<A>>,
) -> Result<Action, Error> {
    if attachment.metadata.deletion_timestamp.is_some() {
        // Its NetworkPolicy goes with it through garbage collection.
        return Ok(Action::await_change());
    }
    let ns = attachment.namespace().ok_or(Error::Incomplete("NetworkPolicyAttachment", "metadata.namespace"))?;
    let name = attachment.name_any();
    let events = Events::new(&ctx.recorder, attachment.object_ref(&()));
    let cluster_name = &attachment.spec.cluster_ref.name;
    let names = ClusterNames::new(cluster_name, &ns);
    let mut problems = Vec::new();

    // Read.
    let clusters: Api<MongoCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster = clusters.get_opt(cluster_name).await.doing(|| format!("reading MongoCluster {cluster_name}"))?;

    // Apply: only for a cluster that exists, so the policy never selects a stranger's Pods
    // that happen to take the name later without the attachment being looked at again.
    let policy_name = match &cluster {
        None => {
            problems.push(Problem {
                reason: "ClusterNotFound",
                message: format!("MongoCluster {cluster_name} does not exist in {ns}; no access is granted"),
            });
            None
        }
        Some(cluster) => {
            let owner =
                attachment.controller_owner_ref(&()).ok_or(Error::Incomplete("NetworkPolicyAttachment", "uid"))?;
            let policy =
                network_policy::attachment(&names, &name, &attachment.spec.from, &attachment.spec.ports, &owner);
            let api: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &ns);
            apply(&api, &policy).await?;
            if !cluster.spec.network_isolation.enabled {
                problems.push(Problem {
                    reason: "IsolationDisabled",
                    message: format!(
                        "MongoCluster {cluster_name} has spec.networkIsolation.enabled false: every Pod can connect, so this attachment restricts nothing until isolation is on"
                    ),
                });
            }
            Some(network_policy::attachment_policy_name(&names, &name))
        }
    };

    // Count what each peer selects.
    let mut peers = Vec::new();
    for (i, peer) in attachment.spec.from.iter().enumerate() {
        let description = describe(peer);
        let matching = match queries(peer) {
            Ok(queries) => count(&ctx.client, &ns, queries).await?,
            Err(e) => {
                problems
                    .push(Problem { reason: "InvalidSelector", message: format!("from[{i}] ({description}): {e}") });
                None
            }
        };
        if matching == Some(0) {
            problems.push(Problem {
                reason: "SelectsNothing",
                message: format!("from[{i}] ({description}) selects no Pod now"),
            });
        }
        peers.push(PeerStatus { description, matching_pods: matching });
    }

    // Status and Events.
    let previous = attachment.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    let generation = attachment.metadata.generation;
    let degraded_message = problems.iter().map(|p| p.message.clone()).collect::<Vec<_>>().join("; ");
    let ready = policy_name.is_some();
    let ready_message = match &policy_name {
        Some(p) => format!("NetworkPolicy {p} lets {} peer(s) reach MongoCluster {cluster_name}", peers.len()),
        None => degraded_message.clone(),
    };
    // A missing cluster may still be applied (GitOps tools apply in any order): keep waiting.
    // A selector that cannot parse needs the user. Isolation turned off leaves nothing to do.
    let not_ready_reason = problems.first().map_or("NotApplied", |p| p.reason);
    let standing = match (ready, not_ready_reason) {
        (true, _) => Standing::Current,
        (false, "InvalidSelector") => Standing::Stalled(not_ready_reason, &ready_message),
        (false, "IsolationDisabled") => Standing::Current,
        (false, _) => Standing::Reconciling(not_ready_reason, &ready_message),
    };
    let kstatus = kstatus_conditions(&previous.conditions, standing, generation, now);
    let status = NetworkPolicyAttachmentStatus {
        conditions: vec![
            condition(
                &previous.conditions,
                condition_type::READY,
                ready,
                if ready { "PolicyApplied" } else { problems.first().map_or("NotApplied", |p| p.reason) },
                ready_message.clone(),
                generation,
                now,
            ),
            match problems.first() {
                Some(p) => condition(
                    &previous.conditions,
                    condition_type::DEGRADED,
                    true,
                    p.reason,
                    degraded_message.clone(),
                    generation,
                    now,
                ),
                None => condition(
                    &previous.conditions,
                    condition_type::DEGRADED,
                    false,
                    "Healthy",
                    "every peer selects something",
                    generation,
                    now,
                ),
            },
        ]
        .into_iter()
        .chain(kstatus)
        .collect(),
        observed_generation: generation,
        network_policy_name: policy_name,
        peers,
    };
    let said = |type_: &str, message: &str| {
        previous.conditions.iter().any(|c| c.type_ == type_ && c.status == "True" && c.message == message)
    };
    if ready && !said(condition_type::READY, &ready_message) {
        events.normal("PolicyApplied", "Apply", ready_message).await;
    }
    if !problems.is_empty() && !said(condition_type::DEGRADED, &degraded_message) {
        events.warning(problems[0].reason, "Validate", degraded_message).await;
    }
    if attachment.status.as_ref() != Some(&status) {
        let api: Api<NetworkPolicyAttachment> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "status": status })))
            .await
            .doing(|| format!("writing the status of {name}"))?;
    }
    Ok(Action::await_change())
}

fn list_params(selector: Option<&LabelSelector>) -> Result<ListParams, String> {
    let Some(selector) = selector else { return Ok(ListParams::default()) };
    let selector = Selector::try_from(selector.clone()).map_err(|e| format!("the selector cannot be read: {e}"))?;
    Ok(ListParams::default().labels_from(&selector))
}

/// What to list for a peer: its Pods' query, and its namespaces' query when it names other
/// namespaces. None for an address range.
struct Queries {
    pods: ListParams,
    namespaces: Option<ListParams>,
}

fn queries(peer: &AttachmentPeer) -> Result<Option<Queries>, String> {
    if peer.ip_block.is_some() {
        return Ok(None);
    }
    let namespaces = peer.namespace_selector.as_ref().map(|s| list_params(Some(s))).transpose()?;
    Ok(Some(Queries { pods: list_params(peer.pod_selector.as_ref())?, namespaces }))
}

/// How many Pods a peer selects now in the attachment's namespace; None for an address range,
/// and for a peer that selects namespaces: the status is read by anybody who can read the
/// attachment, and must not tell them what runs in namespaces they may not see.
async fn count(client: &Client, namespace: &str, queries: Option<Queries>) -> Result<Option<i32>, Error> {
    let Some(queries) = queries else { return Ok(None) };
    if queries.namespaces.is_some() {
        return Ok(None);
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = api.list_metadata(&queries.pods).await.doing(|| format!("listing Pods in {namespace}"))?;
    let total = pods.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).count();
    Ok(Some(i32::try_from(total).unwrap_or(i32::MAX)))
}
