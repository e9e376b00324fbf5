//! The fan-out's families: connections, subscribers, events in and out, drops.

use std::sync::Arc;

use telemetry::{Families, Source};

use crate::Hub;
use crate::ws::WsState;

/// The fan-out's instruments, read from its hub and its WebSocket state.
#[derive(Debug)]
pub struct Fanout {
    hub: Arc<Hub>,
    ws: Arc<WsState>,
}

impl Fanout {
    /// The families of `hub` and `ws`.
    pub fn new(hub: Arc<Hub>, ws: Arc<WsState>) -> Self {
        Self { hub, ws }
    }
}

impl Source for Fanout {
    fn collect(&self, m: &mut Families) {
        let (hub, ws) = (&self.hub, &self.ws);
        m.gauge("crema_ws_connections", "WebSocket connections open now.")
            .sample(&[], ws.connections() as u64);
        m.gauge("crema_sse_streams", "SSE streams open now.")
            .sample(&[], hub.sse_streams() as u64);
        let family = m.gauge(
            "crema_subscribers",
            "Live subscribers per topic (WebSocket subscriptions, SSE streams, in-process).",
        );
        for topic in hub.topics() {
            family.sample(&[("topic", &topic)], hub.subscribers(&topic) as u64);
        }
        m.counter(
            "crema_events_published",
            "Machine events published to topics (events in).",
        )
        .sample(&[], hub.published());
        m.counter(
            "crema_ws_frames_sent",
            "Frames written to WebSocket clients (events out, and control frames).",
        )
        .sample(&[], ws.sent());
        m.counter(
            "crema_sse_events_sent",
            "Events written to SSE streams (events out).",
        )
        .sample(&[], hub.sse_sent());
        m.counter(
            "crema_ws_dropped",
            "Data frames dropped for slow WebSocket clients (reported to them as gaps).",
        )
        .sample(&[], ws.dropped());
        m.counter(
            "crema_snapshot_evicted",
            "Event names pushed out of topics' snapshots by newer names (a publisher of ever new names).",
        )
        .sample(&[], hub.snapshot_evicted());
        m.gauge(
            "crema_ws_queued_bytes",
            "Data bytes waiting in WebSocket connections' queues.",
        )
        .sample(&[], ws.queued_bytes() as u64);
        m.gauge(
            "crema_ws_control_bytes",
            "Answer bytes (subscribed, error, pong) waiting in WebSocket connections' queues.",
        )
        .sample(&[], ws.control_bytes() as u64);
    }
}
