//! The door in front of an HTTP API: every request but the public ones is authenticated with
//! the same [`Auth`] as the WebSocket, and its [`Identity`] put in the request's extensions
//! for the handlers, which filter or refuse by it (axum: `Extension<Identity>`). A route added
//! later is guarded without doing anything.
//!
//! - Public paths (a health check, a page's HTML) pass as they are.
//! - A request that changes something (not `GET`, `HEAD` or `OPTIONS`) and is not
//!   authenticated by a bearer token must come from an allowed page ([`check_origin`]):
//!   `403 origin_not_allowed` otherwise.
//! - The metrics path needs the `metrics` action; with [`Policy::metrics_loopback`], a peer on
//!   this host (`127.0.0.0/8`, `::1`: the local scraper needs no token) whose request a reverse
//!   proxy did not pass on (`Forwarded`, `X-Forwarded-For` or `X-Real-IP` present: it comes
//!   from elsewhere) passes too. Off by default: a proxy on the same host that sets none of
//!   those headers would pass everyone's requests on as its own.
//!
//! [`Hosts`] is the rule in front of all of it, for every request of a server
//! ([`crate::serve::ServeConfig::hosts`]): which `Host` names it answers (DNS rebinding).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::{Auth, Credential, Identity, check_origin};
use crate::hosts::Hosts;
use crate::refuse;

/// What the guard lets through.
#[derive(Debug, Clone)]
pub struct Policy {
    /// How requests are authenticated.
    pub auth: Auth,
    /// Pages, besides the server's own host, allowed to send requests that change something.
    pub origins: Option<Vec<String>>,
    /// Paths anyone may read.
    pub public: Vec<String>,
    /// The metrics path.
    pub metrics: Option<String>,
    /// Whether a scraper on this host reads the metrics path without credentials.
    pub metrics_loopback: bool,
}

/// What a gateway's configuration says about who may reach it, besides auth.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Which `Host` names are answered.
    pub hosts: Hosts,
    /// Pages, besides the server's own host, allowed to open the WebSocket and send requests
    /// that change something.
    pub origins: Option<Vec<String>>,
    /// Whether a scraper on this host reads the metrics path without credentials
    /// ([`Policy::metrics_loopback`]).
    pub metrics_loopback: bool,
}

/// The middleware (`axum::middleware::from_fn_with_state(policy, guard)`).
pub async fn guard(
    State(policy): State<Arc<Policy>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if policy.public.iter().any(|p| p == path) {
        return next.run(request).await;
    }
    let metrics = policy.metrics.as_deref() == Some(path);
    // A peer on this host, and not a reverse proxy on this host passing a request on (it says
    // whom for): the local scraper.
    let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|h| request.headers().contains_key(*h));
    let local = policy.metrics_loopback
        && !proxied
        && crate::serve::peer(&request).is_some_and(|peer| peer.ip().is_loopback());
    if metrics && local {
        request.extensions_mut().insert(Identity::everyone());
        return next.run(request).await;
    }
    let identity = match policy.auth.authenticate(request.headers()).await {
        Ok(identity) => identity,
        Err(refused) => return refuse(refused.status, "unauthorized", &refused.message),
    };
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe
        && identity.credential != Credential::Bearer
        && let Err(who) = check_origin(request.headers(), policy.origins.as_deref())
    {
        let method = request.method();
        return refuse(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            &format!("{who} may not {method} {path}; list the page's origin in `origins`"),
        );
    }
    if metrics && !identity.may("metrics") {
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("your credentials do not allow you to read {path} (the action `metrics`)"),
        );
    }
    request.extensions_mut().insert(identity);
    next.run(request).await
}
