//! Server-Sent Events for one topic: `id: <epoch>-<seq>`, `event: <name>`, `data: <json>`.
//!
//! A client that comes back with `Last-Event-ID` (or `?last_event_id=` on its first connect)
//! gets what it missed from the replay ring, then the live events. When its id is from another
//! epoch or older than the ring, it gets the snapshot first (the latest event of each name),
//! as a new subscriber does. A subscriber that falls behind the hub gets a `gap` event with
//! the number it missed. A comment every 15 s keeps proxies from closing the stream; `retry:`
//! tells the browser to come back after 2 s; `X-Accel-Buffering: no` keeps nginx from
//! buffering it.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::admission::Ticket;
use crate::{Event, Hub};

/// Parses `<epoch>-<seq>`.
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (epoch, seq) = id.trim().split_once('-')?;
    Some((epoch.parse().ok()?, seq.parse().ok()?))
}

/// Whether `name` can be an SSE event's name: one line, not empty.
pub fn writable_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['\r', '\n'])
}

/// The event as SSE, or `None` for a name SSE cannot carry (publishers check names where they
/// enter; this keeps one that slipped through from breaking the stream).
fn sse_event(hub: &Hub, event: &Event) -> Option<SseEvent> {
    writable_name(&event.name).then(|| {
        SseEvent::default()
            .id(format!("{}-{}", hub.epoch(), event.seq))
            .event(&*event.name)
            .data(event.data.get())
    })
}

/// The SSE response for `topic`, resuming after `last_event_id` (the header's or the query's).
/// The stream holds `ticket` (its slot in the gateway's caps) for as long as it lives.
pub fn stream(
    hub: Arc<Hub>,
    topic: &str,
    last_event_id: Option<&str>,
    ticket: Option<Ticket>,
) -> Response {
    let resume = last_event_id
        .and_then(parse_id)
        .filter(|(epoch, _)| *epoch == hub.epoch())
        .and_then(|(_, seq)| hub.resume(topic, seq).ok());
    let (first, live) = match resume {
        Some(resumed) => (resumed.missed, resumed.live),
        None => {
            let sub = hub.subscribe(topic);
            (sub.snapshot, sub.live)
        }
    };
    let head: Vec<SseEvent> = std::iter::once(SseEvent::default().retry(Duration::from_secs(2)))
        .chain(first.iter().filter_map(|e| sse_event(&hub, e)))
        .collect();
    let open = Open::new(hub.clone(), ticket);
    let gap = |n: u64| {
        SseEvent::default()
            .event("gap")
            .data(format!("{{\"dropped\":{n}}}"))
    };
    let live = BroadcastStream::new(live).flat_map(move |item| {
        // At most a gap and an event: no allocation per event.
        let (gap_first, event) = match item {
            // Events the broker lost before this one: a gap first.
            Ok(event) => (
                (event.skipped > 0).then(|| gap(event.skipped)),
                sse_event(&open.hub, &event),
            ),
            Err(BroadcastStreamRecvError::Lagged(n)) => (Some(gap(n)), None),
        };
        open.sent(u64::from(gap_first.is_some()) + u64::from(event.is_some()));
        futures_util::stream::iter(gap_first.into_iter().chain(event))
    });
    hub.sse_sent
        .fetch_add(head.len() as u64 - 1, Ordering::Relaxed);
    let events = futures_util::stream::iter(head)
        .chain(live)
        .map(Ok::<_, Infallible>);
    response(events)
}

/// The response for an SSE stream of `events`, as every crema stream is served: a comment every
/// 15 s (proxies keep it open) and `X-Accel-Buffering: no` (nginx does not buffer it).
pub fn response<S>(events: S) -> Response
where
    S: futures_util::Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
{
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Counts an SSE stream as open for as long as it lives, and holds its slot.
struct Open {
    hub: Arc<Hub>,
    _ticket: Option<Ticket>,
}

impl Open {
    fn new(hub: Arc<Hub>, ticket: Option<Ticket>) -> Self {
        hub.sse_streams.fetch_add(1, Ordering::Relaxed);
        Self {
            hub,
            _ticket: ticket,
        }
    }

    fn sent(&self, n: u64) {
        self.hub.sse_sent.fetch_add(n, Ordering::Relaxed);
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.hub.sse_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The resume point a request carries: the `Last-Event-ID` header, else `?last_event_id=`.
pub fn last_event_id<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query)
}
