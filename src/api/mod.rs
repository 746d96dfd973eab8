//! The custom resources served under `mongo.operator.rs/v1alpha1`: their types, defaults and
//! validation. Validation lives in the schema (OpenAPI constraints and CEL rules) wherever the
//! API server can check it, so bad input is refused at `kubectl apply` time.

// clippy's duplicated_attributes lint reads repeated `type_ = "string"` inside separate
// `printcolumn(...)` arguments of `#[kube(...)]` as duplicates; they are not.
#[allow(clippy::duplicated_attributes)]
mod attachment;
#[allow(clippy::duplicated_attributes)]
mod backup;
#[allow(clippy::duplicated_attributes)]
mod cluster;
mod common;
mod mongod_config;
mod monitoring;
mod requests;
mod roles;
mod tls;

pub use attachment::*;
pub use backup::*;
pub use cluster::*;
pub use common::*;
pub use mongod_config::{MongodConfig, REFUSED_KEYS};
pub use monitoring::*;
pub use requests::*;
pub use roles::*;
pub use tls::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD this operator serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![MongoCluster::crd(), MongoBackup::crd(), NetworkPolicyAttachment::crd()]
}

/// All CRDs as one multi-document YAML stream, as `mongo-operator crd` prints it and as
/// `crds/` stores it.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    crds().iter().map(crd_yaml).collect()
}

/// The file name under `crds/` of one CRD: `<plural>.<group>.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// One CRD as YAML, exactly as stored under `crds/`.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    Ok(format!("---\n{}", serde_yaml::to_string(crd)?))
}

/// Writes one file per CRD into `dir` (the repository's `crds/`, the Helm chart's `crds/`).
pub fn write_crd_files(dir: &std::path::Path) -> Result<(), CrdWriteError> {
    std::fs::create_dir_all(dir)?;
    for crd in crds() {
        std::fs::write(dir.join(crd_file_name(&crd)), crd_yaml(&crd)?)?;
    }
    Ok(())
}

/// Why the CRD files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CrdWriteError {
    /// Serialising a CRD failed.
    #[error("cannot serialise a CRD: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// Writing a file failed.
    #[error("cannot write a CRD file: {0}")]
    Io(#[from] std::io::Error),
}
