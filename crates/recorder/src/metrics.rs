//! Prometheus text (format 0.0.4) for what this crate runs: the machines' recording loops, the
//! store's commits, the webhooks and analyzers, and the runs. A process adds its own families
//! (the gateway: connections and fan-out) to the same [`Text`].

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use storage::Store;

use crate::outbox::FinishedShots;
use crate::record::MachineStats;
use crate::runs::Runs;

/// Prometheus text being written, one family at a time.
#[derive(Debug, Default)]
pub struct Text(String);

impl Text {
    /// Starts a family: its `HELP` and `TYPE` lines.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    /// A sample of the current family; `labels` is `key="value",…` (values through [`label`]).
    pub fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }

    /// A family of one sample without labels.
    pub fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, "", value);
    }

    /// The text.
    pub fn finish(self) -> String {
        self.0
    }
}

/// A label value, escaped as the text format wants.
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

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

/// `crema_healthy` (what `/healthz` says, as a number) and `crema_storage_healthy`.
pub fn healthy(m: &mut Text, health: &Health) {
    m.one(
        "crema_healthy",
        "gauge",
        "1 when /healthz answers ok: storage stores and every machine is connected.",
        u64::from(health.is_ok()),
    );
    m.one(
        "crema_storage_healthy",
        "gauge",
        "1 when the last batch of writes was stored whole.",
        u64::from(!health.problems.iter().any(|p| p.what == "storage")),
    );
}

/// A per-machine family: name, type, help, and how to read it off the loop's stats.
type MachineMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&MachineStats) -> u64,
);

const PER_MACHINE: [MachineMetric; 14] = [
    (
        "crema_machine_connected",
        "gauge",
        "Whether the process is connected to the machine.",
        |s| u64::from(s.connected.load(Relaxed)),
    ),
    (
        "crema_machine_events_total",
        "counter",
        "Events received from the machine.",
        |s| s.events.load(Relaxed),
    ),
    (
        "crema_recorder_recording",
        "gauge",
        "Whether a shot is being recorded.",
        |s| u64::from(s.recording.load(Relaxed)),
    ),
    (
        "crema_recorder_shot_samples",
        "gauge",
        "Samples journaled for the shot in progress (or the last one).",
        |s| s.shot_samples.load(Relaxed),
    ),
    (
        "crema_recorder_shots_recorded_total",
        "counter",
        "Live shots recorded since the start.",
        |s| s.shots_recorded.load(Relaxed),
    ),
    (
        "crema_recorder_shots_discarded_total",
        "counter",
        "Live shots ended and not kept (flushes, too short, stalled).",
        |s| s.shots_discarded.load(Relaxed),
    ),
    (
        "crema_recorder_unstored_samples",
        "gauge",
        "Samples read from the machine and not stored yet (held while the database refuses writes).",
        |s| s.unstored_samples.load(Relaxed),
    ),
    (
        "crema_recorder_samples_lost_total",
        "counter",
        "Samples given up on because the database refused writes for too long (each loss is logged).",
        |s| s.samples_lost.load(Relaxed),
    ),
    (
        "crema_recorder_storage_failing",
        "gauge",
        "Whether the recording loop's last write was refused (it is being retried).",
        |s| u64::from(s.storage_failing.load(Relaxed)),
    ),
    (
        "crema_sync_running",
        "gauge",
        "Whether a history sync of the machine (scheduled or asked for) is running.",
        |s| u64::from(s.syncing.load(Relaxed)),
    ),
    (
        "crema_sync_done",
        "gauge",
        "Shots the running (or last) history sync of the machine has fetched.",
        |s| s.sync_done.load(Relaxed),
    ),
    (
        "crema_sync_total",
        "gauge",
        "Shots the running (or last) history sync of the machine has to fetch.",
        |s| s.sync_total.load(Relaxed),
    ),
    (
        "crema_sync_failures_total",
        "counter",
        "History syncs of the machine that failed.",
        |s| s.syncs_failed.load(Relaxed),
    ),
    (
        "crema_sync_last_success_timestamp_seconds",
        "gauge",
        "When the last history sync of the machine succeeded (0: never).",
        |s| s.last_sync_unix.load(Relaxed),
    ),
];

/// The recording loops, one sample per machine in each family.
pub fn machines<'a>(
    m: &mut Text,
    machines: impl Iterator<Item = (&'a str, &'a MachineStats)> + Clone,
) {
    for (name, kind, help, read) in PER_MACHINE {
        m.family(name, kind, help);
        for (machine, stats) in machines.clone() {
            m.sample(
                name,
                &format!("machine=\"{}\"", label(machine)),
                read(stats),
            );
        }
    }
}

/// The store: commit latency and failures, and the shots stored.
pub fn storage(m: &mut Text, store: &Store) {
    let commits = store.commit_stats();
    m.family(
        "crema_storage_commit_seconds",
        "histogram",
        "Time of each database commit (a batch of writes), BEGIN to the end of COMMIT, fsync included.",
    );
    for (le, count) in &commits.buckets {
        m.sample(
            "crema_storage_commit_seconds_bucket",
            &format!("le=\"{le}\""),
            count,
        );
    }
    m.sample(
        "crema_storage_commit_seconds_bucket",
        "le=\"+Inf\"",
        commits.commits,
    );
    m.sample("crema_storage_commit_seconds_sum", "", commits.seconds_sum);
    m.sample("crema_storage_commit_seconds_count", "", commits.commits);
    m.one(
        "crema_storage_commit_failures_total",
        "counter",
        "Database commits that failed (a full disk, say).",
        commits.failed,
    );
    if let Ok(reader) = store.reader()
        && let Ok(count) = reader.shot_count()
    {
        m.one("crema_shots", "gauge", "Shots stored.", count);
    }
}

