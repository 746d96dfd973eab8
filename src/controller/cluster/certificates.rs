//! The certificates stage: makes sure the members' TLS Secret holds a certificate that is valid
//! for every member and not due for renewal, issuing it from the cluster's own CA, or taking it
//! from the user's Secret (`spec.tls.certificateSecretRef`) after checking it.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Api, Client};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::validate::Problem;
use super::world::secret_text;
use crate::api::{MongoClusterSpec, span};
use crate::build::names::ClusterNames;
use crate::build::tls_secrets::{self, CA_CRT, CA_KEY, TLS_CRT, TLS_KEY};
use crate::certs::{self, CertInfo, Issued, Lifetimes};
use crate::controller::Events;
use crate::controller::error::{Error, KubeContext};
use crate::controller::ssa::apply;

/// The cluster's certificates as the members will present and trust them.
#[derive(Clone, Debug)]
pub struct ClusterTls {
    /// The CAs members and clients trust (PEM).
    pub ca_bundle: String,
    /// The same, in a file of the operator's, for its own connections to the members.
    pub ca_file: PathBuf,
    pub server: CertInfo,
    /// The first CA of the bundle.
    pub ca: Option<CertInfo>,
    /// The fingerprint of the members' certificate, as [`crate::mongo::handshake`] reads it.
    pub fingerprint: Option<String>,
    /// When the operator renews the members' certificate (None for the user's own).
    pub renew_at: Option<OffsetDateTime>,
}

/// What the stage found.
pub enum Certificates {
    Ready(ClusterTls),
    /// The certificate cannot be used; nothing about TLS changes until it is fixed.
    Unusable(Problem),
}

/// The operator's lifetimes for `spec.tls`.
fn lifetimes(spec: &MongoClusterSpec) -> Lifetimes {
    let server = span(&spec.tls.certificate_lifetime)
        .and_then(|d| u64::try_from(d.as_secs()).ok())
        .filter(|s| *s > 0)
        .map_or(Duration::from_secs(90 * 86_400), Duration::from_secs);
    Lifetimes::new(server, f64::from(spec.tls.renew_at_percent) / 100.0)
}

/// Brings the members' TLS Secret up to date and returns what it holds.
pub async fn ensure(
    client: &Client,
    names: &ClusterNames,
    spec: &MongoClusterSpec,
    owner: &OwnerReference,
    domain: &str,
    events: &Events<'_>,
) -> Result<Certificates, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
    let now = OffsetDateTime::now_utc();
    let lifetimes = lifetimes(spec);
    let wanted = certs::server_names(names, domain);
    let member = names.member_host(0, domain);
    let member = member.rsplit_once(':').map_or(member.as_str(), |(h, _)| h).to_string();
    let current = api.get_opt(&names.tls_secret()).await.doing(|| format!("reading Secret {}", names.tls_secret()))?;
    let (cert_pem, key_pem, ca_bundle) = match &spec.tls.certificate_secret_ref {
        Some(reference) => {
            let secret = api.get_opt(&reference.name).await.doing(|| format!("reading Secret {}", reference.name))?;
            match users_certificate(secret.as_ref(), &reference.name, &member, now) {
                Ok(found) => found,
                Err(message) => return Ok(Certificates::Unusable(unusable(message, &reference.name))),
            }
        }
        None => {
            let ca = ensure_ca(&api, names, spec, owner, (now, lifetimes.ca), events).await?;
            match reason_to_issue(current.as_ref(), &ca, &wanted, &member, now, lifetimes.renew_at) {
                None => {
                    let current = current.as_ref();
                    let text = |k: &str| current.and_then(|s| secret_text(s, k)).unwrap_or_default();
                    (text(TLS_CRT), text(TLS_KEY), ca.cert_pem.clone())
                }
                Some(why) => {
                    let server = certs::issue_server(&ca, &unit(names), &wanted, now, lifetimes.server)
                        .map_err(|e| Error::Certificate(e.to_string()))?;
                    let reason = if current.is_some() { "CertificateRenewed" } else { "CertificateIssued" };
                    events
                        .normal(
                            reason,
                            "Issue",
                            format!("issued the members' certificate in Secret {} ({why})", names.tls_secret()),
                        )
                        .await;
                    (server.cert_pem, server.key_pem, ca.cert_pem.clone())
                }
            }
        }
    };
    let desired = tls_secrets::members(names, spec.deletion_policy, owner, &cert_pem, &key_pem, &ca_bundle);
    // Looked at in every reconcile: written only when it would change.
    if !current.as_ref().is_some_and(|c| crate::build::secrets::holds(c, &desired)) {
        apply(&api, &desired).await?;
    }
    let server = certs::inspect(&cert_pem).map_err(|e| Error::Certificate(e.to_string()))?;
    let ca = certs::inspect(&ca_bundle).ok();
    let ca_file = ca_file(&ca_bundle).map_err(|e| Error::Certificate(format!("cannot write the CA file: {e}")))?;
    let fingerprint = crate::mongo::handshake::fingerprint(&cert_pem);
    let renew_at = spec.tls.certificate_secret_ref.is_none().then(|| certs::renewal_time(&server, lifetimes.renew_at));
    Ok(Certificates::Ready(ClusterTls { ca_bundle, ca_file, server, ca, fingerprint, renew_at }))
}

