//! Uploads to Visualizer (visualizer.coffee, where espresso people share and compare shots): the
//! configuration ([`VisualizerConfig`]), one try of one upload ([`Visualizer::upload`]), and
//! what its answer means. When and how often a shot is uploaded, durably and once, is
//! [`crate::outbox`]'s; the `upload` run sends the history.
//!
//! The API: `POST {url}/api/shots/upload`, `multipart/form-data` with the shot file in the
//! field `file`, HTTP Basic (the account's email and password) or an OAuth bearer token with
//! the `upload` scope. The answer is `{"id": "<uuid>"}`; the shot's page is
//! `{url}/shots/{id}`. Visualizer recognises a Meticulous file by `profile_name` and `data` at
//! its top, and keys its shots on a digest of `data`: the same file uploaded twice is one shot
//! with one id, so a try repeated after a crash does no harm.
//!
//! Errors answer `{"error": "…"}`: a `422` (a file it cannot read, or the daily limit of a free
//! account), a `401` (wrong credentials) or any `4xx` but `408` and `429` is final and logged
//! with Visualizer's text; a `429` (its rate limits), a `5xx` or no answer is tried again.

use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};

use crate::http::{Poster, Retry, refused_for_good, retry_after, user_agent};

/// Where shots go unless told otherwise.
pub const DEFAULT_URL: &str = "https://visualizer.coffee";

/// The analysis name under which a shot's Visualizer id is stored (`{"id", "url"}`).
pub const ANALYSIS: &str = crate::document::VISUALIZER;

/// The environment variables the recorder reads the credentials from (never the command line,
/// where every user of the box could read them).
pub const ENV_USERNAME: &str = "VISUALIZER_USERNAME";
/// See [`ENV_USERNAME`].
pub const ENV_PASSWORD: &str = "VISUALIZER_PASSWORD";
/// See [`ENV_USERNAME`].
pub const ENV_TOKEN: &str = "VISUALIZER_TOKEN";

/// How an upload is retried: for about a day (a box that lost its network overnight still
/// uploads in the morning), 10 s then doubling up to 30 min.
pub const RETRY: Retry = Retry {
    attempts: 54,
    first: Duration::from_secs(10),
    max: Duration::from_secs(30 * 60),
};

/// How long one upload may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Why Visualizer cannot be configured as given.
#[derive(Debug, thiserror::Error)]
#[error("visualizer: {reason}")]
pub struct VisualizerError {
    reason: String,
}

impl VisualizerError {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// Visualizer as configured: `[visualizer]` in `crema.toml`, or the recorder's `--visualizer
/// URL` with the credentials from the environment ([`VisualizerConfig::from_env`]).
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisualizerConfig {
    /// The server (default `https://visualizer.coffee`).
    #[serde(default = "default_url")]
    pub url: String,
    /// The account's email, for HTTP Basic (with `password`).
    pub username: Option<String>,
    /// The account's password.
    pub password: Option<String>,
    /// An OAuth access token with the `upload` scope, sent as `Authorization: Bearer`
    /// (instead of `username` and `password`).
    pub token: Option<String>,
}

impl std::fmt::Debug for VisualizerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisualizerConfig")
            .field("url", &http_client::shown_text(&self.url))
            .field("username", &self.username)
            .field("password", &http_client::redacted(&self.password))
            .field("token", &http_client::redacted(&self.token))
            .finish()
    }
}

fn default_url() -> String {
    DEFAULT_URL.to_owned()
}

impl VisualizerConfig {
    /// The recorder's form: `url` from the flag (empty for the default), the credentials from
    /// `env` ([`ENV_USERNAME`] and [`ENV_PASSWORD`], or [`ENV_TOKEN`]).
    pub fn from_env(url: &str, env: impl Fn(&str) -> Option<String>) -> Self {
        let url = if url.is_empty() {
            default_url()
        } else {
            url.to_owned()
        };
        let var = |name| env(name).filter(|v: &String| !v.is_empty());
        Self {
            url,
            username: var(ENV_USERNAME),
            password: var(ENV_PASSWORD),
            token: var(ENV_TOKEN),
        }
    }

