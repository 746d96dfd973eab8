//! The certificates stage: makes sure the members' TLS Secret holds a certificate that is valid
//! for every member and not due for renewal, issuing it from the cluster's own CA, or taking it
//! from the user's Secret (`spec.tls.certificateSecretRef`) after checking it.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Api, Client, ResourceExt};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::cert_manager;
use super::validate::Problem;
use super::world::secret_text;
use crate::api::{MongoCluster, MongoClusterSpec, RENEW_CA_ANNOTATION, span};
use crate::build::names::ClusterNames;
use crate::build::tls_secrets::{
    self, CA_CRT, CA_KEY, HONOURED_RENEWAL_ANNOTATION, NEXT_CA_CRT, NEXT_CA_KEY, RENEWAL_BEGAN_ANNOTATION,
    RETIRED_CA_CRT, TLS_CRT, TLS_KEY,
};
use crate::certs::{self, Authority, CertInfo, Change, Issued, Lifetimes, Phase};
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
    /// When the operator renews the members' certificate or its CA, whichever comes first
    /// (None for the user's own).
    pub renew_at: Option<OffsetDateTime>,
    /// The step of a CA renewal under way.
    pub ca_step: Option<&'static str>,
    /// The CA renewal's next move is waiting for the members only (not for the clients' grace
    /// period, which `renew_at` covers): look again soon.
    pub ca_moves_soon: bool,
    /// The user's certificate is past its renewal point and was not renewed.
    pub expiring: Option<Problem>,
}

