//! The per-connection outbound queue: two lanes. Control frames (`subscribed`, `unsubscribed`,
//! `error`, `gap`, pong, close) are never dropped and go first; the lane counts its bytes, and
//! the connection stops taking the client's requests while it holds [`Outbound::control_full`]
//! (a client that asks faster than it reads the answers fills its own socket, not the
//! gateway's memory). Data frames are bounded in bytes: past the bound the oldest are dropped,
//! and the connection is told how many with one `gap` frame per topic before the next data
//! frame. Pure: no IO, no clock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

/// Bytes the control lane holds before it is full, by default (64 KiB: hundreds of answers, or
/// one `subscribed` frame with a large snapshot).
pub const CONTROL_BYTES: usize = 64 * 1024;

/// The next frame to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A control frame (JSON text).
    Control(Bytes),
    /// A data frame (JSON text, shared by every subscriber).
    Data(Bytes),
}

impl Frame {
    /// The frame's payload.
    pub fn payload(&self) -> &Bytes {
        match self {
            Frame::Control(b) | Frame::Data(b) => b,
        }
    }

    /// The payload, owned.
    pub fn into_payload(self) -> Bytes {
        match self {
            Frame::Control(b) | Frame::Data(b) => b,
        }
    }
}

/// See the [module docs](self).
#[derive(Debug)]
pub struct Outbound {
    control: VecDeque<Bytes>,
    control_bytes: usize,
    max_control_bytes: usize,
    data: VecDeque<(Arc<str>, Bytes)>,
    data_bytes: usize,
    max_data_bytes: usize,
    /// Data dropped per topic and not yet reported.
    dropped: BTreeMap<Arc<str>, u64>,
    dropped_total: u64,
}

impl Outbound {
    /// A queue holding at most `max_data_bytes` of data frames (one frame is always kept, even
    /// a larger one), whose control lane is full from [`CONTROL_BYTES`] on.
    pub fn new(max_data_bytes: usize) -> Self {
        Self::with_control(max_data_bytes, CONTROL_BYTES)
    }

    /// A queue as [`Outbound::new`] makes it, whose control lane is full from
    /// `max_control_bytes` on.
    pub fn with_control(max_data_bytes: usize, max_control_bytes: usize) -> Self {
        Self {
            control: VecDeque::new(),
            control_bytes: 0,
            max_control_bytes,
            data: VecDeque::new(),
            data_bytes: 0,
            max_data_bytes,
            dropped: BTreeMap::new(),
            dropped_total: 0,
        }
    }

    /// Queues a control frame. Never dropped: the caller stops making more while
    /// [`Outbound::control_full`].
    pub fn push_control(&mut self, frame: Bytes) {
        self.control_bytes += frame.len();
        self.control.push_back(frame);
    }

    /// Whether the control lane holds its bound or more: take no request that would be answered
    /// on it until the client has read some.
    pub fn control_full(&self) -> bool {
        self.control_bytes >= self.max_control_bytes
    }

    /// Bytes of control frames waiting.
    pub fn control_bytes(&self) -> usize {
        self.control_bytes
    }

    /// Queues a data frame of `topic`; drops the oldest data frames while over the bound.
    pub fn push_data(&mut self, topic: &Arc<str>, frame: Bytes) {
        self.data_bytes += frame.len();
        self.data.push_back((topic.clone(), frame));
        while self.data_bytes > self.max_data_bytes && self.data.len() > 1 {
            if let Some((topic, old)) = self.data.pop_front() {
                self.data_bytes -= old.len();
                *self.dropped.entry(topic).or_default() += 1;
                self.dropped_total += 1;
            }
        }
    }

    /// Records `count` data frames of `topic` lost before they reached this queue (a lagging
    /// subscription), to be reported like the queue's own drops.
    pub fn note_dropped(&mut self, topic: &Arc<str>, count: u64) {
        if count > 0 {
            *self.dropped.entry(topic.clone()).or_default() += count;
            self.dropped_total += count;
        }
    }

    /// The next frame: control frames first, then one `gap` frame per topic that lost data
    /// (built by `gap`), then data frames in order.
    pub fn pop(&mut self, gap: impl Fn(&str, u64) -> Bytes) -> Option<Frame> {
        if let Some(frame) = self.control.pop_front() {
            self.control_bytes -= frame.len();
            return Some(Frame::Control(frame));
        }
        if let Some((topic, count)) = self.dropped.pop_first() {
            return Some(Frame::Control(gap(&topic, count)));
        }
        let (_, frame) = self.data.pop_front()?;
        self.data_bytes -= frame.len();
        Some(Frame::Data(frame))
    }

    /// Forgets `topic` (its subscription ended): its queued data frames and its unreported
    /// losses are dropped without a gap. Returns how many data frames were dropped.
    pub fn forget(&mut self, topic: &str) -> usize {
        let before = self.data.len();
        let mut freed = 0;
        self.data.retain(|(t, frame)| {
            let keep = &**t != topic;
            if !keep {
                freed += frame.len();
            }
            keep
        });
        self.data_bytes -= freed;
        if let Some(unreported) = self.dropped.remove(topic) {
            self.dropped_total -= unreported;
        }
        before - self.data.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.control.is_empty() && self.data.is_empty() && self.dropped.is_empty()
    }

    /// Bytes of data frames waiting.
    pub fn data_bytes(&self) -> usize {
        self.data_bytes
    }

