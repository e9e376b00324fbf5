//! rustls configuration: the Mozilla roots unless the application gives its own.

use std::sync::{Arc, OnceLock};

use crate::config::Config;

/// The TLS configuration for `config`: its own, or a shared default with the `webpki-roots`.
/// A plain `http://` server never uses TLS, so it gets an empty root store: the Mozilla roots
/// (about a megabyte once parsed) are only loaded for `https://`.
pub(crate) fn config(config: &Config) -> Arc<rustls::ClientConfig> {
    if let Some(tls) = &config.tls {
        return tls.clone();
    }
    static DEFAULT: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    static PLAIN: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if config.url.scheme() != "https" {
        return PLAIN
            .get_or_init(|| build(rustls::RootCertStore::empty()))
            .clone();
    }
    DEFAULT
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            build(roots)
        })
        .clone()
}

fn build(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}
