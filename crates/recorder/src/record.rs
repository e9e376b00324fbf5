//! Recording one machine: its socket.io events through the pure recorder into the store, and
//! the lookups and history reconciliation it asks for. The loop owns the machine's live shots
//! through the store's `machine:<name>` lease ([`crate::lease`]): a second process cannot
//! record the same machine into the same store, and every write is fenced with the lease. The
//! periodic history sync is a run ([`crate::runs::Runs::schedule_sync`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use meticulous::MachineEvent;
use meticulous::api::{Api, ApiError};
use recorder_core::{Config, Input, Output, Recorder};
use socketio_v5::{Auth, Client, ClientConfig, Event};
use storage::{StorageError, Store, Write};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use engineio_client::deadline::Deadline;

use crate::lease::{Held, LeaseError};
use crate::unix_now;
use crate::unstored::{Item, Unstored};

/// Why a recording loop stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The machine's URL cannot be used.
    #[error(transparent)]
    Url(#[from] ApiError),
    /// The socket.io client could not be set up for the URL.
    #[error("machine URL {url}: {source}")]
    Client {
        /// The URL.
        url: String,
        /// The client's reason.
        source: socketio_v5::Error,
    },
    /// The socket.io client could not open its namespace.
    #[error("starting the socket.io client: {0}")]
    Socket(#[source] socketio_v5::Error),
    /// The socket.io client stopped on its own.
    #[error("the socket.io client stopped")]
    ClientStopped,
    /// The store could not be read at the start.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Another process records this machine into this store.
    #[error(
        "machine {machine}: {holder}; stop that process first, or record into another database"
    )]
    Owned {
        /// The machine's name.
        machine: String,
        /// Who records it.
        holder: storage::Holder,
    },
    /// Another process took this machine over (this one stalled past its lease).
    #[error("machine {machine}: another process took the recording over; stopping")]
    LeaseLost {
        /// The machine's name.
        machine: String,
    },
}

/// Which machine, and how.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// Its name (`default` when there is one).
    pub name: String,
    /// Its base URL (`http://meticulous.local`).
    pub url: String,
    /// How long to keep asking the history for a shot that just ended.
    pub reconcile_for: Duration,
    /// The recorder's limits.
    pub recorder: Config,
    /// How many samples the loop holds while the database refuses writes (a full disk, a
    /// read-only file), retrying meanwhile (18,000: half an hour at 10 Hz, a few MB). Past it,
    /// the oldest shot with unstored samples is lost, said in one log line, and ends partial.
    pub max_unstored_samples: usize,
    /// How long a stop waits for a refusing database before what is still unstored is given
    /// up, said in one log line (10 s).
    pub drain_on_stop: Duration,
    /// What the loop is doing now, kept up to date for `/metrics` (clones share it).
    pub stats: Arc<MachineStats>,
}

/// What a recording loop is doing now: its connection, the shot in progress, and the history
/// syncs of its machine (kept by the sync runs).
/// Every field is a counter or a gauge anyone may read at any time.
#[derive(Debug, Default)]
pub struct MachineStats {
    /// Whether the socket.io connection to the machine is up.
    pub connected: AtomicBool,
    /// Whether another process records the machine and this one stands by ([`standby`]).
    pub standing_by: AtomicBool,
    /// Events received from the machine.
    pub events: AtomicU64,
    /// Events dropped where they entered: a name that is not plain
    /// ([`meticulous::plain_event_name`]).
    pub events_refused: AtomicU64,
    /// Whether a shot is being recorded.
    pub recording: AtomicBool,
    /// Samples journaled for the shot in progress.
    pub shot_samples: AtomicU64,
    /// Shots recorded (kept) since the start.
    pub shots_recorded: AtomicU64,
    /// Shots ended and not kept (flushes, too short, stalled).
    pub shots_discarded: AtomicU64,
    /// Samples read and not stored yet (the database refuses writes, or is slow).
    pub unstored_samples: AtomicU64,
    /// Samples given up on because the database refused them for too long.
    pub samples_lost: AtomicU64,
    /// Whether the last write of this loop failed (it is being retried).
    pub storage_failing: AtomicBool,
    /// Whether a history sync is running.
    pub syncing: AtomicBool,
    /// Shots the running (or last) sync has fetched, of how many it has to.
    pub sync_done: AtomicU64,
    /// See `sync_done`.
    pub sync_total: AtomicU64,
    /// Syncs that succeeded and that failed.
    pub syncs_ok: AtomicU64,
    /// See `syncs_ok`.
    pub syncs_failed: AtomicU64,
    /// When the last sync succeeded, Unix seconds (0: never).
    pub last_sync_unix: AtomicU64,
}

