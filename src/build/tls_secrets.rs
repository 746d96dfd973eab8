//! The cluster's TLS Secrets: its own CA (when the operator issues the certificates) and the
//! one the members mount, in the shapes mongod and cert-manager users expect.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::names::ClusterNames;
use super::secrets::{data, meta};
use crate::api::DeletionPolicy;

/// Keys of the members' TLS Secret. `tls.pem` is the key and the certificate in one file,
/// which is what mongod's `net.tls.certificateKeyFile` reads.
pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
pub const CA_CRT: &str = "ca.crt";
pub const TLS_PEM: &str = "tls.pem";
/// Keys of the CA Secret.
pub const CA_KEY: &str = "ca.key";

/// `app.kubernetes.io/component` of the two Secrets.
pub const CA_COMPONENT: &str = "certificate-authority";
pub const MEMBER_CERTIFICATE_COMPONENT: &str = "member-certificate";

/// The cluster's CA: certificate and key. It never leaves this Secret; Pods get `ca.crt` only,
/// through the members' Secret.
pub fn ca(
    names: &ClusterNames,
    policy: DeletionPolicy,
    owner: &OwnerReference,
    cert_pem: &str,
    key_pem: &str,
) -> Secret {
    Secret {
        metadata: meta(names, names.ca_secret(), CA_COMPONENT, policy, owner),
        type_: Some("Opaque".into()),
        data: Some(data(&[(CA_CRT, cert_pem), (CA_KEY, key_pem)])),
        ..Secret::default()
    }
}

/// The Secret the members mount: their certificate and key, both together, and the CA bundle
/// they and their clients trust.
pub fn members(
    names: &ClusterNames,
    policy: DeletionPolicy,
    owner: &OwnerReference,
    cert_pem: &str,
    key_pem: &str,
    ca_bundle: &str,
) -> Secret {
    let combined = format!("{}\n{}", key_pem.trim_end(), cert_pem);
    Secret {
        metadata: meta(names, names.tls_secret(), MEMBER_CERTIFICATE_COMPONENT, policy, owner),
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data(&[(TLS_CRT, cert_pem), (TLS_KEY, key_pem), (CA_CRT, ca_bundle), (TLS_PEM, &combined)])),
        ..Secret::default()
    }
}
