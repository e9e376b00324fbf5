//! `crema.toml`: the keys both binaries read, with the same meaning on both ([`Shared`]), and
//! the keys only the gateway reads ([`GATEWAY_ONLY`]), which the recorder names and leaves
//! alone, so that one file can serve a gateway and a recorder.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize as _;

use crate::hooks::{AnalyzerConfig, WebhookConfig};
use crate::visualizer::VisualizerConfig;
use telemetry::otlp::OtlpConfig;

/// The keys only the gateway reads: the broker, the auth of its HTTP API, the pages allowed to
/// open its WebSocket.
pub const GATEWAY_ONLY: [&str; 3] = ["broker", "auth", "origins"];

/// Why a config file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    path: String,
    reason: String,
}

/// A machine: `[[machines]]` with its `name` and `url`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineEntry {
    /// Its name in the database (letters, digits, '-' and '_').
    pub name: String,
    /// Its URL, e.g. `http://meticulous.local`.
    pub url: String,
}

/// The keys of `crema.toml` that mean the same to the gateway and to the recorder.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shared {
    /// The machines (the recorder records one).
    #[serde(default)]
    pub machines: Vec<MachineEntry>,
    /// A SQLite file or a `postgres://` URL.
    pub db: Option<String>,
    /// Where the HTTP server listens (the recorder's: `/metrics` and `/healthz` only).
    pub listen: Option<SocketAddr>,
    /// Called with every finished live shot.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// Asked about every finished live shot and every shot of an analysis run.
    #[serde(default)]
    pub analyzers: Vec<AnalyzerConfig>,
    /// Where every finished live shot is uploaded.
    pub visualizer: Option<VisualizerConfig>,
    /// Where the metrics are pushed over OTLP/HTTP, if anywhere.
    pub otlp: Option<OtlpSection>,
}

/// `[otlp]`: `endpoint` (the collector's OTLP/HTTP base URL, `http://collector:4318`),
/// `interval_s` (between pushes, 60 by default) and `headers` (sent with every push).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpSection {
    /// The collector's base URL; metrics go to `{endpoint}/v1/metrics`.
    pub endpoint: String,
    /// Seconds between pushes (at least 1).
    pub interval_s: Option<f64>,
    /// Headers of every push (`{ "x-api-key" = "…" }`).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

impl OtlpSection {
    /// The exporter's configuration, or what is wrong with the section.
    pub fn build(&self) -> Result<OtlpConfig, String> {
        let seconds = self
            .interval_s
            .unwrap_or(OtlpConfig::DEFAULT_INTERVAL.as_secs_f64());
        let interval = Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("otlp: interval_s = {seconds} is not a duration"))?;
        let mut config =
            OtlpConfig::new(&self.endpoint, interval).map_err(|e| format!("otlp: {e}"))?;
        for (name, value) in &self.headers {
            http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("otlp: {name:?} is not a header name"))?;
            http::HeaderValue::from_str(value)
                .map_err(|_| format!("otlp: the value of header {name} is not a header value"))?;
        }
        config.headers = self.headers.clone();
        Ok(config)
    }
}

impl Shared {
    /// The shared keys of the config file at `path` whose text is `text`, and the names of
    /// the gateway's keys it holds (which a recorder leaves alone). A key neither binary knows,
    /// or a value of the wrong kind, is an error that says which and where.
    pub fn parse(path: &str, text: &str) -> Result<(Shared, Vec<&'static str>), ConfigError> {
        let (shared, gateway) = Self::split(path, text)?;
        let names = GATEWAY_ONLY
            .into_iter()
            .filter(|key| gateway.contains_key(*key))
            .collect();
        Ok((shared, names))
    }

