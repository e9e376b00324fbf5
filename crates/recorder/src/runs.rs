//! Runs: history sync, QA, analysis and Visualizer uploads over many shots as tracked
//! background work, shared by `crema-gateway` (REST and SSE) and `crema-recorder qa` / `sync` /
//! `upload` (a progress bar).
//!
//! At most one run is active at a time (the store refuses a second: [`Started::Busy`]). A run's
//! snapshot is published on a `watch` channel at every step, and written to the store in batches
//! with the QA results and analyses of the shots done meanwhile: every [`FLUSH_SHOTS`] shots or
//! [`PERSIST_EVERY`], whichever comes first. A crash loses at most that much progress, and the
//! next start marks the run `interrupted`. QA and analysis read shots on a blocking thread of
//! their own: the live path only shares the writer with them, and the batches are small so that
//! a live write never waits long behind one (`cargo xtask bench runs` measures it).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meticulous::Sample;
use meticulous::analysis::{self, QaShot};
use meticulous::api::Api;
use storage::{
    Analysis, Applied, QaResult, Reader, Run, RunKind, RunProgress, RunStatus, Store, Write,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::document;
use crate::hooks::Analyzer;
use crate::lease::Held;
use crate::record::MachineStats;
use crate::unix_now;
use crate::visualizer::{self, Uploaded, Visualizer};

/// Why a run failed: its text is stored as the run's `error`.
type Failure = Box<dyn std::error::Error + Send + Sync>;

/// How often every machine's history is synced by the schedule, by default.
pub const SYNC_EVERY: Duration = Duration::from_secs(15 * 60);

/// Progress is written at most this often.
pub const PERSIST_EVERY: Duration = Duration::from_millis(250);

/// Results are written at least every this many shots: small commits, so that a write of the
/// live path never waits long behind one of a run's (the writer commits one after the other).
pub const FLUSH_SHOTS: usize = 32;

/// A run's event stream ([`Runs::events`]) sends progress at most this often, whatever the
/// pace of the run.
pub const COALESCE: Duration = Duration::from_millis(100);

/// How often the stream of a run another process executes reads it from the store (it stores
/// progress at least every 250 ms).
pub const POLL: Duration = Duration::from_millis(250);

/// How often a process ends the runs of processes that died ([`Runs::reap_orphans`]).
pub const REAP: Duration = Duration::from_secs(3);

/// What an event of a run's stream says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEventKind {
    /// The run as it stands when the stream starts (or resumes).
    Snapshot,
    /// The run moved on.
    Progress,
    /// The run ended: the last event.
    Finished,
}

impl RunEventKind {
    /// `snapshot`, `progress` or `finished`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunEventKind::Snapshot => "snapshot",
            RunEventKind::Progress => "progress",
            RunEventKind::Finished => "finished",
        }
    }
}

/// One event of a run's stream: its kind, its number in the stream, and the whole run.
#[derive(Debug, Clone)]
pub struct RunEvent {
    /// What it says.
    pub kind: RunEventKind,
    /// Its number: the first event gets the `first` given to [`Runs::events`], then one more
    /// each.
    pub seq: u64,
    /// The run's snapshot.
    pub run: Run,
}

/// Where a run's event stream is.
enum Phase {
    /// The snapshot is next; then follow the channel if the run is active.
    First(Box<Run>, Option<watch::Receiver<Run>>),
    /// Progress from the run's channel.
    Live(watch::Receiver<Run>),
    /// Progress of a run another process executes, read from the store as it is stored.
    Polled(Box<Run>),
    /// The terminal event is next.
    Last(Box<Run>),
    Done,
}

/// What a run is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    /// Its kind.
    pub kind: RunKind,
    /// For QA and analysis: the shots, by the store's key or the machine's UUID (`None`: every
    /// stored shot).
    pub shots: Option<Vec<String>>,
    /// For a sync: one machine (`None`: every configured machine).
    pub machine: Option<String>,
    /// What starts it: `api`, `cli` or `schedule` (stored with the run).
    pub started_by: String,
}

/// What [`Runs::start`] did.
#[derive(Debug, Clone)]
pub enum Started {
    /// The run was created and is queued or running.
    Started(Run),
    /// Another run is active: this one.
    Busy(Run),
}

