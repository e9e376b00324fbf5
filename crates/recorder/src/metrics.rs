//! Prometheus text (format 0.0.4) for what this crate runs: the machines' recording loops, the
//! store's commits, the webhooks and analyzers, and the runs. A process adds its own families
//! (the gateway: connections and fan-out) to the same [`Text`].

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use storage::Store;

use crate::hooks::FinishedShots;
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

/// A per-machine family: name, type, help, and how to read it off the loop's stats.
type MachineMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&MachineStats) -> u64,
);

const PER_MACHINE: [MachineMetric; 11] = [
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

/// Webhooks and external analyzers.
pub fn hooks(m: &mut Text, finished: &FinishedShots) {
    m.family(
        "crema_webhook_deliveries_total",
        "counter",
        "Finished shots per webhook: delivered (2xx), failed (refused, or out of tries), dropped (queue full).",
    );
    for hook in finished.hooks() {
        let name = label(hook.name());
        for (result, count) in [
            ("delivered", &hook.stats.delivered),
            ("failed", &hook.stats.failed),
            ("dropped", &hook.stats.dropped),
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
