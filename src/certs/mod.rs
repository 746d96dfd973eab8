//! The cluster's TLS certificates: which names a member's certificate must cover, issuing a CA
//! and the members' certificate, reading any certificate's validity and names, and deciding
//! when one is due for renewal. Pure: no I/O, time passed in.

mod authority;
mod inspect;
mod issue;

pub use authority::{Authority, Change, Phase};
pub use inspect::{CertInfo, inspect, inspect_bundle, verify_chain};
pub use issue::{Issued, issue_ca, issue_server};

use std::time::Duration;

use time::OffsetDateTime;

use crate::build::names::ClusterNames;

/// Why a certificate could not be issued or read.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot issue a certificate: {0}")]
    Issue(String),
    #[error("not a PEM certificate: {0}")]
    Parse(String),
}

/// The names a member's certificate must be valid for: every member's DNS name (through the
/// headless Service's wildcard, so scaling needs no new certificate), the headless and client
/// Services in their short and long forms, `localhost` and `127.0.0.1` for the probes, which
/// dial the member from inside its Pod, and `external`, the members' names outside
/// Kubernetes when they are exposed one by one.
pub fn server_names(names: &ClusterNames, domain: &str, external: &[String]) -> Vec<String> {
    let mut out = cluster_names(names, domain);
    out.extend(external.iter().cloned());
    out
}

/// The wildcard that covers every name `expose.perMember.hostPattern` stands for: admission
/// keeps `{ordinal}` in the first label, so `db-{ordinal}.mongo.example.internal` is
/// `*.mongo.example.internal`, and scaling needs no new certificate.
pub fn pattern_wildcard(pattern: &str) -> String {
    match pattern.split_once('.') {
        Some((first, rest)) if first.contains("{ordinal}") => format!("*.{rest}"),
        // Not what admission lets in: the pattern's own first member is asked for, and the
        // rest show up as uncovered.
        _ => pattern.replace("{ordinal}", "0"),
    }
}

fn cluster_names(names: &ClusterNames, domain: &str) -> Vec<String> {
    let ns = &names.namespace;
    let mut out = Vec::new();
    for service in [names.headless_service(), names.client_service()] {
        out.push(service.clone());
        out.push(format!("{service}.{ns}"));
        out.push(format!("{service}.{ns}.svc"));
        out.push(format!("{service}.{ns}.svc.{domain}"));
    }
    out.push(format!("*.{}.{ns}.svc.{domain}", names.headless_service()));
    out.push("localhost".into());
    out.push("127.0.0.1".into());
    out
}

/// The names in `wanted` a certificate with `sans` does not cover (a `*.` SAN covers exactly
/// one leftmost label, as RFC 6125 6.4.3 and every TLS library the members and tools use).
pub fn uncovered(sans: &[String], wanted: &[String]) -> Vec<String> {
    wanted.iter().filter(|w| !sans.iter().any(|s| covers(s, w))).cloned().collect()
}

fn covers(san: &str, name: &str) -> bool {
    let (san, name) = (san.to_ascii_lowercase(), name.to_ascii_lowercase());
    match san.strip_prefix("*.") {
        Some(parent) => name.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => san == name,
    }
}

/// How long operator-issued certificates live and when they are renewed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lifetimes {
    /// The members' certificate (90 days by default).
    pub server: Duration,
    /// The cluster's CA: ten times the members' certificate, so that a CA renewal (which goes
    /// through a bundle of both CAs) is rare.
    pub ca: Duration,
    /// The fraction of its life after which a certificate is renewed (2/3 by default: a
    /// 90-day certificate is renewed after 60 days, with 30 left to fix whatever stops it).
    pub renew_at: f64,
}

impl Lifetimes {
    pub fn new(server: Duration, renew_at: f64) -> Lifetimes {
        Lifetimes { server, ca: server.saturating_mul(10), renew_at }
    }
}

/// When a certificate valid from `info.not_before` to `info.not_after` is renewed: `renew_at`
/// into its life, and no later than its expiry.
pub fn renewal_time(info: &CertInfo, renew_at: f64) -> OffsetDateTime {
    let life = info.not_after - info.not_before;
    (info.not_before + life * renew_at).min(info.not_after)
}

/// Whether a certificate is due for renewal at `now`: past `renew_at` of its life, or expired.
pub fn renewal_due(info: &CertInfo, now: OffsetDateTime, renew_at: f64) -> bool {
    now >= renewal_time(info, renew_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> ClusterNames {
        ClusterNames::new("ledger", "bank")
    }

    #[test]
    fn external_names_are_one_wildcard_for_every_ordinal() {
        let wildcard = pattern_wildcard("db-{ordinal}.mongo.example.internal");
        assert_eq!(wildcard, "*.mongo.example.internal");
        let sans = server_names(&names(), "cluster.local", &[wildcard]);
        let members: Vec<String> = (0..9).map(|i| format!("db-{i}.mongo.example.internal")).collect();
        assert_eq!(uncovered(&sans, &members), Vec::<String>::new());
        assert_eq!(uncovered(&sans, &["mongo.example.internal".to_string()]).len(), 1);
    }

    #[test]
    fn the_member_names_cover_every_member_the_services_and_the_probe() {
        let sans = server_names(&names(), "cluster.local", &[]);
        let wanted: Vec<String> = [
            "ledger-0.ledger-members.bank.svc.cluster.local",
            "ledger-49.ledger-members.bank.svc.cluster.local",
            "ledger.bank.svc.cluster.local",
            "ledger-members.bank.svc",
            "ledger",
            "localhost",
            "127.0.0.1",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(uncovered(&sans, &wanted), Vec::<String>::new());
        // A wildcard covers one label only, never a deeper name or another Service's Pods.
        let beyond: Vec<String> =
            ["a.ledger-0.ledger-members.bank.svc.cluster.local", "x.other.bank.svc.cluster.local"]
                .map(String::from)
                .to_vec();
        assert_eq!(uncovered(&sans, &beyond), beyond);
    }

    #[test]
    fn renewal_is_due_after_two_thirds_of_the_life_or_once_expired() {
        let start = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let day = time::Duration::days(1);
        let info = CertInfo { not_before: start, not_after: start + day * 90, sans: vec![], is_ca: false };
        assert!(!renewal_due(&info, start + day * 59, 2.0 / 3.0));
        assert!(renewal_due(&info, start + day * 60, 2.0 / 3.0));
        assert!(renewal_due(&info, start + day * 91, 2.0 / 3.0));
        assert!(renewal_due(&info, start + day * 91, 1.0));
    }
}
