//! What is called after every finished live shot: its webhooks (JSON, or an ntfy-style
//! notification for a phone) and the configured external analyzers (an HTTP endpoint that gets
//! the shot and answers JSON, stored under its own name), as configured and checked
//! ([`Hooks::new`]), and one try of each ([`Webhook::attempt`], [`Analyzer::analyze`]). When
//! and how often they are called, durably and once, is [`crate::outbox`]'s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use meticulous::analysis::Facts;
use serde_json::{Value, json};
use storage::ShotSummary;

use crate::document;
pub use crate::http::Retry;
use crate::http::{Poster, refused_for_good, retry_after, user_agent};

/// Why a webhook or an analyzer cannot be configured as given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HookError {
    /// The name is not one crema takes.
    #[error("{what} name {name:?}: {reason}")]
    Name {
        /// `webhook` or `analyzer`.
        what: &'static str,
        /// The name given.
        name: String,
        /// What is wrong and what to write instead.
        reason: &'static str,
    },
    /// Two of one kind share a name.
    #[error("two {what}s are named {name:?}: names must differ")]
    Duplicate {
        /// `webhook` or `analyzer`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The URL cannot be used.
    #[error("{what} {name}: {reason}")]
    Url {
        /// `webhook` or `analyzer`.
        what: &'static str,
        /// Its name.
        name: String,
        /// What is wrong with the URL.
        reason: String,
    },
    /// The token cannot be sent in a header.
    #[error(
        "webhook {name}: the token is not a header value (no line breaks or control characters)"
    )]
    Token {
        /// The webhook's name.
        name: String,
    },
    /// `timeout_s` is not a number of seconds.
    #[error("analyzer {name}: timeout_s = {value} is not a duration in seconds")]
    Timeout {
        /// The analyzer's name.
        name: String,
        /// The value given.
        value: f64,
    },
    /// A `NAME=URL` flag without its `=`.
    #[error("{flag:?}: write NAME=URL")]
    Flag {
        /// The flag's value.
        flag: String,
    },
    /// Visualizer's configuration.
    #[error(transparent)]
    Visualizer(#[from] crate::visualizer::VisualizerError),
}

/// Why an external analyzer gave no analysis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnalyzeError {
    /// No answer: unreachable, too slow, or too large.
    #[error("analyzer {name}: {reason}")]
    NoAnswer {
        /// The analyzer's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// An error status.
    #[error("analyzer {name}: {url} answered HTTP {status}: {excerpt}")]
    Status {
        /// The analyzer's name.
        name: String,
        /// Its URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the answer.
        excerpt: String,
    },
    /// An answer that is not JSON.
    #[error("analyzer {name}: {url} answered something that is not JSON: {excerpt}")]
    NotJson {
        /// The analyzer's name.
        name: String,
        /// Its URL.
        url: String,
        /// The start of the answer.
        excerpt: String,
    },
}

/// A name for an analyzer or a webhook: letters, digits, `-`, `_`, `.` and `/`, at most 64.
fn check_name(what: &'static str, name: &str) -> Result<(), HookError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    {
        return Err(HookError::Name {
            what,
            name: name.to_owned(),
            reason: "use 1 to 64 letters, digits, '-', '_', '.' and '/'",
        });
    }
    Ok(())
}

