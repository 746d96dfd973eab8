//! TLS as mongod does it: one port for TLS and plain connections, told apart by the first
//! message; the mode decides which are accepted; `tlsMode` moves at run time only upward from
//! allowTLS.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// `net.tls.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsMode {
    Disabled,
    Allow,
    Prefer,
    Require,
}

impl TlsMode {
    pub fn parse(value: &str) -> Option<TlsMode> {
        match value {
            "disabled" => Some(TlsMode::Disabled),
            "allowTLS" | "allowSSL" => Some(TlsMode::Allow),
            "preferTLS" | "preferSSL" => Some(TlsMode::Prefer),
            "requireTLS" | "requireSSL" => Some(TlsMode::Require),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Allow => "allowTLS",
            TlsMode::Prefer => "preferTLS",
            TlsMode::Require => "requireTLS",
        }
    }
}

/// A member's TLS: its mode and, unless disabled, the certificate it presents, and what its
/// `certificateKeyFile` holds now (the kubelet replaces a mounted Secret's files when the
/// Secret changes; mongod reads them at startup and on `rotateCertificates` only).
#[derive(Clone)]
pub struct MemberTls {
    pub mode: TlsMode,
    pub config: Option<Arc<ServerConfig>>,
    pub file_pem: String,
}

impl std::fmt::Debug for MemberTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberTls").field("mode", &self.mode).finish()
    }
}

impl Default for MemberTls {
    fn default() -> Self {
        MemberTls { mode: TlsMode::Disabled, config: None, file_pem: String::new() }
    }
}

impl MemberTls {
    /// A member started with `mode` and the certificate and key of `certificate_key_pem` (key
    /// and certificate in one PEM text, as mongod's `certificateKeyFile`). Clients need no
    /// certificate (`allowConnectionsWithoutCertificates`).
    pub fn new(mode: TlsMode, certificate_key_pem: &str) -> Result<MemberTls, String> {
        if mode == TlsMode::Disabled {
            return Ok(MemberTls::default());
        }
        Ok(MemberTls { mode, config: Some(load(certificate_key_pem)?), file_pem: certificate_key_pem.to_string() })
    }

    /// `rotateCertificates`: the certificate and key are read again from the file, for new
    /// connections (open ones keep theirs). `RotateCertificatesCmd::typedRun`
    /// (`src/mongo/db/commands/rotate_certificates_command.cpp`) asks the SSL manager
    /// coordinator to rotate, which builds a new manager from the configured files.
    pub fn rotate(&mut self) -> Result<(), String> {
        if self.mode == TlsMode::Disabled {
            return Ok(());
        }
        self.config = Some(load(&self.file_pem)?);
        Ok(())
    }
}

/// A server configuration presenting the certificate of a PEM text holding it and its key.
fn load(certificate_key_pem: &str) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(certificate_key_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(certificate_key_pem.as_bytes()).map_err(|e| format!("key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

/// How an incoming connection is handled, from its first 16 bytes (the wire-protocol header of
/// a plain client, or the start of a TLS ClientHello), as mongod's
/// `CommonAsioSession::maybeHandshakeSSLForIngress` (`src/mongo/transport/asio/
/// asio_session_impl.cpp`) decides: a first message whose `responseTo` is neither 0 nor -1 is
/// taken for TLS; TLS on a server without it fails ("SSL handshake received but server is
/// started without SSL support"); plain text under requireTLS fails ("The server is
/// configured to only allow SSL connections"). Either failure closes the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Ingress {
    Tls,
    Plain,
    Refuse(&'static str),
}

pub fn ingress(mode: TlsMode, header: &[u8; 16]) -> Ingress {
    let response_to = i32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if response_to != 0 && response_to != -1 {
        if mode == TlsMode::Disabled {
            return Ingress::Refuse("SSL handshake received but server is started without SSL support");
        }
        return Ingress::Tls;
    }
    if mode == TlsMode::Require {
        return Ingress::Refuse("The server is configured to only allow SSL connections");
    }
    Ingress::Plain
}

/// `setParameter tlsMode`: `checkTLSModeTransition` in the server's
/// `src/mongo/util/net/ssl_parameters.cpp` allows allowTLS → preferTLS and preferTLS →
/// requireTLS, nothing else (not even the mode already in force): BadValue otherwise.
pub fn transition(from: TlsMode, to: &str) -> Result<TlsMode, String> {
    let Some(mode) = TlsMode::parse(to) else {
        return Err(format!("Invalid tlsMode '{to}'"));
    };
    match (from, mode) {
        (TlsMode::Allow, TlsMode::Prefer) | (TlsMode::Prefer, TlsMode::Require) => Ok(mode),
        _ => Err(format!(
            "Illegal state transition for tlsMode, attempt to change from {} to {}",
            from.as_str(),
            mode.as_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_message_tells_tls_from_plain_as_mongod_does() {
        let mut plain = [0u8; 16];
        plain[12] = 0xdd; // OP_MSG, responseTo 0
        // The first bytes of a TLS 1.2/1.3 ClientHello record: type 22, version, length, then
        // the handshake header and client version and random, which land in `responseTo`.
        let hello: [u8; 16] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x5a, 0, 0, 0, 0];
        assert_eq!(ingress(TlsMode::Require, &hello), Ingress::Tls);
        assert_eq!(ingress(TlsMode::Allow, &plain), Ingress::Plain);
        assert_eq!(ingress(TlsMode::Prefer, &plain), Ingress::Plain);
        assert!(matches!(ingress(TlsMode::Require, &plain), Ingress::Refuse(m) if m.contains("only allow SSL")));
        assert!(matches!(ingress(TlsMode::Disabled, &hello), Ingress::Refuse(m) if m.contains("without SSL")));
    }

    #[test]
    fn tls_mode_moves_only_up_from_allow_at_run_time() {
        assert_eq!(transition(TlsMode::Allow, "preferTLS"), Ok(TlsMode::Prefer));
        assert_eq!(transition(TlsMode::Prefer, "requireTLS"), Ok(TlsMode::Require));
        for (from, to) in [
            (TlsMode::Disabled, "allowTLS"),
            (TlsMode::Allow, "requireTLS"),
            (TlsMode::Require, "preferTLS"),
            (TlsMode::Prefer, "preferTLS"),
        ] {
            assert!(transition(from, to).unwrap_err().contains("Illegal state transition"), "{from:?} → {to}");
        }
    }
}
