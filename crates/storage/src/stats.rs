//! Commit statistics for `/metrics`: a count, the failures, and a latency histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The histogram's upper bounds, in seconds (Prometheus `le` labels).
pub const COMMIT_BUCKETS: [f64; 10] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// What the writer thread counts, shared with [`crate::Store::commit_stats`].
#[derive(Default)]
pub(crate) struct Stats {
    commits: AtomicU64,
    failed: AtomicU64,
    micros: AtomicU64,
    /// Commits at or under each bound of [`COMMIT_BUCKETS`] (not cumulative here).
    buckets: [AtomicU64; COMMIT_BUCKETS.len()],
    /// Why the last batch had a write that was not stored; `None` once a batch stores all.
    last_error: Mutex<Option<String>>,
    /// Told the time of every commit, once set ([`crate::Store::on_commit`]).
    observer: OnceLock<CommitObserver>,
}

/// What is told the time of every commit (an OpenTelemetry histogram, say).
pub type CommitObserver = Arc<dyn Fn(Duration) + Send + Sync>;

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("commits", &self.commits)
            .field("failed", &self.failed)
            .field("observed", &self.observer.get().is_some())
            .finish_non_exhaustive()
    }
}

impl Stats {
    /// Sets what is told every commit's time; `false` when one is set already.
    pub(crate) fn observe(&self, observer: CommitObserver) -> bool {
        self.observer.set(observer).is_ok()
    }

    /// One batch: how long it took from `BEGIN` to the end of `COMMIT`, and the first error
    /// of a write that was not stored (`None`: every write of it is stored).
    pub(crate) fn record(&self, took: Duration, error: Option<String>) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        if error.is_some() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
        self.micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if let Some(observer) = self.observer.get() {
            observer(took);
        }
        let seconds = took.as_secs_f64();
        if let Some(i) = COMMIT_BUCKETS.iter().position(|&le| seconds <= le) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> CommitStats {
        let mut cumulative = 0;
        let buckets = COMMIT_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(&le, n)| {
                cumulative += n.load(Ordering::Relaxed);
                (le, cumulative)
            })
            .collect();
        CommitStats {
            commits: self.commits.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            seconds_sum: self.micros.load(Ordering::Relaxed) as f64 / 1e6,
            buckets,
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// The writer's commits so far (each commit is one batch of writes).
#[derive(Debug, Clone, PartialEq)]
pub struct CommitStats {
    /// Batches committed or tried.
    pub commits: u64,
    /// Batches with a write that was not stored.
    pub failed: u64,
    /// Their total time, `BEGIN` to the end of `COMMIT` (fsync included).
    pub seconds_sum: f64,
    /// Cumulative counts: commits that took at most each bound of [`COMMIT_BUCKETS`], seconds.
    pub buckets: Vec<(f64, u64)>,
    /// Why the last batch did not store every write (`None` when it did, or before the first):
    /// storage is failing now.
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_slow_commits_count_only_in_the_total() {
        let stats = Stats::default();
        stats.record(Duration::from_micros(500), None);
        stats.record(Duration::from_millis(20), Some("disk full".into()));
        assert_eq!(stats.snapshot().last_error.as_deref(), Some("disk full"));
        stats.record(Duration::from_secs(3), None);
        assert_eq!(
            stats.snapshot().last_error,
            None,
            "a batch stored whole clears it"
        );
        let s = stats.snapshot();
        assert_eq!((s.commits, s.failed), (3, 1));
        assert!((s.seconds_sum - 3.0205).abs() < 1e-9, "{}", s.seconds_sum);
        let at = |le: f64| s.buckets.iter().find(|b| b.0 == le).map(|b| b.1);
        assert_eq!(at(0.001), Some(1));
        assert_eq!(at(0.01), Some(1));
        assert_eq!(at(0.025), Some(2));
        assert_eq!(at(1.0), Some(2));
    }
}
