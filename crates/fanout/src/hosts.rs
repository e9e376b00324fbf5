//! Which `Host` names a server answers ([`Hosts`]): the rule in front of every route, applied
//! by the server loop ([`crate::serve::ServeConfig::hosts`]).

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
    /// browser cannot be rebound). Made by [`Hosts::only`].
    Only {
        /// Names allowed besides the loopback ones, lowercase, without a trailing dot (shared by
        /// every connection of the server).
        names: std::sync::Arc<[String]>,
        /// Whether any IP address is allowed as the `Host`.
        ip_literals: bool,
    },
}

impl Hosts {
    /// The rule for a server: without auth, loopback names, `names`, and IP addresses when it
    /// was allowed to listen beyond loopback (`ip_literals`); with auth, `names`, loopback
    /// names and IP addresses when `names` is given (a load balancer's health check asks by
    /// address, and an address cannot be rebound), any `Host` otherwise.
    pub fn configure(auth_on: bool, names: Option<Vec<String>>, ip_literals: bool) -> Self {
        match (auth_on, names) {
            (false, names) => Hosts::only(names.unwrap_or_default(), ip_literals),
            (true, Some(names)) => Hosts::only(names, true),
            (true, None) => Hosts::Any,
        }
    }

    /// [`Hosts::Only`] `names` (written as the operator wrote them: any case, a trailing dot)
    /// and IP addresses when `ip_literals`.
    pub fn only(names: Vec<String>, ip_literals: bool) -> Self {
        Hosts::Only {
            names: names.iter().map(|n| normal(n)).collect(),
            ip_literals,
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
        let authority = normal(host);
        let name = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.split(':').next().unwrap_or_default(),
        }
        .trim_end_matches('.');
        let address = name.parse::<std::net::IpAddr>().ok();
        let allowed = name == "localhost"
            || name.ends_with(".localhost")
            || address.is_some_and(|a| a.is_loopback() || *ip_literals)
            || names.iter().any(|n| *n == authority || n == name);
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

/// A host name or `Host` as it is compared: trimmed, lowercase, without a trailing dot.
fn normal(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
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
        let only = Hosts::only(vec!["crema.example".into(), "Box.Lan:8080".into()], false);
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
        let with_addresses = Hosts::only(Vec::new(), true);
        assert!(with_addresses.check(&host("192.168.1.20:8080")).is_ok());
        assert!(with_addresses.check(&host("[fe80::1]:80")).is_ok());
        assert!(
            with_addresses
                .check(&host("meticulous.evil.example"))
                .is_err()
        );
        assert!(Hosts::Any.check(&host("anything")).is_ok());
    }

    #[test]
    fn what_each_configuration_answers() {
        let names = || Some(vec!["crema.example".to_owned()]);
        let answers = |hosts: &Hosts| {
            [
                "localhost:8080",
                "crema.example",
                "10.0.0.7:8080",
                "rebind.evil.example",
            ]
            .map(|h| hosts.check(&host(h)).is_ok())
        };
        // No auth: loopback and the listed names; addresses only when listening beyond loopback.
        assert_eq!(
            answers(&Hosts::configure(false, None, false)),
            [true, false, false, false]
        );
        assert_eq!(
            answers(&Hosts::configure(false, names(), false)),
            [true, true, false, false]
        );
        assert_eq!(
            answers(&Hosts::configure(false, None, true)),
            [true, false, true, false]
        );
        // Auth: anything without `hosts`; with it, no other name.
        assert_eq!(answers(&Hosts::configure(true, None, false)), [true; 4]);
        assert_eq!(
            answers(&Hosts::configure(true, names(), false)),
            [true, true, true, false]
        );
    }
}
