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
pub const GATEWAY_ONLY: [&str; 5] = ["broker", "auth", "origins", "hosts", "metrics_loopback"];

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
#[derive(Default, serde::Deserialize)]
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
    /// The numbers a deployment may change (every one has a default).
    #[serde(default)]
    pub tuning: Tuning,
}

/// `[tuning]`: the numbers a deployment may change. Each is optional and checked at start; a
/// value out of its range stops the process, saying which and why. The `ws_*`, `replay_events`
/// and `subscriber_lag_events` keys are the fan-out's: a recorder reads them and leaves them.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tuning {
    /// A shot with fewer samples is discarded (20).
    pub min_samples: Option<u64>,
    /// A shot whose time stands still this long while extracting has stalled (10 s).
    pub stall_s: Option<f64>,
    /// Samples held per machine while the database refuses writes (18,000).
    pub unstored_samples: Option<u64>,
    /// How long the history is asked for a shot that just ended (30 s).
    pub reconcile_s: Option<f64>,
    /// Between two scheduled history syncs (900 s).
    pub sync_every_s: Option<f64>,
    /// Between two pings of a browser's WebSocket (30 s).
    pub ws_ping_s: Option<f64>,
    /// A browser's WebSocket silent this long is dropped (60 s; at least 1 s longer than
    /// `ws_ping_s`).
    pub ws_silence_s: Option<f64>,
    /// Data bytes a browser's WebSocket may have waiting before its oldest frames are
    /// dropped (262,144).
    pub ws_queue_bytes: Option<u64>,
    /// Events a topic keeps for resuming SSE streams (1,024).
    pub replay_events: Option<u64>,
    /// Events an SSE stream may fall behind before it is told of a gap (4,096).
    pub subscriber_lag_events: Option<u64>,
}

/// The fan-out's defaults, as `fanout` has them (a test of the gateway holds them equal).
pub mod fanout_defaults {
    use std::time::Duration;

    /// `fanout::ws::Limits::default().ping_every`.
    pub const WS_PING: Duration = Duration::from_secs(30);
    /// `fanout::ws::Limits::default().silence`.
    pub const WS_SILENCE: Duration = Duration::from_secs(60);
    /// `fanout::ws::Limits::default().data_bytes`.
    pub const WS_QUEUE_BYTES: usize = 256 * 1024;
    /// `fanout::hub::REPLAY_RING`.
    pub const REPLAY_EVENTS: usize = 1024;
    /// `fanout::hub::SUBSCRIBER_LAG`.
    pub const SUBSCRIBER_LAG_EVENTS: usize = 4096;
}

/// `[tuning]` checked, every number in its unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuned {
    /// The pure recorder's limits (`min_samples`, `stall_s`).
    pub recorder: recorder_core::Config,
    /// `unstored_samples`.
    pub max_unstored_samples: usize,
    /// `reconcile_s`.
    pub reconcile_for: Duration,
    /// `sync_every_s`.
    pub sync_every: Duration,
    /// `ws_ping_s`.
    pub ws_ping: Duration,
    /// `ws_silence_s`.
    pub ws_silence: Duration,
    /// `ws_queue_bytes`.
    pub ws_queue_bytes: usize,
    /// `replay_events`.
    pub replay_events: usize,
    /// `subscriber_lag_events`.
    pub subscriber_lag_events: usize,
}

impl Default for Tuned {
    fn default() -> Self {
        Self {
            recorder: recorder_core::Config::default(),
            max_unstored_samples: crate::record::MAX_UNSTORED_SAMPLES,
            reconcile_for: crate::record::RECONCILE_FOR,
            sync_every: crate::runs::SYNC_EVERY,
            ws_ping: fanout_defaults::WS_PING,
            ws_silence: fanout_defaults::WS_SILENCE,
            ws_queue_bytes: fanout_defaults::WS_QUEUE_BYTES,
            replay_events: fanout_defaults::REPLAY_EVENTS,
            subscriber_lag_events: fanout_defaults::SUBSCRIBER_LAG_EVENTS,
        }
    }
}

impl Tuned {
    /// A machine's recording configuration with these numbers.
    pub fn machine(&self, name: &str, url: &str) -> crate::record::MachineConfig {
        let mut machine = crate::record::MachineConfig::new(name, url);
        machine.recorder = self.recorder.clone();
        machine.max_unstored_samples = self.max_unstored_samples;
        machine.reconcile_for = self.reconcile_for;
        machine
    }
}

