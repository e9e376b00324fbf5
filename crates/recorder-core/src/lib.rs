//! The shot recorder as a pure state machine: machine events in, what to store out.
//!
//! No IO, no clock, no SQL. The driver feeds [`Recorder::handle_input`] with the machine's events
//! (and the answers to the lookups it asked for), calls [`Recorder::handle_timeout`] when
//! [`Recorder::poll_timeout`] is due, and after each call drains [`Recorder::poll_output`]:
//!
//! - [`Output::Started`]: a shot began; create its row.
//! - [`Output::LookupCurrentShot`]: ask the machine (`GET /api/v1/history/current`) for the shot's
//!   UUID and start time, and answer with [`Input::CurrentShot`].
//! - [`Output::Journal`]: append these samples to the shot's journal, durably (in batches: at most
//!   [`Config::journal_batch`] samples or [`Config::journal_every`] old).
//! - [`Output::Identified`]: the machine's UUID and start time for the shot.
//! - [`Output::Merged`]: the shot is the one a disconnect interrupted: move its journal into that
//!   shot's row, which goes on recording.
//! - [`Output::Finish`]: the shot ended and is kept (complete, or partial).
//! - [`Output::Discard`]: the shot ended too short to keep; drop its row and journal.
//! - [`Output::Stalled`]: the controller stopped producing samples while extracting.
//!
//! The rules (`fixtures/meticulous/README.md`, "Shot boundaries"): a shot starts on the rising edge of
//! `extracting`; one sample per new `time`, with the sensor readings of the same tick; it ends on
//! the falling edge, when `state` becomes `idle` or `purge`, or after [`Config::stall_after`]
//! without a new `time` (not on `retracting`: the drip tail belongs to the shot). It is kept when
//! it has at least [`Config::min_samples`] samples; a disconnect keeps whatever was recorded, as
//! a partial shot, because the machine may have lost it.
//!
//! An example (in `doc/example.md`: this file never reads the clock):
#![doc = include_str!("../doc/example.md")]
#![deny(missing_docs)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use meticulous::{CurrentShot, MachineEvent, MachineState, Sample, Sensors, Status};

/// The recorder's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// A shot with fewer unique samples is discarded (20, about 3 s), unless a disconnect cut it.
    pub min_samples: usize,
    /// A shot whose `time` does not advance for this long while extracting has stalled (10 s).
    pub stall_after: Duration,
    /// Journaled samples wait at most this long (250 ms)…
    pub journal_every: Duration,
    /// …or until this many are waiting (16).
    pub journal_batch: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            min_samples: 20,
            stall_after: Duration::from_secs(10),
            journal_every: Duration::from_millis(250),
            journal_batch: 16,
        }
    }
}

/// The recorder's own number for a shot, given before the machine's UUID is known. The driver
/// chooses the first one (one past the largest it has stored), the recorder counts up.
pub type ShotKey = u64;

/// What the driver feeds in.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The socket.io namespace connected.
    Connected,
    /// It disconnected (the machine went away, or its server restarted).
    Disconnected,
    /// An event from the machine, with the wall-clock time it arrived (Unix seconds; the start
    /// time of a shot the machine cannot tell us about).
    Event {
        /// The event.
        event: MachineEvent,
        /// When it arrived.
        unix_s: f64,
    },
    /// The answer to [`Output::LookupCurrentShot`]: the machine's shot in progress (`None` when it
    /// has none), or why it could not be asked.
    CurrentShot {
        /// The shot that asked.
        key: ShotKey,
        /// The answer.
        result: Result<Option<CurrentShot>, String>,
    },
}

/// Why a shot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// `extracting` fell: the machine finished recording it.
    Finished,
    /// `state` became `idle` or `purge` while still extracting.
    MachineIdle,
    /// No new sample for [`Config::stall_after`].
    Stalled,
    /// The connection to the machine dropped.
    Disconnected,
}

/// Whether a kept shot is whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShotStatus {
    /// Recorded from its start to its end.
    Complete,
    /// Cut by a disconnect or a stall: what was recorded is kept.
    Partial,
}

/// Why a shot was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardReason {
    /// Fewer samples than [`Config::min_samples`] (an aborted start, a cleaning run).
    TooShort {
        /// How many it had.
        samples: usize,
        /// How many a shot needs.
        min: usize,
    },
    /// Not a single sample.
    Empty,
}

impl std::fmt::Display for DiscardReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiscardReason::TooShort { samples, min } => {
                write!(f, "{samples} samples, fewer than the {min} a shot needs")
            }
            DiscardReason::Empty => f.write_str("no samples"),
        }
    }
}

