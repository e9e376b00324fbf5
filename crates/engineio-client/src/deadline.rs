//! One timer for a sans-IO state machine's `poll_timeout`, as its tokio driver needs it: re-armed
//! only when the deadline moves (not on every pass of the loop), and never firing twice for the
//! same deadline. The Engine.IO driver, the socket.io driver and crema's recording loop each
//! keep one.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A timer far enough away to mean "no deadline".
const FAR: Duration = Duration::from_secs(86_400 * 365);

/// The timer of a state machine's next deadline. See the [module docs](self).
///
/// ```
/// # async fn demo() {
/// use engineio_client::deadline::Deadline;
/// let mut deadline = Deadline::new();
/// deadline.set(Some(std::time::Instant::now() + std::time::Duration::from_millis(1)));
/// tokio::select! {
///     () = deadline.expired() => { /* state_machine.handle_timeout(now) */ }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Deadline {
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Default for Deadline {
    fn default() -> Self {
        Self::new()
    }
}

impl Deadline {
    /// A timer with no deadline.
    pub fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(Instant::now() + FAR)),
            armed: None,
        }
    }

    /// Arms the timer for `deadline` (what `poll_timeout` answered; `None`: no deadline). The
    /// timer is reset only when the deadline changed.
    pub fn set(&mut self, deadline: Option<std::time::Instant>) {
        let deadline = deadline.map(Instant::from_std);
        if deadline != self.armed {
            self.armed = deadline;
            self.sleep
                .as_mut()
                .reset(deadline.unwrap_or_else(|| Instant::now() + FAR));
        }
    }

    /// The deadline armed, if any.
    pub fn armed(&self) -> Option<std::time::Instant> {
        self.armed.map(Instant::into_std)
    }

    /// Resolves when the armed deadline passes, then disarms; pending while none is armed.
    /// Cancel-safe: use it in `tokio::select!`.
    pub async fn expired(&mut self) {
        if self.armed.is_none() {
            return std::future::pending().await;
        }
        self.sleep.as_mut().await;
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_once_per_deadline_and_only_when_armed() {
        let mut deadline = Deadline::new();
        let idle = tokio::time::timeout(Duration::from_secs(3600), deadline.expired()).await;
        assert!(idle.is_err(), "no deadline: never fires");
        let at = std::time::Instant::now() + Duration::from_millis(50);
        deadline.set(Some(at));
        deadline.set(Some(at));
        deadline.expired().await;
        assert_eq!(deadline.armed(), None);
        let again = tokio::time::timeout(Duration::from_secs(3600), deadline.expired()).await;
        assert!(again.is_err(), "the same deadline does not fire twice");
        // Moved earlier: the new deadline counts.
        deadline.set(Some(std::time::Instant::now() + Duration::from_secs(60)));
        deadline.set(Some(std::time::Instant::now() + Duration::from_millis(5)));
        let fired = tokio::time::timeout(Duration::from_millis(100), deadline.expired()).await;
        assert!(fired.is_ok());
    }
}
