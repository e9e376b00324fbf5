//! Storage for shots, their samples, analyses, runs and QA results. The only crate that knows
//! SQL.
//!
//! - **The seam** ([`backend`]): the application reads through [`Reader`] and writes
//!   [`Write`]s through a [`Store`]; a backend implements [`Reader`], [`Writer`] and
//!   [`Backend`], and proves itself by passing `conformance` (feature `conformance`). SQLite ([`sqlite`]) is the
//!   embedded default.
//! - One **writer thread** owns the read-write connection. Writes reach it through a bounded
//!   queue; it takes everything waiting, applies each write in its own savepoint inside one
//!   `BEGIN IMMEDIATE` transaction, commits, and only then answers each caller. A write that fails
//!   fails alone; a commit that fails fails the whole batch (nothing of it was written).
//! - **Readers** ([`Store::reader`]) are separate read-only connections: WAL lets them read while
//!   the writer writes.
//! - WAL, `synchronous=FULL`, `foreign_keys=ON`, a busy timeout; versioned migrations with their
//!   way back (`schema.rs`); `wal_checkpoint(TRUNCATE)` on close.
//! - A live shot is recorded into its row as it goes (`status = recording`, one row per sample);
//!   [`Store::open`] finishes the rows a crash left recording as `partial` before anything else.
//! - History wins: [`Write::UpsertHistory`] replaces a live copy of the same shot (by the machine's
//!   UUID) and never duplicates; live writes never touch a row history has replaced. Every write
//!   is idempotent.
#![deny(missing_docs)]

pub mod backend;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod db;
pub mod lease;
pub mod outbox;
pub mod postgres;
mod read;
mod runs;
mod schema;
pub mod sqlite;
mod stats;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use meticulous::{Entry, Sample};
use recorder_core::{Shot, ShotKey, ShotStart};
use tokio::sync::{mpsc, oneshot};

pub use backend::{Backend, Reader, Writer};
pub use db::DbError;
pub use lease::{Holder, Owner};
pub use outbox::{Delivery, Finished, NewDelivery};
pub use read::{ShotFile, ShotSummary, ShotsPage};
pub use runs::{Analysis, QaResult, Run, RunKind, RunProgress, RunStatus};
pub use stats::{COMMIT_BUCKETS, CommitObserver, CommitStats};

/// Why storage failed, with what it was doing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The database could not be opened, reached or set up.
    #[error("cannot open the database {location}: {source}")]
    Open {
        /// The file, or the server's URL without its password.
        location: String,
        /// The engine's reason.
        source: DbError,
    },
    /// `--db` names no database this build can open.
    #[error("{location} is not a database crema can open: {reason}")]
    Location {
        /// What was given (without a password).
        location: String,
        /// Why not, and what would do.
        reason: String,
    },
    /// The schema could not be brought to this version.
    #[error("cannot migrate the database {location}: {reason}")]
    Migrate {
        /// The file, or the server's URL without its password.
        location: String,
        /// The migration's reason.
        reason: String,
    },
    /// A statement failed (a full disk reads "database or disk is full").
    #[error("{what}: {source}")]
    Sql {
        /// What was being done.
        what: &'static str,
        /// The engine's reason.
        source: DbError,
    },
    /// Writing an export file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// A stored value does not read back (JSON written by an older or broken version).
    #[error("a stored {what} does not read: {source}")]
    Corrupt {
        /// What.
        what: &'static str,
        /// serde_json's reason.
        source: serde_json::Error,
    },
    /// The writer thread is gone (the store was closed, or it panicked).
    #[error("the database writer has stopped")]
    Closed,
    /// A fenced write was refused: this process no longer holds the lease it was fenced with.
    #[error("lost the lease {lease}{}", lost_to(.holder))]
    LeaseLost {
        /// The lease.
        lease: String,
        /// Who holds it now, if anyone.
        holder: Option<Holder>,
    },
}

fn lost_to(holder: &Option<Holder>) -> String {
    holder
        .as_ref()
        .map(|h| format!(": {h}"))
        .unwrap_or_default()
}

pub(crate) fn sql(what: &'static str) -> impl FnOnce(DbError) -> StorageError {
    move |source| StorageError::Sql { what, source }
}

