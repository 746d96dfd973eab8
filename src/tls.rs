//! One TLS crypto provider for the whole process. The Kubernetes client is built on ring and
//! the object-store client on aws-lc-rs, so rustls finds two and would refuse to choose;
//! this picks ring, once, before any TLS connection is made.

/// Installs ring as the process-wide rustls provider; later calls do nothing.
pub fn install_crypto_provider() {
    // An error means a provider is already installed, which is what was wanted.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