    /// The uploader, checked: a usable URL, and one way to sign in.
    pub fn build(&self) -> Result<Visualizer, VisualizerError> {
        let auth = match (&self.username, &self.password, &self.token) {
            (None, None, Some(token)) => format!("Bearer {token}"),
            (Some(user), Some(password), None) => {
                let pair = format!("{user}:{password}");
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
            (_, _, Some(_)) => {
                return Err(VisualizerError::new(
                    "give either a token or a username and a password, not both",
                ));
            }
            (Some(_), None, None) => {
                return Err(VisualizerError::new(
                    "a username needs its password (VISUALIZER_PASSWORD for the recorder)",
                ));
            }
            (None, Some(_), None) => {
                return Err(VisualizerError::new(
                    "a password needs its username (VISUALIZER_USERNAME for the recorder)",
                ));
            }
            (None, None, None) => {
                return Err(VisualizerError::new(
                    "no credentials: set username and password (the account's email and password) or token \
                     (VISUALIZER_USERNAME and VISUALIZER_PASSWORD, or VISUALIZER_TOKEN, for the recorder)",
                ));
            }
        };
        let mut auth = HeaderValue::from_str(&auth).map_err(|_| {
            VisualizerError::new("the credentials hold a line break or a control character")
        })?;
        auth.set_sensitive(true);
        let base = self.url.trim_end_matches('/').to_owned();
        let poster = Poster::new(&format!("{base}/api/shots/upload"), TIMEOUT)
            .map_err(|reason| VisualizerError::new(format!("url {:?}: {reason}", self.url)))?;
        Ok(Visualizer {
            base,
            poster,
            auth,
            stats: UploadStats::default(),
        })
    }
}

/// Counters of one process's uploads (`/metrics`).
#[derive(Debug, Default)]
pub struct UploadStats {
    /// Shots uploaded.
    pub uploaded: AtomicU64,
    /// Tries that will be made again.
    pub retries: AtomicU64,
    /// Shots given up on (refused, or out of tries).
    pub failed: AtomicU64,
}

/// What one try of an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uploaded {
    /// Visualizer has the shot under `id`.
    Done {
        /// Its id at Visualizer.
        id: String,
    },
    /// Worth another try: after `wait` if Visualizer asked for one, else as [`RETRY`] says.
    Again {
        /// Visualizer's `Retry-After`.
        wait: Option<Duration>,
        /// What went wrong.
        error: String,
    },
    /// Failed for good (refused, or out of tries).
    Refused(String),
}

/// Uploads shot files to one Visualizer account. See the [module docs](self).
pub struct Visualizer {
    base: String,
    poster: Poster,
    auth: HeaderValue,
    /// Its counters.
    pub stats: UploadStats,
}

impl std::fmt::Debug for Visualizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Visualizer")
            .field("base", &http_client::shown_text(&self.base))
            .field("poster", &self.poster)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Visualizer {
    /// The page of the shot Visualizer numbered `id`.
    pub fn shot_url(&self, id: &str) -> String {
        format!("{}/shots/{id}", self.base)
    }

    /// What an upload of shot `shot` that Visualizer answered with `id` stores: the analysis
    /// [`ANALYSIS`], `{"id", "url"}`.
    pub fn analysis(&self, shot: i64, id: &str) -> storage::Analysis {
        storage::Analysis {
            shot,
            analyzer: ANALYSIS.to_owned(),
            result: serde_json::json!({"id": id, "url": self.shot_url(id)}).to_string(),
        }
    }

    /// The server, for log lines.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The request of one upload: headers and the `multipart/form-data` body with `file` (a
    /// shot file's JSON) in the field `file`, named `filename`.
    pub fn request(&self, file: &[u8], filename: &str) -> (HeaderMap, Bytes) {
        let boundary = boundary_for(file);
        let filename: String = filename
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
            .collect();
        let mut body = Vec::with_capacity(file.len() + 256);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/json\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, user_agent());
        headers.insert(AUTHORIZATION, self.auth.clone());
        if let Ok(v) = HeaderValue::from_str(&format!("multipart/form-data; boundary={boundary}")) {
            headers.insert(CONTENT_TYPE, v);
        }
        (headers, Bytes::from(body))
    }

    /// Try `attempt` (from 1) of uploading shot `key`'s file: logged and counted here.
    pub async fn upload(&self, key: i64, file: &[u8], filename: &str, attempt: u32) -> Uploaded {
        let (headers, body) = self.request(file, filename);
        let url = &self.base;
        let last = attempt >= RETRY.attempts;
        let tried = match self.poster.post(headers, body).await {
            Ok(answer) if answer.status.is_success() => match answered_id(&answer.body) {
                Some(id) => {
                    self.stats.uploaded.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        shot = key,
                        "shot {key} uploaded to Visualizer: {}",
                        self.shot_url(&id)
                    );
                    return Uploaded::Done { id };
                }
                None => {
                    let error = format!(
                        "{url} answered HTTP {} without a usable shot id: {}",
                        answer.status.as_u16(),
                        answer.excerpt()
                    );
                    tracing::warn!(shot = key, attempt, "visualizer: {error}");
                    Uploaded::Again { wait: None, error }
                }
            },
            Ok(answer) if refused_for_good(answer.status) => {
                let said = error_text(&answer.body).unwrap_or_else(|| answer.excerpt());
                let error = format!(
                    "{url} refused shot {key} with HTTP {}: {said}",
                    answer.status.as_u16()
                );
                let hint = match answer.status.as_u16() {
                    401 | 403 => {
                        "check the username and password, or the token and its upload scope"
                    }
                    _ => "not retrying",
                };
                tracing::error!(shot = key, "visualizer: {error} ({hint})");
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                return Uploaded::Refused(error);
            }
            Ok(answer) => {
                let said = error_text(&answer.body).unwrap_or_else(|| answer.excerpt());
                let error = format!("{url} answered HTTP {}: {said}", answer.status.as_u16());
                tracing::warn!(
                    shot = key,
                    attempt,
                    "visualizer: {error} (shot {key}, try {attempt} of {})",
                    RETRY.attempts
                );
                Uploaded::Again {
                    wait: retry_after(&answer.headers),
                    error,
                }
            }
            Err(e) => {
                tracing::warn!(
                    shot = key,
                    attempt,
                    "visualizer: {e} (shot {key}, try {attempt} of {})",
                    RETRY.attempts
                );
                Uploaded::Again {
                    wait: None,
                    error: e.to_string(),
                }
            }
        };
        if last {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                shot = key,
                "visualizer: gave up on shot {key} after {} tries to {url}",
                RETRY.attempts
            );
            if let Uploaded::Again { error, .. } = tried {
                return Uploaded::Refused(format!("out of tries: {error}"));
            }
            return tried;
        }
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
        tried
    }
}