/// A count in `lo..=hi`, or why not.
fn count(key: &str, value: Option<u64>, lo: u64, hi: u64, default: usize) -> Result<usize, String> {
    match value {
        None => Ok(default),
        Some(v) if (lo..=hi).contains(&v) => {
            usize::try_from(v).map_err(|_| format!("tuning: {key} = {v} is too large"))
        }
        Some(v) => Err(format!("tuning: {key} = {v} is out of range: {lo} to {hi}")),
    }
}

/// Seconds in `lo..=hi`, or why not.
fn seconds(
    key: &str,
    value: Option<f64>,
    lo: f64,
    hi: f64,
    default: Duration,
) -> Result<Duration, String> {
    match value {
        None => Ok(default),
        Some(v) if v.is_finite() && (lo..=hi).contains(&v) => Ok(Duration::from_secs_f64(v)),
        Some(v) => Err(format!(
            "tuning: {key} = {v} is out of range: {lo} to {hi} seconds"
        )),
    }
}

impl Tuning {
    /// The keys set that only the gateway reads.
    pub fn fanout_keys(&self) -> Vec<&'static str> {
        [
            ("ws_ping_s", self.ws_ping_s.is_some()),
            ("ws_silence_s", self.ws_silence_s.is_some()),
            ("ws_queue_bytes", self.ws_queue_bytes.is_some()),
            ("replay_events", self.replay_events.is_some()),
            (
                "subscriber_lag_events",
                self.subscriber_lag_events.is_some(),
            ),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }

    /// Every number checked against its range, the defaults where none is given.
    pub fn resolve(&self) -> Result<Tuned, String> {
        let d = Tuned::default();
        let recorder = recorder_core::Config {
            min_samples: count(
                "min_samples",
                self.min_samples,
                1,
                100_000,
                d.recorder.min_samples,
            )?,
            stall_after: seconds("stall_s", self.stall_s, 1.0, 3600.0, d.recorder.stall_after)?,
            ..d.recorder
        };
        let ws_ping = seconds("ws_ping_s", self.ws_ping_s, 1.0, 3600.0, d.ws_ping)?;
        let ws_silence = seconds("ws_silence_s", self.ws_silence_s, 2.0, 7200.0, d.ws_silence)?;
        // A browser's pong takes a round trip (seconds on a poor mobile link): a silence that
        // ends just after the ping would drop every browser that only answers pings.
        if ws_silence < ws_ping + Duration::from_secs(1) {
            return Err(format!(
                "tuning: ws_silence_s ({} s) must be at least 1 s longer than ws_ping_s ({} s): a browser answers each ping, and is dropped after ws_silence_s without a frame",
                ws_silence.as_secs_f64(),
                ws_ping.as_secs_f64()
            ));
        }
        Ok(Tuned {
            recorder,
            max_unstored_samples: count(
                "unstored_samples",
                self.unstored_samples,
                1_000,
                10_000_000,
                d.max_unstored_samples,
            )?,
            reconcile_for: seconds(
                "reconcile_s",
                self.reconcile_s,
                1.0,
                3600.0,
                d.reconcile_for,
            )?,
            sync_every: seconds(
                "sync_every_s",
                self.sync_every_s,
                60.0,
                7.0 * 86_400.0,
                d.sync_every,
            )?,
            ws_ping,
            ws_silence,
            ws_queue_bytes: count(
                "ws_queue_bytes",
                self.ws_queue_bytes,
                16 * 1024,
                64 << 20,
                d.ws_queue_bytes,
            )?,
            replay_events: count(
                "replay_events",
                self.replay_events,
                16,
                1_000_000,
                d.replay_events,
            )?,
            subscriber_lag_events: count(
                "subscriber_lag_events",
                self.subscriber_lag_events,
                16,
                1_000_000,
                d.subscriber_lag_events,
            )?,
        })
    }
}

