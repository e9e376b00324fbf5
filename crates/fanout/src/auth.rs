//! Who may read which topics, and do what: checked once per connection or request (who) and
//! once per subscription (which), never per event.
//!
//! - [`Auth::None`]: everyone reads everything and may do everything (the gateway then listens
//!   on loopback only, unless told otherwise).
//! - [`Auth::Token`]: static bearer tokens, each with the topics it may read and the
//!   [actions](Identity::may) it may take; sent as `Authorization: Bearer <token>` or the cookie
//!   `crema_token`.
//! - [`Auth::Introspect`]: the request's `Cookie` and `Authorization` are forwarded to a URL of
//!   yours; `200 {"id": …, "topics": […], "actions": […]}` is that identity, anything else
//!   refuses it. An answer is kept for [`INTROSPECTION_TTL`] per set of credentials, so a page's
//!   REST calls do not each cost a round trip (a revoked session keeps working that long).
//!
//! Topic patterns are exact names, or a prefix ending in `*` (`machine:*`), or `*`. Actions are
//! names (`runs`, `metrics`) or `*`.
//!
//! A browser sends cookies with requests that other sites make it send: [`check_origin`] is the
//! rule for requests that change something (and WebSocket upgrades) authenticated by a cookie.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};

/// One static token and what it may do. `Debug` does not show the token.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenGrant {
    /// The bearer token.
    pub token: String,
    /// Topic patterns it may read.
    pub topics: Vec<String>,
    /// Actions it may take (`runs`: start and cancel runs; `metrics`: read `/metrics`). None by
    /// default.
    #[serde(default)]
    pub actions: Vec<String>,
    /// A name for logs and for the per-identity caps (default `token-<n>`, its place in the
    /// list, from 1).
    #[serde(default)]
    pub name: Option<String>,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant")
            .field("token", &http_client::REDACTED)
            .field("topics", &self.topics)
            .field("actions", &self.actions)
            .field("name", &self.name)
            .finish()
    }
}

/// The shortest token `[auth]` accepts: a short one is guessed.
pub const MIN_TOKEN: usize = 16;

/// How long an introspection answer is kept for the same credentials.
pub const INTROSPECTION_TTL: Duration = Duration::from_secs(10);

/// Introspection answers kept at most (a full cache is emptied).
const CACHE_ENTRIES: usize = 4096;

/// `[auth]` of a config file: `mode = "none"` (the default), `"token"` with its `tokens`, or
/// `"introspect"` with its `url` (and `timeout_s`, 5 by default).
#[derive(Default, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthConfig {
    /// Everyone reads everything (loopback only, unless told otherwise).
    #[default]
    None,
    /// Static bearer tokens.
    Token {
        /// Each token and what it grants.
        tokens: Vec<TokenGrant>,
    },
    /// Tokens checked with an OAuth 2.0 introspection endpoint.
    Introspect {
        /// The introspection URL.
        url: String,
        /// How long the introspection URL may take to answer, seconds (5).
        timeout_s: Option<f64>,
    },
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthConfig::None => f.write_str("None"),
            AuthConfig::Token { tokens } => {
                f.debug_struct("Token").field("tokens", tokens).finish()
            }
            AuthConfig::Introspect { url, timeout_s } => f
                .debug_struct("Introspect")
                .field("url", &http_client::shown_text(url))
                .field("timeout_s", timeout_s)
                .finish(),
        }
    }
}

impl AuthConfig {
    /// The auth it configures, or what is wrong with it.
    pub fn build(self) -> Result<Auth, String> {
        match self {
            AuthConfig::None => Ok(Auth::None),
            AuthConfig::Token { tokens } => {
                for (i, grant) in tokens.iter().enumerate() {
                    let n = grant.token.chars().count();
                    if n < MIN_TOKEN {
                        return Err(format!(
                            "auth.tokens[{i}].token: a token must be at least {MIN_TOKEN} characters \
                             (this one has {n}); make one with `openssl rand -hex 16`"
                        ));
                    }
                }
                Ok(Auth::Token(tokens))
            }
            AuthConfig::Introspect { url, timeout_s } => {
                let seconds = timeout_s.unwrap_or(5.0);
                let timeout = Duration::try_from_secs_f64(seconds)
                    .ok()
                    .filter(|t| !t.is_zero())
                    .ok_or_else(|| format!("auth: timeout_s = {seconds} is not a duration"))?;
                Auth::introspect(url, timeout)
                    .map_err(|e| format!("auth: the introspection URL {e}"))
            }
        }
    }
}