/// Why a run could not be started or found.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The request names something that does not exist.
    #[error("{0}")]
    BadRequest(String),
    /// No such run.
    #[error("no run {0}")]
    NotFound(i64),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
}

/// A machine a sync run can reach.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    /// Its name.
    pub name: String,
    /// Its base URL.
    pub url: String,
    /// Its recording loop's stats, whose `sync_*` gauges each sync of it keeps.
    pub stats: Option<Arc<MachineStats>>,
}

impl SyncTarget {
    /// Machine `name` at `url`, without stats.
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.to_owned(),
            url: url.to_owned(),
            stats: None,
        }
    }
}

struct Active {
    id: i64,
    cancel: CancellationToken,
    progress: watch::Receiver<Run>,
}

/// The gateway's (or the CLI's) runs. See the [module docs](self).
pub struct Runs {
    store: Arc<Store>,
    machines: Vec<SyncTarget>,
    analyzers: Vec<Arc<Analyzer>>,
    visualizer: Option<Arc<Visualizer>>,
    active: Mutex<Option<Active>>,
    /// Held by `start` from the store's answer until the run is followed here: nobody learns a
    /// run's id (from a `Busy` answer) before [`Runs::watch`] can follow it. The store alone
    /// decides which run starts.
    starting: tokio::sync::Mutex<()>,
    /// Set by [`Runs::stop`]: the active run ends `interrupted`, and no new one starts.
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runs")
            .field("machines", &self.machines)
            .finish_non_exhaustive()
    }
}

impl Runs {
    /// Runs over `store`; sync runs reach `machines`; analysis runs ask `analyzers` too;
    /// upload runs send to `visualizer`.
    pub fn new(
        store: Arc<Store>,
        machines: Vec<SyncTarget>,
        analyzers: Vec<Arc<Analyzer>>,
        visualizer: Option<Arc<Visualizer>>,
    ) -> Arc<Runs> {
        Arc::new(Runs {
            store,
            machines,
            analyzers,
            visualizer,
            active: Mutex::new(None),
            starting: tokio::sync::Mutex::new(()),
            stopping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        })
    }

    fn reader(&self) -> Result<Box<dyn Reader>, RunError> {
        Ok(self.store.reader()?)
    }

