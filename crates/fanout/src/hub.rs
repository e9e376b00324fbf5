//! Topics: the latest event of each name (the snapshot a subscriber gets first), a sequence
//! number, a bounded replay ring for SSE resume, and a broadcast of each event's bytes,
//! serialized once for every subscriber.
//!
//! A snapshot is bounded: at most [`SNAPSHOT_NAMES`] names and [`SNAPSHOT_BYTES`] of frames
//! per topic. A publisher that sends ever new names pushes the oldest names out (counted in
//! [`Hub::snapshot_evicted`]); the newest event is always kept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::value::RawValue;
use tokio::sync::broadcast;

use crate::mailbox::{Mailbox, text_frame};

/// One published event, serialized once.
#[derive(Debug)]
pub struct Event {
    /// Its topic.
    pub topic: Arc<str>,
    /// Its place in the topic, from 1.
    pub seq: u64,
    /// The event name (`status`, `sensors`, …).
    pub name: Arc<str>,
    /// When it was published, RFC 3339.
    pub at: String,
    /// Its data, raw JSON.
    pub data: Box<RawValue>,
    /// The event as a complete WebSocket text frame (header included), made once and written
    /// as it is to every WebSocket subscriber. Its text is [`Event::frame`].
    pub ws: bytes::Bytes,
    /// Where the frame's text begins in `ws`.
    text_at: usize,
    /// Events of the topic that came before this one and never reached this hub (a hub fed
    /// by a broker that lost them, [`Hub::accept`]): subscribers are told of a gap first.
    pub skipped: u64,
}

impl Event {
    /// The frame's text: `{"type":"event","topic":…,"seq":…,"name":…,"at":…,"data":…}`.
    pub fn frame(&self) -> &str {
        // Made from a `String`: always UTF-8.
        std::str::from_utf8(&self.ws[self.text_at..]).unwrap_or_default()
    }
}

/// What a subscriber gets: the snapshot, then every later event with no gap and no duplicate.
#[derive(Debug)]
pub struct Subscription {
    /// The topic.
    pub topic: Arc<str>,
    /// The latest event of each name, oldest first.
    pub snapshot: Vec<Arc<Event>>,
    /// The topic's sequence number when the snapshot was taken: live events follow it.
    pub seq: u64,
    /// The live events. A subscriber that falls more than the hub's capacity behind receives
    /// `Lagged(n)`: `n` events it will never see (report them as a gap). Drop it to cancel.
    pub live: broadcast::Receiver<Arc<Event>>,
}

/// An SSE resume: the events missed since the client's last id, then the live ones.
#[derive(Debug)]
pub struct Resumed {
    /// The events after the resume point, in order.
    pub missed: Vec<Arc<Event>>,
    /// The live events after them.
    pub live: broadcast::Receiver<Arc<Event>>,
}

/// A resume point outside the replay ring: send the snapshot instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRing;

#[derive(Debug)]
struct Topic {
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<Event>>,
    /// Wakes the topic's WebSocket writers, at most once per [`Hub::with_pace`] (when the
    /// topic was made inside a tokio runtime; otherwise each push wakes its writer).
    pacer: Option<Arc<tokio::sync::Notify>>,
}

#[derive(Debug, Default)]
struct State {
    seq: u64,
    latest: Vec<Arc<Event>>,
    ring: VecDeque<Arc<Event>>,
    /// WebSocket connections subscribed: each event's frame is pushed into their queues.
    mailboxes: Vec<Arc<Mailbox>>,
}

/// The topics of one gateway. Knows nothing of espresso: events are names and opaque JSON.
#[derive(Debug)]
pub struct Hub {
    epoch: u64,
    ring: usize,
    capacity: usize,
    topics: Mutex<HashMap<Arc<str>, Arc<Topic>>>,
    published: std::sync::atomic::AtomicU64,
    pace: std::time::Duration,
    /// SSE streams open now, and events they have written (kept here: SSE streams share only
    /// the hub).
    pub(crate) sse_streams: std::sync::atomic::AtomicUsize,
    pub(crate) sse_sent: std::sync::atomic::AtomicU64,
    /// Names pushed out of snapshots by newer ones.
    evicted: std::sync::atomic::AtomicU64,
}

