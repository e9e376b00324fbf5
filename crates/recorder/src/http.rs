//! One URL that webhooks, external analyzers and Visualizer uploads POST to, through the
//! process's shared [`HttpClient`] (pooled connections; TLS with the Mozilla roots only for
//! `https://`), and what their answers mean for another try: the same rules for all three.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_client::{Answer, HttpClient, HttpError, Limits};

/// An answer is read up to this size; past it the request fails.
pub(crate) const MAX_ANSWER: usize = 1 << 20;

/// A URL to POST to, with its time limit.
#[derive(Debug, Clone)]
pub(crate) struct Poster {
    client: HttpClient,
    url: Secret<url::Url>,
    /// The URL as logs show it ([`http_client::shown`]).
    shown: String,
    timeout: Duration,
}

/// A value `Debug` does not print.
#[derive(Clone)]
pub(crate) struct Secret<T>(pub(crate) T);

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(http_client::REDACTED)
    }
}

impl Poster {
    /// Checks `url` (`http` or `https`, with a host); the error says what is wrong with it.
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let url = http_client::check_url(url, true)?;
        Ok(Self {
            client: HttpClient::shared(),
            shown: http_client::shown(&url),
            url: Secret(url),
            timeout,
        })
    }

    /// The URL as log lines and stored errors show it: scheme, host and a hash of the rest.
    pub(crate) fn url(&self) -> &str {
        &self.shown
    }

    /// POSTs `body` with `headers`; any status is an answer.
    pub(crate) async fn post(&self, headers: HeaderMap, body: Bytes) -> Result<Answer, HttpError> {
        let limits = Limits {
            timeout: self.timeout,
            max_body: MAX_ANSWER,
        };
        self.client.post(&self.url.0, headers, body, limits).await
    }
}

/// How a delivery retries: up to `attempts` in all, waiting `first`, then twice as long each
/// time, at most `max` (a `Retry-After` of the receiver's is honoured within `max`).
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Tries in all (the first included).
    pub attempts: u32,
    /// The first wait.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Retry {
    /// Six tries over about a minute: 2, 4, 8, 16 and 32 s apart.
    fn default() -> Self {
        Self {
            attempts: 6,
            first: Duration::from_secs(2),
            max: Duration::from_secs(300),
        }
    }
}

impl Retry {
    /// The wait after try `attempt` (from 1) failed: `first`, doubling, at most `max`; the
    /// receiver's `asked` wait within `max` instead, when it gave one.
    pub fn wait(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        let doubled = self
            .first
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        asked.unwrap_or(doubled).min(self.max)
    }
}

/// An answer that another try will not change: a redirect (not followed: configure the URL it
/// names) or a 4xx other than 408, 425 and 429.
pub(crate) fn refused_for_good(status: http::StatusCode) -> bool {
    status.is_redirection()
        || (status.is_client_error() && !matches!(status.as_u16(), 408 | 425 | 429))
}

/// `Retry-After` in seconds (the date form is ignored).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// The `User-Agent` of every request crema makes.
pub(crate) fn user_agent() -> HeaderValue {
    HeaderValue::from_static(concat!("crema/", env!("CARGO_PKG_VERSION")))
}
