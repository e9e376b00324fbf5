//! The application layer's families: the machines' recording loops, the store's commits, the
//! webhooks, analyzers and uploads, the runs, and health. Both binaries register them.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use storage::Store;

use crate::outbox::FinishedShots;
use crate::record::MachineStats;
use crate::runs::Runs;
pub use telemetry::{Families, Registry, Source};

/// What is wrong with a process, for `/healthz` and `crema_healthy`: nothing, or each problem
/// named.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Health {
    /// `ok` or `unhealthy`.
    pub status: &'static str,
    /// What is wrong (empty when `ok`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

/// One thing wrong.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    /// `storage` or `machine`.
    pub what: &'static str,
    /// The machine, for a machine link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

impl Health {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The health of a process recording `machines` into `store`: the store is failing when its
/// last batch of writes did not store whole (a full disk, a read-only file, an I/O error), a
/// machine link when the machine is not connected.
pub fn health<'a>(
    machines: impl Iterator<Item = (&'a str, &'a MachineStats)>,
    store: &Store,
) -> Health {
    let mut problems = Vec::new();
    if let Some(error) = store.commit_stats().last_error {
        problems.push(Problem {
            what: "storage",
            machine: None,
            message: format!("the last writes were not stored: {error}"),
        });
    }
    for (name, stats) in machines {
        if !stats.connected.load(Relaxed) {
            problems.push(Problem {
                what: "machine",
                machine: Some(name.to_owned()),
                message: format!("not connected to machine {name}"),
            });
        }
    }
    Health {
        status: if problems.is_empty() {
            "ok"
        } else {
            "unhealthy"
        },
        problems,
    }
}

/// How the process judges its health, for `crema_healthy` (the same as `/healthz`).
pub type HealthCheck = Arc<dyn Fn() -> Health + Send + Sync>;

/// Every family of the application layer, as both binaries serve it.
pub struct Application {
    machines: Vec<(String, Arc<MachineStats>)>,
    store: Arc<Store>,
    finished: Arc<FinishedShots>,
    runs: Arc<Runs>,
    health: HealthCheck,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("machines", &self.machines.len())
            .finish_non_exhaustive()
    }
}

impl Application {
    /// The families of the recording loops of `machines` (name, stats), of `store`, of the
    /// hooks and uploads of `finished`, of `runs`, and `health` as a number.
    pub fn new(
        machines: Vec<(String, Arc<MachineStats>)>,
        store: Arc<Store>,
        finished: Arc<FinishedShots>,
        runs: Arc<Runs>,
        health: HealthCheck,
    ) -> Self {
        Self {
            machines,
            store,
            finished,
            runs,
            health,
        }
    }
}

impl Source for Application {
    fn collect(&self, m: &mut Families) {
        machines(
            m,
            self.machines
                .iter()
                .map(|(name, stats)| (name.as_str(), &**stats)),
        );
        storage(m, &self.store);
        hooks(m, &self.finished);
        runs(m, &self.runs, &self.store);
        healthy(m, &(self.health)());
    }
}

/// `crema_healthy` (what `/healthz` says, as a number) and `crema_storage_healthy`.
fn healthy(m: &mut Families, health: &Health) {
    m.gauge(
        "crema_healthy",
        "1 when /healthz answers ok: storage stores and every machine is connected.",
    )
    .sample(&[], u64::from(health.is_ok()));
    m.gauge(
        "crema_storage_healthy",
        "1 when the last batch of writes was stored whole.",
    )
    .sample(
        &[],
        u64::from(!health.problems.iter().any(|p| p.what == "storage")),
    );
}

/// A per-machine family: name, whether a counter, help, and how to read it off the loop's
/// stats.
type MachineMetric = (&'static str, bool, &'static str, fn(&MachineStats) -> u64);

const COUNTER: bool = true;
const GAUGE: bool = false;