/// Names a topic's snapshot keeps at most (a machine sends about ten).
pub const SNAPSHOT_NAMES: usize = 64;

/// Frame bytes a topic's snapshot keeps at most, the newest event aside (1 MiB: one
/// `subscribed` frame).
pub const SNAPSHOT_BYTES: usize = 1 << 20;

/// Events a topic keeps for resuming SSE streams (`Last-Event-ID`), by default.
pub const REPLAY_RING: usize = 1024;

/// Events an SSE stream may fall behind before it is told of a gap, by default.
pub const SUBSCRIBER_LAG: usize = 4096;

impl Hub {
    /// A hub whose SSE ids carry `epoch` (distinct for each start of the gateway), keeping
    /// `ring` events per topic for resume and letting a subscriber fall `capacity` events behind.
    pub fn new(epoch: u64, ring: usize, capacity: usize) -> Self {
        Self {
            epoch,
            ring: ring.max(1),
            capacity: capacity.max(1),
            topics: Mutex::new(HashMap::new()),
            published: std::sync::atomic::AtomicU64::new(0),
            pace: DEFAULT_PACE,
            sse_streams: std::sync::atomic::AtomicUsize::new(0),
            sse_sent: std::sync::atomic::AtomicU64::new(0),
            evicted: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Names pushed out of topics' snapshots by newer names since the hub was made.
    pub fn snapshot_evicted(&self) -> u64 {
        self.evicted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Keeps `event` as the latest of its name in `latest`, then pushes the oldest names out
    /// while over [`SNAPSHOT_NAMES`] or [`SNAPSHOT_BYTES`].
    fn keep_latest(&self, latest: &mut Vec<Arc<Event>>, event: Arc<Event>) {
        match latest.iter_mut().find(|e| e.name == event.name) {
            Some(slot) => *slot = event,
            None => latest.push(event),
        }
        let mut bytes: usize = latest.iter().map(|e| e.ws.len()).sum();
        while latest.len() > 1 && (latest.len() > SNAPSHOT_NAMES || bytes > SNAPSHOT_BYTES) {
            let Some(oldest) = latest
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.seq)
                .map(|(i, _)| i)
            else {
                break;
            };
            bytes -= latest.swap_remove(oldest).ws.len();
            self.evicted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Wakes each topic's WebSocket writers at most once per `pace` (2 ms by default). The
    /// first event after a quiet spell goes out at once; under a flood each connection writes
    /// one batch per `pace` instead of one frame per event, which costs far fewer system calls
    /// on both ends for at most `pace` more latency. `Duration::ZERO` wakes on every event.
    #[must_use]
    pub fn with_pace(mut self, pace: std::time::Duration) -> Self {
        self.pace = pace;
        self
    }

    /// Events published since the hub was made.
    pub fn published(&self) -> u64 {
        self.published.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// SSE streams open now.
    pub fn sse_streams(&self) -> usize {
        self.sse_streams.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Events written to SSE streams so far.
    pub fn sse_sent(&self) -> u64 {
        self.sse_sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Live receivers of `topic` now: WebSocket subscriptions, SSE streams and in-process
    /// subscribers (0 for a topic that does not exist).
    pub fn subscribers(&self, topic: &str) -> usize {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.get(topic).map_or(0, |t| {
            let mailboxes = t.state.lock().map_or(0, |s| s.mailboxes.len());
            t.tx.receiver_count() + mailboxes
        })
    }

    /// The epoch in SSE ids.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn topic(&self, name: &str) -> (Arc<str>, Arc<Topic>) {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, v)) = topics.get_key_value(name) {
            return (k.clone(), v.clone());
        }
        let key: Arc<str> = name.into();
        let runtime = tokio::runtime::Handle::try_current().ok();
        let pacer = runtime
            .as_ref()
            .filter(|_| !self.pace.is_zero())
            .map(|_| Arc::new(tokio::sync::Notify::new()));
        let topic = Arc::new(Topic {
            state: Mutex::new(State::default()),
            tx: broadcast::channel(self.capacity).0,
            pacer: pacer.clone(),
        });
        if let (Some(runtime), Some(pacer)) = (runtime, pacer) {
            runtime.spawn(pace(Arc::downgrade(&topic), pacer, self.pace));
        }
        topics.insert(key.clone(), topic.clone());
        (key, topic)
    }

    /// Makes `topic` known before its first event: clients may subscribe to it. Topics are
    /// made by the server's side (this, [`Hub::publish`], [`Hub::subscribe`]), never by a
    /// client's subscription: a name nobody publishes is answered `not_found`, not kept.
    pub fn declare(&self, topic: &str) {
        self.topic(topic);
    }

    /// Whether `topic` is known (declared, published to, or subscribed to in-process).
    pub fn exists(&self, topic: &str) -> bool {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.contains_key(topic)
    }

    /// The topics that have had an event or a subscriber.
    pub fn topics(&self) -> Vec<Arc<str>> {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<Arc<str>> = topics.keys().cloned().collect();
        names.sort();
        names
    }

    /// Publishes event `name` with `data` on `topic`: numbered, kept as the latest of its name,
    /// kept in the ring, serialized once and sent to every subscriber.
    pub fn publish(&self, topic: &str, name: &str, data: &RawValue, at: SystemTime) -> Arc<Event> {
        let (key, t) = self.topic(topic);
        let mut state = t.state.lock().unwrap_or_else(|e| e.into_inner());
        let seq = state.seq + 1;
        let at = humantime::format_rfc3339_millis(at).to_string();
        self.push(&t, &mut state, key, seq, name, data, at)
    }

    /// For a hub fed by a broker: event `seq` of `topic`, numbered by the deployment (the
    /// same number, time and frame on every instance). An event at or below the topic's
    /// number is one this hub has (`None`: never a duplicate). One past a hole (the broker
    /// lost events on the way) is taken with [`Event::skipped`] set: the ring is cleared, so
    /// a resume from before the hole gets the snapshot, and subscribers are told of a gap.
    pub fn accept(
        &self,
        topic: &str,
        seq: u64,
        name: &str,
        data: &RawValue,
        at: &str,
    ) -> Option<Arc<Event>> {
        let (key, t) = self.topic(topic);
        let mut state = t.state.lock().unwrap_or_else(|e| e.into_inner());
        if seq <= state.seq {
            return None;
        }
        Some(self.push(&t, &mut state, key, seq, name, data, at.to_owned()))
    }

    /// For a hub fed by a broker that lost events: the latest event of name `name` as the
    /// deployment knows it, for the snapshot only (not the ring, not the live stream). Kept
    /// when it is newer than the hub's own latest of that name.
    pub fn remember(&self, topic: &str, seq: u64, name: &str, data: &RawValue, at: &str) {
        let (key, t) = self.topic(topic);
        let mut state = t.state.lock().unwrap_or_else(|e| e.into_inner());
        if state
            .latest
            .iter()
            .any(|e| *e.name == *name && e.seq >= seq)
        {
            return;
        }
        let event = Arc::new(make_event(key, seq, name, data, at.to_owned(), 0));
        self.keep_latest(&mut state.latest, event);
    }

    /// The number of `topic`'s latest event (0: none, or no such topic).
    pub fn last_seq(&self, topic: &str) -> u64 {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics
            .get(topic)
            .map_or(0, |t| t.state.lock().unwrap_or_else(|e| e.into_inner()).seq)
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &self,
        t: &Topic,
        state: &mut State,
        key: Arc<str>,
        seq: u64,
        name: &str,
        data: &RawValue,
        at: String,
    ) -> Arc<Event> {
        self.published
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let skipped = seq - state.seq - 1;
        state.seq = seq;
        let event = Arc::new(make_event(key, seq, name, data, at, skipped));
        if skipped > 0 {
            state.ring.clear();
            for mailbox in &state.mailboxes {
                mailbox.lock().note_dropped(&event.topic, skipped);
            }
        }
        self.keep_latest(&mut state.latest, event.clone());
        if state.ring.len() == self.ring {
            state.ring.pop_front();
        }
        state.ring.push_back(event.clone());
        // Sent under the lock: a subscriber's snapshot and its live events never overlap.
        match &t.pacer {
            Some(pacer) if !state.mailboxes.is_empty() => {
                for mailbox in &state.mailboxes {
                    mailbox.push_data_quietly(&event.topic, event.ws.clone());
                }
                pacer.notify_one();
            }
            _ => {
                for mailbox in &state.mailboxes {
                    mailbox.push_data(&event.topic, event.ws.clone());
                }
            }
        }
        let _ = t.tx.send(event.clone());
        event
    }

    /// Subscribes a WebSocket connection's mailbox to `topic`: from now on every event's frame
    /// is pushed into it. Returns the topic's shared name and its snapshot, read under the same
    /// lock (live events follow it exactly); `None` when no such topic exists (a client never
    /// creates one).
    pub(crate) fn attach(
        &self,
        topic: &str,
        mailbox: &Arc<Mailbox>,
    ) -> Option<(Arc<str>, Vec<Arc<Event>>)> {
        let (key, t) = {
            let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
            let (k, v) = topics.get_key_value(topic)?;
            (k.clone(), v.clone())
        };
        let mut state = t.state.lock().unwrap_or_else(|e| e.into_inner());
        state.mailboxes.push(mailbox.clone());
        let mut snapshot = state.latest.clone();
        snapshot.sort_by_key(|e| e.seq);
        Some((key, snapshot))
    }

    /// Ends what [`Hub::attach`] began.
    pub(crate) fn detach(&self, topic: &str, mailbox: &Arc<Mailbox>) {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = topics.get(topic) {
            let mut state = t.state.lock().unwrap_or_else(|e| e.into_inner());
            state.mailboxes.retain(|m| !Arc::ptr_eq(m, mailbox));
        }
    }

    /// The latest event of each name on `topic`, oldest first, without subscribing (and
    /// without creating the topic).
    pub fn snapshot(&self, topic: &str) -> Vec<Arc<Event>> {
        let topic = {
            let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
            topics.get(topic).cloned()
        };
        let Some(t) = topic else {
            return Vec::new();
        };
        let state = t.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut snapshot = state.latest.clone();
        snapshot.sort_by_key(|e| e.seq);
        snapshot
    }

    /// Subscribes to `topic`: the receiver is registered, then the snapshot read, under the
    /// topic's lock, so live events continue exactly after the snapshot.
    pub fn subscribe(&self, topic: &str) -> Subscription {
        let (key, t) = self.topic(topic);
        let state = t.state.lock().unwrap_or_else(|e| e.into_inner());
        let live = t.tx.subscribe();
        let mut snapshot = state.latest.clone();
        snapshot.sort_by_key(|e| e.seq);
        Subscription {
            topic: key,
            snapshot,
            seq: state.seq,
            live,
        }
    }

    /// For SSE resume: the events of `topic` after `seq`, and a live receiver after them; or
    /// [`OutOfRing`] when some are no longer kept (or `seq` is from another epoch's future).
    pub fn resume(&self, topic: &str, seq: u64) -> Result<Resumed, OutOfRing> {
        let (_, t) = self.topic(topic);
        let state = t.state.lock().unwrap_or_else(|e| e.into_inner());
        if seq > state.seq {
            return Err(OutOfRing);
        }
        let oldest = state.ring.front().map_or(state.seq + 1, |e| e.seq);
        if seq + 1 < oldest {
            return Err(OutOfRing);
        }
        let missed = state.ring.iter().filter(|e| e.seq > seq).cloned().collect();
        Ok(Resumed {
            missed,
            live: t.tx.subscribe(),
        })
    }
}

/// How often a topic's WebSocket writers are woken at most: see [`Hub::with_pace`].
pub const DEFAULT_PACE: std::time::Duration = std::time::Duration::from_millis(2);

/// A topic's pacer: when events were pushed, wakes every writer of the topic, then rests for
/// `every` (events pushed meanwhile are picked up by the next round, at once after the rest).
async fn pace(
    topic: std::sync::Weak<Topic>,
    pushed: Arc<tokio::sync::Notify>,
    every: std::time::Duration,
) {
    loop {
        pushed.notified().await;
        let Some(topic) = topic.upgrade() else { return };
        {
            let state = topic.state.lock().unwrap_or_else(|e| e.into_inner());
            for mailbox in &state.mailboxes {
                mailbox.wake();
            }
        }
        drop(topic);
        tokio::time::sleep(every).await;
    }
}

/// `{"type":"event","topic":…,"seq":…,"name":…,"at":…,"data":…}`.
fn make_event(
    topic: Arc<str>,
    seq: u64,
    name: &str,
    data: &RawValue,
    at: String,
    skipped: u64,
) -> Event {
    let text = frame(&topic, seq, name, &at, data);
    let ws = text_frame(text.as_bytes());
    let text_at = ws.len() - text.len();
    Event {
        topic,
        seq,
        name: name.into(),
        at,
        data: data.to_owned(),
        ws,
        text_at,
        skipped,
    }
}

fn frame(topic: &str, seq: u64, name: &str, at: &str, data: &RawValue) -> String {
    #[derive(serde::Serialize)]
    struct Frame<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        topic: &'a str,
        seq: u64,
        name: &'a str,
        at: &'a str,
        data: &'a RawValue,
    }
    serde_json::to_string(&Frame {
        kind: "event",
        topic,
        seq,
        name,
        at,
        data,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_767_254_414_600)
    }

    /// A hub fed by a broker takes the deployment's numbers: never an event twice, and a hole
    /// clears the ring (a resume from before it gets the snapshot) and is told as a gap.
    #[test]
    fn accepted_events_keep_their_numbers_and_holes_are_gaps() {
        let hub = Hub::new(7, 16, 16);
        let t = "machine:a";
        let mailbox = Mailbox::new(1 << 20, 1 << 20, Default::default());
        hub.declare(t);
        hub.attach(t, &mailbox).unwrap();
        let at = "2026-01-01T08:00:14.600Z";
        assert_eq!(hub.accept(t, 1, "status", &raw("1"), at).unwrap().seq, 1);
        assert!(
            hub.accept(t, 1, "status", &raw("1"), at).is_none(),
            "never twice"
        );
        assert_eq!(
            hub.accept(t, 2, "sensors", &raw("2"), at).unwrap().skipped,
            0
        );
        assert!(hub.resume(t, 1).is_ok());
        let after_hole = hub.accept(t, 10, "status", &raw("10"), at).unwrap();
        assert_eq!(after_hole.skipped, 7);
        assert!(
            hub.resume(t, 2).is_err(),
            "a resume across the hole: snapshot"
        );
        assert_eq!(hub.resume(t, 10).unwrap().missed.len(), 0);
        // The mailbox reports the hole as a gap before the event after it.
        let mut out = mailbox.lock();
        let gap = |topic: &str, n: u64| bytes::Bytes::from(format!("gap {topic} {n}"));
        let frames: Vec<_> = std::iter::from_fn(|| out.pop(gap)).collect();
        assert!(
            frames.contains(&crate::outbound::Frame::Control(gap(t, 7))),
            "{frames:?}"
        );
        drop(out);
        // A remembered event counts for the snapshot only when newer than the hub's own.
        hub.remember(t, 5, "profile", &raw("5"), at);
        hub.remember(t, 3, "status", &raw("3"), at);
        let names: Vec<(String, u64)> = hub
            .snapshot(t)
            .iter()
            .map(|e| (e.name.to_string(), e.seq))
            .collect();
        assert_eq!(
            names,
            [
                ("sensors".into(), 2),
                ("profile".into(), 5),
                ("status".into(), 10)
            ]
        );
        assert_eq!(hub.last_seq(t), 10, "remembering does not move the number");
    }

    #[test]
    fn the_frame_is_serialized_once_in_the_wire_shape() {
        let hub = Hub::new(7, 16, 16);
        let event = hub.publish("machine:a", "status", &raw(r#"{"state":"idle"}"#), at());
        assert_eq!(
            event.frame(),
            r#"{"type":"event","topic":"machine:a","seq":1,"name":"status","at":"2026-01-01T08:00:14.600Z","data":{"state":"idle"}}"#
        );
    }

    #[test]
    fn the_snapshot_holds_the_latest_of_each_name_and_live_follows_it() {
        let hub = Hub::new(1, 16, 16);
        hub.publish("t", "status", &raw("1"), at());
        hub.publish("t", "sensors", &raw("2"), at());
        hub.publish("t", "status", &raw("3"), at());
        assert!(hub.snapshot("elsewhere").is_empty());
        assert_eq!(hub.topics().len(), 1, "reading a snapshot creates no topic");
        let mut sub = hub.subscribe("t");
        assert_eq!(hub.snapshot("t").len(), sub.snapshot.len());
        let names: Vec<(&str, u64)> = sub.snapshot.iter().map(|e| (&*e.name, e.seq)).collect();
        assert_eq!(names, vec![("sensors", 2), ("status", 3)]);
        assert_eq!(sub.seq, 3);
        hub.publish("t", "sensors", &raw("4"), at());
        assert_eq!(sub.live.try_recv().unwrap().seq, 4);
        assert!(sub.live.try_recv().is_err());
    }

    /// A publisher of ever new names: the snapshot keeps the newest names up to its caps, the
    /// rest are counted out; a name seen again comes back.
    #[test]
    fn the_snapshot_keeps_the_newest_names_within_its_caps() {
        let hub = Hub::new(1, 16, 16);
        for i in 0..3000 {
            hub.publish("t", &format!("name{i}"), &raw("0"), at());
        }
        let snapshot = hub.snapshot("t");
        assert_eq!(snapshot.len(), SNAPSHOT_NAMES);
        assert_eq!(snapshot.last().unwrap().name.as_ref(), "name2999");
        assert_eq!(snapshot[0].name.as_ref(), "name2936");
        assert_eq!(hub.snapshot_evicted(), 3000 - SNAPSHOT_NAMES as u64);
        // Bytes: events of 300 KiB each, three at most under 1 MiB.
        let big = raw(&format!("\"{}\"", "x".repeat(300 << 10)));
        for name in ["a", "b", "c", "d", "e"] {
            hub.publish("u", name, &big, at());
        }
        let names: Vec<String> = hub
            .snapshot("u")
            .iter()
            .map(|e| e.name.to_string())
            .collect();
        assert_eq!(names, ["c", "d", "e"]);
        // One event larger than the cap is kept alone: a subscriber gets the latest state.
        let huge = raw(&format!("\"{}\"", "x".repeat(2 << 20)));
        hub.publish("u", "huge", &huge, at());
        assert_eq!(hub.snapshot("u").len(), 1);
    }

    #[test]
    fn resume_inside_and_outside_the_ring() {
        let hub = Hub::new(1, 3, 16);
        for i in 0..5 {
            hub.publish("t", "e", &raw(&i.to_string()), at());
        }
        let missed = hub.resume("t", 3).unwrap().missed;
        assert_eq!(missed.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(hub.resume("t", 2).unwrap().missed.len(), 3);
        assert_eq!(hub.resume("t", 1).unwrap_err(), OutOfRing);
        assert_eq!(hub.resume("t", 9).unwrap_err(), OutOfRing);
        assert!(hub.resume("t", 5).unwrap().missed.is_empty());
    }

    /// Publishers and subscribers on threads: each subscriber sees the snapshot's seq and then
    /// every later event, contiguous, no gap and no duplicate.
    #[test]
    fn no_gap_and_no_duplicate_under_concurrency() {
        let hub = Arc::new(Hub::new(1, 64, 100_000));
        let publisher = {
            let hub = hub.clone();
            std::thread::spawn(move || {
                for i in 0..20_000 {
                    let name = if i % 2 == 0 { "status" } else { "sensors" };
                    hub.publish("t", name, &raw("0"), at());
                }
            })
        };
        let subscribers: Vec<_> = (0..4)
            .map(|_| {
                let hub = hub.clone();
                std::thread::spawn(move || {
                    let mut sub = hub.subscribe("t");
                    let mut expected = sub.seq + 1;
                    while expected <= 20_000 {
                        match sub.live.try_recv() {
                            Ok(e) => {
                                assert_eq!(e.seq, expected);
                                expected += 1;
                            }
                            Err(broadcast::error::TryRecvError::Empty) => std::thread::yield_now(),
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        publisher.join().unwrap();
        for s in subscribers {
            s.join().unwrap();
        }
    }
}
