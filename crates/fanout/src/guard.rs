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

/// Which `Host` a server answers. A page of another site can make a browser send requests to
/// a server on the visitor's network or machine through DNS rebinding: its own name, made to
/// resolve to the server's address. The browser then treats the server as that site (same
/// origin, `Origin` and `Host` both the site's name), so only the `Host` tells it apart. A
/// name that cannot be rebound (a loopback name or address, as a browser resolves `localhost`
/// itself) or one the operator lists is answered; any other gets `421 Misdirected Request`.
#[derive(Debug, Clone, Default)]
pub enum Hosts {
    /// Every `Host` (auth is on: a rebinding page has no credentials).
    #[default]
    Any,
    /// Loopback names and addresses, `names` (`crema.example`, or with its port
    /// `crema.example:8080`), and IP addresses when `ip_literals` (an address typed in the
    /// browser cannot be rebound).
    Only {
        /// Names allowed besides the loopback ones.
        names: Vec<String>,
        /// Whether any IP address is allowed as the `Host`.
        ip_literals: bool,
    },
}

impl Hosts {
    /// The rule for a server: without auth, loopback names, `names`, and IP addresses when it
    /// was allowed to listen beyond loopback (`ip_literals`); with auth, `names` and loopback
    /// names when `names` is given, any `Host` otherwise.
    pub fn configure(auth_on: bool, names: Option<Vec<String>>, ip_literals: bool) -> Self {
        match (auth_on, names) {
            (false, names) => Hosts::Only {
                names: names.unwrap_or_default(),
                ip_literals,
            },
            (true, Some(names)) => Hosts::Only {
                names,
                ip_literals: false,
            },
            (true, None) => Hosts::Any,
        }
    }

    /// Whether a request with these headers may be answered; `Err` says what to configure.
    pub fn check(&self, headers: &axum::http::HeaderMap) -> Result<(), String> {
        let Hosts::Only { names, ip_literals } = self else {
            return Ok(());
        };
        let Some(host) = headers
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
        else {
            return Err("a request without a Host header".to_owned());
        };
        let authority = host.trim().trim_end_matches('.').to_ascii_lowercase();
        let name = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.split(':').next().unwrap_or_default(),
        }
        .trim_end_matches('.');
        let address = name.parse::<std::net::IpAddr>().ok();
        let allowed = name == "localhost"
            || name.ends_with(".localhost")
            || address.is_some_and(|a| a.is_loopback() || *ip_literals)
            || names.iter().any(|n| {
                let n = n.trim().trim_end_matches('.').to_ascii_lowercase();
                n == authority || n == name
            });
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "this gateway does not answer for the host {:?}; list it in `hosts` in the configuration",
                http_client::one_line(&authority, 100)
            ))
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        h.insert(axum::http::header::HOST, value.parse().unwrap());
        h
    }

    #[test]
    fn hosts_that_cannot_be_rebound_or_are_listed() {
        let only = Hosts::Only {
            names: vec!["crema.example".into(), "Box.Lan:8080".into()],
            ip_literals: false,
        };
        for ok in [
            "127.0.0.1:8080",
            "127.3.4.5",
            "[::1]:8080",
            "localhost:8080",
            "LOCALHOST.",
            "app.localhost:9000",
            "crema.example",
            "crema.example:443",
            "box.lan:8080",
        ] {
            assert!(only.check(&host(ok)).is_ok(), "{ok}");
        }
        for refused in [
            "rebind.evil.example:18080",
            "box.lan:9090",
            "192.168.1.20:8080",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "[fe80::1]:80",
        ] {
            let why = only.check(&host(refused)).unwrap_err();
            assert!(why.contains("`hosts`"), "{why}");
        }
        assert!(only.check(&axum::http::HeaderMap::new()).is_err());
        let with_addresses = Hosts::Only {
            names: Vec::new(),
            ip_literals: true,
        };
        assert!(with_addresses.check(&host("192.168.1.20:8080")).is_ok());
        assert!(with_addresses.check(&host("[fe80::1]:80")).is_ok());
        assert!(
            with_addresses
                .check(&host("meticulous.evil.example"))
                .is_err()
        );
        assert!(Hosts::Any.check(&host("anything")).is_ok());
    }
}