/// A shot as it began.
#[derive(Debug, Clone, PartialEq)]
pub struct ShotStart {
    /// The recorder's number for it.
    pub key: ShotKey,
    /// When its first frame arrived, Unix seconds (replaced by the machine's start time once
    /// [`Output::Identified`] comes).
    pub started_unix_s: f64,
    /// The profile running.
    pub profile_name: Option<String>,
    /// The profile's id (`status.id`).
    pub profile_id: Option<String>,
}

/// A shot that ended and is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Shot {
    /// The recorder's number for it.
    pub key: ShotKey,
    /// The machine's UUID, when the lookup answered.
    pub id: Option<String>,
    /// Start time, Unix seconds: the machine's if it told us, else when the first frame arrived.
    pub started_unix_s: f64,
    /// Complete or partial.
    pub status: ShotStatus,
    /// Why it ended.
    pub reason: EndReason,
    /// How many samples it has (all of them journaled before this output).
    pub samples: usize,
}

/// How close (seconds, on this host's clock) the start of a cut shot the machine had not named
/// yet must be to the start of the machine's shot in progress for the recording to go on in
/// it: consecutive shots of one machine start far more apart than this.
pub const UNNAMED_RESUME_WITHIN_S: f64 = 3.0;

/// What the driver must do; see the [crate docs](crate).
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A shot began.
    Started(ShotStart),
    /// Ask the machine for its shot in progress; answer with [`Input::CurrentShot`].
    LookupCurrentShot {
        /// The shot asking.
        key: ShotKey,
    },
    /// Append these samples to the shot's journal.
    Journal {
        /// The shot.
        key: ShotKey,
        /// In order.
        samples: Vec<Sample>,
    },
    /// The machine's UUID and start time for the shot.
    Identified {
        /// The shot.
        key: ShotKey,
        /// The machine's shot UUID.
        id: String,
        /// The machine's start time, Unix seconds.
        started_unix_s: f64,
    },
    /// Shot `from` is the shot `into` that a disconnect interrupted: move `from`'s journal into
    /// `into`, drop `from`'s row, and mark `into` as in progress again. Recording goes on as
    /// `into`.
    Merged {
        /// The shot begun after the reconnect.
        from: ShotKey,
        /// The interrupted shot.
        into: ShotKey,
    },
    /// The shot ended and is kept.
    Finish(Shot),
    /// The shot ended and is dropped, with the reason to log.
    Discard {
        /// The shot.
        key: ShotKey,
        /// Why.
        reason: DiscardReason,
    },
    /// No new sample for [`Config::stall_after`] while extracting: the controller stalled.
    Stalled {
        /// The shot.
        key: ShotKey,
        /// The last `time` the machine reported.
        last_time: i64,
    },
}

#[derive(Debug)]
struct Recording {
    key: ShotKey,
    id: Option<String>,
    started_unix_s: f64,
    /// The shot's `time` (ms since the extraction began) in the first frame seen: where the
    /// recording joined the shot.
    first_time: i64,
    samples: usize,
    last_time: i64,
    /// When `time` last advanced.
    advanced_at: Instant,
    /// A sample waiting for the sensor readings of its tick, and when its frame came.
    pending: Option<(Status, Instant)>,
    /// Samples built and not yet journaled, and when the oldest was built.
    unjournaled: Vec<Sample>,
    unjournaled_since: Option<Instant>,
    /// A lookup is in flight for this shot.
    looking_up: bool,
}

/// The recorder. See the [crate docs](crate).
#[derive(Debug)]
pub struct Recorder {
    config: Config,
    next_key: ShotKey,
    key_stride: ShotKey,
    connected: bool,
    /// `extracting` of the last status frame since the connection opened (`None`: none yet).
    extracting: Option<bool>,
    sensors: Option<Sensors>,
    recording: Option<Recording>,
    /// The last shot a disconnect cut, while it may still be resumed: `(key, id, samples)`.
    /// The shot a disconnect or a crash cut: `(key, the machine's id, samples, start)`.
    interrupted: Option<(ShotKey, Option<String>, usize, f64)>,
    outputs: VecDeque<Output>,
}

impl Recorder {
    /// A recorder whose first shot gets `first_key`.
    pub fn new(config: Config, first_key: ShotKey) -> Self {
        Self {
            config,
            next_key: first_key,
            key_stride: 1,
            connected: false,
            extracting: None,
            sensors: None,
            recording: None,
            interrupted: None,
            outputs: VecDeque::new(),
        }
    }

