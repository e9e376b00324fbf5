//! rustls configuration: the Mozilla roots unless the application gives its own.

use std::sync::{Arc, OnceLock};

use crate::config::Config;

/// The TLS configuration for `config`: its own, or a shared default with the `webpki-roots`.
pub(crate) fn config(config: &Config) -> Arc<rustls::ClientConfig> {
    if let Some(tls) = &config.tls {
        return tls.clone();
    }
    static DEFAULT: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}
