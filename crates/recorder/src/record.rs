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
use socketio::{Auth, Client, ClientConfig, Event};
use storage::{StorageError, Store, Write};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use engineio_client::deadline::Deadline;

use crate::lease::{Held, LeaseError};
use crate::unix_now;

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
        source: engineio_client::Error,
    },
    /// The socket.io client could not open its namespace.
    #[error("starting the socket.io client: {0}")]
    Socket(#[source] socketio::Error),
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
    /// The database refused writes for longer than the loop waits.
    #[error(
        "the database refused writes for {waited:?}; stopping so nothing is dropped silently \
         (what was journaled is safe; restart once the disk has room): {source}"
    )]
    GaveUp {
        /// How long it retried.
        waited: Duration,
        /// The last refusal.
        source: StorageError,
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
    /// How long a write the database refuses (a full disk) is retried before the loop stops
    /// with an error rather than drop it (2 minutes).
    pub give_up_after: Duration,
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
    /// Events received from the machine.
    pub events: AtomicU64,
    /// Whether a shot is being recorded.
    pub recording: AtomicBool,
    /// Samples journaled for the shot in progress.
    pub shot_samples: AtomicU64,
    /// Shots recorded (kept) since the start.
    pub shots_recorded: AtomicU64,
    /// Shots ended and not kept (flushes, too short, stalled).
    pub shots_discarded: AtomicU64,
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
    /// The defaults: reconcile each shot for 30 s, retry refused writes for 2 minutes.
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.to_owned(),
            url: url.to_owned(),
            reconcile_for: Duration::from_secs(30),
            recorder: Config::default(),
            give_up_after: Duration::from_secs(120),
            stats: Arc::new(MachineStats::default()),
        }
    }
}

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
/// `connected` / `disconnected` when the connection changes: what the gateway fans out.
pub type EventSink = Arc<dyn Fn(&str, &serde_json::value::RawValue) + Send + Sync>;

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
        let config = ClientConfig::new(&machine.url).map_err(|source| RecordError::Client {
            url: machine.url.clone(),
            source,
        })?;
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
            recorder.resume_candidate(last.key, last.id.clone(), last.samples);
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
        tracing::info!(machine = %recording.machine.name, url = %recording.machine.url, "recording");
        let lost = recording.lease.lost().clone();
        loop {
            recording.do_outputs().await?;
            deadline.set(recording.recorder.poll_timeout());
            tokio::select! {
                () = stop.cancelled() => break,
                () = lost.cancelled() => {
                    return Err(RecordError::LeaseLost { machine: recording.machine.name.clone() });
                }
                event = events.recv() => {
                    let Some(event) = event else {
                        return Err(RecordError::ClientStopped);
                    };
                    recording.on_event(event);
                }
                Some(report) = report_rx.recv() => recording.on_report(report),
                () = deadline.expired() => recording.on_timeout(),
            }
        }
        recording.stop().await?;
        client.close();
        tracing::info!(machine = %recording.machine.name, "stopped recording");
        // Stopped cleanly: the machine is free for another process at once.
        let store = self.store.clone();
        self.lease.release(&store).await;
        Ok(())
    }
}

/// The socket.io client, its namespace, its events, and the reports of the tasks beside.
type Connection = (
    Client,
    socketio::Socket,
    socketio::Events,
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
            Event::Message(_) => {
                stats.events.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        if let Some(sink) = &self.sink {
            forward(sink, &event, &self.machine.url);
        }
        if let Some(input) = input(event) {
            self.recorder.handle_input(self.input_at.into_std(), input);
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

    /// Does what the recorder asks, in order; a write is retried until it is stored.
    async fn do_outputs(&mut self) -> Result<(), RecordError> {
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
                Output::Finish(shot) => tracing::info!(
                    machine = %name, shot = shot.key, id = ?shot.id,
                    samples = shot.samples, status = ?shot.status, "shot recorded"
                ),
                _ => {}
            }
            self.store_output(&output).await?;
            self.machine.stats.output(&output);
            if let Some(tx) = &self.stored {
                // A slow listener misses notices; the recording never waits for it.
                let _ = tx.try_send(Stored {
                    output: output.clone(),
                    caused_at: self.input_at,
                    at: Instant::now(),
                });
            }
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
        }
        Ok(())
    }

    /// Stores what `output` changes, fenced with the machine's lease.
    async fn store_output(&self, output: &Output) -> Result<(), RecordError> {
        let Some(write) = Write::from_output(&self.machine.name, output) else {
            return Ok(());
        };
        match store_durably(
            &self.store,
            self.lease.fence(write),
            self.machine.give_up_after,
        )
        .await
        {
            Err(RecordError::GaveUp {
                source: StorageError::LeaseLost { .. },
                ..
            }) => Err(RecordError::LeaseLost {
                machine: self.machine.name.clone(),
            }),
            other => other,
        }
    }

    /// Stopping: every sample read so far is stored before we go.
    async fn stop(&mut self) -> Result<(), RecordError> {
        self.recorder.flush_journal();
        while let Some(output) = self.recorder.poll_output() {
            self.store_output(&output).await?;
        }
        Ok(())
    }
}

/// Hands a socket.io event to the sink: machine events as they came, connection changes as
/// `connected` / `disconnected` events.
fn forward(sink: &EventSink, event: &Event, url: &str) {
    let state = |name: &str, extra: serde_json::Value| {
        let mut data = serde_json::json!({ "url": url, "at": unix_now() });
        if let (Some(map), serde_json::Value::Object(more)) = (data.as_object_mut(), extra) {
            map.extend(more);
        }
        if let Ok(raw) = serde_json::value::to_raw_value(&data) {
            sink(name, &raw);
        }
    };
    match event {
        Event::Connect { .. } => state("connected", serde_json::json!({})),
        Event::Disconnect(reason) => {
            state(
                "disconnected",
                serde_json::json!({ "reason": reason.to_string() }),
            );
        }
        Event::Message(event) => {
            let Some(name) = event.name().as_str().map(str::to_owned) else {
                return;
            };
            if let Ok(args) = event.message().packet.raw_args() {
                let null = serde_json::value::RawValue::NULL;
                sink(&name, args.first().copied().unwrap_or(null));
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
            tracing::error!("the machine refused the connection: {message}");
            None
        }
        _ => None,
    }
}

/// Stores `write`, retrying with backoff while the database refuses it (a full disk, a lock);
/// gives up with an error after `give_up_after` rather than drop it.
async fn store_durably(
    store: &Store,
    write: Write,
    give_up_after: Duration,
) -> Result<(), RecordError> {
    let mut delay = Duration::from_millis(250);
    let started = Instant::now();
    loop {
        match store.write(write.clone()).await {
            Ok(_) => return Ok(()),
            Err(StorageError::Closed) => return Err(StorageError::Closed.into()),
            // Another process records the machine now: retrying cannot help.
            Err(source @ StorageError::LeaseLost { .. }) => {
                return Err(RecordError::GaveUp {
                    waited: started.elapsed(),
                    source,
                });
            }
            Err(e) if started.elapsed() < give_up_after => {
                tracing::error!("cannot store a recording write, retrying in {delay:?}: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(source) => {
                return Err(RecordError::GaveUp {
                    waited: give_up_after,
                    source,
                });
            }
        }
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