/// The subject's organisational unit of the cluster's certificates: `namespace/name`.
fn unit(names: &ClusterNames) -> String {
    format!("{}/{}", names.namespace, names.cluster)
}

fn unusable(message: String, secret: &str) -> Problem {
    Problem { reason: "TlsCertificateUnusable", message, blocks_all: false, secret: Some(secret.to_string()) }
}

/// The cluster's CA, created when there is none (or the one there cannot be read).
async fn ensure_ca(
    api: &Api<Secret>,
    names: &ClusterNames,
    spec: &MongoClusterSpec,
    owner: &OwnerReference,
    (now, lifetime): (OffsetDateTime, Duration),
    events: &Events<'_>,
) -> Result<Issued, Error> {
    let existing = api.get_opt(&names.ca_secret()).await.doing(|| format!("reading Secret {}", names.ca_secret()))?;
    let found = existing.as_ref().and_then(|s| {
        let (cert, key) = (secret_text(s, CA_CRT)?, secret_text(s, CA_KEY)?);
        let info = certs::inspect(&cert).ok()?;
        (info.is_ca && now < info.not_after).then_some(Issued { cert_pem: cert, key_pem: key })
    });
    if let Some(ca) = found {
        return Ok(ca);
    }
    let ca = certs::issue_ca(&unit(names), now, lifetime).map_err(|e| Error::Certificate(e.to_string()))?;
    apply(api, &tls_secrets::ca(names, spec.deletion_policy, owner, &ca.cert_pem, &ca.key_pem)).await?;
    events
        .normal(
            "CertificateAuthorityCreated",
            "Issue",
            format!("created the cluster's CA in Secret {}", names.ca_secret()),
        )
        .await;
    Ok(ca)
}

/// Why the members' certificate must be issued again, or None when the one there is good.
fn reason_to_issue(
    current: Option<&Secret>,
    ca: &Issued,
    wanted: &[String],
    member: &str,
    now: OffsetDateTime,
    renew_at: f64,
) -> Option<String> {
    let Some(secret) = current else { return Some("there was none".into()) };
    let (Some(cert), Some(_key)) = (secret_text(secret, TLS_CRT), secret_text(secret, TLS_KEY)) else {
        return Some("the Secret lacked its certificate or key".into());
    };
    if secret_text(secret, CA_CRT).as_deref() != Some(ca.cert_pem.as_str()) {
        return Some("the CA changed".into());
    }
    let Ok(info) = certs::inspect(&cert) else { return Some("the certificate there could not be read".into()) };
    if let Err(e) = certs::verify_chain(&ca.cert_pem, &cert, member, now) {
        return Some(format!("the certificate there does not verify: {e}"));
    }
    let missing = certs::uncovered(&info.sans, wanted);
    if !missing.is_empty() {
        return Some(format!("the certificate there lacks {}", missing.join(", ")));
    }
    certs::renewal_due(&info, now, renew_at).then(|| format!("the certificate there expires {}", info.not_after.date()))
}

/// The user's certificate, key and CA, once they are shown to be usable by the members.
fn users_certificate(
    secret: Option<&Secret>,
    name: &str,
    member: &str,
    now: OffsetDateTime,
) -> Result<(String, String, String), String> {
    let secret = secret.ok_or_else(|| format!("Secret {name} (spec.tls.certificateSecretRef) does not exist"))?;
    let key = |k: &str| secret_text(secret, k).ok_or_else(|| format!("Secret {name} has no {k}"));
    let (cert, private, ca) = (key(TLS_CRT)?, key(TLS_KEY)?, key(CA_CRT)?);
    certs::verify_chain(&ca, &cert, member, now)
        .map_err(|e| format!("the certificate in Secret {name} is not usable for {member}: {e}"))?;
    let info = certs::inspect(&cert).map_err(|e| format!("Secret {name}: {e}"))?;
    let probe = ["localhost".to_string()];
    let missing = certs::uncovered(&info.sans, &probe);
    if !missing.is_empty() {
        return Err(format!(
            "the certificate in Secret {name} is not valid for localhost, which the members' probes dial; add it to its \
             names"
        ));
    }
    Ok((cert, private, ca))
}

