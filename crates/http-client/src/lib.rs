//! The one outgoing HTTP client of crema's own services: the machine's API
//! (`meticulous::api`), webhooks and external analyzers (`recorder`), and token introspection
//! (`fanout::auth`). What every one of them needs is here once:
//!
//! - a time limit on the whole exchange, and a connect timeout;
//! - a cap on the answer's body (past it the request fails, nothing is buffered beyond);
//! - plain HTTP, or TLS with rustls and the Mozilla roots, loaded only when an `https://` URL is
//!   first asked;
//! - redirects are answers, never followed (the caller says what to do with a `Location`);
//! - one connection pool per client (clones share it);
//! - errors that name the method and the URL and say why, as one line ([`error_chain`]).
//!
//! The Engine.IO client keeps its own transport: it is a crate of its own for other
//! applications, and its long-polling needs differ.
#![deny(missing_docs)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The parsed URL [`check_url`] answers and the requests take.
pub use url::Url;

type Tls = hyper_rustls::HttpsConnector<HttpConnector>;

/// Why an exchange gave no usable answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL cannot be asked.
    #[error("{url}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection, or the connection broke.
    #[error("{method} {url}: cannot reach it: {reason}")]
    Unreachable {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// The connection's error and its causes.
        reason: String,
    },
    /// No whole answer in time.
    #[error("{method} {url}: no answer within {timeout:?}")]
    Timeout {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// The answer's body is larger than the limit.
    #[error("{method} {url}: the answer is larger than {limit} bytes")]
    TooLarge {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
}

/// What came back: any status is an answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, whole.
    pub body: Bytes,
}

impl Answer {
    /// The start of the body (200 characters, on one line), for a log line or an error.
    pub fn excerpt(&self) -> String {
        one_line(&String::from_utf8_lossy(&self.body), 200)
    }
}

/// `text` from a peer as one line of a log: control characters (line breaks, terminal escapes)
/// made spaces, cut to `max` characters (with `…` when cut).
pub fn one_line(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// Limits of one exchange.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The whole exchange: connecting, sending, and reading the whole answer.
    pub timeout: Duration,
    /// The largest answer body read.
    pub max_body: usize,
}

/// A URL that can be asked: `http` or `https` (or only `http` when `tls` is false), with a
/// host. The error says what is wrong (naming the URL as [`shown`] does).
pub fn check_url(url: &str, tls: bool) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("{}: {e}", shown_text(url)))?;
    let url = shown(&parsed);
    match parsed.scheme() {
        "http" => {}
        "https" if tls => {}
        other => {
            let allowed = if tls { "http or https" } else { "http" };
            return Err(format!("{url}: the scheme must be {allowed}, not {other}"));
        }
    }
    if parsed.host_str().is_none() {
        return Err(format!("{url}: no host"));
    }
    Ok(parsed)
}

/// `url` as a log line or an error may show it: the scheme, the host and the port, and a hash
/// of the rest (`https://hooks.slack.com/…#3f2a9c1d`). A webhook's path, an ntfy topic, a query
/// or credentials are often the secret itself; the hash tells two URLs apart without them.
///
/// ```
/// let url = http_client::Url::parse("https://ntfy.sh/my-secret-topic").unwrap();
/// let shown = http_client::shown(&url);
/// assert!(shown.starts_with("https://ntfy.sh/…#") && !shown.contains("secret"));
/// let plain = http_client::Url::parse("http://127.0.0.1:9000/").unwrap();
/// assert_eq!(http_client::shown(&plain), "http://127.0.0.1:9000/");
/// ```
pub fn shown(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let base = format!("{}://{host}{port}/", url.scheme());
    let rest = &url.as_str()[url.scheme().len()..];
    let hidden = url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some();
    if hidden {
        format!("{base}…#{}", digest(rest))
    } else {
        base
    }
}

/// What `Debug` prints instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// [`REDACTED`] when `secret` is set, for a `Debug` field.
pub fn redacted<T>(secret: &Option<T>) -> Option<&'static str> {
    secret.as_ref().map(|_| REDACTED)
}

/// [`shown`] for text that may not parse as a URL: its hash alone when it does not.
pub fn shown_text(url: &str) -> String {
    match Url::parse(url) {
        Ok(parsed) if parsed.host_str().is_some() => shown(&parsed),
        _ => format!("a URL that does not parse (#{})", digest(url)),
    }
}

/// Eight hex digits of a fixed-key hash: stable from run to run, so log lines of the same URL
/// match.
fn digest(text: &str) -> String {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    format!("{:08x}", hasher.finish() as u32)
}

/// An HTTP client: a pool of plain connections, and one of TLS connections made on first use.
/// Cheap to clone; clones share the pools.
#[derive(Clone)]
pub struct HttpClient {
    plain: Client<HttpConnector, Full<Bytes>>,
    tls: Arc<OnceLock<Client<Tls, Full<Bytes>>>>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("connect_timeout", &self.connect_timeout)
            .field("tls_ready", &self.tls.get().is_some())
            .finish()
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new(Duration::from_secs(10))
    }
}