/// An external analyzer: `POST`s the shot document as JSON to its URL and stores the JSON it
/// answers under its name.
#[derive(Debug)]
pub struct Analyzer {
    name: String,
    poster: Poster,
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Analyzer {
    /// Checks the name (not `shot-facts…`, the built-in analyzer's, nor `visualizer`, under
    /// which Visualizer uploads are kept and from which the page links a shot) and the URL.
    pub fn new(name: &str, url: &str, timeout: Duration) -> Result<Self, HookError> {
        check_name("analyzer", name)?;
        if name.starts_with("shot-facts") {
            return Err(HookError::Name {
                what: "analyzer",
                name: name.to_owned(),
                reason: "shot-facts is the built-in analyzer's",
            });
        }
        if name.eq_ignore_ascii_case(document::VISUALIZER) {
            return Err(HookError::Name {
                what: "analyzer",
                name: name.to_owned(),
                reason: "visualizer is where Visualizer uploads are kept",
            });
        }
        Ok(Self {
            name: name.to_owned(),
            poster: Poster::new(url, timeout).map_err(|reason| HookError::Url {
                what: "analyzer",
                name: name.to_owned(),
                reason,
            })?,
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    /// Its name, under which its answers are stored.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Analyses that succeeded and that failed so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    /// Sends `shot` (a [`document::document`]) and answers the analysis, compact JSON text.
    /// Fails on no answer, an error status, or an answer that is not JSON.
    pub async fn analyze(&self, shot: &Value) -> Result<String, AnalyzeError> {
        let result = self.exchange(shot).await;
        let counter = if result.is_ok() {
            &self.ok
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    async fn exchange(&self, shot: &Value) -> Result<String, AnalyzeError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(http::header::USER_AGENT, user_agent());
        let body = Bytes::from(shot.to_string());
        let answer = self
            .poster
            .post(headers, body)
            .await
            .map_err(|e| AnalyzeError::NoAnswer {
                name: self.name.clone(),
                reason: e.to_string(),
            })?;
        if !answer.status.is_success() {
            return Err(AnalyzeError::Status {
                name: self.name.clone(),
                url: self.poster.url().to_owned(),
                status: answer.status.as_u16(),
                excerpt: answer.excerpt(),
            });
        }
        let value: Value =
            serde_json::from_slice(&answer.body).map_err(|_| AnalyzeError::NotJson {
                name: self.name.clone(),
                url: self.poster.url().to_owned(),
                excerpt: answer.excerpt(),
            })?;
        Ok(value.to_string())
    }
}

/// What a webhook sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookFormat {
    /// `{"event":"shot_finished","delivery","shot","facts"}` as `application/json`.
    #[default]
    Json,
    /// A line of text with `Title` and `Tags` headers, as ntfy (and its clones) take it.
    Ntfy,
}

/// A webhook's counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct HookStats {
    /// Shots the receiver accepted (2xx).
    pub delivered: AtomicU64,
    /// Shots given up on: refused (4xx) or out of tries.
    pub failed: AtomicU64,
    /// Tries after a first one failed.
    pub retries: AtomicU64,
}

/// A webhook called on every finished live shot.
pub struct Webhook {
    name: String,
    format: HookFormat,
    token: Option<String>,
    retry: Retry,
    poster: Poster,
    /// Its counters.
    pub stats: HookStats,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("token", &http_client::redacted(&self.token))
            .field("retry", &self.retry)
            .field("poster", &self.poster)
            .finish_non_exhaustive()
    }
}

/// A finished live shot, as webhooks get it.
#[derive(Debug, Clone)]
pub struct FinishedShot {
    /// Its summary.
    pub summary: ShotSummary,
    /// Its `shot-facts/1`.
    pub facts: Facts,
}

/// A delivery's id, the same on every try: receivers may deduplicate on it (it is sent as
/// `Idempotency-Key`). A shot cut by a disconnect is delivered when it is cut and again when its
/// resumed recording ends: the sample count tells the two apart.
pub fn delivery_id(shot_key: i64, samples: i64) -> String {
    format!("shot-{shot_key}-{samples}")
}

impl FinishedShot {
    /// One line for a person: `Classic 9 bar: 36.2 g in 29.8 s, peak 9.0 bar`.
    pub fn line(&self) -> String {
        let s = &self.summary;
        let name = s
            .profile_name
            .as_deref()
            .or(s.name.as_deref())
            .filter(|n| !n.is_empty())
            .unwrap_or("Shot");
        let mut parts = Vec::new();
        if let Some(g) = self.facts.yield_g {
            parts.push(format!("{g:.1} g"));
        }
        if let Some(t) = self.facts.total_time_s {
            parts.push(format!("in {t:.1} s"));
        }
        let mut line = format!("{name}: {}", parts.join(" "));
        if let Some(p) = self.facts.peak_pressure_bar {
            line.push_str(&format!(", peak {p:.1} bar"));
        }
        if parts.is_empty() {
            line = format!("{name}: {} samples", s.sample_count);
        }
        line
    }
}

impl Webhook {
    /// Checks the name and the URL; `token` is sent as `Authorization: Bearer`.
    pub fn new(
        name: &str,
        url: &str,
        format: HookFormat,
        token: Option<String>,
        retry: Retry,
    ) -> Result<Self, HookError> {
        check_name("webhook", name)?;
        if let Some(t) = &token
            && HeaderValue::from_str(&format!("Bearer {t}")).is_err()
        {
            return Err(HookError::Token {
                name: name.to_owned(),
            });
        }
        Ok(Self {
            name: name.to_owned(),
            format,
            token,
            retry: Retry {
                attempts: retry.attempts.max(1),
                ..retry
            },
            poster: Poster::new(url, Duration::from_secs(10)).map_err(|reason| HookError::Url {
                what: "webhook",
                name: name.to_owned(),
                reason,
            })?,
            stats: HookStats::default(),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn request(&self, shot: &FinishedShot, delivery: &str) -> (HeaderMap, Bytes) {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::USER_AGENT, user_agent());
        if let Ok(v) = HeaderValue::from_str(delivery) {
            headers.insert(HeaderName::from_static("idempotency-key"), v);
        }
        if let Some(t) = &self.token
            && let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}"))
        {
            headers.insert(AUTHORIZATION, v);
        }
        let body = match self.format {
            HookFormat::Json => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                let body = json!({
                    "event": "shot_finished",
                    "delivery": delivery,
                    "shot": document::summary(&shot.summary),
                    "facts": shot.facts,
                });
                Bytes::from(body.to_string())
            }
            HookFormat::Ntfy => {
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                // Machine names are ASCII letters, digits, '-' and '_': a valid header value.
                let title = format!("Shot finished on {}", shot.summary.machine);
                if let Ok(v) = HeaderValue::from_str(&title) {
                    headers.insert(HeaderName::from_static("title"), v);
                }
                headers.insert(
                    HeaderName::from_static("tags"),
                    HeaderValue::from_static("coffee"),
                );
                Bytes::from(shot.line())
            }
        };
        (headers, body)
    }

    /// How it retries.
    pub fn retry(&self) -> Retry {
        self.retry
    }

    /// Try `attempt` (from 1) of delivering `shot` under `delivery` (its idempotency key):
    /// logged and counted here.
    pub async fn attempt(&self, shot: &FinishedShot, delivery: &str, attempt: u32) -> Tried {
        let (headers, body) = self.request(shot, delivery);
        let (name, url, key) = (&self.name, self.poster.url(), shot.summary.key);
        let last = attempt >= self.retry.attempts;
        let tried = match self.poster.post(headers, body).await {
            Ok(answer) if answer.status.is_success() => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(webhook = %name, shot = key, attempt, "webhook delivered");
                return Tried::Delivered;
            }
            Ok(answer) if refused_for_good(answer.status) => {
                let moved = answer
                    .headers
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(|to| format!(" (it moved to {to})"))
                    .unwrap_or_default();
                let error = format!(
                    "{url} refused shot {key} with HTTP {}{moved}: {}",
                    answer.status.as_u16(),
                    answer.excerpt()
                );
                tracing::error!(
                    webhook = %name, shot = key,
                    "webhook {name}: {error}; not retrying (fix the webhook's URL or token)"
                );
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                return Tried::Refused(error);
            }
            Ok(answer) => {
                let error = format!("{url} answered HTTP {}", answer.status.as_u16());
                tracing::warn!(
                    webhook = %name, shot = key, attempt,
                    "webhook {name}: {error} for shot {key} (try {attempt} of {})",
                    self.retry.attempts
                );
                Tried::Again {
                    wait: retry_after(&answer.headers),
                    error,
                }
            }
            Err(e) => {
                tracing::warn!(
                    webhook = %name, shot = key, attempt,
                    "webhook {name}: {e} (shot {key}, try {attempt} of {})",
                    self.retry.attempts
                );
                Tried::Again {
                    wait: None,
                    error: e.to_string(),
                }
            }
        };
        if last {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                webhook = %name, shot = key,
                "webhook {name}: gave up on shot {key} after {} tries to {url}",
                self.retry.attempts
            );
            let Tried::Again { error, .. } = tried else {
                return tried;
            };
            return Tried::Refused(format!("out of tries: {error}"));
        }
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
        tried
    }
}