    /// The shared keys of the config file at `path` whose text is `text`, and the table of
    /// the gateway's own keys ([`GATEWAY_ONLY`]) for the gateway to read. A key neither binary
    /// knows, or a value of the wrong kind or out of range, is an error that says which and
    /// where.
    pub fn split(path: &str, text: &str) -> Result<(Shared, toml::Table), ConfigError> {
        let fail = |reason: String| ConfigError {
            path: path.to_owned(),
            reason,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| fail(e.to_string()))?;
        let mut gateway = toml::Table::new();
        for key in GATEWAY_ONLY {
            if let Some(value) = table.remove(key) {
                gateway.insert(key.to_owned(), value);
            }
        }
        let shared =
            Shared::deserialize(toml::Value::Table(table)).map_err(|e| fail(e.to_string()))?;
        shared.check().map_err(fail)?;
        Ok((shared, gateway))
    }

    /// What serde cannot say about the values: ranges, URLs, header names.
    fn check(&self) -> Result<(), String> {
        if let Some(otlp) = &self.otlp {
            otlp.build()?;
        }
        Ok(())
    }

    /// The one machine a recorder records: the only `[[machines]]` entry, or the one named
    /// `name` among several; `None` when there are none.
    pub fn machine(
        &self,
        path: &str,
        name: Option<&str>,
    ) -> Result<Option<&MachineEntry>, ConfigError> {
        let fail = |reason: String| ConfigError {
            path: path.to_owned(),
            reason,
        };
        match (self.machines.as_slice(), name) {
            ([], _) => Ok(None),
            ([one], None) => Ok(Some(one)),
            (_, Some(name)) => self
                .machines
                .iter()
                .find(|m| m.name == name)
                .map(Some)
                .ok_or_else(|| fail(format!("no [[machines]] entry is named {name:?}"))),
            (many, None) => Err(fail(format!(
                "{} machines are configured and a recorder records one: pick it with --name, or run the gateway",
                many.len()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_serves_both_binaries() {
        let text = r#"
            db = "crema.db"
            listen = "127.0.0.1:9464"
            broker = "redis://127.0.0.1:6379"
            origins = ["https://crema.example"]
            [auth]
            mode = "token"
            tokens = []
            [[machines]]
            name = "kitchen"
            url = "http://meticulous.local"
            [visualizer]
            token = "tk"
        "#;
        let (shared, gateway) = Shared::parse("crema.toml", text).unwrap();
        assert_eq!(gateway, ["broker", "auth", "origins"]);
        assert_eq!(shared.db.as_deref(), Some("crema.db"));
        assert_eq!(shared.listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(
            shared.machine("crema.toml", None).unwrap().unwrap().name,
            "kitchen"
        );
        assert!(shared.visualizer.unwrap().build().is_ok());
    }

    /// Every configuration the documents show reads for a recorder too.
    #[test]
    fn the_documented_configurations_read() {
        let blocks: Vec<&str> = [
            include_str!("../../../README.md"),
            include_str!("../../../docs/deploy.md"),
        ]
        .into_iter()
        .flat_map(|doc| doc.split("```toml\n").skip(1))
        .map(|rest| rest.split("```").next().unwrap_or_default())
        .collect();
        assert!(blocks.len() >= 2, "{blocks:?}");
        for block in blocks {
            let (shared, _) =
                Shared::parse("doc", block).unwrap_or_else(|e| panic!("{e}\n{block}"));
            if let Some(v) = &shared.visualizer {
                v.build().unwrap();
            }
        }
    }

    #[test]
    fn mistakes_say_which_key_and_where() {
        let error = Shared::parse("crema.toml", "dbb = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("crema.toml: ") && error.contains("dbb"),
            "{error}"
        );
        let error = Shared::parse("crema.toml", "listen = \"everywhere\"")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("listen") || error.contains("address"),
            "{error}"
        );
        let two = r#"
            [[machines]]
            name = "a"
            url = "http://a.local"
            [[machines]]
            name = "b"
            url = "http://b.local"
        "#;
        let (shared, _) = Shared::parse("crema.toml", two).unwrap();
        let error = shared.machine("crema.toml", None).unwrap_err().to_string();
        assert!(error.contains("2 machines"), "{error}");
        assert_eq!(
            shared
                .machine("crema.toml", Some("b"))
                .unwrap()
                .unwrap()
                .url,
            "http://b.local"
        );
        assert!(shared.machine("crema.toml", Some("c")).is_err());
    }
}