/// Stored shot `key` as an upload takes it: its file's name (`<public id>.shot.json`) and the
/// shot file's JSON, as `crema-recorder export` writes it. `None` when the shot is gone. Reads
/// the samples once, as stored, without parsing them.
pub fn upload_of(
    reader: &dyn storage::Reader,
    key: i64,
) -> Result<Option<(String, Vec<u8>)>, storage::StorageError> {
    let (Some(summary), Some(file)) = (reader.shot(key)?, reader.shot_file(key)?) else {
        return Ok(None);
    };
    let name = format!("{}.shot.json", crate::document::public_id(&summary));
    Ok(Some((name, serde_json::to_vec(&file).unwrap_or_default())))
}

/// The id in an upload's answer, `{"id": "…"}` (a whole number is taken as its text). It is
/// stored, put in the shot's URL and linked from the page, so only an id of the shape
/// Visualizer gives (a UUID; letters, digits, `-` and `_`, at most 128) is taken: anything else
/// (a captive portal's page, a proxy's answer) is an answer without an id.
fn answered_id(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = match &value["id"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.as_u64()?.to_string(),
        _ => return None,
    };
    let usable = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    usable.then_some(id)
}

/// Visualizer's explanation in an error answer, `{"error": "…"}`, on one line.
fn error_text(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value["error"]
        .as_str()
        .map(|text| http_client::one_line(text, 300))
}

