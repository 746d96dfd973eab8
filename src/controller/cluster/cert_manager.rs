//! `spec.tls.issuerRef`: the cluster's cert-manager `Certificate`, written with server-side
//! apply, and what stands between it and a usable Secret. The Secret cert-manager writes
//! carries the cluster's labels, so the controller's Secret watch brings the operator back
//! when it is issued or renewed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Client};

use super::validate::Problem;
use crate::api::IssuerRef;
use crate::build::cert_manager::{certificate, certificate_resource};
use crate::build::labels::FIELD_MANAGER;
use crate::build::names::ClusterNames;
use crate::certs::Lifetimes;
use crate::controller::error::{Error, KubeContext};

/// The problem's reason when cert-manager's API is not served (the reconcile looks again now
/// and then).
pub const NOT_INSTALLED: &str = "CertManagerNotInstalled";

/// Applies the cluster's `Certificate`. A problem when cert-manager's API is not served.
pub async fn ensure(
    client: &Client,
    names: &ClusterNames,
    issuer: &IssuerRef,
    server_names: &[String],
    lifetimes: Lifetimes,
    owner: &OwnerReference,
) -> Result<Result<DynamicObject, Problem>, Error> {
    let resource = certificate_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &names.namespace, &resource);
    let desired = certificate(names, issuer, server_names, lifetimes, owner);
    let applied =
        api.patch(&names.certificate(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&desired)).await;
    match applied {
        Ok(applied) => Ok(Ok(applied)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Err(Problem {
            reason: NOT_INSTALLED,
            message: format!(
                "spec.tls.issuerRef needs cert-manager, and its Certificate API ({}) is not served here: install \
                 cert-manager (the operator looks again every minute), or use spec.tls.certificateSecretRef or the \
                 operator's own certificates",
                resource.api_version
            ),
            blocks_all: false,
            secret: None,
        })),
        Err(e) => Err(e).doing(|| format!("applying Certificate {}", names.certificate())),
    }
}

/// The problem while cert-manager has not written the Secret yet: what its `Certificate`
/// says about it (its Ready condition).
pub fn pending(names: &ClusterNames, applied: &DynamicObject) -> Problem {
    let conditions = applied.data.pointer("/status/conditions").and_then(|c| c.as_array()).cloned().unwrap_or_default();
    let ready = conditions.iter().find(|c| c["type"] == "Ready");
    let said = ready
        .and_then(|c| Some(format!("{}: {}", c["reason"].as_str()?, c["message"].as_str().unwrap_or_default())))
        .unwrap_or_else(|| "cert-manager has not reported on it yet".into());
    Problem {
        reason: "TlsCertificatePending",
        message: format!(
            "waiting for cert-manager to issue Certificate {} into Secret {} ({said})",
            names.certificate(),
            names.issued_secret()
        ),
        blocks_all: false,
        secret: Some(names.issued_secret()),
    }
}