    /// Creates the run and starts it in the background, or answers the active run.
    pub async fn start(self: &Arc<Self>, request: RunRequest) -> Result<Started, RunError> {
        let _followed_before_known = self.starting.lock().await;
        if self.stopping.load(Ordering::Acquire) {
            return Err(RunError::BadRequest("the process is stopping".into()));
        }
        if request.kind == RunKind::Upload && self.visualizer.is_none() {
            return Err(RunError::BadRequest(
                "no Visualizer account is configured: add [visualizer] to crema.toml (or --visualizer with its credentials)".into(),
            ));
        }
        let reader = self.reader()?;
        let shots = match (&request.kind, &request.shots) {
            (RunKind::Sync, Some(_)) => {
                return Err(RunError::BadRequest(
                    "a sync run takes a machine, not shots".into(),
                ));
            }
            (_, Some(ids)) => {
                let mut keys = Vec::with_capacity(ids.len());
                for id in ids {
                    match reader.find(id)? {
                        Some(shot) => keys.push(shot.key),
                        None => return Err(RunError::BadRequest(format!("no shot {id}"))),
                    }
                }
                Some(keys)
            }
            (_, None) => None,
        };
        let machines: Vec<SyncTarget> = match (&request.kind, &request.machine) {
            (RunKind::Sync, Some(name)) => {
                let m = self
                    .machines
                    .iter()
                    .find(|m| &m.name == name)
                    .ok_or_else(|| RunError::BadRequest(format!("no machine named {name}")))?;
                vec![m.clone()]
            }
            (RunKind::Sync, None) => self.machines.clone(),
            (_, Some(_)) => {
                return Err(RunError::BadRequest(
                    "only a sync run takes a machine".into(),
                ));
            }
            (_, None) => Vec::new(),
        };
        let created = self
            .store
            .write(Write::CreateRun {
                kind: request.kind,
                machine: request.machine.clone(),
                shots: shots.clone(),
                started_by: request.started_by.clone(),
            })
            .await?;
        let (id, lease_token) = match created {
            Applied::RunBusy { active } => {
                let run = reader.run(active)?.ok_or(RunError::NotFound(active))?;
                return Ok(Started::Busy(run));
            }
            Applied::RunCreated { id, lease_token } => (id, lease_token),
            other => unreachable!("creating a run answered {other:?}"),
        };
        let run = reader.run(id)?.ok_or(RunError::NotFound(id))?;
        let (tx, rx) = watch::channel(run.clone());
        let cancel = CancellationToken::new();
        *self.active.lock().unwrap_or_else(|e| e.into_inner()) = Some(Active {
            id,
            cancel: cancel.clone(),
            progress: rx,
        });
        let runs = self.clone();
        let snapshot = run.clone();
        // The run is this process's while it holds the runs lease: renewed until the run ends.
        let lease = Held::renew(self.store.clone(), storage::lease::RUNS, lease_token);
        tokio::spawn(async move {
            // Another process took the lease (this one stalled past it): the run is not ours.
            let (lost, stop_run, ended) = (
                lease.lost().clone(),
                cancel.clone(),
                CancellationToken::new(),
            );
            let _ending = ended.clone().drop_guard();
            tokio::spawn(async move {
                tokio::select! {
                    () = lost.cancelled() => stop_run.cancel(),
                    () = ended.cancelled() => {}
                }
            });
            let job = Job {
                store: runs.store.clone(),
                run: run.clone(),
                tx,
                cancel,
                persisted: Instant::now(),
                stopping: runs.stopping.clone(),
                reports: Vec::new(),
                machines_count: 0,
                analyzers: runs.analyzers.clone(),
                visualizer: runs.visualizer.clone(),
                runtime: tokio::runtime::Handle::current(),
                external_failed: 0,
                external_error: None,
            };
            let finished = match request.kind {
                RunKind::Sync => job.sync(machines).await,
                RunKind::Upload => job.upload(shots).await,
                RunKind::Qa | RunKind::Analyze => {
                    match tokio::task::spawn_blocking(move || job.shots(shots)).await {
                        Ok(run) => run,
                        Err(e) => {
                            tracing::error!("run {id} panicked: {e}");
                            let mut failed = run;
                            failed.status = RunStatus::Failed;
                            failed.error = Some(format!("the run panicked: {e}"));
                            failed.finished_at = Some(unix_now());
                            // Stored, or it would stay "running" and refuse every later run.
                            if let Err(e) = runs.store.write(progress_of(&failed)).await {
                                tracing::error!("cannot store the end of run {id}: {e}");
                            }
                            failed
                        }
                    }
                }
            };
            drop(lease);
            let mut active = runs.active.lock().unwrap_or_else(|e| e.into_inner());
            if active.as_ref().is_some_and(|a| a.id == id) {
                *active = None;
            }
            tracing::info!(
                run = id,
                kind = finished.kind.as_str(),
                status = finished.status.as_str(),
                done = finished.done,
                total = finished.total,
                failed = finished.failed,
                "run ended"
            );
        });
        Ok(Started::Started(snapshot))
    }

    /// The runs stored, newest first, at most `limit`; the active one as it stands now.
    pub fn list(&self, limit: usize) -> Result<Vec<Run>, RunError> {
        let mut runs = self.reader()?.runs(limit)?;
        if let Some(live) = self.current()? {
            for run in runs.iter_mut().filter(|r| r.id == live.id) {
                *run = live.clone();
            }
        }
        Ok(runs)
    }

