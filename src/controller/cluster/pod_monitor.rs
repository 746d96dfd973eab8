//! `spec.monitoring.podMonitor`: the members' `PodMonitor`, applied while asked for and
//! removed once it no longer is (the status remembers that one was made, so a cluster that
//! never asked costs no request).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Api, Client};

use super::validate::Problem;
use crate::api::MongoCluster;
use crate::build::labels::FIELD_MANAGER;
use crate::build::names::ClusterNames;
use crate::build::pod_monitor::{pod_monitor, pod_monitor_resource};
use crate::controller::error::{Error, KubeContext};

/// The problem's reason when the Prometheus Operator's API is not served.
pub const NOT_INSTALLED: &str = "PodMonitorUnavailable";

/// Keeps the PodMonitor as the spec asks. Returns the name of the one kept (None when there
/// is none), and a problem when one is asked for and cannot be made.
pub async fn ensure(
    client: &Client,
    names: &ClusterNames,
    cluster: &MongoCluster,
    owner: &OwnerReference,
) -> Result<(Option<String>, Option<Problem>), Error> {
    let resource = pod_monitor_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &names.namespace, &resource);
    let monitoring = &cluster.spec.monitoring;
    let made = cluster.status.as_ref().and_then(|s| s.pod_monitor.clone());
    if !(monitoring.pod_monitor.enabled && monitoring.exporter.enabled) {
        if let Some(name) = made {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(e).doing(|| format!("deleting PodMonitor {name}")),
            }
        }
        return Ok((None, None));
    }
    let desired = pod_monitor(names, &monitoring.pod_monitor, owner);
    let applied =
        api.patch(&names.pod_monitor(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&desired)).await;
    match applied {
        Ok(_) => Ok((Some(names.pod_monitor()), None)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok((
            None,
            Some(Problem {
                reason: NOT_INSTALLED,
                message: format!(
                    "spec.monitoring.podMonitor needs the Prometheus Operator, and its PodMonitor API ({}) is not \
                     served here: install it (the operator looks again every minute), or scrape the members through \
                     their prometheus.io annotations",
                    resource.api_version
                ),
                blocks_all: false,
                secret: None,
            }),
        )),
        Err(e) => Err(e).doing(|| format!("applying PodMonitor {}", names.pod_monitor())),
    }
}
