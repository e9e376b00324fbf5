//! How a client connects: URL, transports, headers, reconnection, TLS.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::error::Error;

/// Which transports a client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportMode {
    /// Open over long-polling, then upgrade to WebSocket when the server offers it (the reference
    /// client's default; works through proxies that block WebSocket).
    #[default]
    PollingThenUpgrade,
    /// WebSocket only: one round trip less, the fastest when the server allows it.
    WebSocket,
    /// Long-polling only.
    Polling,
}

/// The default bound of [`Config::receive_coalescing`]: 500 µs.
pub const DEFAULT_RECEIVE_COALESCING: Duration = Duration::from_micros(500);

/// The most bytes a server may send at once, by default ([`Config::max_payload`]): 16 MiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 16 << 20;

/// When and how fast to reconnect after a connection is lost.
///
/// ```
/// use std::time::Duration;
/// use engineio_client::{Backoff, Config, Reconnect};
/// // A box on a flaky network: retry every 2 to 60 s, forever.
/// let patient = Reconnect {
///     backoff: Backoff { min: Duration::from_secs(2), max: Duration::from_secs(60), jitter: 0.5 },
///     ..Reconnect::default()
/// };
/// // A command-line tool: three tries, then the event stream ends.
/// let brief = Reconnect { max_attempts: Some(3), ..Reconnect::default() };
/// let config = Config::new("http://127.0.0.1:3000").unwrap().reconnect(brief);
/// # let _ = (patient, config);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Reconnect {
    /// Whether to reconnect at all.
    pub enabled: bool,
    /// The delays between attempts.
    pub backoff: Backoff,
    /// Give up after this many failed attempts in a row (`None`: never).
    pub max_attempts: Option<u32>,
    /// The backoff restarts from its minimum only after a connection stayed open this long, so a
    /// server that accepts and then drops clients is not hammered at the minimum delay.
    pub stable_after: Duration,
}

impl Default for Reconnect {
    /// Enabled, 1 s to 5 s with jitter 0.5 (the JS client's defaults), forever, stable after 10 s.
    fn default() -> Self {
        Self {
            enabled: true,
            backoff: Backoff::default(),
            max_attempts: None,
            stable_after: Duration::from_secs(10),
        }
    }
}

/// An async source of extra headers, asked before every connection attempt (for tokens that
/// expire). Its error aborts that attempt, which then counts as failed.
///
/// ```
/// use std::sync::Arc;
/// use http::{header::AUTHORIZATION, HeaderMap, HeaderValue};
/// use engineio_client::{Config, HeaderProvider};
///
/// async fn fresh_token() -> Result<String, String> {
///     Ok("token-of-the-hour".to_owned()) // ask your identity provider here
/// }
///
/// let provider: HeaderProvider = Arc::new(|| {
///     Box::pin(async {
///         let token = fresh_token().await?;
///         let mut headers = HeaderMap::new();
///         let value = HeaderValue::try_from(format!("Bearer {token}")).map_err(|e| e.to_string())?;
///         headers.insert(AUTHORIZATION, value);
///         Ok(headers)
///     })
/// });
/// let config = Config::new("https://example.com").unwrap().header_provider(provider);
/// # let _ = config;
/// ```
pub type HeaderProvider =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<HeaderMap, String>> + Send>> + Send + Sync>;

