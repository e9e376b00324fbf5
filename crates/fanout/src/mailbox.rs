//! A WebSocket connection's mailbox: its [`Outbound`] queue, which publishers fill directly
//! (under the topic's lock, so a subscriber's snapshot and its live events never overlap), and
//! the waker of the one task that writes the connection. Frames in it are complete WebSocket
//! frames (header included), made once per event and shared by every subscriber.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::Outbound;

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Mailbox {
    out: Mutex<Outbound>,
    waker: AtomicWaker,
    /// The gateway-wide count of data frames dropped for slow clients.
    dropped: Arc<AtomicU64>,
}

impl Mailbox {
    pub(crate) fn new(
        max_data_bytes: usize,
        max_control_bytes: usize,
        dropped: Arc<AtomicU64>,
    ) -> Arc<Self> {
        Arc::new(Self {
            out: Mutex::new(Outbound::with_control(max_data_bytes, max_control_bytes)),
            waker: AtomicWaker::new(),
            dropped,
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Outbound> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writing task's waker, woken by every push.
    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Queues an event frame of `topic` (dropping the oldest data if over the bound) and wakes
    /// the writer.
    pub(crate) fn push_data(&self, topic: &Arc<str>, frame: Bytes) {
        self.push_data_quietly(topic, frame);
        self.waker.wake();
    }

    /// Wakes the writer.
    pub(crate) fn wake(&self) {
        self.waker.wake();
    }

    /// Queues an event frame of `topic` without waking the writer (the topic's pacer will).
    pub(crate) fn push_data_quietly(&self, topic: &Arc<str>, frame: Bytes) {
        let lost = {
            let mut out = self.lock();
            let before = out.dropped_total();
            out.push_data(topic, frame);
            out.dropped_total() - before
        };
        if lost > 0 {
            self.dropped.fetch_add(lost, Ordering::Relaxed);
        }
    }

    /// Queues a control frame (never dropped).
    pub(crate) fn push_control(&self, frame: Bytes) {
        self.lock().push_control(frame);
        self.waker.wake();
    }
}

/// A complete unmasked text frame holding `payload`, as a server sends it.
pub(crate) fn text_frame(payload: &[u8]) -> Bytes {
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    let mut frame = Vec::with_capacity(header.len(payload.len() as u64) + payload.len());
    // Writing into a Vec cannot fail.
    let _ = header.format(payload.len() as u64, &mut frame);
    frame.extend_from_slice(payload);
    Bytes::from(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_frames_have_the_short_and_the_16_bit_length() {
        assert_eq!(&text_frame(b"hi")[..], b"\x81\x02hi");
        let long = vec![b'x'; 300];
        let frame = text_frame(&long);
        assert_eq!(&frame[..4], &[0x81, 126, 1, 44]);
        assert_eq!(frame.len(), 304);
    }

    #[test]
    fn a_push_wakes_the_writer_and_drops_are_counted() {
        let dropped = Arc::new(AtomicU64::new(0));
        let mailbox = Mailbox::new(10, 10, dropped.clone());
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        struct Count(Arc<std::sync::atomic::AtomicUsize>);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        mailbox.register(&Waker::from(Arc::new(Count(woken.clone()))));
        let topic: Arc<str> = "t".into();
        mailbox.push_data(&topic, Bytes::from_static(b"0123456789"));
        assert_eq!(woken.load(Ordering::Relaxed), 1);
        mailbox.push_data(&topic, Bytes::from_static(b"0123456789"));
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        assert_eq!(mailbox.lock().data_bytes(), 10);
    }
}