/// How connections are authenticated.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// Everyone reads everything and may do everything.
    #[default]
    None,
    /// Static bearer tokens.
    Token(Vec<TokenGrant>),
    /// Ask a URL of yours, forwarding the request's credentials ([`Auth::introspect`]).
    Introspect(Introspector),
}

/// The introspection URL, its time limit and the answers it gave lately (keyed by the
/// credentials they answered: `Debug` shows neither them nor the URL's secrets).
#[derive(Clone)]
pub struct Introspector {
    /// The introspection URL.
    target: http_client::Url,
    timeout: Duration,
    cache: Arc<Mutex<HashMap<String, (Identity, Instant)>>>,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached = self.cache.lock().map_or(0, |c| c.len());
        f.debug_struct("Introspector")
            .field("url", &http_client::shown(&self.target))
            .field("timeout", &self.timeout)
            .field("cached", &cached)
            .finish()
    }
}

/// How a request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// It did not have to: no auth is configured.
    Nothing,
    /// `Authorization: Bearer` (and no cookie): sent by code that holds the token, never by a
    /// browser on its own.
    Bearer,
    /// A cookie, or credentials a browser caches (Basic, Digest, Negotiate): a browser sends
    /// them with whatever a page asks, so what they authenticate must come from an allowed
    /// origin when it changes something.
    Cookie,
}

/// Who a connection is, and what it may read and do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The identity's id: the token's name, the introspected id, or `None` without auth.
    pub id: Option<String>,
    /// Topic patterns it may read.
    pub topics: Vec<String>,
    /// Actions it may take.
    pub actions: Vec<String>,
    /// How it was proved.
    pub credential: Credential,
}

impl Identity {
    /// Everyone, when no auth is configured: reads everything, may do everything.
    pub fn everyone() -> Self {
        Self {
            id: None,
            topics: vec!["*".to_owned()],
            actions: vec!["*".to_owned()],
            credential: Credential::Nothing,
        }
    }

    /// Whether it may read `topic`.
    pub fn may_read(&self, topic: &str) -> bool {
        self.topics.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => topic.starts_with(prefix),
            None => p == topic,
        })
    }

    /// Whether it may take `action` (`runs`, `metrics`, …).
    pub fn may(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == "*" || a == action)
    }
}

/// Why a connection was refused: the HTTP status and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    /// 401 or 503.
    pub status: StatusCode,
    /// What to do.
    pub message: String,
}

impl Refused {
    fn unauthorized(message: &str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.to_owned(),
        }
    }
}

/// The token a request carries, and how.
fn bearer(headers: &HeaderMap) -> Option<(&str, Credential)> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ")
        && !token.trim().is_empty()
    {
        return Some((token.trim(), Credential::Bearer));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("crema_token"))
        .and_then(|rest| rest.trim_start().strip_prefix('='))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .map(|token| (token, Credential::Cookie))
}

impl Auth {
    /// Introspection at `url` (checked: `http://` or `https://`), waiting `timeout` for each
    /// answer.
    pub fn introspect(url: impl Into<String>, timeout: Duration) -> Result<Self, String> {
        let target = http_client::check_url(&url.into(), true)?;
        Ok(Self::Introspect(Introspector {
            target,
            timeout,
            cache: Arc::default(),
        }))
    }

    /// Whether any auth is configured.
    pub fn is_on(&self) -> bool {
        !matches!(self, Auth::None)
    }

    /// Authenticates a request.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, Refused> {
        match self {
            Auth::None => Ok(Identity::everyone()),
            Auth::Token(grants) => {
                let (token, credential) = bearer(headers).ok_or_else(|| {
                    Refused::unauthorized(
                        "send a token: Authorization: Bearer <token>, or the crema_token cookie",
                    )
                })?;
                grants
                    .iter()
                    .enumerate()
                    .find(|(_, g)| constant_time_eq(g.token.as_bytes(), token.as_bytes()))
                    .map(|(i, g)| Identity {
                        id: Some(g.name.clone().unwrap_or_else(|| format!("token-{}", i + 1))),
                        topics: g.topics.clone(),
                        actions: g.actions.clone(),
                        credential,
                    })
                    .ok_or_else(|| Refused::unauthorized("this token is not known to the gateway"))
            }
            Auth::Introspect(introspector) => introspector.identity(headers).await,
        }
    }
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(serde::Deserialize)]
struct Introspected {
    id: String,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    actions: Vec<String>,
}