    /// Every [`REAP`], ends as interrupted the active run whose executing process no longer
    /// holds the runs lease (it died, here or on another host), so that a run is never left
    /// active by a dead instance longer than the lease's life. Every process sharing the store
    /// does it; the store decides, so two at once interrupt it once.
    pub async fn reap_orphans(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(REAP) => {}
            }
            match self.store.write(Write::InterruptOrphans).await {
                Ok(Applied::Interrupted(ids)) if !ids.is_empty() => tracing::warn!(
                    runs = ?ids,
                    "ended run(s) {ids:?} as interrupted: the process executing them stopped"
                ),
                Ok(_) => {}
                Err(e) => tracing::debug!("checking for orphaned runs failed: {e}"),
            }
        }
    }

    /// Syncs every machine's history as soon as one of them is connected, and then every
    /// `every` after the last sync ended, as runs (`started_by: schedule`) under the
    /// one-active-run rule: while another run is active (in this process or another one on the
    /// store), the schedule waits for it. While no machine is connected it waits too, rather
    /// than store a failed run every `every` for a machine that is switched off. Ends when
    /// `stop` is cancelled. Beside it, [`Runs::reap_orphans`].
    pub async fn schedule_sync(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        const RETRY: Duration = Duration::from_secs(2);
        tokio::spawn(self.clone().reap_orphans(stop.clone()));
        if self.machines.is_empty() {
            return;
        }
        loop {
            let reachable = self.machines.iter().any(|m| {
                m.stats
                    .as_ref()
                    .is_none_or(|s| s.connected.load(Ordering::Relaxed))
            });
            if !reachable {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(RETRY) => continue,
                }
            }
            let request = RunRequest {
                kind: RunKind::Sync,
                shots: None,
                machine: None,
                started_by: "schedule".into(),
            };
            let wait = match self.start(request).await {
                Ok(Started::Started(run)) => {
                    if let Some(mut progress) = self.watch(run.id) {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            _ = progress.wait_for(|r| !r.status.is_active()) => {}
                        }
                    }
                    every
                }
                // Another run is active: try again soon after.
                Ok(Started::Busy(active)) => {
                    tracing::debug!(
                        run = active.id,
                        "the scheduled sync waits for run {}",
                        active.id
                    );
                    RETRY
                }
                Err(RunError::BadRequest(reason)) => {
                    tracing::info!("no scheduled sync: {reason}");
                    return;
                }
                Err(e) => {
                    tracing::warn!("cannot start the scheduled sync (next try in {every:?}): {e}");
                    every
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The run's latest snapshot: the live one if it is active, else the stored one.
    pub fn get(&self, id: i64) -> Result<Run, RunError> {
        if let Some(rx) = self.watch(id) {
            return Ok(rx.borrow().clone());
        }
        self.reader()?.run(id)?.ok_or(RunError::NotFound(id))
    }

    /// The active run, if any.
    pub fn current(&self) -> Result<Option<Run>, RunError> {
        let live = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|a| a.progress.borrow().clone())
            // Its end is stored before it is published: past that, the store answers.
            .filter(|run| run.status.is_active());
        match live {
            Some(run) => Ok(Some(run)),
            None => Ok(self.reader()?.active_run()?),
        }
    }

    /// Follows run `id` while it is active: every change of its snapshot, the last one
    /// terminal. `None` when it is not active (read it with [`Runs::get`]).
    pub fn watch(&self, id: i64) -> Option<watch::Receiver<Run>> {
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|a| a.id == id)
            .map(|a| a.progress.clone())
    }

    /// Run `id` as a stream: its snapshot, then a progress event per change (at most one per
    /// [`COALESCE`]), then `finished`, after which the stream ends. A run that has already
    /// ended gives its snapshot and `finished` at once. Events are numbered from `first` (a
    /// client resuming after event `n` asks for `n + 1`).
    pub fn events(
        self: &Arc<Self>,
        id: i64,
        first: u64,
    ) -> Result<impl futures_util::Stream<Item = RunEvent> + Send + 'static, RunError> {
        let rx = self.watch(id);
        let snapshot = self.get(id)?;
        let runs = self.clone();
        let event = |kind, run: &Run, seq| RunEvent {
            kind,
            seq,
            run: run.clone(),
        };
        Ok(futures_util::stream::unfold(
            (Phase::First(Box::new(snapshot), rx), first, runs),
            move |(phase, n, runs)| async move {
                let (next, out) = match phase {
                    Phase::Done => return None,
                    Phase::First(run, rx) => {
                        let next = match rx {
                            Some(rx) if run.status.is_active() => Phase::Live(rx),
                            // Another process executes it (another gateway on the store).
                            None if run.status.is_active() => Phase::Polled(run.clone()),
                            // Not active when asked for: it has ended, and the snapshot is
                            // final (a run's end is stored before it stops being active).
                            _ => Phase::Last(run.clone()),
                        };
                        (next, event(RunEventKind::Snapshot, &run, n))
                    }
                    Phase::Live(mut rx) => {
                        tokio::time::sleep(COALESCE).await;
                        let run = match rx.changed().await {
                            Ok(()) => rx.borrow_and_update().clone(),
                            // The run is gone without a last word (it panicked): what the store
                            // says is all there will be.
                            Err(_) => {
                                let run = runs.reader().ok()?.run(id).ok()??;
                                return Some((
                                    event(RunEventKind::Finished, &run, n),
                                    (Phase::Done, n + 1, runs),
                                ));
                            }
                        };
                        if run.status.is_active() {
                            (Phase::Live(rx), event(RunEventKind::Progress, &run, n))
                        } else {
                            (Phase::Done, event(RunEventKind::Finished, &run, n))
                        }
                    }
                    Phase::Polled(last) => loop {
                        tokio::time::sleep(POLL).await;
                        let reader = runs.clone();
                        let run = tokio::task::spawn_blocking(move || {
                            reader.reader().ok()?.run(id).ok()?
                        })
                        .await
                        .ok()??;
                        if !run.status.is_active() {
                            break (Phase::Done, event(RunEventKind::Finished, &run, n));
                        }
                        if run != *last {
                            break (
                                Phase::Polled(Box::new(run.clone())),
                                event(RunEventKind::Progress, &run, n),
                            );
                        }
                    },
                    Phase::Last(run) => (Phase::Done, event(RunEventKind::Finished, &run, n)),
                };
                Some((out, (next, n + 1, runs)))
            },
        ))
    }

    /// The process is stopping: the active run stops and is stored as `interrupted` (waiting at
    /// most `wait` for it), and no new run starts.
    pub async fn stop(&self, wait: Duration) {
        self.stopping.store(true, Ordering::Release);
        let rx = {
            let active = self.active.lock().unwrap_or_else(|e| e.into_inner());
            active.as_ref().map(|a| {
                a.cancel.cancel();
                a.progress.clone()
            })
        };
        if let Some(mut rx) = rx {
            let ended = rx.wait_for(|run| !run.status.is_active());
            if tokio::time::timeout(wait, ended).await.is_err() {
                tracing::warn!(
                    "a run did not stop within {wait:?}; the next start marks it interrupted"
                );
            }
        }
    }

    /// Asks run `id` to stop; answers its snapshot (already finished runs are left as they are).
    pub fn cancel(&self, id: i64) -> Result<Run, RunError> {
        if let Some(active) = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|a| a.id == id)
        {
            active.cancel.cancel();
            return Ok(active.progress.borrow().clone());
        }
        self.get(id)
    }
}