/// One change to the database. Apply with [`Store::write`].
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A live shot began on `machine` (its row, `recording`). Ignored if the row exists.
    StartShot {
        /// The machine's name.
        machine: String,
        /// As the recorder reported it.
        start: ShotStart,
    },
    /// Samples of a shot being recorded, in order.
    Journal {
        /// The recorder's key.
        key: ShotKey,
        /// The samples.
        samples: Vec<Sample>,
    },
    /// The machine's UUID and start time for a live shot. If history already holds that shot,
    /// the live row gives way to it.
    Identify {
        /// The recorder's key.
        key: ShotKey,
        /// The machine's UUID.
        id: String,
        /// The machine's start time, Unix seconds.
        started_unix_s: f64,
    },
    /// The live shot `from` is the interrupted shot `into`: move its samples there and record on.
    Merge {
        /// The shot begun after a reconnect.
        from: ShotKey,
        /// The shot a disconnect cut.
        into: ShotKey,
    },
    /// A live shot ended and is kept.
    Finish(Shot),
    /// A live shot ended too short: remove it.
    Discard {
        /// The recorder's key.
        key: ShotKey,
    },
    /// A shot from the machine's history: insert it, or replace the live copy (history wins).
    UpsertHistory {
        /// The machine's name.
        machine: String,
        /// The history entry, with its samples.
        entry: Box<Entry>,
    },
    /// A new run, queued and executed by this process, which takes the [`lease::RUNS`]
    /// lease: answers [`Applied::RunCreated`], or [`Applied::RunBusy`] with the run already
    /// active (at most one is). An active run whose process no longer holds the lease is
    /// interrupted first.
    CreateRun {
        /// What it does.
        kind: RunKind,
        /// The machine (sync of one machine).
        machine: Option<String>,
        /// The shots it covers (`None`: every stored shot).
        shots: Option<Vec<i64>>,
        /// What started it (`api`, `cli`, `schedule`).
        started_by: String,
    },
    /// A run's progress (or its end). Ignored once the run has finished.
    RunProgress(RunProgress),
    /// Ends as interrupted the active run whose executing process no longer holds the
    /// [`lease::RUNS`] lease (it died, on this host or another): answers
    /// [`Applied::Interrupted`]. What every process sharing a store does now and then, so a
    /// dead instance's run ends within the lease's life.
    InterruptOrphans,
    /// QA verdicts on shots (shot key, one verdict per check), replacing earlier verdicts of
    /// the same checks.
    QaResults(Vec<(i64, Vec<QaResult>)>),
    /// Analyses of shots, each replacing an earlier one of the same shot by the same analyzer.
    Analyses(Vec<Analysis>),
    /// Takes or renews lease `name` for this process until `ttl` from now ([`lease`]): answers
    /// [`Applied::Leased`] or [`Applied::LeaseHeld`]. Taking `machine:<m>` from nobody (or
    /// from a dead or expired holder) finishes `m`'s shots left recording as partial, in the
    /// same transaction.
    Lease {
        /// The lease ([`lease::machine`], [`lease::RUNS`]).
        name: String,
        /// How long it lasts unless renewed.
        ttl: std::time::Duration,
    },
    /// Renews lease `name`, which this process took with `token`, until `ttl` from now; never
    /// takes it anew: [`StorageError::LeaseLost`] if another process holds it now (or took it
    /// since).
    Renew {
        /// The lease.
        name: String,
        /// The token [`Applied::Leased`] gave.
        token: u64,
        /// How long it lasts unless renewed again.
        ttl: std::time::Duration,
    },
    /// Plans the deliveries of finished shot event `finished` ([`outbox`]): one per target,
    /// each under its idempotency key. Expanding an event twice changes nothing.
    Expand {
        /// The event ([`Finished::id`]).
        finished: i64,
        /// What to deliver.
        deliveries: Vec<NewDelivery>,
    },
    /// Delivery `id` was accepted; an analyzer's answer is stored with it, in the same
    /// transaction. Answers [`Applied::Done`] the first time, [`Applied::AlreadyDone`] after.
    Delivered {
        /// The delivery ([`Delivery::id`]).
        id: i64,
        /// An analyzer's answer to store.
        analysis: Option<Analysis>,
    },
    /// Delivery `id` failed: due again at `retry_at` (Unix seconds), or failed for good.
    DeliveryFailed {
        /// The delivery.
        id: i64,
        /// Why, for a person.
        error: String,
        /// When to try again (`None`: never).
        retry_at: Option<f64>,
    },
    /// Gives lease `name` up, if this process holds it.
    Release {
        /// The lease.
        name: String,
    },
    /// `write`, applied only while this process still holds lease `lease` with `token`
    /// (otherwise [`StorageError::LeaseLost`], and nothing is written).
    Fenced {
        /// The lease.
        lease: String,
        /// The token [`Applied::Leased`] gave.
        token: u64,
        /// The write.
        write: Box<Write>,
    },
}

