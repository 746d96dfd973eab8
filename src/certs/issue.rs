//! Issuing certificates with rcgen: the cluster's CA, and the certificate every member presents.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;

use super::CertError;

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("cert_pem", &self.cert_pem).field("key_pem", &"<redacted>").finish()
    }
}

fn error(e: rcgen::Error) -> CertError {
    CertError::Issue(e.to_string())
}

/// Backdated a little (five minutes, or a tenth of a short life), so that a member whose clock
/// is slightly behind the operator's accepts it.
const BACKDATE: time::Duration = time::Duration::minutes(5);

fn validity(params: &mut CertificateParams, now: OffsetDateTime, lifetime: Duration) -> Result<(), CertError> {
    let life = time::Duration::try_from(lifetime).map_err(|e| CertError::Issue(e.to_string()))?;
    params.not_before = now - BACKDATE.min(life / 10);
    params.not_after = now + life;
    Ok(())
}

/// The subject of the cluster's certificates: organisation `mongo-operator`, unit the cluster
/// (`namespace/name`), so certificates of two clusters never share an O/OU (which mongod would
/// read as the same cluster if x509 membership authentication is ever turned on).
fn subject(common_name: &str, unit: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "mongo-operator");
    dn.push(DnType::OrganizationalUnitName, unit);
    dn.push(DnType::CommonName, common_name);
    dn
}

/// A new CA for one cluster (`unit` is `namespace/name`), ECDSA P-256, signing certificates only.
pub fn issue_ca(unit: &str, now: OffsetDateTime, lifetime: Duration) -> Result<Issued, CertError> {
    let key = KeyPair::generate().map_err(error)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(&format!("{unit} CA"), unit);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params, now, lifetime)?;
    let cert = params.self_signed(&key).map_err(error)?;
    Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// The members' certificate, signed by `ca`, valid for `names`. Its extended key usage has
/// both serverAuth and clientAuth: a member is a client of the others too, and mongod refuses a
/// peer certificate without the purpose it is used for ("unsupported certificate purpose").
pub fn issue_server(
    ca: &Issued,
    unit: &str,
    names: &[String],
    now: OffsetDateTime,
    lifetime: Duration,
) -> Result<Issued, CertError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(error)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(error)?;
    let key = KeyPair::generate().map_err(error)?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(error)?;
    params.distinguished_name = subject(names.first().map(String::as_str).unwrap_or(unit), unit);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, now, lifetime)?;
    // Never past the CA's own expiry: the chain would stop verifying then anyway.
    let ca_expiry = super::inspect(&ca.cert_pem)?.not_after;
    params.not_after = params.not_after.min(ca_expiry);
    let cert = params.signed_by(&key, &issuer).map_err(error)?;
    Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::inspect;

    #[test]
    fn a_member_certificate_is_signed_by_the_cluster_ca_for_the_names_asked() {
        let now = OffsetDateTime::now_utc();
        let day = Duration::from_secs(86_400);
        let ca = issue_ca("bank/ledger", now, day * 900).unwrap();
        let names = vec!["*.ledger-members.bank.svc.cluster.local".to_string(), "127.0.0.1".to_string()];
        let server = issue_server(&ca, "bank/ledger", &names, now, day * 90).unwrap();
        let info = inspect(&server.cert_pem).unwrap();
        assert_eq!(info.sans, names);
        assert!(!info.is_ca && inspect(&ca.cert_pem).unwrap().is_ca);
        let life = info.not_after - now;
        assert!((life.whole_days() - 90).abs() <= 1, "{life}");
        // The chain verifies with a real TLS verifier, for a name the certificate covers.
        let verify = |name: &str| crate::certs::inspect::verify_chain(&ca.cert_pem, &server.cert_pem, name, now);
        verify("ledger-2.ledger-members.bank.svc.cluster.local").unwrap();
        verify("127.0.0.1").unwrap();
        assert!(verify("ledger.bank.svc.cluster.local").is_err(), "a name it was not issued for");
        let other = issue_ca("bank/other", now, day).unwrap();
        assert!(
            crate::certs::inspect::verify_chain(&other.cert_pem, &server.cert_pem, "127.0.0.1", now).is_err(),
            "another cluster's CA"
        );
        assert!(!format!("{server:?}").contains("PRIVATE KEY"));
    }
}