/// The CA file of the members' Secret as it is, changing nothing (for a paused or blocked
/// cluster, whose members are still looked at); None when there is none.
pub async fn existing_ca_file(client: &Client, names: &ClusterNames) -> Result<Option<PathBuf>, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
    let secret = api.get_opt(&names.tls_secret()).await.doing(|| format!("reading Secret {}", names.tls_secret()))?;
    match secret.as_ref().and_then(|s| secret_text(s, CA_CRT)) {
        Some(bundle) => {
            ca_file(&bundle).map(Some).map_err(|e| Error::Certificate(format!("cannot write the CA file: {e}")))
        }
        None => Ok(None),
    }
}

/// Writes `bundle` to a file named after its content (once) and returns its path: the driver
/// reads its CAs from a file.
fn ca_file(bundle: &str) -> std::io::Result<PathBuf> {
    let digest: String = Sha256::digest(bundle.as_bytes()).iter().take(12).map(|b| format!("{b:02x}")).collect();
    let dir = std::env::temp_dir().join("mongo-operator-ca");
    let path = dir.join(format!("{digest}.pem"));
    if !path.exists() {
        std::fs::create_dir_all(&dir)?;
        let partial = dir.join(format!("{digest}.pem.partial"));
        std::fs::write(&partial, bundle)?;
        std::fs::rename(&partial, &path)?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    const DAY: Duration = Duration::from_secs(86_400);
    const MEMBER: &str = "ledger-0.ledger-members.bank.svc.cluster.local";

    /// A Secret holding `cert` and its key, with `ca` as its `ca.crt`.
    fn stored(cert: &Issued, ca: &Issued) -> Secret {
        let pairs = [(TLS_CRT, &cert.cert_pem), (TLS_KEY, &cert.key_pem), (CA_CRT, &ca.cert_pem)];
        Secret {
            data: Some(pairs.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect()),
            ..Secret::default()
        }
    }

    /// The names the members' certificate of cluster `bank/ledger` must cover.
    fn wanted() -> Vec<String> {
        certs::server_names(&ClusterNames::new("ledger", "bank"), "cluster.local")
    }

    #[test]
    fn a_users_certificate_is_refused_with_the_reason_when_it_cannot_serve_the_members() {
        let (now, day, member, wanted) = (OffsetDateTime::now_utc(), DAY, MEMBER, wanted());
        let ca = certs::issue_ca("bank/ledger", now, day * 10).unwrap();
        let good = certs::issue_server(&ca, "bank/ledger", &wanted, now, day).unwrap();
        let ok = stored(&good, &ca);
        assert!(users_certificate(Some(&ok), "mine", member, now).is_ok());

        let other = certs::issue_ca("bank/other", now, day).unwrap();
        let wrong_ca = stored(&good, &other);
        let e = users_certificate(Some(&wrong_ca), "mine", member, now).unwrap_err();
        assert!(e.contains("not usable for ledger-0") && e.contains("UnknownIssuer"), "{e}");

        let expired = certs::issue_server(&ca, "bank/ledger", &wanted, now - time::Duration::days(3), day).unwrap();
        let old = stored(&expired, &ca);
        let e = users_certificate(Some(&old), "mine", member, now).unwrap_err();
        assert!(e.contains("certificate expired"), "{e}");

        let narrow = certs::issue_server(&ca, "bank/ledger", &["ledger.bank.svc".to_string()], now, day).unwrap();
        let names_wrong = stored(&narrow, &ca);
        let e = users_certificate(Some(&names_wrong), "mine", member, now).unwrap_err();
        assert!(e.contains("not valid for name"), "{e}");

        let no_localhost =
            certs::issue_server(&ca, "bank/ledger", &["*.ledger-members.bank.svc.cluster.local".to_string()], now, day)
                .unwrap();
        let s = stored(&no_localhost, &ca);
        let e = users_certificate(Some(&s), "mine", member, now).unwrap_err();
        assert!(e.contains("localhost"), "{e}");
        assert!(users_certificate(None, "mine", member, now).unwrap_err().contains("does not exist"));
    }

    #[test]
    fn the_members_certificate_is_issued_again_only_when_it_must_be() {
        let (now, day, member, wanted) = (OffsetDateTime::now_utc(), DAY, MEMBER, wanted());
        let ca = certs::issue_ca("bank/ledger", now, day * 900).unwrap();
        let fresh = certs::issue_server(&ca, "bank/ledger", &wanted, now, day * 90).unwrap();
        let stored = stored(&fresh, &ca);
        assert_eq!(reason_to_issue(Some(&stored), &ca, &wanted, member, now, 0.66), None);
        assert!(reason_to_issue(None, &ca, &wanted, member, now, 0.66).is_some());
        let later = now + time::Duration::days(61);
        assert!(reason_to_issue(Some(&stored), &ca, &wanted, member, later, 0.66).unwrap().contains("expires"));
        let new_ca = certs::issue_ca("bank/ledger", now, day * 900).unwrap();
        assert!(reason_to_issue(Some(&stored), &new_ca, &wanted, member, now, 0.66).unwrap().contains("CA changed"));
    }
}