impl HttpClient {
    /// A client whose connections must be made within `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            plain: Client::builder(TokioExecutor::new()).build(connector(connect_timeout)),
            tls: Arc::new(OnceLock::new()),
            connect_timeout,
        }
    }

    /// The process's shared client (10 s to connect): one pool for everything that asks
    /// through it.
    pub fn shared() -> HttpClient {
        static SHARED: OnceLock<HttpClient> = OnceLock::new();
        SHARED.get_or_init(HttpClient::default).clone()
    }

    fn tls(&self) -> &Client<Tls, Full<Bytes>> {
        self.tls.get_or_init(|| {
            let mut http = connector(self.connect_timeout);
            http.enforce_http(false);
            let tls = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((*tls_config()).clone())
                .https_only()
                .enable_http1()
                .wrap_connector(http);
            Client::builder(TokioExecutor::new()).build(tls)
        })
    }

    /// `GET url` with `headers`.
    pub async fn get(
        &self,
        url: &Url,
        headers: HeaderMap,
        limits: Limits,
    ) -> Result<Answer, HttpError> {
        self.send(Method::GET, url, headers, Bytes::new(), limits)
            .await
    }

    /// `POST url` with `headers` and `body`.
    pub async fn post(
        &self,
        url: &Url,
        headers: HeaderMap,
        body: Bytes,
        limits: Limits,
    ) -> Result<Answer, HttpError> {
        self.send(Method::POST, url, headers, body, limits).await
    }

    /// One exchange: any status is an answer; redirects are not followed.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: Bytes,
        limits: Limits,
    ) -> Result<Answer, HttpError> {
        let shown = shown(url);
        let mut request = http::Request::builder()
            .method(method.clone())
            .uri(url.as_str())
            .body(Full::new(body))
            .map_err(|e| HttpError::BadUrl {
                url: shown.clone(),
                reason: e.to_string(),
            })?;
        *request.headers_mut() = headers;
        let exchange = async {
            let unreachable = |reason: String| HttpError::Unreachable {
                method: method.clone(),
                url: shown.clone(),
                reason,
            };
            let response = match url.scheme() {
                "https" => self.tls().request(request).await,
                _ => self.plain.request(request).await,
            }
            .map_err(|e| unreachable(error_chain(&e)))?;
            let (head, body) = response.into_parts();
            let body = Limited::new(body, limits.max_body)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        HttpError::TooLarge {
                            method: method.clone(),
                            url: shown.clone(),
                            limit: limits.max_body,
                        }
                    } else {
                        unreachable(e.to_string())
                    }
                })?
                .to_bytes();
            Ok(Answer {
                status: head.status,
                headers: head.headers,
                body,
            })
        };
        tokio::time::timeout(limits.timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(HttpError::Timeout {
                    method: method.clone(),
                    url: shown.clone(),
                    timeout: limits.timeout,
                })
            })
    }
}

fn connector(connect_timeout: Duration) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http
}

/// rustls with ring and the Mozilla roots (built once).
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            Arc::new(
                rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default protocol versions")
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        })
        .clone()
}

/// An error and its causes, one line (`what: why: deeper why`), each cause once.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        // A message that already ends with its cause (`#[error("…: {source}")]`) says it once.
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[test]
    fn a_peers_text_is_one_line_of_the_log() {
        assert_eq!(one_line("a\r\nb\u{1b}[2Jc", 200), "a  b [2Jc");
        assert_eq!(one_line("héllo", 3), "hél…");
        assert_eq!(one_line("abc", 3), "abc");
        let answer = Answer {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from("x".repeat(300) + "\n"),
        };
        assert_eq!(answer.excerpt(), "x".repeat(200) + "…");
    }

    /// A server on 127.0.0.1 that answers every connection with `answer` (or never, if empty).
    async fn server(answer: &'static str) -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                if !answer.is_empty() {
                    let _ = socket.write_all(answer.as_bytes()).await;
                }
                held.push(socket);
            }
        });
        Url::parse(&url).unwrap()
    }

    fn limits(ms: u64, max_body: usize) -> Limits {
        Limits {
            timeout: Duration::from_millis(ms),
            max_body,
        }
    }

    #[tokio::test]
    async fn answers_time_limits_caps_and_redirects() {
        let client = HttpClient::default();
        let ok =
            server("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 5\r\n\r\nhello").await;
        let answer = client
            .get(&ok, HeaderMap::new(), limits(2000, 64))
            .await
            .unwrap();
        assert_eq!(
            (answer.status.as_u16(), &answer.body[..]),
            (200, &b"hello"[..])
        );

        let big = client
            .get(&ok, HeaderMap::new(), limits(2000, 3))
            .await
            .unwrap_err();
        assert!(matches!(big, HttpError::TooLarge { limit: 3, .. }), "{big}");

        let silent = server("").await;
        let slow = client
            .post(
                &silent,
                HeaderMap::new(),
                Bytes::from_static(b"{}"),
                limits(100, 64),
            )
            .await
            .unwrap_err();
        assert!(
            slow.to_string().starts_with("POST http://127.0.0.1:"),
            "{slow}"
        );
        assert!(
            slow.to_string().ends_with("no answer within 100ms"),
            "{slow}"
        );

        let moved = server(
            "HTTP/1.1 301 Moved\r\nlocation: http://elsewhere/\r\ncontent-length: 0\r\n\r\n",
        )
        .await;
        let answer = client
            .get(&moved, HeaderMap::new(), limits(2000, 64))
            .await
            .unwrap();
        assert_eq!(answer.status.as_u16(), 301, "not followed");

        let closed = Url::parse("http://127.0.0.1:9/").unwrap();
        let refused = client
            .get(&closed, HeaderMap::new(), limits(2000, 64))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, HttpError::Unreachable { .. }),
            "{refused}"
        );
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("http://meticulous.local", false).is_ok());
        assert!(check_url("https://ntfy.sh/x", true).is_ok());
        let e = check_url("https://x", false).unwrap_err();
        assert!(e.contains("must be http, not https"), "{e}");
        assert!(check_url("ftp://x", true).is_err());
        assert!(check_url("http://", true).is_err());
    }
}
