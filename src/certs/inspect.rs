//! Reading certificates: validity and names (x509-parser), and whether a certificate chains to
//! a CA for a given name (rustls' WebPKI verifier, the one the operator's connections use).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

use super::CertError;

/// What the operator needs to know of a certificate.
#[derive(Clone, Debug, PartialEq)]
pub struct CertInfo {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// DNS names and IP addresses, as text.
    pub sans: Vec<String>,
    pub is_ca: bool,
}

/// The first certificate of a PEM text.
pub fn inspect(pem: &str) -> Result<CertInfo, CertError> {
    inspect_bundle(pem)?.into_iter().next().ok_or_else(|| CertError::Parse("no certificate in it".into()))
}

/// Every certificate of a PEM text (a CA bundle holds several during a CA renewal).
pub fn inspect_bundle(pem: &str) -> Result<Vec<CertInfo>, CertError> {
    let mut out = Vec::new();
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| CertError::Parse(e.to_string()))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        let cert = block.parse_x509().map_err(|e| CertError::Parse(e.to_string()))?;
        let sans = match cert.subject_alternative_name() {
            Ok(Some(ext)) => ext.value.general_names.iter().filter_map(name).collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(CertError::Parse(format!("subjectAltName: {e}"))),
        };
        out.push(CertInfo {
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            sans,
            is_ca: cert.is_ca(),
        });
    }
    Ok(out)
}

fn name(general: &GeneralName<'_>) -> Option<String> {
    match general {
        GeneralName::DNSName(dns) => Some(dns.to_string()),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(*bytes).ok().map(|b| std::net::Ipv4Addr::from(b).to_string()),
            16 => <[u8; 16]>::try_from(*bytes).ok().map(|b| std::net::Ipv6Addr::from(b).to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `cert_pem` (a leaf, optionally followed by intermediates) chains to a CA of
/// `ca_pem` and is valid for `name` at `now`: the checks a client connecting to `name` makes.
/// The error says which failed (unknown issuer, expired, not valid for the name, ...).
pub fn verify_chain(ca_pem: &str, cert_pem: &str, name: &str, now: OffsetDateTime) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let ca = ca.map_err(|e| format!("the CA is not PEM: {e}"))?;
        roots.add(ca).map_err(|e| format!("the CA is not usable: {e}"))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the certificate is not PEM: {e}"))?;
    let (leaf, intermediates) = chain.split_first().ok_or("there is no certificate")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build().map_err(|e| e.to_string())?;
    let server = ServerName::try_from(name.to_string()).map_err(|e| format!("{name}: {e}"))?;
    let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    verifier
        .verify_server_cert(
            leaf,
            intermediates,
            &server,
            &[],
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds)),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}