/// A run being done.
struct Job {
    store: Arc<Store>,
    run: Run,
    tx: watch::Sender<Run>,
    cancel: CancellationToken,
    persisted: Instant,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    /// A sync's report per machine, and how many machines it covers.
    reports: Vec<String>,
    machines_count: usize,
    /// An analysis run's external analyzers, asked from the blocking thread on `runtime`.
    analyzers: Vec<Arc<Analyzer>>,
    /// An upload run's Visualizer account.
    visualizer: Option<Arc<Visualizer>>,
    runtime: tokio::runtime::Handle,
    /// External analyses that failed, and the last reason.
    external_failed: u64,
    external_error: Option<String>,
}

impl Job {
    fn progress(&self) -> Write {
        progress_of(&self.run)
    }

    fn publish(&mut self) {
        self.tx.send_replace(self.run.clone());
    }

    fn begin(&mut self, total: u64) {
        self.run.status = RunStatus::Running;
        self.run.started_at = Some(unix_now());
        self.run.total = total;
    }

    fn end(&mut self, result: Result<(), Failure>) {
        let stopping = self.stopping.load(Ordering::Acquire);
        match result {
            Ok(()) if self.cancel.is_cancelled() && stopping => {
                self.run.status = RunStatus::Interrupted;
                self.run.error = Some("the process stopped while the run was active".into());
            }
            Ok(()) if self.cancel.is_cancelled() => self.run.status = RunStatus::Cancelled,
            Ok(()) => self.run.status = RunStatus::Succeeded,
            Err(e) => {
                self.run.status = RunStatus::Failed;
                self.run.error = Some(crate::error_chain(&*e));
            }
        }
        self.run.finished_at = Some(unix_now());
        let r = &self.run;
        let did = match r.kind {
            RunKind::Qa => format!(
                "{} of {} shots checked: {} passed every check, {} with findings",
                r.done, r.total, r.passed, r.failed
            ),
            RunKind::Analyze => {
                let mut names = vec![analysis::SHOT_FACTS];
                names.extend(self.analyzers.iter().map(|a| a.name()));
                let mut did = format!(
                    "{} of {} shots analyzed with {}",
                    r.done,
                    r.total,
                    names.join(", ")
                );
                if let Some(e) = &self.external_error {
                    did.push_str(&format!(
                        "; {} external analyses failed (the last: {e})",
                        self.external_failed
                    ));
                }
                did
            }
            RunKind::Sync => self.reports.join("; "),
            RunKind::Upload => {
                let mut did = format!(
                    "{} of {} shots sent to Visualizer: {} uploaded, {} failed",
                    r.done, r.total, r.passed, r.failed
                );
                if let Some(e) = &self.external_error {
                    did.push_str(&format!(" (the last: {e})"));
                }
                did
            }
        };
        self.run.summary = Some(match r.status {
            RunStatus::Cancelled => format!("cancelled: {did}"),
            _ => did,
        });
    }

