//! Which members the client Service sends traffic to: the operator labels each member Pod
//! (`mongo.operator.rs/serves-clients`) by its role, so that an application that connects
//! through the Service never lands on a hidden or delayed member. The label is not in the Pod
//! template, so a role change restarts nothing; a Pod the StatefulSet re-creates is labelled
//! again by the reconcile its creation wakes.

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::api::MemberRoleSpec;
use crate::build::labels::{FIELD_MANAGER, SERVES_CLIENTS_LABEL};
use crate::build::names::ClusterNames;
use crate::controller::error::{Error, KubeContext};

use super::replica_set::member_settings;
use super::world::MemberPod;

/// Whether the member with `ordinal` takes application traffic: not when it is hidden
/// (hidden and delayed members), as `hello` leaves it out of `hosts` too.
pub fn serves_clients(roles: &[MemberRoleSpec], ordinal: i32) -> bool {
    !member_settings(roles, ordinal).hidden
}

/// Labels the Pods whose label differs from their role; none is written when all agree.
pub async fn label(
    client: &Client,
    names: &ClusterNames,
    roles: &[MemberRoleSpec],
    pods: &[MemberPod],
) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &names.namespace);
    for pod in pods.iter().filter(|p| !p.terminating) {
        let serves = serves_clients(roles, pod.ordinal);
        if pod.serves_clients == Some(serves) {
            continue;
        }
        let patch = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": pod.name, "labels": { SERVES_CLIENTS_LABEL: serves.to_string() } },
        });
        match api.patch(&pod.name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&patch)).await {
            Ok(_) => {}
            // Deleted since it was read: its successor is labelled when it appears.
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(source).doing(|| format!("labelling Pod {} as serving clients: {serves}", pod.name));
            }
        }
    }
    Ok(())
}
