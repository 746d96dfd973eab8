//! The oplog archiver's Deployment (`spec.pitr` of a backup schedule): one Pod of the
//! operator's binary running `archive-oplog`, built like a backup Job's Pod (the same image,
//! secret files, security context and placement), owned by the schedule. Pure.
//!
//! One replica, replaced with `Recreate`: two archivers of one cluster would cut chunks from
//! the same entry at once; with `Recreate` the old Pod is gone before the new one starts (and
//! an archiver that starts continues after the last chunk every destination holds, whatever
//! the old one did).

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodTemplateSpec, Probe,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::backup_job::{JobInputs, pod_template};
use crate::pitr::report::{STATUS_PATH, STATUS_PORT};

/// The name of the archiver's status port.
pub const STATUS_PORT_NAME: &str = "status";

/// The archiver's component label (its Pods reach the members and the stores as backup Jobs do).
pub const OPLOG_ARCHIVER_COMPONENT: &str = "oplog-archiver";

/// The Deployment's name for a cluster.
pub fn deployment_name(cluster: &str) -> String {
    super::names::bounded(cluster, "oplog-archiver")
}

/// The Deployment, from the same inputs as a backup Job (`component` and `subcommand` are the
/// archiver's).
pub fn build(i: &JobInputs<'_>) -> Deployment {
    let mut template = pod_template(i, "Always");
    serve_status(&mut template);
    let selector = template.metadata.as_ref().and_then(|m| m.labels.clone());
    Deployment {
        metadata: ObjectMeta {
            name: Some(i.name.to_string()),
            namespace: Some(i.namespace.to_string()),
            labels: selector.clone(),
            owner_references: Some(vec![i.owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector { match_labels: selector, ..LabelSelector::default() },
            strategy: Some(DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None }),
            template,
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// The archiver serves its report on the Pod's IP (the operator reads it from there), and is
/// ready once it does.
fn serve_status(template: &mut PodTemplateSpec) {
    let Some(container) = template.spec.as_mut().and_then(|s| s.containers.first_mut()) else { return };
    container.env.get_or_insert_with(Vec::new).push(EnvVar {
        name: "POD_IP".into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: "status.podIP".into(), api_version: None }),
            ..EnvVarSource::default()
        }),
    });
    container.ports = Some(vec![ContainerPort {
        name: Some(STATUS_PORT_NAME.into()),
        container_port: i32::from(STATUS_PORT),
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }]);
    container.readiness_probe = Some(Probe {
        http_get: Some(HTTPGetAction {
            path: Some(STATUS_PATH.into()),
            port: IntOrString::String(STATUS_PORT_NAME.into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    });
}