/// What one try of a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tried {
    /// Accepted.
    Delivered,
    /// Worth another try: after `wait` if the receiver asked for one, else as [`Retry`] says.
    Again {
        /// The receiver's `Retry-After`.
        wait: Option<Duration>,
        /// What went wrong.
        error: String,
    },
    /// Failed for good (refused, or out of tries).
    Refused(String),
}

/// An external analyzer as configured (`[[analyzers]]` in `crema.toml`, or
/// `--analyzer NAME=URL`).
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzerConfig {
    /// Its name, under which answers are stored.
    pub name: String,
    /// Where the shot is POSTed.
    pub url: String,
    /// How long an answer may take, seconds (default 60: language models are slow).
    pub timeout_s: Option<f64>,
}

impl std::fmt::Debug for AnalyzerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyzerConfig")
            .field("name", &self.name)
            .field("url", &http_client::shown_text(&self.url))
            .field("timeout_s", &self.timeout_s)
            .finish()
    }
}

impl AnalyzerConfig {
    /// The analyzer, checked.
    pub fn build(&self) -> Result<Arc<Analyzer>, HookError> {
        let value = self.timeout_s.unwrap_or(60.0);
        let timeout = Duration::try_from_secs_f64(value).map_err(|_| HookError::Timeout {
            name: self.name.clone(),
            value,
        })?;
        Ok(Arc::new(Analyzer::new(&self.name, &self.url, timeout)?))
    }