impl Introspector {
    async fn identity(&self, headers: &HeaderMap) -> Result<Identity, Refused> {
        // Only a bearer token is sent by code alone. A browser attaches cookies, and Basic,
        // Digest or Negotiate credentials it cached, to whatever another site makes it send:
        // those are ambient, like a cookie.
        let explicit = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer "));
        let credential = if explicit && !headers.contains_key(header::COOKIE) {
            Credential::Bearer
        } else if headers.contains_key(header::COOKIE)
            || headers.contains_key(header::AUTHORIZATION)
        {
            Credential::Cookie
        } else {
            return Err(Refused::unauthorized(
                "not signed in: send your session cookie or an Authorization header",
            ));
        };
        let mut forwarded = HeaderMap::new();
        let mut key = String::new();
        for name in [header::AUTHORIZATION, header::COOKIE] {
            for value in headers.get_all(&name) {
                forwarded.append(&name, value.clone());
                key.push_str(name.as_str());
                key.push(':');
                key.push_str(&String::from_utf8_lossy(value.as_bytes()));
                key.push('\n');
            }
        }
        if let Ok(cache) = self.cache.lock()
            && let Some((identity, at)) = cache.get(&key)
            && at.elapsed() < INTROSPECTION_TTL
        {
            return Ok(identity.clone());
        }
        let identity = self.ask(forwarded, credential).await?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(key, (identity.clone(), Instant::now()));
        }
        Ok(identity)
    }

    async fn ask(&self, forwarded: HeaderMap, credential: Credential) -> Result<Identity, Refused> {
        let url = http_client::shown(&self.target);
        // The caller learns that it failed; the log, why (the URL as logs show it).
        let unavailable = |why: String| {
            tracing::warn!("cannot check a request's credentials: {why}");
            Refused {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "cannot check who you are right now; try again later".to_owned(),
            }
        };
        // One pool for the process: a connection per request would cost a handshake each.
        let limits = http_client::Limits {
            timeout: self.timeout,
            max_body: 64 << 10,
        };
        let answer = http_client::HttpClient::shared()
            .get(&self.target, forwarded, limits)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let (status, body) = (answer.status, answer.body);
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(unavailable(format!(
                "{url} answered HTTP {}",
                status.as_u16()
            )));
        }
        if status != StatusCode::OK {
            return Err(Refused::unauthorized("not signed in, or not allowed here"));
        }
        let who: Introspected = serde_json::from_slice(&body).map_err(|e| {
            unavailable(format!(
                "{url} answered something other than {{\"id\",\"topics\",\"actions\"}}: {e}"
            ))
        })?;
        Ok(Identity {
            id: Some(who.id),
            topics: who.topics,
            actions: who.actions,
            credential,
        })
    }
}