impl Write {
    /// The write that stores a recorder output on `machine`, if it needs one.
    pub fn from_output(machine: &str, output: &recorder_core::Output) -> Option<Write> {
        use recorder_core::Output;
        Some(match output {
            Output::Started(start) => Write::StartShot {
                machine: machine.to_owned(),
                start: start.clone(),
            },
            Output::Journal { key, samples } => Write::Journal {
                key: *key,
                samples: samples.clone(),
            },
            Output::Identified {
                key,
                id,
                started_unix_s,
            } => Write::Identify {
                key: *key,
                id: id.clone(),
                started_unix_s: *started_unix_s,
            },
            Output::Merged { from, into } => Write::Merge {
                from: *from,
                into: *into,
            },
            Output::Finish(shot) => Write::Finish(shot.clone()),
            Output::Discard { key, .. } => Write::Discard { key: *key },
            Output::LookupCurrentShot { .. } | Output::Stalled { .. } => return None,
        })
    }
}

/// What a history upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// A shot the store did not have.
    Inserted,
    /// Replaced the live copy, or refreshed an older history copy.
    Replaced,
    /// The same history copy was already stored.
    Unchanged,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Done (or nothing to do: writes are idempotent).
    Done,
    /// A history upsert.
    History(Upserted),
    /// A run was created, queued.
    RunCreated {
        /// Its id.
        id: i64,
        /// The token of the runs lease this process took with it (renew it with
        /// [`Write::Renew`] while the run is active).
        lease_token: u64,
    },
    /// No run was created: this one is active.
    RunBusy {
        /// The active run's id.
        active: i64,
    },
    /// This process holds the lease.
    Leased {
        /// Its fencing token: larger with every new holder.
        token: u64,
        /// Shots left recording by the machine's previous holder, finished as partial now
        /// (a `machine:` lease taken from nobody, or from a dead or expired holder).
        recovered: Vec<Recovered>,
        /// For a `machine:` lease taken: the first recording key free for the machine's next
        /// live shot, in the machine's own slot ([`lease::SLOT_BITS`]), so that no other
        /// process's machine ever takes the same keys.
        first_key: Option<u64>,
    },
    /// Another process holds the lease.
    LeaseHeld(Holder),
    /// Nothing to do: a delivery already recorded as delivered or failed.
    AlreadyDone,
    /// Runs ended as interrupted (their process no longer held the runs lease).
    Interrupted(Vec<i64>),
}

/// Test hook: decides, for the n-th commit (from 1), whether the store must refuse it (as a
/// full disk would: the batch is rolled back and every write of it fails).
pub type CommitFault = Arc<dyn Fn(u64) -> bool + Send + Sync>;

/// How the store is opened.
#[derive(Clone)]
pub struct Options {
    /// Writes that may wait for the writer before [`Store::write`] waits (1024).
    pub queue: usize,
    /// The most writes committed together (256).
    pub batch: usize,
    /// Fault injection for tests: make chosen commits fail as a full disk would.
    pub fail_commit: Option<CommitFault>,
    /// This process, as a lease holder ([`Owner::this_process`]).
    pub owner: Owner,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            queue: 1024,
            batch: 256,
            fail_commit: None,
            owner: Owner::this_process(),
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("queue", &self.queue)
            .field("batch", &self.batch)
            .field("fail_commit", &self.fail_commit.is_some())
            .field("owner", &self.owner)
            .finish()
    }
}