    /// An analyzer from a `--analyzer NAME=URL` flag, with the defaults.
    pub fn from_flag(flag: &str) -> Result<Self, HookError> {
        let (name, url) = named_url(flag)?;
        Ok(Self {
            name,
            url,
            timeout_s: None,
        })
    }
}

/// A webhook as configured (`[[webhooks]]` in `crema.toml`, or `--webhook` / `--ntfy
/// NAME=URL`).
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Its name (log lines, `/metrics`).
    pub name: String,
    /// Where shots are POSTed.
    pub url: String,
    /// `json` (the default) or `ntfy`.
    #[serde(default)]
    pub format: HookFormat,
    /// Sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// Tries in all (default 6).
    pub attempts: Option<u32>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &http_client::shown_text(&self.url))
            .field("format", &self.format)
            .field("token", &http_client::redacted(&self.token))
            .field("attempts", &self.attempts)
            .finish()
    }
}

impl WebhookConfig {
    /// The webhook, checked.
    pub fn build(&self) -> Result<Arc<Webhook>, HookError> {
        let mut retry = Retry::default();
        if let Some(n) = self.attempts {
            retry.attempts = n;
        }
        Ok(Arc::new(Webhook::new(
            &self.name,
            &self.url,
            self.format,
            self.token.clone(),
            retry,
        )?))
    }
}

impl WebhookConfig {
    /// A webhook from a `--webhook NAME=URL` (JSON) or `--ntfy NAME=URL` flag, with the
    /// defaults.
    pub fn from_flag(flag: &str, format: HookFormat) -> Result<Self, HookError> {
        let (name, url) = named_url(flag)?;
        Ok(Self {
            name,
            url,
            format,
            token: None,
            attempts: None,
        })
    }
}

/// A `NAME=URL` flag.
fn named_url(flag: &str) -> Result<(String, String), HookError> {
    match flag.split_once('=') {
        Some((name, url)) if !name.is_empty() && !name.contains("://") => {
            Ok((name.to_owned(), url.to_owned()))
        }
        _ => Err(HookError::Flag {
            flag: flag.to_owned(),
        }),
    }
}

/// A process's webhooks, external analyzers and Visualizer account, checked.
#[derive(Debug, Default)]
pub struct Hooks {
    /// The webhooks.
    pub webhooks: Vec<Arc<Webhook>>,
    /// The external analyzers.
    pub analyzers: Vec<Arc<Analyzer>>,
    /// Where finished shots are uploaded, if anywhere.
    pub visualizer: Option<Arc<crate::visualizer::Visualizer>>,
}

impl Hooks {
    /// Checks and builds what is configured (names are unique among webhooks, and among
    /// analyzers).
    pub fn new(
        webhooks: &[WebhookConfig],
        analyzers: &[AnalyzerConfig],
    ) -> Result<Hooks, HookError> {
        for (what, names) in [
            (
                "webhook",
                webhooks.iter().map(|w| &w.name).collect::<Vec<_>>(),
            ),
            ("analyzer", analyzers.iter().map(|a| &a.name).collect()),
        ] {
            let mut seen = std::collections::BTreeSet::new();
            for name in names {
                if !seen.insert(name) {
                    return Err(HookError::Duplicate {
                        what,
                        name: name.clone(),
                    });
                }
            }
        }
        Ok(Hooks {
            webhooks: webhooks
                .iter()
                .map(WebhookConfig::build)
                .collect::<Result<_, _>>()?,
            analyzers: analyzers
                .iter()
                .map(AnalyzerConfig::build)
                .collect::<Result<_, _>>()?,
            visualizer: None,
        })
    }
}

