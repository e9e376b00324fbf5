//! Who may read which topics: checked once per connection (who) and once per subscription
//! (which), never per event.
//!
//! - [`Auth::None`]: everyone reads everything (the gateway then listens on loopback only,
//!   unless told otherwise).
//! - [`Auth::Token`]: static bearer tokens, each with the topics it may read; sent as
//!   `Authorization: Bearer <token>` or the cookie `crema_token`.
//! - [`Auth::Introspect`]: the request's `Cookie` and `Authorization` are forwarded, once per
//!   connection, to a URL of yours; `200 {"id": …, "topics": […]}` binds that identity to the
//!   connection, anything else refuses it.
//!
//! Topic patterns are exact names, or a prefix ending in `*` (`machine:*`), or `*`.

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};

/// One static token and what it may read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct TokenGrant {
    /// The bearer token.
    pub token: String,
    /// Topic patterns it may read.
    pub topics: Vec<String>,
}

/// How connections are authenticated.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// Everyone reads everything.
    #[default]
    None,
    /// Static bearer tokens.
    Token(Vec<TokenGrant>),
    /// Ask a URL of yours, forwarding the request's credentials.
    Introspect {
        /// The URL (http).
        url: String,
        /// How long to wait for it.
        timeout: Duration,
    },
}

/// Who a connection is, and what it may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The identity's id, when the auth mode has one.
    pub id: Option<String>,
    /// Topic patterns it may read.
    pub topics: Vec<String>,
}

impl Identity {
    /// Whether it may read `topic`.
    pub fn may_read(&self, topic: &str) -> bool {
        self.topics.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => topic.starts_with(prefix),
            None => p == topic,
        })
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

fn bearer(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ")
    {
        return Some(token.trim());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("crema_token="))
}

impl Auth {
    /// Authenticates a request (once per connection).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, Refused> {
        match self {
            Auth::None => Ok(Identity {
                id: None,
                topics: vec!["*".to_owned()],
            }),
            Auth::Token(grants) => {
                let token = bearer(headers).ok_or_else(|| {
                    Refused::unauthorized(
                        "send a token: Authorization: Bearer <token>, or the crema_token cookie",
                    )
                })?;
                grants
                    .iter()
                    .find(|g| constant_time_eq(g.token.as_bytes(), token.as_bytes()))
                    .map(|g| Identity {
                        id: None,
                        topics: g.topics.clone(),
                    })
                    .ok_or_else(|| Refused::unauthorized("this token is not known to the gateway"))
            }
            Auth::Introspect { url, timeout } => introspect(url, *timeout, headers).await,
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
}

async fn introspect(
    url: &str,
    timeout: Duration,
    headers: &HeaderMap,
) -> Result<Identity, Refused> {
    let unavailable = |why: String| Refused {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: format!("cannot check who you are: {why}"),
    };
    let target = http_client::check_url(url, true).map_err(unavailable)?;
    let mut forwarded = HeaderMap::new();
    for name in [header::COOKIE, header::AUTHORIZATION] {
        for value in headers.get_all(&name) {
            forwarded.append(&name, value.clone());
        }
    }
    // One pool for the process: a connection per browser connect would cost a handshake each.
    let limits = http_client::Limits {
        timeout,
        max_body: 64 << 10,
    };
    let answer = http_client::HttpClient::shared()
        .get(&target, forwarded, limits)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let (status, body) = (answer.status, answer.body);
    if status != StatusCode::OK {
        return Err(Refused::unauthorized("not signed in, or not allowed here"));
    }
    let who: Introspected = serde_json::from_slice(&body).map_err(|e| {
        unavailable(format!(
            "{url} answered something other than {{\"id\",\"topics\"}}: {e}"
        ))
    })?;
    Ok(Identity {
        id: Some(who.id),
        topics: who.topics,
    })
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

    #[test]
    fn patterns() {
        let id = Identity {
            id: None,
            topics: vec!["machine:kitchen".into(), "run:*".into()],
        };
        assert!(id.may_read("machine:kitchen"));
        assert!(!id.may_read("machine:office"));
        assert!(id.may_read("run:42"));
        let all = Identity {
            id: None,
            topics: vec!["*".into()],
        };
        assert!(all.may_read("anything"));
    }

    #[tokio::test]
    async fn tokens_by_header_or_cookie() {
        let auth = Auth::Token(vec![TokenGrant {
            token: "s3cret".into(),
            topics: vec!["machine:*".into()],
        }]);
        let id = auth
            .authenticate(&headers(&[("authorization", "Bearer s3cret")]))
            .await
            .unwrap();
        assert!(id.may_read("machine:a"));
        let id = auth
            .authenticate(&headers(&[("cookie", "theme=dark; crema_token=s3cret")]))
            .await
            .unwrap();
        assert!(!id.may_read("run:1"));
        for h in [headers(&[]), headers(&[("authorization", "Bearer nope")])] {
            let refused = auth.authenticate(&h).await.unwrap_err();
            assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        }
    }
}