/// `[otlp]`: `endpoint` (the collector's OTLP/HTTP base URL, `http://collector:4318`),
/// `interval_s` (between pushes, 60 by default) and `headers` (sent with every push).
#[derive(Clone, PartialEq, serde::Deserialize)]
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
        self.tuning.resolve()?;
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

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("machines", &self.machines)
            // A PostgreSQL URL holds its password: shown as the storage shows it.
            .field("db", &self.db.as_deref().map(storage::Database::parse))
            .field("listen", &self.listen)
            .field("webhooks", &self.webhooks)
            .field("analyzers", &self.analyzers)
            .field("visualizer", &self.visualizer)
            .field("otlp", &self.otlp)
            .field("tuning", &self.tuning)
            .finish()
    }
}

impl std::fmt::Debug for OtlpSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpSection")
            .field("endpoint", &http_client::shown_text(&self.endpoint))
            .field("interval_s", &self.interval_s)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
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
    fn every_tuning_key_reads_and_the_defaults_are_the_crates() {
        assert_eq!(Tuning::default().resolve().unwrap(), Tuned::default());
        let defaults = Tuned::default().machine("kitchen", "http://m.local");
        let plain = crate::record::MachineConfig::new("kitchen", "http://m.local");
        assert_eq!(
            (
                defaults.recorder,
                defaults.max_unstored_samples,
                defaults.reconcile_for
            ),
            (
                plain.recorder,
                plain.max_unstored_samples,
                plain.reconcile_for
            )
        );
        let text = r#"
            [tuning]
            min_samples = 50
            stall_s = 4.5
            unstored_samples = 36000
            reconcile_s = 60
            sync_every_s = 3600
            ws_ping_s = 10
            ws_silence_s = 25
            ws_queue_bytes = 1048576
            replay_events = 4096
            subscriber_lag_events = 8192
        "#;
        let (shared, _) = Shared::parse("crema.toml", text).unwrap();
        assert_eq!(
            shared.tuning.fanout_keys(),
            [
                "ws_ping_s",
                "ws_silence_s",
                "ws_queue_bytes",
                "replay_events",
                "subscriber_lag_events"
            ]
        );
        let t = shared.tuning.resolve().unwrap();
        assert_eq!(t.recorder.min_samples, 50);
        assert_eq!(t.recorder.stall_after, Duration::from_millis(4500));
        assert_eq!(t.max_unstored_samples, 36_000);
        assert_eq!(t.reconcile_for, Duration::from_secs(60));
        assert_eq!(t.sync_every, Duration::from_secs(3600));
        assert_eq!(
            (t.ws_ping, t.ws_silence),
            (Duration::from_secs(10), Duration::from_secs(25))
        );
        assert_eq!(t.ws_queue_bytes, 1 << 20);
        assert_eq!((t.replay_events, t.subscriber_lag_events), (4096, 8192));
        let machine = t.machine("kitchen", "http://m.local");
        assert_eq!(machine.recorder.min_samples, 50);
        assert_eq!(machine.max_unstored_samples, 36_000);
    }

    #[test]
    fn a_nonsense_tuning_value_is_refused_with_its_key_and_range() {
        for (line, says) in [
            (
                "min_samples = 0",
                "min_samples = 0 is out of range: 1 to 100000",
            ),
            ("stall_s = 0", "stall_s = 0 is out of range"),
            ("stall_s = -3", "stall_s = -3 is out of range"),
            (
                "unstored_samples = 10",
                "unstored_samples = 10 is out of range",
            ),
            (
                "reconcile_s = 100000",
                "reconcile_s = 100000 is out of range",
            ),
            (
                "sync_every_s = 5",
                "sync_every_s = 5 is out of range: 60 to",
            ),
            (
                "ws_ping_s = 30\nws_silence_s = 30.5",
                "must be at least 1 s longer than ws_ping_s",
            ),
            (
                "ws_silence_s = 20",
                "ws_silence_s (20 s) must be at least 1 s longer than ws_ping_s (30 s)",
            ),
            (
                "ws_queue_bytes = 100",
                "ws_queue_bytes = 100 is out of range",
            ),
            ("replay_events = 0", "replay_events = 0 is out of range"),
            (
                "subscriber_lag_events = 99999999",
                "subscriber_lag_events = 99999999 is out of range",
            ),
            ("min_samples = \"many\"", "min_samples"),
            ("min_sample = 3", "unknown field `min_sample`"),
        ] {
            let text = format!("[tuning]\n{line}\n");
            let error = Shared::parse("crema.toml", &text).unwrap_err().to_string();
            assert!(error.starts_with("crema.toml: "), "{line}: {error}");
            assert!(error.contains(says), "{line}: {error}");
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