impl MachineStats {
    fn output(&self, output: &Output) {
        match output {
            Output::Started(_) => {
                self.shot_samples.store(0, Ordering::Relaxed);
                self.recording.store(true, Ordering::Relaxed);
            }
            Output::Journal { samples, .. } => {
                self.shot_samples
                    .fetch_add(samples.len() as u64, Ordering::Relaxed);
            }
            Output::Finish(_) => {
                self.recording.store(false, Ordering::Relaxed);
                self.shots_recorded.fetch_add(1, Ordering::Relaxed);
            }
            Output::Discard { .. } => {
                self.recording.store(false, Ordering::Relaxed);
                self.shots_discarded.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// Checks a machine's name: 1 to 64 letters, digits, `-` and `_` (it names a topic, a lease
/// and metrics labels). The error says what to write instead.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "machine name {name:?}: use 1 to 64 letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

impl MachineConfig {
    /// The defaults: reconcile each shot for 30 s, hold up to 18,000 unstored samples, wait
    /// 10 s on a stop.
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.to_owned(),
            url: url.to_owned(),
            reconcile_for: RECONCILE_FOR,
            recorder: Config::default(),
            max_unstored_samples: MAX_UNSTORED_SAMPLES,
            drain_on_stop: Duration::from_secs(10),
            stats: Arc::new(MachineStats::default()),
        }
    }
}

/// How long the history is asked for a shot that just ended, by default.
pub const RECONCILE_FOR: Duration = Duration::from_secs(30);

/// Samples a loop holds while the database refuses writes, by default (half an hour at 10 Hz).
pub const MAX_UNSTORED_SAMPLES: usize = 18_000;

/// A recorder output, once stored if it needed storing (for the gateway's live shot list and
/// recorder state, and the benchmarks).
#[derive(Debug, Clone)]
pub struct Stored {
    /// What was stored.
    pub output: Output,
    /// When the input that caused it arrived (the falling-edge frame, for a `Finish`).
    pub caused_at: Instant,
    /// When its commit was answered.
    pub at: Instant,
}

/// Called with every event from the machine (its name and first argument, raw JSON), and with
/// `connected` / `disconnected` when the connection changes: what the gateway fans out. The
/// first argument is the machine lease's fencing token (larger with every new holder), for a
/// sink that publishes beyond this process (`broker`) and must refuse a stale holder.
pub type EventSink = Arc<dyn Fn(u64, &str, &serde_json::value::RawValue) + Send + Sync>;

/// What the tasks beside the loop report.
enum Report {
    Lookup(
        recorder_core::ShotKey,
        Result<Option<meticulous::CurrentShot>, String>,
    ),
}

/// Records `machine` into `store` until `stop` is cancelled: [`Recording::start`], then
/// [`Recording::run`].
pub async fn run(
    machine: MachineConfig,
    store: Arc<Store>,
    stop: CancellationToken,
    stored: Option<mpsc::Sender<Stored>>,
    sink: Option<EventSink>,
) -> Result<(), RecordError> {
    Recording::start(machine, store, stored, sink)
        .await?
        .run(stop)
        .await
}

/// The most a machine may send at once (a long-polling answer, a WebSocket message): its
/// events are a few KiB, and a poll holds what it sent since the last one. Past it the link is
/// dropped and made again with backoff, the answer unread.
pub const MACHINE_PAYLOAD: usize = 4 << 20;

/// How often a standby asks again for a machine another process records.
pub const STANDBY_RETRY: Duration = Duration::from_secs(2);

/// Records `machine` as [`run`] does, standing by while another process records it (its lease
/// is held elsewhere): asked for again every [`STANDBY_RETRY`], taken over when that process
/// stops or loses it. Any other end is logged when it happens. What a gateway does for each
/// machine, so that several gateways on one store record each machine once.
pub async fn standby(
    machine: MachineConfig,
    store: Arc<Store>,
    stop: CancellationToken,
    stored: Option<mpsc::Sender<Stored>>,
    sink: Option<EventSink>,
) {
    let name = machine.name.clone();
    let mut told = false;
    loop {
        let recording =
            Recording::start(machine.clone(), store.clone(), stored.clone(), sink.clone());
        let recording = async {
            let recording = recording.await?;
            if machine.stats.standing_by.swap(false, Ordering::Relaxed) {
                tracing::info!(machine = %name, "took machine {name} over: the process that recorded it stopped or lost it");
            }
            recording.run(stop.clone()).await
        };
        match recording.await {
            Ok(()) => return,
            Err(RecordError::Owned { holder, .. }) => {
                machine.stats.standing_by.store(true, Ordering::Relaxed);
                if !std::mem::replace(&mut told, true) {
                    tracing::warn!(
                        machine = %name,
                        "not recording machine {name} yet: {holder}; taking over when that process stops"
                    );
                }
            }
            Err(e) => {
                tracing::error!(
                    machine = %name,
                    "stopped recording machine {name}: {}",
                    crate::error_chain(&e)
                );
                return;
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(STANDBY_RETRY) => {}
        }
    }
}

impl Recording {
    /// Takes the machine's lease and connects. Fails when another process records the machine
    /// into this store, or the URL cannot be used. `stored` gets a notice of every output once
    /// it is stored (offered, never waited for); `sink` gets every event from the machine.
    pub async fn start(
        machine: MachineConfig,
        store: Arc<Store>,
        stored: Option<mpsc::Sender<Stored>>,
        sink: Option<EventSink>,
    ) -> Result<Recording, RecordError> {
        let api = Api::new(&machine.url, Duration::from_secs(120))?;
        let lookup_api = Api::new(&machine.url, Duration::from_secs(5))?;
        let config = ClientConfig::new(&machine.url)
            .map_err(|source| RecordError::Client {
                url: machine.url.clone(),
                source,
            })?
            .engine(|e| e.max_payload(MACHINE_PAYLOAD));
        let lease = match Held::take(store.clone(), &storage::lease::machine(&machine.name)).await {
            Ok(lease) => lease,
            Err(LeaseError::Held(holder)) => {
                return Err(RecordError::Owned {
                    machine: machine.name,
                    holder,
                });
            }
            Err(LeaseError::Storage(e)) => return Err(e.into()),
        };
        // The machine's own slot of keys, above every key stored in it: no other machine's
        // shots (in this process or another) ever take the same keys.
        let first_key = lease.first_key().unwrap_or(1);
        let mut recorder = Recorder::new(machine.recorder.clone(), first_key);
        // The last shot a crash cut: finished as partial when this store was opened, or as the
        // lease changed hands. The recorder goes on in it if the machine is still in that shot.
        if let Some(last) = store
            .recovered()
            .iter()
            .chain(lease.recovered())
            .filter(|r| r.machine == machine.name)
            .max_by_key(|r| r.key)
        {
            recorder.resume_candidate(last.key, last.id.clone(), last.samples, last.started_unix_s);
        }
        let client = Client::new(config);
        let (socket, events) = client
            .socket("/", Auth::None)
            .await
            .map_err(RecordError::Socket)?;
        let (reports, report_rx) = mpsc::channel::<Report>(64);
        Ok(Recording {
            recorder,
            lease,
            store,
            api,
            lookup_api,
            reports,
            stored,
            sink,
            input_at: Instant::now(),
            unstored: Unstored::new(machine.max_unstored_samples),
            refused_told: None,
            machine,
            connection: Some((client, socket, events, report_rx)),
        })
    }

    /// Records until `stop` is cancelled; then stores every sample read. Fails when it cannot
    /// go on (the database refuses writes for minutes, the lease was lost): samples are never
    /// dropped silently.
    pub async fn run(self, stop: CancellationToken) -> Result<(), RecordError> {
        let stats = self.machine.stats.clone();
        let result = self.record(stop).await;
        // Not recording any more: the link is down (for `/healthz`), whatever the last event
        // said.
        stats.connected.store(false, Ordering::Relaxed);
        result
    }

    async fn record(mut self, stop: CancellationToken) -> Result<(), RecordError> {
        let recording = &mut self;
        let Some((client, _socket, mut events, mut report_rx)) = recording.connection.take() else {
            return Ok(());
        };
        let mut deadline = Deadline::new();
        let mut writer = Writer::new();
        tracing::info!(machine = %recording.machine.name, url = %recording.machine.url, "recording");
        let lost = recording.lease.lost().clone();
        let ended: Result<(), RecordError> = loop {
            recording.do_outputs();
            recording.next_write(&mut writer);
            deadline.set(recording.recorder.poll_timeout());
            // Storing never holds up reading: the machine's events reach the sink (the live
            // view) whatever the database does, and what waits is held in `unstored`.
            tokio::select! {
                () = stop.cancelled() => break Ok(()),
                () = lost.cancelled() => {
                    break Err(RecordError::LeaseLost { machine: recording.machine.name.clone() });
                }
                event = events.recv() => {
                    let Some(event) = event else {
                        break Err(RecordError::ClientStopped);
                    };
                    recording.on_event(event);
                }
                Some(report) = report_rx.recv() => recording.on_report(report),
                () = deadline.expired() => recording.on_timeout(),
                written = writer.event() => if let Some(written) = written
                    && let Err(e) = recording.on_written(&mut writer, written)
                {
                    break Err(e);
                },
            }
        };
        if let Err(e) = ended {
            // What cannot be stored now is said, not dropped silently.
            let held = recording.unstored.samples()
                + writer
                    .in_flight
                    .as_ref()
                    .map_or(0, |(item, _)| item.samples());
            if held > 0 {
                tracing::error!(
                    machine = %recording.machine.name,
                    "{held} samples of machine {} read and not stored are dropped: {}",
                    recording.machine.name,
                    crate::error_chain(&e)
                );
            }
            return Err(e);
        }
        recording.stop(&mut writer).await?;
        client.close();
        tracing::info!(machine = %recording.machine.name, "stopped recording");
        // Stopped cleanly: the machine is free for another process at once.
        let store = self.store.clone();
        self.lease.release(&store).await;
        Ok(())
    }
}

/// A write being stored.
type Writing =
    std::pin::Pin<Box<dyn Future<Output = Result<storage::Applied, StorageError>> + Send>>;

/// The loop's one write in flight, and its retries while the database refuses writes.
struct Writer {
    in_flight: Option<(Item, Writing)>,
    /// After a failure: when to try again.
    retry: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    delay: Duration,
    /// Since when writes fail, and when that was last said.
    failing_since: Option<Instant>,
    told_at: Option<Instant>,
}

impl Writer {
    fn new() -> Self {
        Self {
            in_flight: None,
            retry: None,
            delay: RETRY_FIRST,
            failing_since: None,
            told_at: None,
        }
    }

    /// Whether a write may start now.
    fn ready(&self) -> bool {
        self.in_flight.is_none() && self.retry.is_none()
    }

    /// The write in flight once stored or refused, or `None` when a refused write may be
    /// tried again; pending forever while neither is coming. Cancel-safe: what it waits for
    /// stays in `self`.
    async fn event(&mut self) -> Option<(Item, Result<storage::Applied, StorageError>)> {
        if let Some(sleep) = &mut self.retry {
            sleep.as_mut().await;
            self.retry = None;
            return None;
        }
        match &mut self.in_flight {
            Some((_, writing)) => {
                let result = writing.as_mut().await;
                let (item, _) = self.in_flight.take()?;
                Some((item, result))
            }
            None => std::future::pending().await,
        }
    }
}

/// The first wait before a refused write is tried again; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(250);
/// The longest wait between tries of a refused write.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// While writes keep failing, how often the log says so again.
const TELL_EVERY: Duration = Duration::from_secs(60);

/// The socket.io client, its namespace, its events, and the reports of the tasks beside.
type Connection = (
    Client,
    socketio_v5::Socket,
    socketio_v5::Events,
    mpsc::Receiver<Report>,
);

/// One machine's recording: the pure recorder and what its outputs need.
pub struct Recording {
    machine: MachineConfig,
    recorder: Recorder,
    /// The machine's lease: every write is fenced with it.
    lease: Held,
    store: Arc<Store>,
    /// The machine's history (reconciliation), and its shot in progress (lookups, which must
    /// answer quickly).
    api: Api,
    lookup_api: Api,
    reports: mpsc::Sender<Report>,
    stored: Option<mpsc::Sender<Stored>>,
    sink: Option<EventSink>,
    /// When the input being handled arrived.
    input_at: Instant,
    /// Until [`Recording::run`] takes it.
    connection: Option<Connection>,
    /// Outputs not stored yet, in order.
    unstored: Unstored,
    /// When an event with a name that is not plain was last logged.
    refused_told: Option<Instant>,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("machine", &self.machine.name)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Recording {
    /// An event from the machine's socket.io connection.
    fn on_event(&mut self, event: Event) {
        self.input_at = Instant::now();
        let stats = &self.machine.stats;
        match &event {
            Event::Connect { .. } => stats.connected.store(true, Ordering::Relaxed),
            Event::Disconnect(_) => stats.connected.store(false, Ordering::Relaxed),
            Event::Message(message) => {
                stats.events.fetch_add(1, Ordering::Relaxed);
                let name = message.name();
                if !name.as_str().is_some_and(meticulous::plain_event_name) {
                    self.refuse(&name.to_string());
                    return;
                }
            }
            _ => {}
        }
        if let Some(sink) = &self.sink {
            forward(sink, self.lease.token(), &event, &self.machine.url);
        }
        if let Some(input) = input(event) {
            self.recorder.handle_input(self.input_at.into_std(), input);
        }
    }

    /// Drops an event whose name is not plain: neither recorded nor forwarded (it would reach
    /// every stream and snapshot). Counted; logged at most once a minute.
    fn refuse(&mut self, name: &str) {
        let stats = &self.machine.stats;
        let refused = stats.events_refused.fetch_add(1, Ordering::Relaxed) + 1;
        if self
            .refused_told
            .is_none_or(|at| at.elapsed() >= TELL_EVERY)
        {
            self.refused_told = Some(self.input_at);
            tracing::warn!(
                machine = %self.machine.name,
                "dropped an event from machine {} named {:?}: names are 1 to {} letters, digits, '_', '.', ':' and '-' ({refused} dropped so far)",
                self.machine.name,
                http_client::one_line(name, 80),
                meticulous::MAX_EVENT_NAME,
            );
        }
    }

    /// A task beside the loop answered.
    fn on_report(&mut self, report: Report) {
        self.input_at = Instant::now();
        match report {
            Report::Lookup(key, result) => {
                if let Err(e) = &result {
                    tracing::warn!(
                        machine = %self.machine.name,
                        "cannot ask the machine for the shot in progress: {e}"
                    );
                }
                self.recorder
                    .handle_input(self.input_at.into_std(), Input::CurrentShot { key, result });
            }
        }
    }

    /// The recorder's deadline passed.
    fn on_timeout(&mut self) {
        self.input_at = Instant::now();
        self.recorder.handle_timeout(self.input_at.into_std());
    }

    /// Does what the recorder asks, in order. Its writes (and the notices that follow them) are
    /// queued: [`Recording::next_write`] stores them one after another.
    fn do_outputs(&mut self) {
        while let Some(output) = self.recorder.poll_output() {
            let name = &self.machine.name;
            match &output {
                Output::LookupCurrentShot { key } => {
                    let (api, reports, key) = (self.lookup_api.clone(), self.reports.clone(), *key);
                    tokio::spawn(async move {
                        let mut result = Err(String::new());
                        // A few tries: the shot's record appears with its first frame.
                        for _ in 0..3 {
                            result = api.current().await.map_err(|e| e.to_string());
                            if matches!(result, Ok(Some(_))) {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        }
                        let _ = reports.send(Report::Lookup(key, result)).await;
                    });
                }
                Output::Started(start) => tracing::info!(
                    machine = %name, shot = start.key,
                    profile = start.profile_name.as_deref().unwrap_or("?"), "shot started"
                ),
                Output::Stalled { key, last_time } => tracing::warn!(
                    machine = %name, shot = key,
                    "the machine's controller stalled: no new sample since time {last_time} ms"
                ),
                Output::Discard { key, reason } => tracing::info!(
                    machine = %name, shot = key, "not keeping a shot: {reason}"
                ),
                _ => {}
            }
            self.queue(output);
        }
    }

    /// Queues `output` and its write; says so at once if that loses a shot.
    fn queue(&mut self, output: Output) {
        let write = Write::from_output(&self.machine.name, &output);
        if let Some(lost) = self.unstored.push(output, write, self.input_at) {
            let failing = self
                .store
                .commit_stats()
                .last_error
                .unwrap_or_else(|| "writes are too slow".to_owned());
            tracing::error!(
                machine = %self.machine.name, shot = lost.key,
                "shot {} of machine {} is lost: {} of its samples could not be stored and are dropped \
                 to keep memory bounded ({} samples are held at most); the database refuses writes: {failing}. \
                 The shot will end partial, with what was stored before; free the disk (or fix the \
                 file's permissions) and the next shot is recorded whole",
                lost.key, self.machine.name, lost.samples, self.machine.max_unstored_samples
            );
        }
        self.machine
            .stats
            .unstored_samples
            .store(self.unstored.samples() as u64, Ordering::Relaxed);
        self.machine
            .stats
            .samples_lost
            .store(self.unstored.dropped(), Ordering::Relaxed);
    }

    /// Starts the next write, if none is in flight or waiting to be tried again. Outputs that
    /// store nothing are announced as they come to the front.
    fn next_write(&mut self, writer: &mut Writer) {
        while writer.ready() {
            let Some(item) = self.unstored.pop() else {
                return;
            };
            self.machine
                .stats
                .unstored_samples
                .store(self.unstored.samples() as u64, Ordering::Relaxed);
            let Some(write) = item.write.clone() else {
                self.announce(item);
                continue;
            };
            let (store, write) = (self.store.clone(), self.lease.fence(write));
            writer.in_flight = Some((item, Box::pin(async move { store.write(write).await })));
        }
    }

    /// The write in flight was answered: announce it, or keep it to try again.
    fn on_written(
        &mut self,
        writer: &mut Writer,
        (item, result): (Item, Result<storage::Applied, StorageError>),
    ) -> Result<(), RecordError> {
        let name = &self.machine.name;
        let stats = &self.machine.stats;
        match result {
            Ok(_) => {
                if let Some(since) = writer.failing_since.take() {
                    tracing::info!(
                        machine = %name,
                        "the database takes writes again after {:.0?}: storing the {} samples held meanwhile",
                        since.elapsed(),
                        self.unstored.samples() + item.samples()
                    );
                }
                stats.storage_failing.store(false, Ordering::Relaxed);
                writer.delay = RETRY_FIRST;
                writer.told_at = None;
                self.announce(item);
                Ok(())
            }
            Err(StorageError::Closed) => Err(StorageError::Closed.into()),
            // Another process records the machine now: retrying cannot help.
            Err(StorageError::LeaseLost { .. }) => Err(RecordError::LeaseLost {
                machine: name.clone(),
            }),
            Err(e) => {
                let now = Instant::now();
                let since = *writer.failing_since.get_or_insert(now);
                stats.storage_failing.store(true, Ordering::Relaxed);
                let held = self.unstored.samples() + item.samples();
                if writer
                    .told_at
                    .is_none_or(|told| now.duration_since(told) >= TELL_EVERY)
                {
                    writer.told_at = Some(now);
                    tracing::error!(
                        machine = %name,
                        "cannot store machine {name}'s recording for {:.0?}: {e}; the live view goes on, \
                         {held} samples are held in memory (at most {}) and the write is retried every {:?} at most",
                        now.duration_since(since),
                        self.machine.max_unstored_samples,
                        RETRY_MAX
                    );
                }
                self.unstored.put_back(item);
                writer.retry = Some(Box::pin(tokio::time::sleep(writer.delay)));
                writer.delay = (writer.delay * 2).min(RETRY_MAX);
                Ok(())
            }
        }
    }

    /// An output is stored (or had nothing to store): counted, offered to the listener, and a
    /// finished shot is reconciled with the machine's history.
    fn announce(&mut self, item: Item) {
        let output = item.output;
        if let Output::Finish(shot) = &output {
            tracing::info!(
                machine = %self.machine.name, shot = shot.key, id = ?shot.id,
                samples = shot.samples, status = ?shot.status, "shot recorded"
            );
        }
        self.machine.stats.output(&output);
        if let Output::Finish(shot) = &output
            && let Some(id) = shot.id.clone()
        {
            tokio::spawn(reconcile(
                self.api.clone(),
                self.store.clone(),
                self.machine.name.clone(),
                id,
                self.machine.reconcile_for,
            ));
        }
        if let Some(tx) = &self.stored {
            // A slow listener misses notices; the recording never waits for it.
            let _ = tx.try_send(Stored {
                output,
                caused_at: item.caused_at,
                at: Instant::now(),
            });
        }
    }

    /// Stopping: every sample read so far is stored before we go, or, when the database keeps
    /// refusing for [`MachineConfig::drain_on_stop`], what is left is said to be lost.
    async fn stop(&mut self, writer: &mut Writer) -> Result<(), RecordError> {
        self.recorder.flush_journal();
        self.do_outputs();
        let until = Instant::now() + self.machine.drain_on_stop;
        loop {
            self.next_write(writer);
            if writer.in_flight.is_none() && self.unstored.is_empty() {
                return Ok(());
            }
            tokio::select! {
                written = writer.event() => if let Some(written) = written {
                    self.on_written(writer, written)?;
                },
                () = tokio::time::sleep_until(until) => {
                    let held = self.unstored.samples()
                        + writer.in_flight.as_ref().map_or(0, |(item, _)| item.samples());
                    tracing::error!(
                        machine = %self.machine.name,
                        "stopping with {held} samples of machine {} not stored: the database refused writes for the last {:?} ({}); \
                         the shot in progress keeps what was stored before",
                        self.machine.name,
                        self.machine.drain_on_stop,
                        self.store.commit_stats().last_error.unwrap_or_default()
                    );
                    self.machine.stats.samples_lost.fetch_add(held as u64, Ordering::Relaxed);
                    return Ok(());
                }
            }
        }
    }
}

/// Hands a socket.io event to the sink: machine events as they came, connection changes as
/// `connected` / `disconnected` events.
fn forward(sink: &EventSink, token: u64, event: &Event, url: &str) {
    let state = |name: &str, extra: serde_json::Value| {
        let mut data = serde_json::json!({ "url": url, "at": unix_now() });
        if let (Some(map), serde_json::Value::Object(more)) = (data.as_object_mut(), extra) {
            map.extend(more);
        }
        if let Ok(raw) = serde_json::value::to_raw_value(&data) {
            sink(token, name, &raw);
        }
    };
    match event {
        Event::Connect { .. } => state("connected", serde_json::json!({})),
        Event::Disconnect(reason) => {
            let reason = http_client::one_line(&reason.to_string(), 300);
            state("disconnected", serde_json::json!({ "reason": reason }));
        }
        Event::Message(event) => {
            let Some(name) = event.name().as_str().map(str::to_owned) else {
                return;
            };
            if let Ok(args) = event.message().packet.raw_args() {
                let null = serde_json::value::RawValue::NULL;
                sink(token, &name, args.first().copied().unwrap_or(null));
            }
        }
        _ => {}
    }
}

/// What the recorder takes from a socket.io event.
fn input(event: Event) -> Option<Input> {
    match event {
        Event::Connect { .. } => Some(Input::Connected),
        Event::Disconnect(reason) => {
            let reason = http_client::one_line(&reason.to_string(), 300);
            tracing::warn!("the machine disconnected: {reason}");
            Some(Input::Disconnected)
        }
        Event::Message(event) => {
            let name = event.name().as_str()?.to_owned();
            let args = event.message().packet.raw_args().ok()?;
            let data = args.first().map_or("null", |a| a.get());
            match MachineEvent::parse(&name, data) {
                Ok(event) => Some(Input::Event {
                    event,
                    unix_s: unix_now(),
                }),
                Err(e) => {
                    tracing::warn!("ignoring an event the model cannot read: {e}");
                    None
                }
            }
        }
        Event::ConnectError { message, .. } => {
            let message = http_client::one_line(&message, 300);
            tracing::error!("the machine refused the connection: {message}");
            None
        }
        _ => None,
    }
}

/// After a live shot: fetch it from the machine's history until it appears, and store that
/// copy (history wins).
async fn reconcile(api: Api, store: Arc<Store>, machine: String, id: String, within: Duration) {
    let until = Instant::now() + within;
    loop {
        match api.shot(&id).await {
            Ok(Some(entry)) => {
                match store
                    .write(Write::UpsertHistory {
                        machine: machine.clone(),
                        entry: Box::new(entry),
                    })
                    .await
                {
                    Ok(_) => {
                        tracing::info!(%machine, %id, "shot reconciled with the machine's history")
                    }
                    Err(e) => tracing::warn!(%machine, %id, "cannot store the history copy: {e}"),
                }
                return;
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(%machine, %id, "history not ready: {e}"),
        }
        if Instant::now() >= until {
            tracing::info!(%machine, %id, "the machine's history does not have the shot yet; the next sync will take it");
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