/// Whether a request that a browser may have been made to send by another site comes from a
/// page that may send it: `Sec-Fetch-Site: same-origin` (or `none`: typed by its user), or an
/// `Origin` in `allowed`, or an `Origin` naming this very host (`Host`). A request with neither
/// header is not a browser's (every current browser sends `Origin` with a `POST` and with a
/// WebSocket upgrade) and passes. `Err` says which origin was refused.
pub fn check_origin(headers: &HeaderMap, allowed: Option<&[String]>) -> Result<(), String> {
    let site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    if matches!(site.as_deref(), Some("same-origin" | "none")) {
        return Ok(());
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let Some(origin) = origin else {
        return match site {
            None => Ok(()),
            Some(site) => Err(format!("a {site} request without an Origin")),
        };
    };
    if allowed.is_some_and(|list| list.iter().any(|a| a.eq_ignore_ascii_case(origin))) {
        return Ok(());
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let authority = origin.split_once("://").map(|(_, rest)| rest);
    match (authority, host) {
        (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(format!("pages from {origin}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    /// `Debug` of what holds a token or the introspection URL shows neither.
    #[test]
    fn debug_keeps_the_secrets() {
        let grant = TokenGrant {
            token: "tok-SECRET-0123456789".into(),
            topics: vec!["*".into()],
            ..TokenGrant::default()
        };
        let introspect = Auth::introspect(
            "https://auth.example/introspect?client_secret=SECRET",
            Duration::from_secs(1),
        )
        .unwrap();
        let config: AuthConfig = serde_json::from_str(
            r#"{"mode": "introspect", "url": "https://auth.example/i?client_secret=SECRET"}"#,
        )
        .unwrap();
        for shown in [
            format!("{grant:?}"),
            format!(
                "{:?}",
                AuthConfig::Token {
                    tokens: vec![grant.clone()]
                }
            ),
            format!("{:?}", Auth::Token(vec![grant.clone()])),
            format!("{introspect:?}"),
            format!("{config:?}"),
        ] {
            assert!(!shown.contains("SECRET"), "{shown}");
        }
    }

    #[test]
    fn tokens_shorter_than_16_characters_stop_the_start() {
        let config = |token: &str| -> AuthConfig {
            serde_json::from_value(serde_json::json!(
                {"mode": "token", "tokens": [{"token": token, "topics": ["*"]}]}
            ))
            .unwrap()
        };
        for short in ["", "change-me", "fifteen chars.."] {
            let why = config(short).build().unwrap_err();
            assert!(why.starts_with("auth.tokens[0].token: "), "{why}");
        }
        assert!(config("sixteen chars..!").build().is_ok());
    }

    #[tokio::test]
    async fn an_empty_token_is_no_credential() {
        let auth = Auth::Token(vec![TokenGrant {
            token: String::new(),
            topics: vec!["*".into()],
            ..TokenGrant::default()
        }]);
        for h in [
            headers(&[("cookie", "crema_token=")]),
            headers(&[("cookie", "crema_token= ; theme=dark")]),
            headers(&[("authorization", "Bearer ")]),
        ] {
            assert!(auth.authenticate(&h).await.is_err(), "{h:?}");
        }
    }

    #[test]
    fn patterns() {
        let id = Identity {
            topics: vec!["machine:kitchen".into(), "run:*".into()],
            actions: vec!["runs".into()],
            ..Identity::everyone()
        };
        assert!(id.may_read("machine:kitchen"));
        assert!(!id.may_read("machine:office"));
        assert!(id.may_read("run:42"));
        assert!(id.may("runs"));
        assert!(!id.may("metrics"));
        let all = Identity::everyone();
        assert!(all.may_read("anything"));
        assert!(all.may("metrics"));
    }

    #[tokio::test]
    async fn tokens_by_header_or_cookie() {
        let auth = Auth::Token(vec![TokenGrant {
            token: "s3cret".into(),
            topics: vec!["machine:*".into()],
            ..TokenGrant::default()
        }]);
        let id = auth
            .authenticate(&headers(&[("authorization", "Bearer s3cret")]))
            .await
            .unwrap();
        assert!(id.may_read("machine:a"));
        assert_eq!(id.credential, Credential::Bearer);
        assert_eq!(id.id.as_deref(), Some("token-1"));
        assert!(!id.may("runs"), "no actions unless granted");
        let id = auth
            .authenticate(&headers(&[("cookie", "theme=dark; crema_token=s3cret")]))
            .await
            .unwrap();
        assert!(!id.may_read("run:1"));
        assert_eq!(id.credential, Credential::Cookie);
        for h in [headers(&[]), headers(&[("authorization", "Bearer nope")])] {
            let refused = auth.authenticate(&h).await.unwrap_err();
            assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        }
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://crema.example".to_owned()];
        let check = |pairs: &[(&str, &str)]| check_origin(&headers(pairs), Some(&allowed));
        assert!(check(&[]).is_ok(), "not a browser");
        assert!(check(&[("sec-fetch-site", "same-origin")]).is_ok());
        assert!(check(&[("sec-fetch-site", "none")]).is_ok());
        assert!(check(&[("origin", "https://crema.example")]).is_ok());
        assert!(
            check(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://crema.example")
            ])
            .is_ok()
        );
        assert!(check(&[("origin", "http://box:8080"), ("host", "box:8080")]).is_ok());
        let refused = check(&[("origin", "https://evil.example"), ("host", "box:8080")]);
        assert_eq!(refused.unwrap_err(), "pages from https://evil.example");
        assert!(check(&[("origin", "null"), ("host", "box:8080")]).is_err());
        assert!(check(&[("sec-fetch-site", "cross-site")]).is_err());
        assert!(
            check(&[
                ("sec-fetch-site", "same-site"),
                ("origin", "https://a.example")
            ])
            .is_err()
        );
        assert!(check_origin(&headers(&[("origin", "https://crema.example")]), None).is_err());
    }
}
