//! The machine's HTTP API (`/api/v1/history`, `/history/current`, `/history/last`), with
//! timeouts and errors that name the URL. Feature `api`.

use std::time::Duration;

use http_client::{HttpClient, HttpError, Limits};

use crate::{CurrentShot, Entry, HistoryPage};

/// Why a request to the machine failed, with the URL asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The URL cannot be used.
    #[error("{url} is not a machine URL: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The machine could not be reached.
    #[error("GET {url}: cannot reach the machine: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// The connection's error.
        reason: String,
    },
    /// No answer in time.
    #[error("GET {url}: no answer within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// The machine answered with an error status.
    #[error("GET {url}: HTTP {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the answer.
        body: String,
    },
    /// The answer is not what this model expects.
    #[error("GET {url}: the answer does not read as expected: {source}")]
    Json {
        /// The URL.
        url: String,
        /// serde_json's reason.
        source: serde_json::Error,
    },
}

/// A query of `GET /api/v1/history`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryQuery {
    /// How many (the machine's default is 20; 0 for all).
    pub max_results: Option<usize>,
    /// With samples (the machine's default) or without (`data: null`).
    pub dump_data: Option<bool>,
    /// Only these shots (UUIDs).
    pub ids: Vec<String>,
    /// Only shots at or after this time (Unix seconds).
    pub start_date: Option<f64>,
    /// Only shots at or before this time (Unix seconds).
    pub end_date: Option<f64>,
}

/// A client of one machine's HTTP API.
#[derive(Debug, Clone)]
pub struct Api {
    base: url::Url,
    client: HttpClient,
    timeout: Duration,
}

impl Api {
    /// A client for the machine at `base` (`http://meticulous.local`), each request limited to
    /// `timeout` (a whole history can be megabytes: allow a minute or two for it).
    pub fn new(base: &str, timeout: Duration) -> Result<Self, ApiError> {
        let bad = |reason: String| ApiError::BadUrl {
            url: base.to_owned(),
            reason,
        };
        let mut url = url::Url::parse(base).map_err(|e| bad(e.to_string()))?;
        if url.scheme() != "http" {
            return Err(bad(format!(
                "the machine serves plain http, not {}",
                url.scheme()
            )));
        }
        if url.host_str().is_none() {
            return Err(bad("no host".to_owned()));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(Self {
            base: url,
            client: HttpClient::new(timeout.min(Duration::from_secs(10))),
            timeout,
        })
    }

    /// The machine's base URL.
    pub fn base(&self) -> &str {
        self.base.as_str()
    }

    /// `GET /api/v1/history` with `query`.
    pub async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, ApiError> {
        let mut url = self.url("api/v1/history")?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(n) = query.max_results {
                q.append_pair("max_results", &n.to_string());
            }
            if let Some(d) = query.dump_data {
                q.append_pair("dump_data", if d { "true" } else { "false" });
            }
            if !query.ids.is_empty() {
                q.append_pair("ids", &query.ids.join(","));
            }
            if let Some(t) = query.start_date {
                q.append_pair("start_date", &t.to_string());
            }
            if let Some(t) = query.end_date {
                q.append_pair("end_date", &t.to_string());
            }
        }
        self.get_json(url).await
    }

    /// One saved shot with its samples, or `None` if the machine has no such shot (yet).
    pub async fn shot(&self, id: &str) -> Result<Option<Entry>, ApiError> {
        let page = self
            .history(&HistoryQuery {
                ids: vec![id.to_owned()],
                dump_data: Some(true),
                max_results: Some(1),
                ..HistoryQuery::default()
            })
            .await?;
        Ok(page.history.into_iter().find(|e| e.id == id))
    }

    /// `GET /api/v1/history/current`: the shot in progress, `None` between shots.
    pub async fn current(&self) -> Result<Option<CurrentShot>, ApiError> {
        self.get_json(self.url("api/v1/history/current")?).await
    }

    /// `GET /api/v1/history/last`: the newest saved shot.
    pub async fn last(&self) -> Result<Option<Entry>, ApiError> {
        self.get_json(self.url("api/v1/history/last")?).await
    }

    fn url(&self, path: &str) -> Result<url::Url, ApiError> {
        self.base.join(path).map_err(|e| ApiError::BadUrl {
            url: self.base.to_string(),
            reason: e.to_string(),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: url::Url) -> Result<T, ApiError> {
        let shown = url.to_string();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        let limits = Limits {
            timeout: self.timeout,
            max_body: MAX_ANSWER,
        };
        let answer = self
            .client
            .get(&url, headers, limits)
            .await
            .map_err(|e| match e {
                HttpError::Timeout { timeout, .. } => ApiError::Timeout {
                    url: shown.clone(),
                    timeout,
                },
                other => ApiError::Unreachable {
                    url: shown.clone(),
                    reason: match other {
                        HttpError::Unreachable { reason, .. } => reason,
                        other => other.to_string(),
                    },
                },
            })?;
        if !answer.status.is_success() {
            return Err(ApiError::Status {
                url: shown,
                status: answer.status.as_u16(),
                body: answer.excerpt(),
            });
        }
        serde_json::from_slice(&answer.body).map_err(|source| ApiError::Json { url: shown, source })
    }
}

/// The largest answer read from the machine. A shot's samples are about 700 bytes each (a
/// 30 s shot is 150 KB, a 10-minute one 3.4 MB) and a listing page of 100 shots without samples
/// well under 1 MB: 16 MiB holds a 50-minute shot, or a page of very large profiles, with room.
/// A larger answer is an error (`ApiError::Unreachable` saying so), never held.
pub const MAX_ANSWER: usize = 16 << 20;