/// Every family of the application layer, as both binaries serve it: the recording loops of
/// `machines`, the store, the hooks and uploads, the runs, and `health`.
pub fn application<'a>(
    m: &mut Text,
    machines: impl Iterator<Item = (&'a str, &'a MachineStats)> + Clone,
    store: &Store,
    finished: &FinishedShots,
    runs: &Runs,
    health: &Health,
) {
    self::machines(m, machines);
    storage(m, store);
    hooks(m, finished);
    self::runs(m, runs, store);
    healthy(m, health);
}

/// Webhooks and external analyzers.
pub fn hooks(m: &mut Text, finished: &FinishedShots) {
    m.family(
        "crema_webhook_deliveries_total",
        "counter",
        "Finished shots per webhook, by this process: delivered (2xx), failed (refused, or out of tries).",
    );
    for hook in finished.hooks() {
        let name = label(hook.name());
        for (result, count) in [
            ("delivered", &hook.stats.delivered),
            ("failed", &hook.stats.failed),
        ] {
            m.sample(
                "crema_webhook_deliveries_total",
                &format!("webhook=\"{name}\",result=\"{result}\""),
                count.load(Relaxed),
            );
        }
    }
    m.family(
        "crema_webhook_retries_total",
        "counter",
        "Webhook tries after a failed one.",
    );
    for hook in finished.hooks() {
        m.sample(
            "crema_webhook_retries_total",
            &format!("webhook=\"{}\"", label(hook.name())),
            hook.stats.retries.load(Relaxed),
        );
    }
    if let Some(visualizer) = finished.visualizer() {
        m.family(
            "crema_visualizer_uploads_total",
            "counter",
            "Finished shots uploaded to Visualizer by this process: uploaded, failed (refused, or out of tries).",
        );
        for (result, count) in [
            ("uploaded", &visualizer.stats.uploaded),
            ("failed", &visualizer.stats.failed),
        ] {
            m.sample(
                "crema_visualizer_uploads_total",
                &format!("result=\"{result}\""),
                count.load(Relaxed),
            );
        }
        m.one(
            "crema_visualizer_retries_total",
            "counter",
            "Visualizer upload tries after a failed one.",
            visualizer.stats.retries.load(Relaxed),
        );
    }
    let reader = finished.store().reader();
    if let Ok(reader) = &reader
        && let Ok(waiting) = reader.unplanned()
    {
        m.one(
            "crema_outbox_unplanned",
            "gauge",
            "Finished shots whose deliveries are not planned yet (a shot a crash cut waits 30 s for its recording to resume).",
            waiting,
        );
    }
    m.family(
        "crema_outbox_deliveries",
        "gauge",
        "Deliveries in the store's outbox (kept 30 days) per target and status: pending, delivered, failed.",
    );
    if let Ok(reader) = &reader
        && let Ok(counts) = reader.delivery_counts()
    {
        for (target, status, count) in counts {
            m.sample(
                "crema_outbox_deliveries",
                &format!(
                    "target=\"{}\",status=\"{}\"",
                    label(&target),
                    label(&status)
                ),
                count,
            );
        }
    }
    m.family(
        "crema_analyzer_answers_total",
        "counter",
        "External analyzer requests: ok (JSON stored) or failed.",
    );
    for analyzer in finished.analyzers() {
        let (ok, failed) = analyzer.counts();
        for (result, count) in [("ok", ok), ("failed", failed)] {
            m.sample(
                "crema_analyzer_answers_total",
                &format!(
                    "analyzer=\"{}\",result=\"{result}\"",
                    label(analyzer.name())
                ),
                count,
            );
        }
    }
}

/// The active run, and the runs stored.
pub fn runs(m: &mut Text, runs: &Runs, store: &Store) {
    let current = runs.current().ok().flatten();
    m.one(
        "crema_run_active",
        "gauge",
        "Whether a run (sync, qa, analyze) is queued or running.",
        u64::from(current.is_some()),
    );
    let (done, total) = current.as_ref().map_or((0, 0), |r| (r.done, r.total));
    m.one(
        "crema_run_done",
        "gauge",
        "Items the active run has done (0 without one).",
        done,
    );
    m.one(
        "crema_run_total",
        "gauge",
        "Items the active run has to do (0 without one).",
        total,
    );
    if let Ok(reader) = store.reader()
        && let Ok(counts) = reader.run_counts()
    {
        m.family("crema_runs", "gauge", "Runs stored, by kind and status.");
        for (kind, status, count) in counts {
            m.sample(
                "crema_runs",
                &format!("kind=\"{}\",status=\"{}\"", label(&kind), label(&status)),
                count,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_names_a_failing_store_and_a_machine_not_connected() {
        let dir = tempfile::tempdir().unwrap();
        let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let failing = fail.clone();
        let options = storage::Options {
            fail_commit: Some(std::sync::Arc::new(move |_| failing.load(Relaxed))),
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
        let mut m = Text::default();
        healthy(&mut m, &sick);
        let families = m.finish();
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
        let mut m = Text::default();
        machines(&mut m, [("kit\"chen", &stats)].into_iter());
        let text = m.finish();
        assert!(text.contains("# TYPE crema_machine_events_total counter\n"));
        assert!(text.contains("crema_machine_events_total{machine=\"kit\\\"chen\"} 12\n"));
        assert_eq!(text.matches("# HELP").count(), PER_MACHINE.len());
    }
}