struct Job {
    write: Write,
    ack: oneshot::Sender<Result<Applied, StorageError>>,
}

/// The database: one writer thread, any number of readers, on a [`Backend`]. Closing it (or
/// dropping it) lets the writer finish what was queued and close the backend's writer (SQLite
/// checkpoints the WAL).
pub struct Store {
    backend: Arc<dyn Backend>,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    recovered: Vec<Recovered>,
    stats: Arc<stats::Stats>,
    owner: Owner,
}

/// Where a store is: a SQLite file (the embedded default) or a PostgreSQL database (many
/// gateways on one store). `--db` and `db =` take either: a `postgres://` or `postgresql://`
/// URL is PostgreSQL, anything else a path.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// The SQLite file at this path.
    Sqlite(PathBuf),
    /// The PostgreSQL database at this URL (`postgres://user:password@host:port/db`).
    Postgres(String),
}

impl Database {
    /// What `--db` says.
    pub fn parse(text: &str) -> Database {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Database::Postgres(text.to_owned())
        } else {
            Database::Sqlite(PathBuf::from(text))
        }
    }

    /// The SQLite file, if it is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }

    /// A reader without a writer (for commands that only read, beside a process that may be
    /// writing).
    pub fn reader(&self) -> Result<Box<dyn Reader>, StorageError> {
        match self {
            Database::Sqlite(path) => open_reader(path),
            Database::Postgres(url) => postgres::reader(url),
        }
    }
}

impl std::str::FromStr for Database {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Database::parse(text))
    }
}

/// The path, or the URL without its password: what log lines and errors say.
impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => f.write_str(&postgres::redact(url)),
        }
    }
}

/// Never shows a password.
impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({self})")
    }
}

