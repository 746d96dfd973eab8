//! Pure builders: the Kubernetes objects a MongoCluster needs, from its validated spec. No I/O;
//! the controller applies what these return.

pub mod archiver_deployment;
pub mod backup_job;
pub mod cert_manager;
pub mod exporter;
pub mod labels;
pub mod mongod_conf;
pub mod names;
pub mod network_policy;
pub mod pdb;
pub mod pod_monitor;
pub mod secrets;
pub mod services;
pub mod statefulset;
pub mod tls_secrets;
pub mod verify_job;

#[cfg(test)]
mod tests;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// Metadata of an object belonging to a cluster: its name, the cluster's namespace, the
/// recommended labels, and the MongoCluster as controlling owner (garbage collection).
pub fn owned_meta(names: &names::ClusterNames, name: String, owner: &OwnerReference) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(labels::labels(&names.cluster, "database")),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}