const PER_MACHINE: [MachineMetric; 15] = [
    (
        "crema_machine_connected",
        GAUGE,
        "Whether the process is connected to the machine.",
        |s| u64::from(s.connected.load(Relaxed)),
    ),
    (
        "crema_machine_events",
        COUNTER,
        "Events received from the machine.",
        |s| s.events.load(Relaxed),
    ),
    (
        "crema_machine_events_refused",
        COUNTER,
        "Events from the machine dropped where they entered: a name that is not plain (letters, digits, _ . : -, at most 64).",
        |s| s.events_refused.load(Relaxed),
    ),
    (
        "crema_recorder_recording",
        GAUGE,
        "Whether a shot is being recorded.",
        |s| u64::from(s.recording.load(Relaxed)),
    ),
    (
        "crema_recorder_shot_samples",
        GAUGE,
        "Samples journaled for the shot in progress (or the last one).",
        |s| s.shot_samples.load(Relaxed),
    ),
    (
        "crema_recorder_shots_recorded",
        COUNTER,
        "Live shots recorded since the start.",
        |s| s.shots_recorded.load(Relaxed),
    ),
    (
        "crema_recorder_shots_discarded",
        COUNTER,
        "Live shots ended and not kept (flushes, too short, stalled).",
        |s| s.shots_discarded.load(Relaxed),
    ),
    (
        "crema_recorder_unstored_samples",
        GAUGE,
        "Samples read from the machine and not stored yet (held while the database refuses writes).",
        |s| s.unstored_samples.load(Relaxed),
    ),
    (
        "crema_recorder_samples_lost",
        COUNTER,
        "Samples given up on because the database refused writes for too long (each loss is logged).",
        |s| s.samples_lost.load(Relaxed),
    ),
    (
        "crema_recorder_storage_failing",
        GAUGE,
        "Whether the recording loop's last write was refused (it is being retried).",
        |s| u64::from(s.storage_failing.load(Relaxed)),
    ),
    (
        "crema_sync_running",
        GAUGE,
        "Whether a history sync of the machine (scheduled or asked for) is running.",
        |s| u64::from(s.syncing.load(Relaxed)),
    ),
    (
        "crema_sync_done",
        GAUGE,
        "Shots the running (or last) history sync of the machine has fetched.",
        |s| s.sync_done.load(Relaxed),
    ),
    (
        "crema_sync_total",
        GAUGE,
        "Shots the running (or last) history sync of the machine has to fetch.",
        |s| s.sync_total.load(Relaxed),
    ),
    (
        "crema_sync_failures",
        COUNTER,
        "History syncs of the machine that failed.",
        |s| s.syncs_failed.load(Relaxed),
    ),
    (
        "crema_sync_last_success_timestamp_seconds",
        GAUGE,
        "When the last history sync of the machine succeeded (0: never).",
        |s| s.last_sync_unix.load(Relaxed),
    ),
];

/// The recording loops, one sample per machine in each family.
fn machines<'a>(
    m: &mut Families,
    machines: impl Iterator<Item = (&'a str, &'a MachineStats)> + Clone,
) {
    for (name, counter, help, read) in PER_MACHINE {
        let family = if counter {
            m.counter(name, help)
        } else {
            m.gauge(name, help)
        };
        for (machine, stats) in machines.clone() {
            family.sample(&[("machine", machine)], read(stats));
        }
    }
}

/// The store's commit histogram.
const COMMITS: &str = "crema_storage_commit_seconds";
const COMMITS_HELP: &str =
    "Time of each database commit (a batch of writes), BEGIN to the end of COMMIT, fsync included.";

/// Starts pushing `registry` to the collector of `config` as `service`, with the commits of
/// `store` (whose histogram the store reports into as each commit ends).
pub fn export(
    registry: Arc<Registry>,
    store: &Store,
    config: &telemetry::otlp::OtlpConfig,
    service: &'static str,
) -> Result<telemetry::otlp::Exporter, telemetry::otlp::OtlpError> {
    let exporter = telemetry::otlp::Exporter::start(registry, config, service)?;
    store.on_commit(exporter.seconds_histogram(COMMITS, COMMITS_HELP, &storage::COMMIT_BUCKETS));
    Ok(exporter)
}

/// The store: commit latency and failures, and the shots stored.
fn storage(m: &mut Families, store: &Store) {
    let commits = store.commit_stats();
    m.histogram(
        COMMITS,
        COMMITS_HELP,
        commits.seconds_sum,
        commits.commits,
        commits.buckets,
    );
    m.counter(
        "crema_storage_commit_failures",
        "Database commits that failed (a full disk, say).",
    )
    .sample(&[], commits.failed);
    let shots = m.gauge("crema_shots", "Shots stored.");
    if let Ok(reader) = store.reader()
        && let Ok(count) = reader.shot_count()
    {
        shots.sample(&[], count);
    }
}

/// Webhooks, external analyzers and Visualizer uploads, and the outbox they go through.
fn hooks(m: &mut Families, finished: &FinishedShots) {
    let family = m.counter(
        "crema_webhook_deliveries",
        "Finished shots per webhook, by this process: delivered (2xx), failed (refused, or out of tries).",
    );
    for hook in finished.hooks() {
        for (result, count) in [
            ("delivered", &hook.stats.delivered),
            ("failed", &hook.stats.failed),
        ] {
            family.sample(
                &[("webhook", hook.name()), ("result", result)],
                count.load(Relaxed),
            );
        }
    }
    let family = m.counter("crema_webhook_retries", "Webhook tries after a failed one.");
    for hook in finished.hooks() {
        family.sample(
            &[("webhook", hook.name())],
            hook.stats.retries.load(Relaxed),
        );
    }
    if let Some(visualizer) = finished.visualizer() {
        let family = m.counter(
            "crema_visualizer_uploads",
            "Finished shots uploaded to Visualizer by this process: uploaded, failed (refused, or out of tries).",
        );
        for (result, count) in [
            ("uploaded", &visualizer.stats.uploaded),
            ("failed", &visualizer.stats.failed),
        ] {
            family.sample(&[("result", result)], count.load(Relaxed));
        }
        m.counter(
            "crema_visualizer_retries",
            "Visualizer upload tries after a failed one.",
        )
        .sample(&[], visualizer.stats.retries.load(Relaxed));
    }
    let reader = finished.store().reader();
    let unplanned = m.gauge(
        "crema_outbox_unplanned",
        "Finished shots whose deliveries are not planned yet (a shot a crash cut waits 30 s for its recording to resume).",
    );
    if let Ok(reader) = &reader
        && let Ok(waiting) = reader.unplanned()
    {
        unplanned.sample(&[], waiting);
    }
    let family = m.gauge(
        "crema_outbox_deliveries",
        "Deliveries in the store's outbox (kept 30 days) per target and status: pending, delivered, failed.",
    );
    if let Ok(reader) = &reader
        && let Ok(counts) = reader.delivery_counts()
    {
        for (target, status, count) in counts {
            family.sample(&[("target", &target), ("status", &status)], count);
        }
    }
    let family = m.counter(
        "crema_analyzer_answers",
        "External analyzer requests: ok (JSON stored) or failed.",
    );
    for analyzer in finished.analyzers() {
        let (ok, failed) = analyzer.counts();
        for (result, count) in [("ok", ok), ("failed", failed)] {
            family.sample(&[("analyzer", analyzer.name()), ("result", result)], count);
        }
    }
}