/// A live shot a crash left recording, finished as partial by [`Store::open`].
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    /// The machine it was recorded from.
    pub machine: String,
    /// The recorder's key.
    pub key: ShotKey,
    /// The machine's UUID, if it was known.
    pub id: Option<String>,
    /// The samples it has.
    pub samples: usize,
    /// When it began, Unix seconds (the machine's time once known, else its first frame's).
    pub started_unix_s: f64,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path`, migrates it, and finishes
    /// what a stopped process left open, but only what no live process holds ([`lease`]):
    /// shots left recording become `partial` ([`Store::recovered`]), active runs
    /// `interrupted`. A recorder or gateway running beside keeps its live shots and its run.
    pub fn open(path: &Path, options: Options) -> Result<Store, StorageError> {
        let opened = sqlite::open(path, &options)?;
        Store::start(opened, options)
    }

    /// As [`Store::open`], on either backend.
    pub fn open_database(database: &Database, options: Options) -> Result<Store, StorageError> {
        let opened = match database {
            Database::Sqlite(path) => sqlite::open(path, &options)?,
            Database::Postgres(url) => postgres::open(url, &options)?,
        };
        Store::start(opened, options)
    }

    /// Starts the writer thread over what a backend opened.
    pub fn start(opened: Opened, options: Options) -> Result<Store, StorageError> {
        let Opened {
            backend,
            writer,
            recovered,
            interrupted,
        } = opened;
        let location = backend.location();
        if !interrupted.is_empty() {
            tracing::warn!(
                runs = ?interrupted,
                "{} run(s) were active when their process stopped; they are marked interrupted",
                interrupted.len()
            );
        }
        if !recovered.is_empty() {
            tracing::warn!(
                shots = ?recovered.iter().map(|r| r.key).collect::<Vec<_>>(),
                "finished {} shot(s) left recording by a stopped process as partial",
                recovered.len()
            );
        }
        let (jobs, rx) = mpsc::channel(options.queue.max(1));
        let batch = options.batch.max(1);
        let stats = Arc::new(stats::Stats::default());
        let writer_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("crema-storage-writer".into())
            .spawn(move || write_loop(writer, rx, batch, &writer_stats))
            .map_err(|source| StorageError::Io {
                path: PathBuf::from(location),
                source,
            })?;
        Ok(Store {
            backend,
            jobs: Some(jobs),
            writer: Some(thread),
            recovered,
            stats,
            owner: options.owner,
        })
    }

    /// The shots [`Store::open`] found recording and finished as partial, by key.
    pub fn recovered(&self) -> &[Recovered] {
        &self.recovered
    }

    /// How the writer's commits went so far: how many, how many failed, and how long they took.
    pub fn commit_stats(&self) -> CommitStats {
        self.stats.snapshot()
    }

    /// Tells `observer` the time of every commit from now on (one observer per store: `false`
    /// when one is set already).
    pub fn on_commit(&self, observer: CommitObserver) -> bool {
        self.stats.observe(observer)
    }

    /// Applies `write`; answers once it is committed (durable), or with why it is not.
    pub async fn write(&self, write: Write) -> Result<Applied, StorageError> {
        let (ack, answer) = oneshot::channel();
        let jobs = self.jobs.as_ref().ok_or(StorageError::Closed)?;
        jobs.send(Job { write, ack })
            .await
            .map_err(|_| StorageError::Closed)?;
        answer.await.map_err(|_| StorageError::Closed)?
    }

    /// As [`Store::write`], for code outside an async runtime.
    pub fn write_blocking(&self, write: Write) -> Result<Applied, StorageError> {
        let (ack, answer) = oneshot::channel();
        let jobs = self.jobs.as_ref().ok_or(StorageError::Closed)?;
        jobs.blocking_send(Job { write, ack })
            .map_err(|_| StorageError::Closed)?;
        answer.blocking_recv().map_err(|_| StorageError::Closed)?
    }

    /// A new reader (a connection of its own).
    pub fn reader(&self) -> Result<Box<dyn Reader>, StorageError> {
        self.backend.reader()
    }

    /// Lets the writer finish what is queued, checkpoints the WAL and closes. Call it from a
    /// blocking context (it joins the writer thread).
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.jobs = None;
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the database writer thread panicked");
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.backend.location())
            .field("owner", &self.owner.id)
            .finish_non_exhaustive()
    }
}

/// What a backend's `open` hands to [`Store::start`].
pub struct Opened {
    /// The backend (readers).
    pub backend: Arc<dyn Backend>,
    /// Its writer, for the writer thread.
    pub writer: Box<dyn Writer>,
    /// Live shots left recording by a stopped process, finished as partial at open.
    pub recovered: Vec<Recovered>,
    /// Runs left active by a stopped process, interrupted at open.
    pub interrupted: Vec<i64>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("location", &self.backend.location())
            .field("recovered", &self.recovered)
            .field("interrupted", &self.interrupted)
            .finish_non_exhaustive()
    }
}

/// A reader of the SQLite store at `path` without a writer (for commands that only read, beside
/// a process that may be writing).
pub fn open_reader(path: &Path) -> Result<Box<dyn Reader>, StorageError> {
    Ok(Box::new(read::SqlReader::new(sqlite::open_read_only(
        path,
    )?)))
}

/// The writer thread: takes what is waiting (at most `batch`), has the backend apply it in one
/// transaction, answers each caller after the commit.
fn write_loop(
    mut writer: Box<dyn Writer>,
    mut jobs: mpsc::Receiver<Job>,
    batch: usize,
    stats: &stats::Stats,
) {
    let mut waiting: Vec<Job> = Vec::with_capacity(batch);
    while let Some(first) = jobs.blocking_recv() {
        waiting.push(first);
        while waiting.len() < batch {
            match jobs.try_recv() {
                Ok(job) => waiting.push(job),
                Err(_) => break,
            }
        }
        let began = std::time::Instant::now();
        let writes: Vec<&Write> = waiting.iter().map(|job| &job.write).collect();
        let results = writer.apply(&writes);
        let error = results
            .iter()
            .find_map(|r| r.as_ref().err().map(ToString::to_string));
        stats.record(began.elapsed(), error);
        for (job, result) in waiting.drain(..).zip(results) {
            // The caller may have given up waiting; the write stands either way.
            let _ = job.ack.send(result);
        }
    }
    writer.close();
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}