    /// Numbers shots `first_key`, `first_key + stride`, … instead of one after the other: the
    /// recorders of several machines writing into one store take disjoint keys (machine `i` of
    /// `n` starts at `first + i` with stride `n`).
    pub fn with_key_stride(mut self, stride: ShotKey) -> Self {
        self.key_stride = stride.max(1);
        self
    }

    /// Tells the recorder that shot `key` (the machine's `id`, `samples` recorded, begun at
    /// `started_unix_s`) was cut before this recorder started (a crash or a restart left it
    /// partial): if the machine turns out to be still in that shot, the recording goes on into
    /// it ([`Output::Merged`]). A shot cut before the machine named it is recognised by its
    /// start (`started_unix_s`, this host's clock), within [`UNNAMED_RESUME_WITHIN_S`] of the
    /// start of the shot in progress as this host sees it (and is named then).
    pub fn resume_candidate(
        &mut self,
        key: ShotKey,
        id: Option<String>,
        samples: usize,
        started_unix_s: f64,
    ) {
        self.interrupted = Some((key, id, samples, started_unix_s));
    }

    /// Journals every sample built so far without ending the shot (before a clean shutdown;
    /// the shot stays recording and is finished as partial, or resumed, on the next start).
    pub fn flush_journal(&mut self) {
        self.complete_pending();
        self.journal();
    }

    /// The shot being recorded, if any.
    pub fn current(&self) -> Option<ShotKey> {
        self.recording.as_ref().map(|r| r.key)
    }