    /// Data frames dropped since the queue was made.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gap(topic: &str, n: u64) -> Bytes {
        Bytes::from(format!("gap {topic} {n}"))
    }

    #[test]
    fn control_first_then_gaps_then_data() {
        let t: Arc<str> = "machine:a".into();
        let mut q = Outbound::new(10);
        q.push_data(&t, Bytes::from_static(b"d1-----"));
        q.push_data(&t, Bytes::from_static(b"d2-----"));
        q.push_control(Bytes::from_static(b"c1"));
        assert_eq!(q.pop(gap), Some(Frame::Control(Bytes::from_static(b"c1"))));
        assert_eq!(q.pop(gap), Some(Frame::Control(gap("machine:a", 1))));
        assert_eq!(
            q.pop(gap),
            Some(Frame::Data(Bytes::from_static(b"d2-----")))
        );
        assert_eq!(q.pop(gap), None);
        assert!(q.is_empty());
        assert_eq!(q.dropped_total(), 1);
    }

    #[test]
    fn the_control_lane_is_full_at_its_bound_and_empties_as_it_is_read() {
        let mut q = Outbound::with_control(10, 8);
        q.push_control(Bytes::from_static(b"1234"));
        assert!(!q.control_full());
        q.push_control(Bytes::from_static(b"5678"));
        assert!(q.control_full(), "8 of 8 bytes");
        assert_eq!(q.control_bytes(), 8);
        q.pop(gap);
        assert!(!q.control_full());
        q.push_control(Bytes::from_static(b"a larger frame is still taken"));
        assert_eq!(q.control_bytes(), 33);
        assert!(q.control_full());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Control,
        Data { topic: u8, len: usize },
        Lost { topic: u8, n: u64 },
        Forget { topic: u8 },
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => Just(Op::Control),
            6 => (0u8..3, 1usize..40).prop_map(|(topic, len)| Op::Data { topic, len }),
            1 => (0u8..3, 0u64..5).prop_map(|(topic, n)| Op::Lost { topic, n }),
            1 => (0u8..3).prop_map(|topic| Op::Forget { topic }),
            4 => Just(Op::Pop),
        ]
    }

    proptest! {
        /// Every control frame arrives, in order; the data bytes never exceed the bound (but for
        /// one frame); every data frame is delivered or counted in exactly one gap; delivered
        /// data keeps its order.
        #[test]
        fn nothing_is_lost_without_being_counted(ops in prop::collection::vec(op(), 0..200), max in 1usize..120) {
            let topics: Vec<Arc<str>> = ["a", "b", "c"].iter().map(|t| Arc::from(*t)).collect();
            let mut q = Outbound::new(max);
            let (mut controls, mut pushed) = (0u64, 0u64);
            let (mut got_controls, mut got_data, mut gaps) = (0u64, 0u64, 0u64);
            let mut last_data: Option<u64> = None;
            let mut run = |q: &mut Outbound, got_controls: &mut u64, got_data: &mut u64, gaps: &mut u64| -> Result<bool, TestCaseError> {
                match q.pop(|t, n| Bytes::from(format!("gap:{t}:{n}"))) {
                    Some(Frame::Control(b)) => {
                        let text = String::from_utf8(b.to_vec()).unwrap();
                        if let Some(rest) = text.strip_prefix("gap:") {
                            *gaps += rest.rsplit(':').next().unwrap().parse::<u64>().unwrap();
                        } else {
                            prop_assert_eq!(text, format!("control {}", *got_controls));
                            *got_controls += 1;
                        }
                        Ok(true)
                    }
                    Some(Frame::Data(b)) => {
                        let n: u64 = String::from_utf8(b.to_vec()).unwrap().split(' ').next().unwrap().parse().unwrap();
                        prop_assert!(last_data.is_none_or(|l| n > l), "data out of order");
                        last_data = Some(n);
                        *got_data += 1;
                        Ok(true)
                    }
                    None => Ok(false),
                }
            };
            let (mut lost, mut forgotten_all) = (0u64, 0u64);
            for op in ops {
                match op {
                    Op::Control => {
                        q.push_control(Bytes::from(format!("control {controls}")));
                        controls += 1;
                    }
                    Op::Data { topic, len } => {
                        let text = format!("{pushed} {}", "x".repeat(len));
                        q.push_data(&topics[usize::from(topic)], Bytes::from(text));
                        pushed += 1;
                        prop_assert!(q.data_bytes() <= max || q.data.len() == 1);
                    }
                    Op::Lost { topic, n } => {
                        q.note_dropped(&topics[usize::from(topic)], n);
                        lost += n;
                    }
                    Op::Forget { topic } => {
                        // What was forgotten is neither delivered nor reported.
                        let total = q.dropped_total();
                        let forgotten = q.forget(&topics[usize::from(topic)]) as u64;
                        forgotten_all += forgotten + (total - q.dropped_total());
                        prop_assert!(q.data.iter().all(|(t, _)| *t != topics[usize::from(topic)]));
                    }
                    Op::Pop => {
                        run(&mut q, &mut got_controls, &mut got_data, &mut gaps)?;
                    }
                }
                // The control lane's count is what it holds.
                prop_assert_eq!(q.control_bytes(), q.control.iter().map(Bytes::len).sum::<usize>());
            }
            while run(&mut q, &mut got_controls, &mut got_data, &mut gaps)? {}
            prop_assert_eq!(got_controls, controls);
            prop_assert_eq!(got_data + gaps + forgotten_all, pushed + lost);
            prop_assert_eq!(q.dropped_total(), gaps);
            prop_assert_eq!(q.control_bytes(), 0);
        }
    }
}