/// A multipart boundary that does not occur in `file`: random (the standard library's hash
/// keys are), so no file can be made to contain it.
fn boundary_for(file: &[u8]) -> String {
    let random = std::collections::hash_map::RandomState::new();
    let mut n = 0u64;
    loop {
        let boundary = format!(
            "crema-{:016x}{:016x}",
            random.hash_one(n),
            random.hash_one(!n)
        );
        if !file
            .windows(boundary.len())
            .any(|w| w == boundary.as_bytes())
        {
            return boundary;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(user: Option<&str>, password: Option<&str>, token: Option<&str>) -> VisualizerConfig {
        VisualizerConfig {
            url: "http://127.0.0.1:9/".into(),
            username: user.map(str::to_owned),
            password: password.map(str::to_owned),
            token: token.map(str::to_owned),
        }
    }

    #[test]
    fn one_way_to_sign_in() {
        let basic = config(Some("me@example.com"), Some("pw"), None)
            .build()
            .unwrap();
        // base64("me@example.com:pw")
        assert_eq!(basic.auth, "Basic bWVAZXhhbXBsZS5jb206cHc=");
        assert!(basic.auth.is_sensitive());
        let bearer = config(None, None, Some("tk")).build().unwrap();
        assert_eq!(bearer.auth, "Bearer tk");
        for (bad, says) in [
            (config(None, None, None), "no credentials"),
            (config(Some("a"), None, None), "needs its password"),
            (config(None, Some("p"), None), "needs its username"),
            (config(Some("a"), Some("p"), Some("t")), "not both"),
            (config(None, None, Some("a\nb")), "line break"),
        ] {
            let error = bad.build().unwrap_err().to_string();
            assert!(error.contains(says), "{error}");
        }
        let mut ftp = config(None, None, Some("t"));
        ftp.url = "ftp://example.com".into();
        assert!(ftp.build().is_err());
    }

    #[test]
    fn the_recorder_reads_the_credentials_from_the_environment() {
        let env = |name: &str| match name {
            ENV_TOKEN => Some("from-env".to_owned()),
            ENV_USERNAME => Some(String::new()),
            _ => None,
        };
        let c = VisualizerConfig::from_env("", env);
        assert_eq!(c.url, DEFAULT_URL);
        assert_eq!((c.username, c.token.as_deref()), (None, Some("from-env")));
        let c = VisualizerConfig::from_env("http://127.0.0.1:3000", |_| None);
        assert_eq!(c.url, "http://127.0.0.1:3000");
        assert!(c.build().is_err(), "no credentials");
    }

    #[test]
    fn the_request_is_one_multipart_field_named_file() {
        let v = config(None, None, Some("tk")).build().unwrap();
        assert_eq!(v.shot_url("abc"), "http://127.0.0.1:9/shots/abc");
        let file = br#"{"time":1.5,"profile_name":"x","data":[]}"#;
        let (headers, body) = v.request(file, "0b5d\"evil\r\n.shot.json");
        let content_type = headers[CONTENT_TYPE].to_str().unwrap();
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap();
        let text = std::str::from_utf8(&body).unwrap();
        let expected = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"0b5devil.shot.json\"\r\nContent-Type: application/json\r\n\r\n{}\r\n--{boundary}--\r\n",
            std::str::from_utf8(file).unwrap()
        );
        assert_eq!(text, expected);
        assert_eq!(headers[AUTHORIZATION], "Bearer tk");
    }

    #[test]
    fn the_boundary_never_occurs_in_the_file() {
        let first = boundary_for(b"x");
        assert!(first.starts_with("crema-") && first.len() == 38, "{first}");
        // A file that holds a boundary drawn from another key: a new one is drawn each time.
        let file = format!("{{\"a\":\"{first}\"}}");
        assert!(!file.contains(&boundary_for(file.as_bytes())));
    }

    #[test]
    fn answers_are_read() {
        assert_eq!(answered_id(br#"{"id":"9f3c"}"#).as_deref(), Some("9f3c"));
        assert_eq!(answered_id(br#"{"id":12}"#).as_deref(), Some("12"));
        assert_eq!(answered_id(br#"{"id":""}"#), None);
        assert_eq!(answered_id(b"<html>"), None);
        let uuid = "0f8e7a2c-5d1b-4e8f-9a6c-3b2d1e0f9a8b";
        assert_eq!(
            answered_id(format!(r#"{{"id":"{uuid}"}}"#).as_bytes()).as_deref(),
            Some(uuid)
        );
        // What would leave the shot's URL, or the page's link, is no id.
        for bad in [
            r#"{"id":"../../admin"}"#,
            r#"{"id":"x" onclick="alert(1)"}"#,
            r#"{"id":"a b"}"#,
            r#"{"id":"a?b=1"}"#,
            r#"{"id":-3}"#,
            r#"{"id":1.5}"#,
            r#"{"id":["x"]}"#,
        ] {
            assert_eq!(answered_id(bad.as_bytes()), None, "{bad}");
        }
        let long = format!(r#"{{"id":"{}"}}"#, "a".repeat(129));
        assert_eq!(answered_id(long.as_bytes()), None);
        // An explanation is one line of the log, however it was written.
        assert_eq!(
            error_text(b"{\"error\":\"bad\\nfile\\u001b[31m\"}").as_deref(),
            Some("bad file [31m")
        );
        assert_eq!(
            error_text(br#"{"error":"Could not save the provided file."}"#).as_deref(),
            Some("Could not save the provided file.")
        );
        assert_eq!(error_text(b""), None);
    }
}
