//! Receive coalescing: fewer, fuller reads from a socket that a server writes one small frame at
//! a time.
//!
//! A reader that drains each frame the moment it lands pays a wake-up, a read and a wait per
//! frame; the server, which finds its peer asleep at each write, pays a wake-up per write too,
//! and slows down. [`Coalesce`] wraps the TCP stream under the WebSocket. Once reads keep
//! coming back thin (four, each less than a quarter of what it asked for, with no pause of
//! twice the bound between them), data that arrives within the bound of the last one stays in the kernel's
//! buffer until the bound has passed since that read; then it is read at once, with whatever
//! joined it. A reader that is behind (its reads fill the buffer) reads on without a pause.
//!
//! What it never does: delay data by more than the bound, or delay anything on a quiet socket.
//! An event that arrives after a pause longer than the bound (a lone event, such as each of a
//! machine's 10 Hz samples, or its status and sensors written a moment apart) is read the
//! moment it lands; one that lands in a trickle waits at most the bound. A socket with nothing to read costs no timer: the timer is armed only when
//! data arrives inside the window.
//!
//! The timer is a `timerfd` on Linux, so that sub-millisecond bounds hold to the microsecond
//! (tokio's timer ticks in milliseconds). Elsewhere, and in this crate's own tests (which run on
//! tokio's paused clock), it is tokio's timer, and a bound is rounded up to the next tick.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Thin reads, with no pause between them, that make a trickle.
const TRICKLE: u32 = 4;

/// When the next read may happen: the rule alone, time passed in.
#[derive(Debug, Clone, Copy)]
struct Window {
    bound: Duration,
    /// The end of the window the last reads opened.
    until: Option<Instant>,
    /// When the last read returned data.
    last_read: Option<Instant>,
    /// Thin reads since the last pause.
    streak: u32,
}

impl Window {
    fn new(bound: Duration) -> Self {
        Self {
            bound,
            until: None,
            last_read: None,
            streak: 0,
        }
    }

    /// A read of up to `asked` bytes returned `n` at `now`; `held` when a hold came before it.
    ///
    /// A thin read (less than a quarter of what it asked for) drained the socket. [`TRICKLE`]
    /// of them with no pause between them (a pause: twice the bound without data) mean the
    /// reader keeps draining a trickle: from then on, until the next pause, every read that
    /// drained the socket opens the window. Fewer do not: a machine's status and sensors, written
    /// a moment apart each tick (a frame may come in two pieces), are read the moment they land.
    /// A read that fills the buffer opens no window, and unless a hold gathered what it read
    /// (then the trickle goes on), it ends the trickle: the reader is behind.
    fn read(&mut self, now: Instant, n: usize, asked: usize, held: bool) {
        let paused = self
            .last_read
            .is_none_or(|last| now.saturating_duration_since(last) > self.bound * 2);
        // A full read that no hold gathered: the reader is behind the writer, not a trickle.
        let behind = n >= asked && !held;
        if paused || behind {
            self.streak = 0;
        }
        if n > 0 && n.saturating_mul(4) < asked {
            self.streak = self.streak.saturating_add(1);
        }
        if n > 0 {
            self.last_read = Some(now);
        }
        let drained = n > 0 && n < asked;
        self.until =
            (self.streak >= TRICKLE && drained && !self.bound.is_zero()).then(|| now + self.bound);
    }

    /// Data is waiting at `now`: until when it stays there (`None`: read it now).
    fn hold(&mut self, now: Instant) -> Option<Instant> {
        match self.until.take() {
            Some(until) if now < until => Some(until),
            _ => None,
        }
    }
}

/// A TCP stream whose reads are coalesced within a bound; see the [module docs](self). Writes
/// pass straight through.
#[derive(Debug)]
pub(crate) struct Coalesce {
    tcp: TcpStream,
    window: Window,
    timer: Timer,
    /// Data waits for the timer.
    holding: bool,
    /// A hold ended and its read has not happened yet.
    held: bool,
}

impl Coalesce {
    /// `bound` zero: every read at once.
    pub(crate) fn new(tcp: TcpStream, bound: Duration) -> Self {
        Self {
            tcp,
            window: Window::new(bound),
            timer: Timer::None,
            holding: false,
            held: false,
        }
    }
}