    /// Uploads to Visualizer the shots asked for, or every finished shot it does not have yet.
    async fn upload(mut self, shots: Option<Vec<i64>>) -> Run {
        let result = self.upload_inner(shots).await;
        self.end(result);
        if let Err(e) = self.store.write(self.progress()).await {
            tracing::error!("cannot store the end of run {}: {e}", self.run.id);
        }
        self.publish();
        self.run
    }

    async fn upload_inner(&mut self, shots: Option<Vec<i64>>) -> Result<(), Failure> {
        /// Tries per shot within a run; what still fails is counted and the run goes on.
        const TRIES: u32 = 3;
        /// The longest wait between two tries of one shot within a run.
        const LONGEST: Duration = Duration::from_secs(60);
        let Some(uploader) = self.visualizer.clone() else {
            return Err("no Visualizer account is configured".into());
        };
        let store = self.store.clone();
        let keys = tokio::task::spawn_blocking(move || -> Result<Vec<i64>, Failure> {
            let reader = store.reader()?;
            let keys = match shots {
                Some(keys) => keys,
                None => reader.shot_keys()?,
            };
            let mut missing = Vec::new();
            for key in keys {
                if document::visualizer_id(&*reader, key)?.is_none() {
                    missing.push(key);
                }
            }
            Ok(missing)
        })
        .await
        .map_err(|e| format!("listing the shots panicked: {e}"))??;
        self.begin(keys.len() as u64);
        self.store.write(self.progress()).await?;
        self.publish();
        for key in keys {
            if self.cancel.is_cancelled() {
                break;
            }
            let store = self.store.clone();
            let file = tokio::task::spawn_blocking(move || -> Result<_, Failure> {
                Ok(visualizer::upload_of(&*store.reader()?, key)?)
            })
            .await
            .map_err(|e| format!("reading shot {key} panicked: {e}"))??;
            let outcome = match file {
                None => Err(format!("shot {key} is gone")),
                Some((name, body)) => {
                    let mut attempt = 1;
                    loop {
                        match uploader.upload(key, &body, &name, attempt).await {
                            Uploaded::Done { id } => break Ok(id),
                            Uploaded::Refused(e) => break Err(e),
                            Uploaded::Again { error, .. } if attempt >= TRIES => break Err(error),
                            Uploaded::Again { wait, .. } => {
                                let wait = visualizer::RETRY.wait(attempt, wait).min(LONGEST);
                                tokio::select! {
                                    () = self.cancel.cancelled() => break Err("cancelled".into()),
                                    () = tokio::time::sleep(wait) => {}
                                }
                                attempt += 1;
                            }
                        }
                    }
                }
            };
            match outcome {
                Ok(id) => {
                    let uploaded = uploader.analysis(key, &id);
                    self.store.write(Write::Analyses(vec![uploaded])).await?;
                    self.run.passed += 1;
                }
                Err(_) if self.cancel.is_cancelled() => break,
                Err(e) => {
                    self.run.failed += 1;
                    self.external_failed += 1;
                    self.external_error = Some(e);
                }
            }
            self.run.done += 1;
            self.publish();
            if self.persisted.elapsed() >= PERSIST_EVERY {
                self.persisted = Instant::now();
                self.store.write(self.progress()).await?;
            }
        }
        Ok(())
    }

