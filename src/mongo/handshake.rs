//! A TLS handshake with a member and nothing more: which certificate it presents to new
//! connections, to tell whether a `rotateCertificates` took effect. Verified as the driver
//! verifies every connection: against the CAs of the target's file and the name dialled.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256};

use super::{AdminError, Target};

pub async fn presented(target: &Target) -> Result<String, AdminError> {
    let ca = target
        .tls
        .as_ref()
        .ok_or_else(|| AdminError::UnexpectedReply(format!("{} is not dialled over TLS", target.address)))?;
    let pem = std::fs::read(ca).map_err(|e| AdminError::UnexpectedReply(format!("{}: {e}", ca.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(&pem) {
        let der = der.map_err(|e| AdminError::UnexpectedReply(format!("{}: {e}", ca.display())))?;
        roots.add(der).map_err(|e| AdminError::UnexpectedReply(format!("{}: {e}", ca.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AdminError::UnexpectedReply(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = target.address.rsplit_once(':').map_or(target.address.as_str(), |(h, _)| h);
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| AdminError::Unreachable(format!("bad address {}: {e}", target.address)))?;
    let tcp = tokio::net::TcpStream::connect(&target.address)
        .await
        .map_err(|e| AdminError::Unreachable(format!("{}: {e}", target.address)))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| AdminError::Unreachable(format!("TLS with {}: {e}", target.address)))?;
    let (_, connection) = tls.get_ref();
    let leaf = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or_else(|| AdminError::UnexpectedReply(format!("{} presented no certificate", target.address)))?;
    Ok(hex::encode(Sha256::digest(leaf.as_ref())))
}

/// The fingerprint [`presented`] gives for the first certificate of a PEM text.
pub fn fingerprint(cert_pem: &str) -> Option<String> {
    let der = CertificateDer::pem_slice_iter(cert_pem.as_bytes()).next()?.ok()?;
    Some(hex::encode(Sha256::digest(der.as_ref())))
}
