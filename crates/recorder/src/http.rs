//! One HTTP POST with a time limit, over plain HTTP or TLS (the Mozilla roots, loaded only for an
//! `https://` URL): what webhooks and external analyzers send.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// An answer is read up to this size; past it the request fails.
pub(crate) const MAX_ANSWER: usize = 1 << 20;

/// Why a POST got no usable answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PostError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url} answered more than {MAX_ANSWER} bytes")]
    TooLarge { url: String },
}

/// What came back.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    /// The start of the body, for a log line.
    pub(crate) fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let mut cut: String = text.chars().take(200).collect();
        if cut.len() < text.len() {
            cut.push('…');
        }
        cut
    }
}

/// A client for one URL.
#[derive(Clone)]
pub(crate) struct Poster {
    client: Client<Connector, Full<Bytes>>,
    url: url::Url,
    timeout: Duration,
}

impl std::fmt::Debug for Poster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poster")
            .field("url", &self.url.as_str())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Poster {
    /// Checks `url` (`http` or `https`, with a host); the error says what is wrong with it.
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        let https = match parsed.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return Err(format!(
                    "{url}: the scheme must be http or https, not {other}"
                ));
            }
        };
        if parsed.host_str().is_none() {
            return Err(format!("{url}: no host"));
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout.min(Duration::from_secs(10))));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls(https)).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            url: parsed,
            timeout,
        })
    }

    /// The URL, for log lines.
    pub(crate) fn url(&self) -> &str {
        self.url.as_str()
    }

    /// POSTs `body` with `headers`; any status is an answer.
    pub(crate) async fn post(&self, headers: HeaderMap, body: Bytes) -> Result<Answer, PostError> {
        let url = self.url.to_string();
        let mut request = http::Request::post(self.url.as_str())
            .body(Full::new(body))
            .map_err(|e| PostError::Unreachable {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        *request.headers_mut() = headers;
        let exchange = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|e| PostError::Unreachable {
                        url: url.clone(),
                        reason: crate::error_chain(&e),
                    })?;
            let (head, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        PostError::TooLarge { url: url.clone() }
                    } else {
                        PostError::Unreachable {
                            url: url.clone(),
                            reason: e.to_string(),
                        }
                    }
                })?
                .to_bytes();
            Ok(Answer {
                status: head.status,
                headers: head.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(PostError::Timeout {
                url,
                timeout: self.timeout,
            }))
    }
}

/// rustls with ring; the roots only when some URL needs them.
fn tls(https: bool) -> Arc<rustls::ClientConfig> {
    static WITH_ROOTS: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    static PLAIN: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let build = |roots: rustls::RootCertStore| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    };
    if https {
        WITH_ROOTS
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                build(roots)
            })
            .clone()
    } else {
        PLAIN
            .get_or_init(|| build(rustls::RootCertStore::empty()))
            .clone()
    }
}