/// The active run, and the runs stored.
fn runs(m: &mut Families, runs: &Runs, store: &Store) {
    let current = runs.current().ok().flatten();
    m.gauge(
        "crema_run_active",
        "Whether a run (sync, qa, analyze, upload) is queued or running.",
    )
    .sample(&[], u64::from(current.is_some()));
    let (done, total) = current.as_ref().map_or((0, 0), |r| (r.done, r.total));
    m.gauge(
        "crema_run_done",
        "Items the active run has done (0 without one).",
    )
    .sample(&[], done);
    m.gauge(
        "crema_run_total",
        "Items the active run has to do (0 without one).",
    )
    .sample(&[], total);
    let family = m.gauge("crema_runs", "Runs stored, by kind and status.");
    if let Ok(reader) = store.reader()
        && let Ok(counts) = reader.run_counts()
    {
        for (kind, status, count) in counts {
            family.sample(&[("kind", &kind), ("status", &status)], count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_names_a_failing_store_and_a_machine_not_connected() {
        let dir = tempfile::tempdir().unwrap();
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let failing = fail.clone();
        let options = storage::Options {
            fail_commit: Some(Arc::new(move |_| failing.load(Relaxed))),
            ..storage::Options::default()
        };
        let store = Store::open(&dir.path().join("crema.db"), options).unwrap();
        let up = MachineStats::default();
        up.connected.store(true, Relaxed);
        let down = MachineStats::default();
        let release = || storage::Write::Release { name: "x".into() };
        store.write_blocking(release()).unwrap();
        assert!(health([("kitchen", &up)].into_iter(), &store).is_ok());
        // A full disk refuses the commit.
        fail.store(true, Relaxed);
        assert!(store.write_blocking(release()).is_err());
        let sick = health([("kitchen", &up), ("office", &down)].into_iter(), &store);
        let text = serde_json::to_value(&sick).unwrap();
        assert_eq!(text["status"], "unhealthy");
        assert_eq!(text["problems"][0]["what"], "storage");
        assert_eq!(
            (
                text["problems"][1]["what"].as_str(),
                text["problems"][1]["machine"].as_str()
            ),
            (Some("machine"), Some("office"))
        );
        let mut registry = Registry::new();
        registry.register(move |m: &mut Families| healthy(m, &sick));
        let (_, families) = registry.text(None);
        assert!(families.contains("crema_healthy 0\n"), "{families}");
        assert!(families.contains("crema_storage_healthy 0\n"), "{families}");
        // Space again: the next batch stores whole, and storage is healthy again.
        fail.store(false, Relaxed);
        store.write_blocking(release()).unwrap();
        assert!(health([("kitchen", &up)].into_iter(), &store).is_ok());
        assert_eq!(
            serde_json::to_value(health([("kitchen", &up)].into_iter(), &store)).unwrap(),
            serde_json::json!({"status": "ok"})
        );
    }

    #[test]
    fn families_and_escaped_labels() {
        let stats = MachineStats::default();
        stats.events.store(12, Relaxed);
        let stats = Arc::new(stats);
        let mut registry = Registry::new();
        registry.register(move |m: &mut Families| {
            machines(m, [("kit\"chen\\\n", &*stats)].into_iter());
        });
        let (_, text) = registry.text(None);
        assert!(text.contains("# TYPE crema_machine_events_total counter\n"));
        assert!(
            text.contains("crema_machine_events_total{machine=\"kit\\\"chen\\\\\\n\"} 12\n"),
            "{text}"
        );
        assert_eq!(text.matches("# HELP").count(), PER_MACHINE.len());
        // OpenMetrics when asked for: a counter's family is named without `_total`, and the
        // text ends with `# EOF`.
        let (kind, open) = registry.text(Some("application/openmetrics-text;version=1.0.0"));
        assert_eq!(kind, telemetry::OPENMETRICS_TEXT);
        assert!(
            open.contains("# TYPE crema_machine_events counter\n"),
            "{open}"
        );
        assert!(open.ends_with("# EOF\n"), "{open}");
    }
}