/// Linux's precise timer, outside this crate's tests.
macro_rules! precise {
    ($($item:item)*) => { $(#[cfg(all(target_os = "linux", not(test)))] $item)* };
}
/// tokio's timer, everywhere else.
macro_rules! runtime {
    ($($item:item)*) => { $(#[cfg(not(all(target_os = "linux", not(test))))] $item)* };
}

/// The hold's timer, made on first use: a client that never holds has none.
#[derive(Debug)]
enum Timer {
    None,
    #[cfg(all(target_os = "linux", not(test)))]
    Fd(tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>),
    #[cfg(not(all(target_os = "linux", not(test))))]
    Sleep(Pin<Box<tokio::time::Sleep>>),
}

impl Timer {
    precise! {
        /// Arms the timer for `until`.
        fn arm(&mut self, until: Instant) -> io::Result<()> {
            use rustix::time::{Itimerspec, Timespec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags};
            if matches!(self, Timer::None) {
                let fd = rustix::time::timerfd_create(
                    TimerfdClockId::Monotonic,
                    TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
                )?;
                // The constructor is deprecated for inner types whose descriptor may change
                // while registered; an `OwnedFd`'s never does.
                #[allow(deprecated)]
                let fd = tokio::io::unix::AsyncFd::with_interest(fd, tokio::io::Interest::READABLE)?;
                *self = Timer::Fd(fd);
            }
            let Timer::Fd(fd) = self else { return Ok(()) };
            // A zero value would disarm the timer: at least a nanosecond.
            let left = until
                .saturating_duration_since(Instant::now())
                .max(Duration::from_nanos(1));
            let value = Itimerspec {
                it_interval: Timespec { tv_sec: 0, tv_nsec: 0 },
                it_value: Timespec {
                    tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                    tv_nsec: i64::from(left.subsec_nanos()),
                },
            };
            rustix::time::timerfd_settime(fd.get_ref(), TimerfdTimerFlags::empty(), &value)?;
            Ok(())
        }

        /// Ready once the armed time has come.
        fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let Timer::Fd(fd) = self else { return Poll::Ready(Ok(())) };
            loop {
                let mut guard = ready!(fd.poll_read_ready(cx))?;
                let mut expirations = [0u8; 8];
                match rustix::io::read(fd.get_ref(), &mut expirations) {
                    Ok(_) => return Poll::Ready(Ok(())),
                    Err(rustix::io::Errno::AGAIN) => guard.clear_ready(),
                    Err(e) => return Poll::Ready(Err(e.into())),
                }
            }
        }
    }

    runtime! {
        /// Arms the timer for `until`.
        fn arm(&mut self, until: Instant) -> io::Result<()> {
            match self {
                Timer::Sleep(sleep) => sleep.as_mut().reset(until),
                Timer::None => *self = Timer::Sleep(Box::pin(tokio::time::sleep_until(until))),
            }
            Ok(())
        }

        /// Ready once the armed time has come.
        fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            match self {
                Timer::Sleep(sleep) => sleep.as_mut().poll(cx).map(Ok),
                Timer::None => Poll::Ready(Ok(())),
            }
        }
    }
}

impl AsyncRead for Coalesce {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.holding && this.window.until.is_some() {
            // Wait for data first, so that a quiet socket costs no timer.
            ready!(this.tcp.poll_read_ready(cx))?;
            if let Some(until) = this.window.hold(Instant::now()) {
                this.timer.arm(until)?;
                this.holding = true;
            }
        }
        if this.holding {
            ready!(this.timer.poll(cx))?;
            this.holding = false;
            this.held = true;
        }
        let asked = buf.remaining();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.tcp).poll_read(cx, buf))?;
        let n = buf.filled().len() - before;
        let held = std::mem::take(&mut this.held);
        this.window.read(Instant::now(), n, asked, held);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Coalesce {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[test]
    fn the_window_opens_on_a_trickle_of_thin_reads() {
        let bound = Duration::from_micros(500);
        let step = Duration::from_micros(100);
        let t0 = Instant::now();
        let at = |i: u32| t0 + step * i;
        let mut w = Window::new(bound);
        assert_eq!(w.hold(t0), None, "no read yet: nothing is held");
        for i in 0..TRICKLE - 1 {
            w.read(at(i), 100, 4096, false);
            assert_eq!(
                w.hold(at(i) + step),
                None,
                "{} thin reads: no trickle yet",
                i + 1
            );
        }
        let last = at(TRICKLE - 1);
        w.read(last, 100, 4096, false);
        assert_eq!(
            w.hold(last + step),
            Some(last + bound),
            "a trickle: held until the bound"
        );
        assert_eq!(w.hold(last + step), None, "one hold per window");
        // A fat read at the end of the hold (a little late) keeps the trickle going.
        let after = last + bound + step / 10;
        w.read(after, 3000, 4096, true);
        assert_eq!(w.hold(after + step), Some(after + bound));
        // A full read after a hold opens no window (more waits), and the trickle goes on.
        w.read(after + step, 4096, 4096, true);
        assert_eq!(
            w.hold(after + step * 2),
            None,
            "a full read opens no window"
        );
        w.read(after + step * 2, 100, 4096, false);
        assert_eq!(w.hold(after + step * 3), Some(after + step * 2 + bound));
        // A full read that no hold gathered: the reader is behind, the trickle is over.
        let mut behind = w;
        behind.read(after + step * 3, 4096, 4096, false);
        behind.read(after + step * 4, 100, 4096, false);
        assert_eq!(behind.hold(after + step * 5), None, "behind: no trickle");
        // A pause ends the trickle.
        let later = after + bound * 10;
        w.read(later, 100, 4096, false);
        assert_eq!(
            w.hold(later + step),
            None,
            "after a pause, the next thin read is lone"
        );

        let mut w = Window::new(bound);
        for i in 0..TRICKLE * 2 {
            // Thin reads farther apart than twice the bound: lone events.
            let t = t0 + bound * 3 * i;
            w.read(t, 100, 4096, false);
            assert_eq!(w.hold(t + step), None, "lone events are never held");
        }
        w.read(t0 + bound * 30, 0, 4096, false);
        assert_eq!(
            w.hold(t0 + bound * 30),
            None,
            "the end of the stream is not held"
        );

        let mut off = Window::new(Duration::ZERO);
        for _ in 0..TRICKLE * 2 {
            off.read(t0, 100, 4096, false);
        }
        assert_eq!(off.hold(t0), None, "a zero bound turns coalescing off");
    }

    async fn pair(bound: Duration) -> (Coalesce, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (Coalesce::new(client.unwrap(), bound), server.unwrap().0)
    }

    /// On the paused clock: data that follows a read within the bound waits, never longer than
    /// the bound; a lone chunk after a pause is read the moment it lands.
    #[tokio::test(start_paused = true)]
    async fn a_read_waits_at_most_the_bound_and_a_lone_one_not_at_all() {
        let bound = Duration::from_millis(5);
        let (mut reader, mut writer) = pair(bound).await;
        let mut buf = [0u8; 1024];
        let start = Instant::now();
        for _ in 0..TRICKLE {
            writer.write_all(b"first").await.unwrap();
            assert_eq!(reader.read(&mut buf).await.unwrap(), 5);
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "a short burst is read at once"
        );
        // A trickle of thin reads. What comes next waits, at most the bound.
        let read_at = Instant::now();
        writer.write_all(b"third").await.unwrap();
        assert_eq!(reader.read(&mut buf).await.unwrap(), 5);
        let waited = read_at.elapsed();
        assert!(waited <= bound, "held {waited:?}, more than the bound");
        assert!(waited >= bound / 2, "held {waited:?}: not coalesced");

        tokio::time::sleep(bound * 10).await;
        writer.write_all(b"lone").await.unwrap();
        let sent_at = Instant::now();
        assert_eq!(reader.read(&mut buf).await.unwrap(), 4);
        assert_eq!(
            sent_at.elapsed(),
            Duration::ZERO,
            "a lone chunk is not held"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_bound_never_holds() {
        let (mut reader, mut writer) = pair(Duration::ZERO).await;
        let mut buf = [0u8; 1024];
        let start = Instant::now();
        for _ in 0..TRICKLE * 2 {
            writer.write_all(b"chunk").await.unwrap();
            assert_eq!(reader.read(&mut buf).await.unwrap(), 5);
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    /// The whole client on the paused clock, against a server that writes one frame per write:
    /// the event that follows another within the bound is delivered within the bound, and a
    /// lone event after a pause at once.
    #[tokio::test(start_paused = true)]
    async fn a_lone_event_is_delivered_within_the_bound() {
        use futures_util::{SinkExt as _, StreamExt as _};
        use tokio_tungstenite::tungstenite::Message;

        let bound = Duration::from_millis(2);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (send, mut to_send) = tokio::sync::mpsc::channel::<&'static str>(4);
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let open = r#"0{"sid":"s","upgrades":[],"pingInterval":60000,"pingTimeout":60000,"maxPayload":1000000}"#;
            ws.send(Message::text(open)).await.unwrap();
            while let Some(text) = to_send.recv().await {
                ws.send(Message::text(text)).await.unwrap();
            }
            // Keep the connection until the client goes.
            while ws.next().await.is_some() {}
        });
        let config = crate::Config::new(&url)
            .unwrap()
            .transport(crate::TransportMode::WebSocket)
            .receive_coalescing(bound);
        let (client, mut events) = crate::Client::connect(config);
        let mut next_message = async || loop {
            match events.recv().await.expect("the client runs") {
                crate::Event::Message(crate::Payload::Text(text)) => return text.to_string(),
                _ => continue,
            }
        };
        // A trickle: each event follows the last within the bound; none waits longer than it.
        let mut last = Instant::now();
        for text in ["4one", "4two", "4three", "4four", "4five", "4six", "4seven"] {
            send.send(text).await.unwrap();
            assert_eq!(next_message().await, &text[1..]);
            let waited = last.elapsed();
            assert!(
                waited <= bound,
                "{text} waited {waited:?}, more than the bound"
            );
            last = Instant::now();
        }

        tokio::time::sleep(Duration::from_secs(1)).await;
        send.send("4lone").await.unwrap();
        let sent_at = Instant::now();
        assert_eq!(next_message().await, "lone");
        assert_eq!(
            sent_at.elapsed(),
            Duration::ZERO,
            "a lone event waits for nothing"
        );
        client.close();
    }
}