    /// The next thing to do.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Recorder::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let r = self.recording.as_ref()?;
        let stall = r.advanced_at.checked_add(self.config.stall_after);
        let journal = r
            .unjournaled_since
            .and_then(|t| t.checked_add(self.config.journal_every));
        match (stall, journal) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed: journal what waited long enough; end a stalled shot.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(r) = &mut self.recording else {
            return;
        };
        if r.unjournaled_since
            .and_then(|t| t.checked_add(self.config.journal_every))
            .is_some_and(|due| due <= now)
        {
            self.journal();
        }
        let Some(r) = &self.recording else { return };
        if r.advanced_at
            .checked_add(self.config.stall_after)
            .is_some_and(|due| due <= now)
        {
            self.outputs.push_back(Output::Stalled {
                key: r.key,
                last_time: r.last_time,
            });
            self.end(EndReason::Stalled);
        }
    }

    /// Feeds one input.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Connected => {
                self.connected = true;
                self.extracting = None;
            }
            Input::Disconnected => {
                self.connected = false;
                self.extracting = None;
                if self.recording.is_some() {
                    self.end(EndReason::Disconnected);
                }
            }
            Input::Event { event, unix_s } => match event {
                MachineEvent::Status(status) => self.status(now, *status, unix_s),
                MachineEvent::Sensors { sensors, .. } => {
                    self.sensors
                        .get_or_insert_with(Sensors::default)
                        .update(*sensors);
                    self.complete_pending();
                }
                _ => {}
            },
            Input::CurrentShot { key, result } => self.current_shot(key, result),
        }
    }

    fn status(&mut self, now: Instant, status: Status, unix_s: f64) {
        // The previous tick's sample takes the readings it had.
        self.complete_pending();
        let was = self.extracting.replace(status.extracting);
        let ends =
            !status.extracting || matches!(status.state, MachineState::Idle | MachineState::Purge);
        if self.recording.is_some() {
            if ends {
                let reason = if status.extracting {
                    EndReason::MachineIdle
                } else {
                    EndReason::Finished
                };
                self.end(reason);
            } else {
                self.sample(now, status);
            }
            return;
        }
        if ends {
            return;
        }
        match was {
            // The rising edge.
            Some(false) => self.start(now, status, unix_s),
            // Extracting on the first frame after a connect: the edge was missed while away. A
            // shot that a disconnect cut may be going on; anything else is a shot whose start
            // we did not see, recorded all the same.
            None => self.start(now, status, unix_s),
            Some(true) => {}
        }
    }

    fn start(&mut self, now: Instant, status: Status, unix_s: f64) {
        let key = self.next_key;
        self.next_key = self.next_key.wrapping_add(self.key_stride);
        self.outputs.push_back(Output::Started(ShotStart {
            key,
            started_unix_s: unix_s,
            profile_name: status
                .profile
                .clone()
                .or_else(|| status.loaded_profile.clone()),
            profile_id: status.id.clone(),
        }));
        self.outputs.push_back(Output::LookupCurrentShot { key });
        self.recording = Some(Recording {
            key,
            id: None,
            started_unix_s: unix_s,
            first_time: status.time,
            samples: 0,
            last_time: status.time,
            advanced_at: now,
            pending: None,
            unjournaled: Vec::new(),
            unjournaled_since: None,
            looking_up: true,
        });
        self.accept(now, status);
    }

    /// A frame of the shot: a sample when its `time` is new.
    fn sample(&mut self, now: Instant, status: Status) {
        let Some(r) = &self.recording else { return };
        if status.time == r.last_time && r.samples > 0 {
            return;
        }
        self.accept(now, status);
    }

    fn accept(&mut self, now: Instant, status: Status) {
        let Some(r) = &mut self.recording else { return };
        r.last_time = status.time;
        r.advanced_at = now;
        r.samples += 1;
        r.pending = Some((status, now));
    }

    /// Builds the waiting sample with the latest sensor readings. Its journal deadline counts
    /// from its frame's arrival.
    fn complete_pending(&mut self) {
        let Some(r) = &mut self.recording else { return };
        let Some((status, at)) = r.pending.take() else {
            return;
        };
        r.unjournaled
            .push(Sample::from_live(&status, self.sensors.as_ref()));
        r.unjournaled_since.get_or_insert(at);
        if r.unjournaled.len() >= self.config.journal_batch {
            self.journal();
        }
    }

    fn journal(&mut self) {
        let Some(r) = &mut self.recording else { return };
        r.unjournaled_since = None;
        if r.unjournaled.is_empty() {
            return;
        }
        self.outputs.push_back(Output::Journal {
            key: r.key,
            samples: std::mem::take(&mut r.unjournaled),
        });
    }

    fn end(&mut self, reason: EndReason) {
        self.complete_pending();
        self.journal();
        let Some(r) = self.recording.take() else {
            return;
        };
        let cut = matches!(reason, EndReason::Disconnected | EndReason::Stalled);
        let keep = if reason == EndReason::Disconnected {
            r.samples > 0
        } else {
            r.samples >= self.config.min_samples
        };
        if !keep {
            self.outputs.push_back(Output::Discard {
                key: r.key,
                reason: if r.samples == 0 {
                    DiscardReason::Empty
                } else {
                    DiscardReason::TooShort {
                        samples: r.samples,
                        min: self.config.min_samples,
                    }
                },
            });
            return;
        }
        // Its start on this host's clock, for a resume while it has no name.
        let began = r.started_unix_s - r.first_time as f64 / 1000.0;
        self.interrupted =
            (reason == EndReason::Disconnected).then(|| (r.key, r.id.clone(), r.samples, began));
        self.outputs.push_back(Output::Finish(Shot {
            key: r.key,
            id: r.id,
            started_unix_s: r.started_unix_s,
            status: if cut {
                ShotStatus::Partial
            } else {
                ShotStatus::Complete
            },
            reason,
            samples: r.samples,
        }));
    }

    fn current_shot(&mut self, key: ShotKey, result: Result<Option<CurrentShot>, String>) {
        let Some(r) = &mut self.recording else { return };
        if r.key != key || !r.looking_up {
            return;
        }
        r.looking_up = false;
        let Ok(Some(current)) = result else {
            // Unknown: the shot stays live-only until history sync matches it.
            return;
        };
        // The shot a disconnect cut, going on: record into it. One cut before the machine
        // named it is known by its start, on this host's clock: when its first frame came, and
        // when the shot in progress began (the first frame's arrival less the shot's `time`).
        let began = r.started_unix_s - r.first_time as f64 / 1000.0;
        let candidate = self.interrupted.take();
        if let Some((into, id, samples, started)) = candidate
            && match &id {
                Some(id) => *id == current.id,
                None => (started - began).abs() <= UNNAMED_RESUME_WITHIN_S,
            }
        {
            self.journal();
            let Some(r) = &mut self.recording else { return };
            let from = r.key;
            r.key = into;
            r.samples += samples;
            r.id = Some(current.id.clone());
            self.outputs.push_back(Output::Merged { from, into });
            if id.is_none() {
                r.started_unix_s = current.time;
                self.outputs.push_back(Output::Identified {
                    key: into,
                    id: current.id,
                    started_unix_s: current.time,
                });
            }
            return;
        }
        r.id = Some(current.id.clone());
        r.started_unix_s = current.time;
        self.outputs.push_back(Output::Identified {
            key: r.key,
            id: current.id,
            started_unix_s: current.time,
        });
    }
}