    /// QA or analysis over shots, on a blocking thread.
    fn shots(mut self, shots: Option<Vec<i64>>) -> Run {
        let result = self.shots_inner(shots);
        self.end(result);
        if let Err(e) = self.store.write_blocking(self.progress()) {
            tracing::error!("cannot store the end of run {}: {e}", self.run.id);
        }
        self.publish();
        self.run
    }

    fn shots_inner(&mut self, shots: Option<Vec<i64>>) -> Result<(), Failure> {
        let reader = self.store.reader()?;
        let keys = match shots {
            Some(keys) => keys,
            None => reader.shot_keys()?,
        };
        self.begin(keys.len() as u64);
        self.store.write_blocking(self.progress())?;
        self.publish();
        let mut qa: Vec<(i64, Vec<QaResult>)> = Vec::new();
        let mut analyses: Vec<Analysis> = Vec::new();
        let mut unflushed = 0;
        for key in keys {
            if self.cancel.is_cancelled() {
                break;
            }
            let passed = match document::load(&*reader, key)? {
                None => false,
                Some((summary, samples)) => match self.run.kind {
                    RunKind::Qa => {
                        let verdicts = analysis::qa(&QaShot {
                            samples: &samples,
                            live: summary.source == "live",
                            end_reason: summary.end_reason.as_deref(),
                            age_s: unix_now() - summary.time,
                        });
                        let passed = verdicts.iter().all(|v| v.passed);
                        qa.push((
                            key,
                            verdicts
                                .into_iter()
                                .map(|v| QaResult {
                                    check: v.check.to_owned(),
                                    passed: v.passed,
                                    message: v.message,
                                })
                                .collect(),
                        ));
                        passed
                    }
                    _ => {
                        analyses.push(facts(key, &samples));
                        match self.external(&*reader, &summary, &mut analyses)? {
                            Some(all_answered) => all_answered,
                            // Cancelled while an analyzer was asked: this shot is not done.
                            None => break,
                        }
                    }
                },
            };
            self.run.done += 1;
            if passed {
                self.run.passed += 1;
            } else {
                self.run.failed += 1;
            }
            self.publish();
            unflushed += 1;
            if self.persisted.elapsed() >= PERSIST_EVERY || unflushed >= FLUSH_SHOTS {
                unflushed = 0;
                self.flush(&mut qa, &mut analyses)?;
            }
        }
        self.flush(&mut qa, &mut analyses)
    }

    /// Asks every external analyzer about the shot, adding their answers to `analyses`:
    /// `Some(true)` when all answered, `None` when the run was cancelled meanwhile.
    fn external(
        &mut self,
        reader: &dyn Reader,
        summary: &storage::ShotSummary,
        analyses: &mut Vec<Analysis>,
    ) -> Result<Option<bool>, Failure> {
        if self.analyzers.is_empty() {
            return Ok(Some(true));
        }
        let Some(document) = document::document(reader, summary)? else {
            return Ok(Some(false));
        };
        let mut all = true;
        for analyzer in &self.analyzers {
            let cancel = self.cancel.clone();
            let answer = self.runtime.block_on(async {
                tokio::select! {
                    () = cancel.cancelled() => None,
                    answer = analyzer.analyze(&document) => Some(answer),
                }
            });
            match answer {
                None => return Ok(None),
                Some(Ok(result)) => analyses.push(Analysis {
                    shot: summary.key,
                    analyzer: analyzer.name().to_owned(),
                    result,
                }),
                Some(Err(e)) => {
                    tracing::warn!(shot = summary.key, "{e}");
                    all = false;
                    self.external_failed += 1;
                    self.external_error = Some(e.to_string());
                }
            }
        }
        Ok(Some(all))
    }

