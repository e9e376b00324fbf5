//! The storage seam: what a backend implements so that the application layer (and the
//! [`Store`](crate::Store) around it) need not know which database holds the shots.
//!
//! - [`Reader`]: every read the application makes, on a connection of its own.
//! - [`Writer`]: applies a batch of [`Write`]s in one transaction (each in a savepoint, so
//!   one failing write fails alone) and answers each; owned by the store's writer thread, which
//!   does the queueing, batching and answering the same way for every backend.
//! - [`Backend`]: opens readers and names the store for log lines.
//!
//! SQLite ([`crate::sqlite`]) is the one backend today. A new one implements these three and
//! passes `storage::conformance` (feature `conformance`), the suite of behaviours every backend keeps.

use std::collections::BTreeSet;
use std::path::Path;

use crate::read::write_atomically;
use crate::{Applied, QaResult, Run, ShotFile, ShotSummary, ShotsPage, StorageError, Write};

/// Every read the application makes of a store, whatever the backend. A backend proves it
/// implements them faithfully by passing `storage::conformance`.
pub trait Reader: Send {
    /// Shots newest first, at most `limit`, starting after cursor `before`.
    fn shots(&self, limit: usize, before: Option<&str>) -> Result<ShotsPage, StorageError>;

    /// Every shot, newest first.
    fn all_shots(&self) -> Result<Vec<ShotSummary>, StorageError>;

    /// How many shots are stored.
    fn shot_count(&self) -> Result<u64, StorageError>;

    /// One shot by the store's key.
    fn shot(&self, key: i64) -> Result<Option<ShotSummary>, StorageError>;

    /// One shot by the machine's UUID or the store's key (as text).
    fn find(&self, id_or_key: &str) -> Result<Option<ShotSummary>, StorageError>;

    /// The samples of a shot, in order, as stored (history-shaped JSON).
    fn samples(&self, key: i64) -> Result<Vec<Box<serde_json::value::RawValue>>, StorageError>;

    /// The shot in the Meticulous shot-file format.
    fn shot_file(&self, key: i64) -> Result<Option<ShotFile>, StorageError>;

    /// Writes the shot file of `key` to `path` atomically: a temporary file beside it, flushed
    /// to disk, then renamed over `path` (a crash leaves the old file or the new one, never half).
    fn export(&self, key: i64, path: &Path) -> Result<bool, StorageError> {
        let Some(file) = self.shot_file(key)? else {
            return Ok(false);
        };
        let json = serde_json::to_vec(&file).map_err(|source| StorageError::Corrupt {
            what: "shot file",
            source,
        })?;
        write_atomically(path, &json)?;
        Ok(true)
    }

    /// The machine UUIDs the store holds as history copies, for `machine`.
    fn history_ids(&self, machine: &str) -> Result<BTreeSet<String>, StorageError>;

    /// Run `id`.
    fn run(&self, id: i64) -> Result<Option<Run>, StorageError>;

    /// The run queued or running, if any.
    fn active_run(&self) -> Result<Option<Run>, StorageError>;

    /// The newest runs, newest first.
    fn runs(&self, limit: usize) -> Result<Vec<Run>, StorageError>;

    /// How many runs of each kind ended (or stand) in each status: `(kind, status, count)`.
    fn run_counts(&self) -> Result<Vec<(String, String, u64)>, StorageError>;

    /// The QA verdicts stored for shot `key`, by check name.
    fn qa_results(&self, key: i64) -> Result<Vec<QaResult>, StorageError>;

    /// The keys of the shots no QA run has checked yet, oldest first.
    fn unchecked_shot_keys(&self) -> Result<Vec<i64>, StorageError>;

    /// The store's key of the live shot the recorder numbered `recording_key`.
    fn key_of_recording(&self, recording_key: u64) -> Result<Option<i64>, StorageError>;

    /// The key of every shot that is not being recorded, oldest first (a shot in progress is
    /// checked and analyzed once it ends).
    fn shot_keys(&self) -> Result<Vec<i64>, StorageError>;

    /// The analyses stored for shot `key`: `{analyzer, result, created_at}`, by analyzer.
    fn analyses(&self, key: i64) -> Result<Vec<serde_json::Value>, StorageError>;

    /// `PRAGMA integrity_check`: `ok`, or what is wrong.
    fn integrity_check(&self) -> Result<String, StorageError>;
    /// Finished shots whose deliveries are not planned yet and are due by `due_by` (Unix
    /// seconds; `None`: all of them), oldest first ([`crate::outbox`]).
    fn unexpanded(
        &self,
        due_by: Option<f64>,
        limit: usize,
    ) -> Result<Vec<crate::Finished>, StorageError>;
    /// Pending deliveries to `target` (`None`: to every target) due by `due_by` (Unix
    /// seconds; `None`: all of them), soonest first.
    fn pending_deliveries(
        &self,
        target: Option<&str>,
        due_by: Option<f64>,
        limit: usize,
    ) -> Result<Vec<crate::Delivery>, StorageError>;
    /// `(target, status, count)` over the outbox.
    fn delivery_counts(&self) -> Result<Vec<(String, String, u64)>, StorageError>;
    /// How many finished shots' deliveries are not planned yet (due or not).
    fn unplanned(&self) -> Result<u64, StorageError>;
}

/// The write side of a backend. The store's writer thread owns it.
pub trait Writer: Send + 'static {
    /// Applies `writes` in one transaction, each in a savepoint of its own, and commits;
    /// answers each write, in order. A write that fails fails alone; a commit that fails fails
    /// every write of the batch (nothing of it is stored).
    fn apply(&mut self, writes: &[&Write]) -> Vec<Result<Applied, StorageError>>;

    /// The store is closing: everything was applied; flush what the backend keeps (a WAL
    /// checkpoint, say).
    fn close(&mut self);
}

/// A store's backend, shared by everything that reads.
pub trait Backend: Send + Sync + 'static {
    /// A new reader (a connection of its own).
    fn reader(&self) -> Result<Box<dyn Reader>, StorageError>;

    /// Where the store is, for log lines (a path, or a URL without its password).
    fn location(&self) -> String;
}