/// Everything a [`crate::Client`] needs to connect.
///
/// ```
/// use engineio_client::{Config, TransportMode};
/// let config = Config::new("http://127.0.0.1:8080")
///     .unwrap()
///     .path("/socket.io/")
///     .transport(TransportMode::WebSocket)
///     .query("token", "abc");
/// assert_eq!(config.url().as_str(), "http://127.0.0.1:8080/");
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) url: url::Url,
    pub(crate) path: String,
    pub(crate) transport: TransportMode,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: HeaderMap,
    pub(crate) header_provider: Option<HeaderProvider>,
    pub(crate) reconnect: Reconnect,
    pub(crate) open_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) event_capacity: usize,
    pub(crate) outgoing_capacity: usize,
    pub(crate) receive_coalescing: Duration,
    pub(crate) max_payload: usize,
    pub(crate) cancel: CancellationToken,
    #[cfg(feature = "rustls")]
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.url.as_str())
            .field("path", &self.path)
            .field("transport", &self.transport)
            .field("query", &self.query)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("header_provider", &self.header_provider.is_some())
            .field("reconnect", &self.reconnect)
            .field("open_timeout", &self.open_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("event_capacity", &self.event_capacity)
            .field("receive_coalescing", &self.receive_coalescing)
            .field("max_payload", &self.max_payload)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A configuration for the server at `url` (`http://`, `https://`, `ws://` or `wss://`; only
    /// scheme, host and port are used), with the defaults: path `/engine.io/`, polling then
    /// upgrade, reconnect forever with backoff.
    pub fn new(url: &str) -> Result<Self, Error> {
        let mut url = url::Url::parse(url).map_err(|e| Error::InvalidUrl {
            url: url.to_owned(),
            reason: "it does not parse".to_owned(),
            source: Some(e),
        })?;
        let scheme = match url.scheme() {
            "http" | "ws" => "http",
            "https" | "wss" => "https",
            other => {
                return Err(Error::InvalidUrl {
                    url: url.to_string(),
                    reason: format!("scheme {other:?} is not one of http, https, ws, wss"),
                    source: None,
                });
            }
        };
        if url.host_str().is_none() {
            return Err(Error::InvalidUrl {
                url: url.to_string(),
                reason: "it has no host".to_owned(),
                source: None,
            });
        }
        // Setting a scheme between these "special" schemes always succeeds.
        let _ = url.set_scheme(scheme);
        url.set_path("/");
        url.set_query(None);
        url.set_fragment(None);
        Ok(Self {
            url,
            path: "/engine.io/".to_owned(),
            transport: TransportMode::default(),
            query: Vec::new(),
            headers: HeaderMap::new(),
            header_provider: None,
            reconnect: Reconnect::default(),
            open_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(90),
            event_capacity: 256,
            outgoing_capacity: 1024,
            receive_coalescing: DEFAULT_RECEIVE_COALESCING,
            max_payload: DEFAULT_MAX_PAYLOAD,
            cancel: CancellationToken::new(),
            #[cfg(feature = "rustls")]
            tls: None,
        })
    }

    /// The server's base URL (scheme `http` or `https`, host, port).
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The Engine.IO path (`/engine.io/` by default; socket.io servers use `/socket.io/`).
    pub fn path(mut self, path: &str) -> Self {
        let mut p = String::with_capacity(path.len() + 2);
        if !path.starts_with('/') {
            p.push('/');
        }
        p.push_str(path);
        if !p.ends_with('/') {
            p.push('/');
        }
        self.path = p;
        self
    }

    /// Which transports to use.
    pub fn transport(mut self, mode: TransportMode) -> Self {
        self.transport = mode;
        self
    }

    /// Adds a query parameter to every request.
    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.query.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Adds a header to every request (polling requests and the WebSocket handshake).
    ///
    /// ```
    /// use http::{header::USER_AGENT, HeaderValue};
    /// let config = engineio_client::Config::new("http://127.0.0.1:3000")
    ///     .unwrap()
    ///     .header(USER_AGENT, HeaderValue::from_static("my-app/1.0"));
    /// # let _ = config;
    /// ```
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Asks `provider` for extra headers before every connection attempt.
    pub fn header_provider(mut self, provider: HeaderProvider) -> Self {
        self.header_provider = Some(provider);
        self
    }

    /// The reconnection policy.
    pub fn reconnect(mut self, reconnect: Reconnect) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// How long one attempt may take to get the server's handshake (20 s by default).
    pub fn open_timeout(mut self, timeout: Duration) -> Self {
        self.open_timeout = timeout;
        self
    }

    /// How long one long-polling request may take (90 s by default; the server holds a GET for
    /// up to its ping interval).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How many events may wait for the consumer (256 by default). When the consumer falls this
    /// far behind, the client stops reading from the server until it catches up (backpressure;
    /// nothing is dropped). Sends and timers keep working meanwhile, but the server's pings wait
    /// in the socket too: a consumer stalled longer than the server's `pingTimeout` gets the
    /// connection closed by the server, and the client reconnects.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// The most bytes the server may send at once: one long-polling answer (all the packets it
    /// holds), or one WebSocket message (16 MiB by default, [`DEFAULT_MAX_PAYLOAD`]). A larger
    /// one is not read: the attempt fails with [`crate::Error::TooLarge`] (or, on a WebSocket,
    /// tungstenite's capacity error) and the client reconnects with its backoff, so a server
    /// gone wrong cannot make it buffer without bound. Raise it for servers that send larger
    /// binary attachments; lower it to what a known server sends (a telemetry device: a few
    /// KiB per event).
    ///
    /// ```
    /// let small = engineio_client::Config::new("http://127.0.0.1:3000")
    ///     .unwrap()
    ///     .max_payload(1 << 20);
    /// # let _ = small;
    /// ```
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes.max(1024);
        self
    }

    /// How many outgoing messages may queue before [`crate::Client::send`] waits (1024).
    pub fn outgoing_capacity(mut self, capacity: usize) -> Self {
        self.outgoing_capacity = capacity.max(1);
        self
    }

    /// How long a WebSocket read may wait for more data to join it (500 µs by default;
    /// [`Duration::ZERO`] turns it off).
    ///
    /// A server that writes each packet as its own frame and socket write (the Node socket.io
    /// server does whenever its reader keeps up) costs a reader that drains each frame on
    /// arrival a wake-up and a read per event, and slows the server down. With coalescing, once
    /// reads keep coming back thin (four with no pause of twice `bound` between them), data that lands
    /// within `bound` of the last one waits in the kernel's buffer until `bound` has passed since
    /// that read, and is then read with whatever joined it.
    ///
    /// The bound is a ceiling: no event waits longer. An event that arrives after a quiet
    /// spell longer than `bound` (each tick of a 10 Hz stream, its two or so events included) is
    /// read at once; a reader that is behind reads on without pause. Measured at full rate against the Node socket.io
    /// server, the default takes the client from about 5.7 µs of CPU per event to about 1.7 µs,
    /// and the server, no longer woken at every write, sends faster (`docs/benchmarks.md`).
    /// Turn it off when every microsecond of latency counts more than CPU.
    ///
    /// On Linux the bound holds to the microsecond (a `timerfd`); elsewhere it is rounded up to
    /// the next tick of tokio's timer (1 ms). Long-polling is not affected.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lowest_latency = engineio_client::Config::new("http://127.0.0.1:3000")
    ///     .unwrap()
    ///     .receive_coalescing(Duration::ZERO);
    /// # let _ = lowest_latency;
    /// ```
    pub fn receive_coalescing(mut self, bound: Duration) -> Self {
        self.receive_coalescing = bound;
        self
    }

    /// A token that closes the client when cancelled (as [`crate::Client::close`] does): one
    /// token can stop many clients and the rest of an application's tasks at once.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use tokio_util::sync::CancellationToken;
    /// use engineio_client::{Client, Config};
    /// let shutdown = CancellationToken::new();
    /// let config = Config::new("http://127.0.0.1:9").unwrap().cancel_token(shutdown.child_token());
    /// let (_client, mut events) = Client::connect(config);
    /// shutdown.cancel();
    /// while events.recv().await.is_some() {} // the stream ends
    /// # });
    /// ```
    pub fn cancel_token(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// The TLS configuration for `https://` servers, for custom roots or client certificates
    /// (default: the Mozilla roots from `webpki-roots`).
    ///
    /// A machine on the local network with a certificate of its own making:
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use engineio_client::{rustls, Config};
    /// # fn demo(machine_ca_der: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut roots = rustls::RootCertStore::empty();
    /// roots.add(rustls::pki_types::CertificateDer::from(machine_ca_der))?;
    /// let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
    ///     rustls::crypto::ring::default_provider(),
    /// ))
    /// .with_safe_default_protocol_versions()?
    /// .with_root_certificates(roots)
    /// .with_no_client_auth();
    /// let config = Config::new("https://machine.local")?.tls(Arc::new(tls));
    /// # let _ = config; Ok(()) }
    /// ```
    #[cfg(feature = "rustls")]
    pub fn tls(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The URL of one request: path, `EIO=4`, transport, sid, and the user's query.
    pub(crate) fn endpoint(&self, transport: &str, sid: Option<&str>) -> url::Url {
        let mut url = self.url.clone();
        if transport == "websocket" {
            let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
            let _ = url.set_scheme(scheme);
        }
        url.set_path(&self.path);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("EIO", "4")
                .append_pair("transport", transport);
            if let Some(sid) = sid {
                q.append_pair("sid", sid);
            }
            for (k, v) in &self.query {
                q.append_pair(k, v);
            }
        }
        url
    }
}