    /// Stores the results gathered so far, then the progress (each a write of its own).
    fn flush(
        &mut self,
        qa: &mut Vec<(i64, Vec<QaResult>)>,
        analyses: &mut Vec<Analysis>,
    ) -> Result<(), Failure> {
        if !qa.is_empty() {
            self.store
                .write_blocking(Write::QaResults(std::mem::take(qa)))
                .map_err(|e| format!("storing QA results: {e}"))?;
        }
        if !analyses.is_empty() {
            self.store
                .write_blocking(Write::Analyses(std::mem::take(analyses)))
                .map_err(|e| format!("storing analyses: {e}"))?;
        }
        self.store
            .write_blocking(self.progress())
            .map_err(|e| format!("storing the run's progress: {e}"))?;
        self.persisted = Instant::now();
        Ok(())
    }

    /// History sync of `machines`, one after the other.
    async fn sync(mut self, machines: Vec<SyncTarget>) -> Run {
        self.begin(0);
        let result = self.sync_inner(machines).await;
        self.end(result);
        if let Err(e) = self.store.write(self.progress()).await {
            tracing::error!("cannot store the end of run {}: {e}", self.run.id);
        }
        self.publish();
        self.run
    }

    async fn sync_inner(&mut self, machines: Vec<SyncTarget>) -> Result<(), Failure> {
        self.machines_count = machines.len();
        self.store.write(self.progress()).await?;
        self.publish();
        for machine in machines {
            let api = Api::new(&machine.url, Duration::from_secs(60))?;
            // Each machine's shots are added to the total as its list arrives.
            let base = (self.run.done, self.run.total);
            let progress = self.tx.clone();
            let snapshot = self.run.clone();
            let stats = machine.stats.clone();
            if let Some(stats) = &stats {
                stats.syncing.store(true, Ordering::Relaxed);
            }
            let sync = crate::sync::sync(&api, &self.store, &machine.name, |done, total| {
                let mut run = snapshot.clone();
                run.total = base.1 + total as u64;
                run.done = base.0 + done as u64;
                run.passed = snapshot.passed + done as u64;
                progress.send_replace(run);
                if let Some(stats) = &stats {
                    stats.sync_done.store(done as u64, Ordering::Relaxed);
                    stats.sync_total.store(total as u64, Ordering::Relaxed);
                }
            });
            let result = tokio::select! {
                () = self.cancel.cancelled() => None,
                report = sync => Some(report),
            };
            if let Some(stats) = &stats {
                stats.syncing.store(false, Ordering::Relaxed);
                match &result {
                    Some(Ok(_)) => {
                        stats.syncs_ok.fetch_add(1, Ordering::Relaxed);
                        stats
                            .last_sync_unix
                            .store(unix_now() as u64, Ordering::Relaxed);
                    }
                    Some(Err(_)) => {
                        stats.syncs_failed.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {}
                }
            }
            let Some(result) = result else {
                return Ok(());
            };
            let report = result
                .map_err(|e| format!("syncing {}: {}", machine.name, crate::error_chain(&e)))?;
            let latest = self.tx.borrow().clone();
            (self.run.total, self.run.done, self.run.passed) =
                (latest.total, latest.done, latest.passed);
            self.run.failed += report.missing as u64;
            tracing::info!(machine = %machine.name, "history synced: {report}");
            self.reports.push(if self.machines_count > 1 {
                format!("{}: {report}", machine.name)
            } else {
                report.to_string()
            });
            self.store.write(self.progress()).await?;
            self.publish();
        }
        Ok(())
    }
}

/// The write that stores `run`'s progress (or its end).
fn progress_of(run: &Run) -> Write {
    Write::RunProgress(RunProgress {
        id: run.id,
        status: run.status,
        total: run.total,
        done: run.done,
        passed: run.passed,
        failed: run.failed,
        error: run.error.clone(),
        summary: run.summary.clone(),
    })
}

/// The `shot-facts/1` analysis of a shot, ready to store.
fn facts(key: i64, samples: &[Sample]) -> Analysis {
    let facts = analysis::shot_facts(samples);
    Analysis {
        shot: key,
        analyzer: analysis::SHOT_FACTS.to_owned(),
        result: serde_json::to_string(&facts).unwrap_or_else(|_| "null".into()),
    }
}