/// What the stage found.
pub enum Certificates {
    Ready(Box<ClusterTls>),
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

/// Brings the members' TLS Secret (and the cluster's CA) up to date and returns what it holds.
/// `external` are the members' names outside Kubernetes it must cover as well.
pub async fn ensure(
    client: &Client,
    names: &ClusterNames,
    cluster: &MongoCluster,
    owner: &OwnerReference,
    domain: &str,
    external: &[String],
    events: &Events<'_>,
) -> Result<Certificates, Error> {
    let spec = &cluster.spec;
    let api: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
    let now = OffsetDateTime::now_utc();
    let lifetimes = lifetimes(spec);
    let wanted = certs::server_names(names, domain, external);
    let member = names.member_host(0, domain);
    let member = member.rsplit_once(':').map_or(member.as_str(), |(h, _)| h).to_string();
    let current = api.get_opt(&names.tls_secret()).await.doing(|| format!("reading Secret {}", names.tls_secret()))?;
    let mut authority = None;
    let mut expiring = None;
    // The Secret the members' certificate comes from, when it is not the operator's own.
    let given = match (&spec.tls.certificate_secret_ref, &spec.tls.issuer_ref) {
        (Some(reference), _) => Some((reference.name.clone(), None)),
        (None, Some(issuer)) => match cert_manager::ensure(client, names, issuer, &wanted, lifetimes, owner).await? {
            Ok(applied) => Some((names.issued_secret(), Some(applied))),
            Err(problem) => return Ok(Certificates::Unusable(problem)),
        },
        (None, None) => None,
    };
    let (cert_pem, key_pem, ca_bundle) = match given {
        Some((name, issued_by)) => {
            let secret = api.get_opt(&name).await.doing(|| format!("reading Secret {name}"))?;
            if let (None, Some(applied)) = (&secret, &issued_by) {
                return Ok(Certificates::Unusable(cert_manager::pending(names, applied)));
            }
            match users_certificate(secret.as_ref(), &name, &member, external, now) {
                Ok(found) => {
                    expiring = not_renewed(&found.0, &name, now, lifetimes.renew_at);
                    found
                }
                Err(message) => return Ok(Certificates::Unusable(unusable(message, &name))),
            }
        }
        None => {
            let ca = CaContext { api: &api, names, cluster, owner, now, lifetimes, members: current.as_ref() };
            let ca = ensure_ca(&ca, events).await?;
            let bundle = ca.bundle();
            let issued = match reason_to_issue(current.as_ref(), &ca, &wanted, &member, now, lifetimes.renew_at) {
                None => {
                    let current = current.as_ref();
                    let text = |k: &str| current.and_then(|s| secret_text(s, k)).unwrap_or_default();
                    (text(TLS_CRT), text(TLS_KEY), bundle)
                }
                Some(why) => {
                    let server = certs::issue_server(&ca.signing, &unit(names), &wanted, now, lifetimes.server)
                        .map_err(|e| Error::Certificate(e.to_string()))?;
                    let reason = if current.is_some() { "CertificateRenewed" } else { "CertificateIssued" };
                    events
                        .normal(
                            reason,
                            "Issue",
                            format!("issued the members' certificate in Secret {} ({why})", names.tls_secret()),
                        )
                        .await;
                    (server.cert_pem, server.key_pem, bundle)
                }
            };
            authority = Some(ca);
            issued
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
    let grace = grace(lifetimes);
    let renew_at = authority.as_ref().map(|authority| {
        let server_due = certs::renewal_time(&server, lifetimes.renew_at);
        let signing = certs::inspect(&authority.signing.cert_pem).ok();
        let due = signing.map_or(server_due, |ca| server_due.min(certs::renewal_time(&ca, lifetimes.renew_at)));
        match authority.began.filter(|_| authority.phase() == Phase::Distributing) {
            Some(began) => due.min(began + grace),
            None => due,
        }
    });
    let ca_step = authority.as_ref().and_then(Authority::step);
    let ca_moves_soon = authority.as_ref().is_some_and(|a| match a.phase() {
        Phase::Steady => false,
        Phase::Distributing => a.began.is_none_or(|b| now >= b + grace),
        Phase::Switched => true,
    });
    Ok(Certificates::Ready(Box::new(ClusterTls {
        ca_bundle,
        ca_file,
        server,
        ca,
        fingerprint,
        renew_at,
        ca_step,
        ca_moves_soon,
        expiring,
    })))
}

/// The subject's organisational unit of the cluster's certificates: `namespace/name`.
fn unit(names: &ClusterNames) -> String {
    format!("{}/{}", names.namespace, names.cluster)
}

fn unusable(message: String, secret: &str) -> Problem {
    Problem { reason: "TlsCertificateUnusable", message, blocks_all: false, secret: Some(secret.to_string()) }
}

/// A certificate from the user's Secret that is past the point where it should have been
/// renewed (cert-manager renews at two thirds of a certificate's life by default).
fn not_renewed(cert_pem: &str, secret: &str, now: OffsetDateTime, renew_at: f64) -> Option<Problem> {
    let info = certs::inspect(cert_pem).ok()?;
    certs::renewal_due(&info, now, renew_at).then(|| Problem {
        reason: "TlsCertificateExpiring",
        message: format!(
            "the members' certificate in Secret {secret} expires at {} and has not been renewed; renew it (or fix \
             what renews it) before then, or clients and members will refuse it",
            info.not_after
        ),
        blocks_all: false,
        secret: Some(secret.to_string()),
    })
}

/// What the CA stage reads.
struct CaContext<'a> {
    api: &'a Api<Secret>,
    names: &'a ClusterNames,
    cluster: &'a MongoCluster,
    owner: &'a OwnerReference,
    now: OffsetDateTime,
    lifetimes: Lifetimes,
    /// The members' Secret as it is.
    members: Option<&'a Secret>,
}

/// The cluster's CA: created when there is none (or the one there cannot be read, or has
/// expired, when there is nothing left to keep trusting), renewed through a bundle when due or
/// asked for (see [`Authority`]), one step per reconcile once the members caught up.
async fn ensure_ca(c: &CaContext<'_>, events: &Events<'_>) -> Result<Authority, Error> {
    let (names, now) = (c.names, c.now);
    let existing = c.api.get_opt(&names.ca_secret()).await.doing(|| format!("reading Secret {}", names.ca_secret()))?;
    let requested = c.cluster.annotations().get(RENEW_CA_ANNOTATION).map(String::as_str);
    let honoured = existing.as_ref().and_then(|s| s.annotations().get(HONOURED_RENEWAL_ANNOTATION)).map(String::as_str);
    let new_ca = || certs::issue_ca(&unit(names), now, c.lifetimes.ca);
    let write = |authority: &Authority, honoured: Option<&str>| {
        tls_secrets::ca(names, c.cluster.spec.deletion_policy, c.owner, authority, honoured)
    };
    let Some(authority) = existing.as_ref().and_then(|s| read_authority(s, now)) else {
        let authority = Authority::new(new_ca().map_err(|e| Error::Certificate(e.to_string()))?);
        apply(c.api, &write(&authority, requested)).await?;
        let note = format!("created the cluster's CA in Secret {}", names.ca_secret());
        events.normal("CertificateAuthorityCreated", "Issue", note).await;
        return Ok(authority);
    };
    let signing = certs::inspect(&authority.signing.cert_pem).map_err(|e| Error::Certificate(e.to_string()))?;
    let asked = requested.is_some() && requested != honoured;
    let due = certs::renewal_due(&signing, now, c.lifetimes.renew_at) || asked;
    let settled = c.members.is_some_and(|m| members_caught_up(m, &authority, c.cluster));
    let change = authority
        .change((settled, due), now, grace(c.lifetimes), new_ca)
        .map_err(|e| Error::Certificate(e.to_string()))?;
    let Some(change) = change else { return Ok(authority) };
    let (reason, note) = match &change {
        Change::Begin(_) => {
            let why = if asked {
                format!("asked for by annotation {RENEW_CA_ANNOTATION}")
            } else {
                format!("the CA expires {}", signing.not_after.date())
            };
            ("CertificateAuthorityRenewing", format!("made a new CA ({why}); members and clients now trust both"))
        }
        Change::Switch => {
            ("CertificateAuthoritySwitched", "the members' certificate is now signed by the new CA".to_string())
        }
        Change::Retire => ("CertificateAuthorityRenewed", "the old CA is trusted no more".to_string()),
    };
    let honoured = if matches!(change, Change::Begin(_)) { requested } else { honoured };
    let authority = authority.after(change, now);
    apply(c.api, &write(&authority, honoured)).await?;
    events.normal(reason, "Issue", note).await;
    Ok(authority)
}

/// How long a CA renewal trusts both CAs before the new one signs: clients that read their CA
/// file only when they start get as long to be restarted as a members' certificate lives
/// before its renewal (60 days by default).
fn grace(lifetimes: Lifetimes) -> time::Duration {
    time::Duration::try_from(lifetimes.server).unwrap_or(time::Duration::ZERO) * lifetimes.renew_at
}

/// The CA the Secret holds, unless it cannot be read or its signing CA has expired.
fn read_authority(secret: &Secret, now: OffsetDateTime) -> Option<Authority> {
    let pair =
        |crt: &str, key: &str| Some(Issued { cert_pem: secret_text(secret, crt)?, key_pem: secret_text(secret, key)? });
    let signing = pair(CA_CRT, CA_KEY)?;
    let info = certs::inspect(&signing.cert_pem).ok()?;
    (info.is_ca && now < info.not_after).then(|| Authority {
        signing,
        next: pair(NEXT_CA_CRT, NEXT_CA_KEY),
        retired: secret_text(secret, RETIRED_CA_CRT),
        began: secret
            .annotations()
            .get(RENEWAL_BEGAN_ANNOTATION)
            .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()),
    })
}

/// Whether every member was last seen presenting the certificate of the members' Secret, and
/// that Secret trusts exactly this CA's bundle: then every member has read that bundle too
/// (the kubelet replaces a mounted Secret's files all at once).
fn members_caught_up(members: &Secret, authority: &Authority, cluster: &MongoCluster) -> bool {
    let served = cluster.reported_tls().and_then(|t| t.served_certificate.as_deref());
    let current = secret_text(members, TLS_CRT).and_then(|c| crate::mongo::handshake::fingerprint(&c));
    secret_text(members, CA_CRT).as_deref() == Some(authority.bundle().as_str())
        && served.is_some()
        && served == current.as_deref()
}

/// Why the members' certificate must be issued again, or None when the one there is good.
fn reason_to_issue(
    current: Option<&Secret>,
    ca: &Authority,
    wanted: &[String],
    member: &str,
    now: OffsetDateTime,
    renew_at: f64,
) -> Option<String> {
    let Some(secret) = current else { return Some("there was none".into()) };
    let (Some(cert), Some(_key)) = (secret_text(secret, TLS_CRT), secret_text(secret, TLS_KEY)) else {
        return Some("the Secret lacked its certificate or key".into());
    };
    if secret_text(secret, CA_CRT).as_deref() != Some(ca.bundle().as_str()) {
        return Some("the CAs to trust changed".into());
    }
    let Ok(info) = certs::inspect(&cert) else { return Some("the certificate there could not be read".into()) };
    if let Err(e) = certs::verify_chain(&ca.signing.cert_pem, &cert, member, now) {
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
    external: &[String],
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
    let missing = certs::uncovered(&info.sans, external);
    if !missing.is_empty() {
        return Err(format!(
            "the certificate in Secret {name} is not valid for {}, the members' external names \
             (expose.perMember.hostPattern), which clients outside Kubernetes verify; add it to its names",
            missing.join(", ")
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
        certs::server_names(&ClusterNames::new("ledger", "bank"), "cluster.local", &[])
    }

    #[test]
    fn a_users_certificate_is_refused_with_the_reason_when_it_cannot_serve_the_members() {
        let (now, day, member, wanted) = (OffsetDateTime::now_utc(), DAY, MEMBER, wanted());
        let ca = certs::issue_ca("bank/ledger", now, day * 10).unwrap();
        let good = certs::issue_server(&ca, "bank/ledger", &wanted, now, day).unwrap();
        let ok = stored(&good, &ca);
        assert!(users_certificate(Some(&ok), "mine", member, &[], now).is_ok());

        let other = certs::issue_ca("bank/other", now, day).unwrap();
        let wrong_ca = stored(&good, &other);
        let e = users_certificate(Some(&wrong_ca), "mine", member, &[], now).unwrap_err();
        assert!(e.contains("not usable for ledger-0") && e.contains("UnknownIssuer"), "{e}");

        let expired = certs::issue_server(&ca, "bank/ledger", &wanted, now - time::Duration::days(3), day).unwrap();
        let old = stored(&expired, &ca);
        let e = users_certificate(Some(&old), "mine", member, &[], now).unwrap_err();
        assert!(e.contains("certificate expired"), "{e}");

        let narrow = certs::issue_server(&ca, "bank/ledger", &["ledger.bank.svc".to_string()], now, day).unwrap();
        let names_wrong = stored(&narrow, &ca);
        let e = users_certificate(Some(&names_wrong), "mine", member, &[], now).unwrap_err();
        assert!(e.contains("not valid for name"), "{e}");

        let no_localhost =
            certs::issue_server(&ca, "bank/ledger", &["*.ledger-members.bank.svc.cluster.local".to_string()], now, day)
                .unwrap();
        let s = stored(&no_localhost, &ca);
        let e = users_certificate(Some(&s), "mine", member, &[], now).unwrap_err();
        assert!(e.contains("localhost"), "{e}");
        assert!(users_certificate(None, "mine", member, &[], now).unwrap_err().contains("does not exist"));
    }

    #[test]
    fn the_members_certificate_is_issued_again_only_when_it_must_be() {
        let (now, day, member, wanted) = (OffsetDateTime::now_utc(), DAY, MEMBER, wanted());
        let ca = certs::issue_ca("bank/ledger", now, day * 900).unwrap();
        let fresh = certs::issue_server(&ca, "bank/ledger", &wanted, now, day * 90).unwrap();
        let stored = stored(&fresh, &ca);
        let authority = Authority::new(ca.clone());
        assert_eq!(reason_to_issue(Some(&stored), &authority, &wanted, member, now, 0.66), None);
        assert!(reason_to_issue(None, &authority, &wanted, member, now, 0.66).is_some());
        let later = now + time::Duration::days(61);
        assert!(reason_to_issue(Some(&stored), &authority, &wanted, member, later, 0.66).unwrap().contains("expires"));
        // Each step of a CA renewal changes the CAs to trust, so the certificate is issued
        // again with each, and the members' presenting it shows they read the new bundle.
        let new_ca = certs::issue_ca("bank/ledger", now, day * 900).unwrap();
        let distributing = authority.clone().after(Change::Begin(new_ca.clone()), now);
        let why = reason_to_issue(Some(&stored), &distributing, &wanted, member, now, 0.66).unwrap();
        assert!(why.contains("CAs to trust changed"), "{why}");
        let replaced = Authority::new(new_ca);
        assert!(reason_to_issue(Some(&stored), &replaced, &wanted, member, now, 0.66).is_some());
    }
}
