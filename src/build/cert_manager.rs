//! The cert-manager `Certificate` for the members' certificate, when `spec.tls.issuerRef`
//! names an issuer: the same names, key and purposes as the certificates the operator issues
//! itself, so that nothing else changes with the source.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::labels::labels;
use super::names::ClusterNames;
use super::tls_secrets::MEMBER_CERTIFICATE_COMPONENT;
use crate::api::IssuerRef;
use crate::certs::Lifetimes;

/// cert-manager's `Certificate`, version `cert-manager.io/v1`.
pub fn certificate_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate"), "certificates")
}

/// A duration as Go's `time.ParseDuration` reads it (cert-manager's `duration`, `renewBefore`).
fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}h{}m{}s", s / 3600, s % 3600 / 60, s % 60)
}

/// The `Certificate`: every name in `server_names` (IP addresses apart), signed by `issuer`,
/// renewed `renew_at` into its life, written to [`ClusterNames::issued_secret`] with the
/// cluster's labels (the operator watches that Secret by them).
pub fn certificate(
    names: &ClusterNames,
    issuer: &IssuerRef,
    server_names: &[String],
    lifetimes: Lifetimes,
    owner: &OwnerReference,
) -> DynamicObject {
    let (ips, dns): (Vec<&String>, Vec<&String>) =
        server_names.iter().partition(|n| n.parse::<std::net::IpAddr>().is_ok());
    let renew_before = lifetimes.server.mul_f64((1.0 - lifetimes.renew_at).clamp(0.0, 1.0));
    let labels = labels(&names.cluster, MEMBER_CERTIFICATE_COMPONENT);
    let mut object = DynamicObject::new(&names.certificate(), &certificate_resource()).within(&names.namespace);
    object.metadata =
        ObjectMeta { labels: Some(labels.clone()), owner_references: Some(vec![owner.clone()]), ..object.metadata };
    object.data = json!({
        "spec": {
            "secretName": names.issued_secret(),
            "secretTemplate": { "labels": labels },
            "issuerRef": { "name": issuer.name, "kind": issuer.kind, "group": issuer.group },
            "dnsNames": dns,
            "ipAddresses": ips,
            "duration": go_duration(lifetimes.server),
            "renewBefore": go_duration(renew_before),
            "subject": {
                "organizations": ["mongo-operator"],
                "organizationalUnits": [format!("{}/{}", names.namespace, names.cluster)],
            },
            // A new key with each certificate, as the operator's own issuing does.
            "privateKey": { "algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always" },
            // A member is a client of the others too: mongod refuses a peer certificate
            // without the purpose it is used for.
            "usages": ["digital signature", "key encipherment", "server auth", "client auth"],
        }
    });
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_asks_for_what_the_operator_would_issue_itself() {
        let names = ClusterNames::new("ledger", "bank");
        let owner = OwnerReference { name: "ledger".into(), ..OwnerReference::default() };
        let issuer =
            IssuerRef { name: "corp-ca".into(), kind: "ClusterIssuer".into(), group: "cert-manager.io".into() };
        let wanted = crate::certs::server_names(&names, "cluster.local", &[]);
        let lifetimes = Lifetimes::new(Duration::from_secs(90 * 86_400), 0.66);
        let c = certificate(&names, &issuer, &wanted, lifetimes, &owner);
        assert_eq!(c.metadata.name.as_deref(), Some("ledger-members"));
        assert_eq!(c.types.as_ref().map(|t| t.api_version.as_str()), Some("cert-manager.io/v1"));
        let spec = &c.data["spec"];
        assert_eq!(spec["secretName"], "ledger-tls-issued");
        assert_eq!(spec["ipAddresses"], json!(["127.0.0.1"]));
        assert!(spec["dnsNames"].as_array().unwrap().contains(&json!("*.ledger-members.bank.svc.cluster.local")));
        assert!(spec["dnsNames"].as_array().unwrap().contains(&json!("localhost")));
        assert_eq!(spec["duration"], "2160h0m0s");
        // Renewed after 66 % of 90 days: 30.6 days before expiry.
        assert_eq!(spec["renewBefore"], "734h24m0s");
        assert_eq!(spec["issuerRef"]["kind"], "ClusterIssuer");
        assert_eq!(spec["secretTemplate"]["labels"]["app.kubernetes.io/instance"], "ledger");
    }
}