/// The `NAME=URL` flags of the hooks (`--webhook`, `--ntfy`, `--analyzer`), the same on both
/// binaries.
#[derive(Debug, Clone, Copy, Default)]
pub struct HookFlags<'a> {
    /// `--webhook NAME=URL`: JSON webhooks.
    pub webhooks: &'a [String],
    /// `--ntfy NAME=URL`: ntfy-style notifications.
    pub ntfy: &'a [String],
    /// `--analyzer NAME=URL`: external analyzers.
    pub analyzers: &'a [String],
}

impl<'a> HookFlags<'a> {
    /// The `--webhook`, `--ntfy` and `--analyzer` flags' values.
    pub fn new(webhooks: &'a [String], ntfy: &'a [String], analyzers: &'a [String]) -> Self {
        Self {
            webhooks,
            ntfy,
            analyzers,
        }
    }
}

impl Hooks {
    /// What a config file (`webhooks`, `analyzers`, `visualizer`) and the flags configure
    /// together, checked.
    pub fn configure(
        mut webhooks: Vec<WebhookConfig>,
        mut analyzers: Vec<AnalyzerConfig>,
        flags: HookFlags<'_>,
        visualizer: Option<&crate::visualizer::VisualizerConfig>,
    ) -> Result<Hooks, HookError> {
        for flag in flags.webhooks {
            webhooks.push(WebhookConfig::from_flag(flag, HookFormat::Json)?);
        }
        for flag in flags.ntfy {
            webhooks.push(WebhookConfig::from_flag(flag, HookFormat::Ntfy)?);
        }
        for flag in flags.analyzers {
            analyzers.push(AnalyzerConfig::from_flag(flag)?);
        }
        let mut hooks = Hooks::new(&webhooks, &analyzers)?;
        hooks.visualizer = visualizer.map(|v| v.build().map(Arc::new)).transpose()?;
        Ok(hooks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_some_client_errors_are_worth_another_try() {
        for (code, final_) in [
            (400, true),
            (401, true),
            (404, true),
            (408, false),
            (429, false),
        ] {
            assert_eq!(
                refused_for_good(http::StatusCode::from_u16(code).unwrap()),
                final_,
                "{code}"
            );
        }
        assert!(!refused_for_good(http::StatusCode::SERVICE_UNAVAILABLE));
    }

    #[test]
    fn names_and_urls_are_checked() {
        let t = Duration::from_secs(1);
        assert!(Analyzer::new("coach", "http://127.0.0.1:9/x", t).is_ok());
        assert!(Analyzer::new("shot-facts/2", "http://127.0.0.1:9/x", t).is_err());
        assert!(Analyzer::new("a b", "http://127.0.0.1:9/x", t).is_err());
        assert!(Analyzer::new("coach", "ftp://127.0.0.1/x", t).is_err());
        let hook = |token: Option<&str>| {
            Webhook::new(
                "phone",
                "https://ntfy.example/espresso",
                HookFormat::Ntfy,
                token.map(str::to_owned),
                Retry::default(),
            )
        };
        assert!(hook(Some("tk_123")).is_ok());
        assert!(hook(Some("bad\ntoken")).is_err());
    }

    #[test]
    fn names_are_unique_per_kind() {
        let hook = |name: &str| WebhookConfig {
            name: name.into(),
            url: "http://127.0.0.1:9/".into(),
            format: HookFormat::Json,
            token: None,
            attempts: None,
        };
        let analyzer = |name: &str| AnalyzerConfig {
            name: name.into(),
            url: "http://127.0.0.1:9/".into(),
            timeout_s: None,
        };
        let built = Hooks::new(&[hook("a"), hook("b")], &[analyzer("a")]).unwrap();
        assert_eq!((built.webhooks.len(), built.analyzers.len()), (2, 1));
        let error = Hooks::new(&[hook("a"), hook("a")], &[]).unwrap_err();
        assert!(
            error.to_string().contains("two webhooks are named \"a\""),
            "{error}"
        );
        assert!(Hooks::new(&[], &[analyzer("x"), analyzer("x")]).is_err());
    }

    #[test]
    fn retry_after_in_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static(" 7 "));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
