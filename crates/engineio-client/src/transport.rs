//! The two transports as thin IO: a WebSocket (tokio-tungstenite) and long-polling requests
//! (hyper). They move bytes; the session decides what the bytes mean.

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt as _, Full};
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::coalesce::Coalesce;
use crate::config::Config;
use crate::error::{Cause, Error};

/// A WebSocket over TCP (or TLS over TCP) with a read buffer of its own in front of the socket.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<BufReader<Coalesce>>>;

/// Bytes taken from the socket per read. tungstenite asks for what its frame buffer has room
/// for, often a few KiB; this buffer turns those asks into one system call per 16 KiB.
const SOCKET_READ: usize = 16 * 1024;

/// Opens a WebSocket to the Engine.IO endpoint (with `sid` when probing an open session).
pub(crate) async fn websocket(
    config: &Config,
    headers: &HeaderMap,
    sid: Option<&str>,
) -> Result<Ws, Error> {
    let url = config.endpoint("websocket", sid);
    let ws_error = |source: Cause| Error::WebSocket {
        url: url.to_string(),
        source,
    };
    let connect_error = |source: Cause| Error::Connect {
        url: url.to_string(),
        source,
    };
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ws_error(e.into()))?;
    for (name, value) in headers {
        request.headers_mut().append(name, value.clone());
    }
    // Plain `ws://` needs no TLS machinery at all.
    #[cfg(feature = "rustls")]
    let connector = (config.url.scheme() == "https")
        .then(|| tokio_tungstenite::Connector::Rustls(crate::tls::config(config)));
    #[cfg(not(feature = "rustls"))]
    let connector = None;
    let host = url
        .host_str()
        .ok_or_else(|| ws_error("the URL has no host".into()))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| ws_error("the URL has no port".into()))?;
    let tcp = TcpStream::connect(format!("{host}:{port}"))
        .await
        .map_err(|e| connect_error(e.into()))?;
    tcp.set_nodelay(true).map_err(|e| connect_error(e.into()))?;
    let stream =
        BufReader::with_capacity(SOCKET_READ, Coalesce::new(tcp, config.receive_coalescing));
    let (ws, _response) = tokio_tungstenite::client_async_tls_with_config(
        request,
        stream,
        Some(ws_config(config.max_payload)),
        connector,
    )
    .await
    .map_err(|e| ws_error(e.into()))?;
    Ok(ws)
}

/// WebSocket buffers sized for telemetry. Frames are cut from tungstenite's read buffer and
/// stay alive as long as their events do, pinning the chunk they came from: small chunks
/// (8 KiB; tungstenite's default is 128 KiB) keep that memory small. The socket is read through
/// [`SOCKET_READ`] anyway, so the size costs no system calls. A message (and so a frame) is
/// at most `max_payload` bytes.
fn ws_config(max_payload: usize) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(32 * 1024)
        .max_message_size(Some(max_payload))
        .max_frame_size(Some(max_payload))
}

#[cfg(feature = "rustls")]
type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;
#[cfg(not(feature = "rustls"))]
type Connector = hyper_util::client::legacy::connect::HttpConnector;

/// Long-polling requests for one session: at most one GET and one POST at a time is the
/// caller's rule; this type only sends them.
#[derive(Clone)]
pub(crate) struct Polling {
    client: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    headers: HeaderMap,
    url: url::Url,
    timeout: std::time::Duration,
    max_payload: usize,
}

impl Polling {
    pub(crate) fn new(config: &Config, headers: HeaderMap) -> Self {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        #[cfg(feature = "rustls")]
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*crate::tls::config(config)).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        #[cfg(not(feature = "rustls"))]
        let connector = http;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        Self {
            client,
            headers,
            url: config.endpoint("polling", None),
            timeout: config.request_timeout,
            max_payload: config.max_payload,
        }
    }

    /// The same requests, now for session `sid`.
    pub(crate) fn with_sid(&self, config: &Config, sid: &str) -> Self {
        Self {
            url: config.endpoint("polling", Some(sid)),
            ..self.clone()
        }
    }

    /// GET: the server's next payload.
    pub(crate) async fn get(&self) -> Result<Bytes, Error> {
        self.request(Method::GET, Bytes::new()).await
    }

    /// POST a payload; the server answers `ok`.
    pub(crate) async fn post(&self, body: Bytes) -> Result<(), Error> {
        self.request(Method::POST, body).await.map(drop)
    }

    async fn request(&self, method: Method, body: Bytes) -> Result<Bytes, Error> {
        let url = self.url.as_str();
        let connect_error = |source: Cause| Error::Connect {
            url: url.to_owned(),
            source,
        };
        let mut builder = Request::builder().method(method.clone()).uri(url);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        if method == Method::POST {
            builder = builder.header(http::header::CONTENT_TYPE, "text/plain;charset=UTF-8");
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| connect_error(e.into()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| connect_error(e.into()))?;
            let status = response.status();
            let too_large = || Error::TooLarge {
                url: url.to_owned(),
                limit: self.max_payload,
            };
            // Read at most `max_payload` bytes: a larger answer is not held, whatever it says.
            let declared = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if declared.is_some_and(|n| n > self.max_payload as u64) {
                return Err(too_large());
            }
            let body = http_body_util::Limited::new(response.into_body(), self.max_payload)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        too_large()
                    } else {
                        connect_error(e)
                    }
                })?
                .to_bytes();
            if !status.is_success() {
                return Err(Error::Status {
                    url: url.to_owned(),
                    status: status.as_u16(),
                    // One line of the server's words: a log line must not be forged by them.
                    body: String::from_utf8_lossy(&body[..body.len().min(200)])
                        .chars()
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .collect(),
                });
            }
            Ok(body)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Error::RequestTimeout {
                url: url.to_owned(),
                timeout: self.timeout,
            })?
    }
}
