//! The cluster's TLS Secrets: its own CA (when the operator issues the certificates) and the
//! one the members mount, in the shapes mongod and cert-manager users expect.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::names::ClusterNames;
use super::secrets::{data, meta};
use crate::api::DeletionPolicy;
use crate::certs::Authority;

/// Keys of the members' TLS Secret. `tls.pem` is the key and the certificate in one file,
/// which is what mongod's `net.tls.certificateKeyFile` reads.
pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
pub const CA_CRT: &str = "ca.crt";
pub const TLS_PEM: &str = "tls.pem";
/// Keys of the CA Secret: the signing CA's key, and during a renewal the next CA and the
/// retired one (see [`crate::certs::Authority`]).
pub const CA_KEY: &str = "ca.key";
pub const NEXT_CA_CRT: &str = "next-ca.crt";
pub const NEXT_CA_KEY: &str = "next-ca.key";
pub const RETIRED_CA_CRT: &str = "retired-ca.crt";
/// Annotation of the CA Secret: the value of the cluster's renewal request
/// ([`crate::api::RENEW_CA_ANNOTATION`]) last acted on, so one request renews the CA once.
pub const HONOURED_RENEWAL_ANNOTATION: &str = "mongo.operator.rs/ca-renewal-honoured";
/// Annotation of the CA Secret: when the renewal under way began (RFC 3339).
pub const RENEWAL_BEGAN_ANNOTATION: &str = "mongo.operator.rs/ca-renewal-began";

/// `app.kubernetes.io/component` of the two Secrets.
pub const CA_COMPONENT: &str = "certificate-authority";
pub const MEMBER_CERTIFICATE_COMPONENT: &str = "member-certificate";

/// The cluster's CA: certificate and key, and the next or retired CA during a renewal. The
/// keys never leave this Secret; Pods get the CA bundle only, through the members' Secret.
/// `honoured`: the renewal request last acted on.
pub fn ca(
    names: &ClusterNames,
    policy: DeletionPolicy,
    owner: &OwnerReference,
    authority: &Authority,
    honoured: Option<&str>,
) -> Secret {
    let mut pairs = vec![(CA_CRT, authority.signing.cert_pem.as_str()), (CA_KEY, authority.signing.key_pem.as_str())];
    if let Some(next) = &authority.next {
        pairs.extend([(NEXT_CA_CRT, next.cert_pem.as_str()), (NEXT_CA_KEY, next.key_pem.as_str())]);
    }
    if let Some(retired) = &authority.retired {
        pairs.push((RETIRED_CA_CRT, retired.as_str()));
    }
    let mut metadata = meta(names, names.ca_secret(), CA_COMPONENT, policy, owner);
    let annotations = metadata.annotations.get_or_insert_default();
    if let Some(value) = honoured {
        annotations.insert(HONOURED_RENEWAL_ANNOTATION.into(), value.into());
    }
    if let Some(began) = authority.began.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()) {
        annotations.insert(RENEWAL_BEGAN_ANNOTATION.into(), began);
    }
    Secret { metadata, type_: Some("Opaque".into()), data: Some(data(&pairs)), ..Secret::default() }
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
