//! One URL that webhooks and external analyzers POST to, through the process's shared
//! [`HttpClient`] (pooled connections; TLS with the Mozilla roots only for `https://`).

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_client::{Answer, HttpClient, HttpError, Limits};

/// An answer is read up to this size; past it the request fails.
pub(crate) const MAX_ANSWER: usize = 1 << 20;

/// A URL to POST to, with its time limit.
#[derive(Debug, Clone)]
pub(crate) struct Poster {
    client: HttpClient,
    url: url::Url,
    timeout: Duration,
}

impl Poster {
    /// Checks `url` (`http` or `https`, with a host); the error says what is wrong with it.
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            client: HttpClient::shared(),
            url: http_client::check_url(url, true)?,
            timeout,
        })
    }

    /// The URL, for log lines.
    pub(crate) fn url(&self) -> &str {
        self.url.as_str()
    }

    /// POSTs `body` with `headers`; any status is an answer.
    pub(crate) async fn post(&self, headers: HeaderMap, body: Bytes) -> Result<Answer, HttpError> {
        let limits = Limits {
            timeout: self.timeout,
            max_body: MAX_ANSWER,
        };
        self.client.post(&self.url, headers, body, limits).await
    }
}
