//! A bounded, ordered queue between two tasks that carries items in batches.
//!
//! At high event rates the fixed cost of a channel hand-over (a permit, a push, a wake-up) is
//! paid per batch instead of per item: the producer collects what one pass of its loop produced
//! and hands it over at once; the consumer takes items one by one (or many at a time) from the
//! batch it holds. Both clients use it for their event streams; it is public so that code that
//! forwards events between tasks can do the same.
//!
//! The bound counts batches, so the items waiting are at most `batches × the largest batch`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let (mut tx, mut rx) = engineio_client::queue::channel::<u32>(4);
//! tx.push(1);
//! tx.push(2);
//! assert!(tx.try_flush().unwrap()); // one hand-over for both
//! assert_eq!(rx.recv().await, Some(1));
//! assert_eq!(rx.try_recv(), Some(2));
//! drop(tx);
//! assert_eq!(rx.recv().await, None);
//! # });
//! ```

use std::task::{Context, Poll};

use tokio::sync::mpsc;

/// The consumer is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the receiving side of the queue is closed")]
pub struct Closed;

/// A queue that holds at most `batches` batches; see the [module docs](self).
pub fn channel<T>(batches: usize) -> (Producer<T>, Consumer<T>) {
    let (tx, rx) = mpsc::channel(batches.max(1));
    (
        Producer {
            tx,
            pending: Vec::new(),
        },
        Consumer {
            rx,
            batch: Vec::new().into_iter(),
        },
    )
}

/// The sending side: [`Producer::push`] items, then [`Producer::try_flush`] or
/// [`Producer::flush`] them over as one batch.
#[derive(Debug)]
pub struct Producer<T> {
    tx: mpsc::Sender<Vec<T>>,
    pending: Vec<T>,
}

impl<T> Producer<T> {
    /// Adds an item to the batch being collected (nothing is handed over yet).
    pub fn push(&mut self, item: T) {
        self.pending.push(item);
    }

    /// Whether items wait to be handed over.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Hands the collected items over as one batch if there is room now. `Ok(false)` when the
    /// queue is full (the items stay collected, in order).
    pub fn try_flush(&mut self) -> Result<bool, Closed> {
        if self.pending.is_empty() {
            return Ok(true);
        }
        match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send(std::mem::take(&mut self.pending));
                Ok(true)
            }
            Err(mpsc::error::TrySendError::Full(())) => Ok(false),
            Err(mpsc::error::TrySendError::Closed(())) => Err(Closed),
        }
    }

    /// Hands the collected items over, waiting for room. Cancel-safe: if the wait is
    /// abandoned, the items stay collected.
    pub async fn flush(&mut self) -> Result<(), Closed> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let permit = self.tx.reserve().await.map_err(|_| Closed)?;
        permit.send(std::mem::take(&mut self.pending));
        Ok(())
    }

    /// Pushes `item` and flushes (with whatever was collected before it).
    pub async fn send(&mut self, item: T) -> Result<(), Closed> {
        self.push(item);
        self.flush().await
    }

    /// Whether the consumer is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The receiving side, in order.
#[derive(Debug)]
pub struct Consumer<T> {
    rx: mpsc::Receiver<Vec<T>>,
    batch: std::vec::IntoIter<T>,
}

impl<T> Consumer<T> {
    /// The next item; `None` once the producer is gone and everything was taken.
    pub async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Waits for at least one item, then moves up to `limit` waiting items into `buffer`.
    /// Returns how many; 0 at the end.
    pub async fn recv_many(&mut self, buffer: &mut Vec<T>, limit: usize) -> usize {
        let limit = limit.max(1);
        if self.batch.len() == 0 {
            match self.rx.recv().await {
                Some(batch) => self.batch = batch.into_iter(),
                None => return 0,
            }
        }
        let before = buffer.len();
        buffer.extend(self.batch.by_ref().take(limit));
        buffer.len() - before
    }

    /// The next item if one is waiting now.
    pub fn try_recv(&mut self) -> Option<T> {
        loop {
            if let Some(item) = self.batch.next() {
                return Some(item);
            }
            self.batch = self.rx.try_recv().ok()?.into_iter();
        }
    }

    /// Polls for the next item (for `Stream` implementations).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        loop {
            if let Some(item) = self.batch.next() {
                return Poll::Ready(Some(item));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(batch)) => self.batch = batch.into_iter(),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn order_is_kept_across_batches_and_calls() {
        let (mut tx, mut rx) = channel::<u32>(2);
        for i in 0..5 {
            tx.push(i);
        }
        assert!(tx.try_flush().unwrap());
        tx.push(5);
        assert!(tx.try_flush().unwrap());
        // Full: two batches wait; the third stays collected.
        tx.push(6);
        assert!(!tx.try_flush().unwrap());
        assert!(tx.has_pending());
        let mut got = Vec::new();
        assert_eq!(rx.recv_many(&mut got, 3).await, 3);
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.try_recv(), Some(4));
        // The first batch is taken, so there is room again.
        tx.flush().await.unwrap();
        assert_eq!(rx.recv_many(&mut got, 10).await, 1);
        assert_eq!(rx.recv().await, Some(6));
        assert_eq!(got, vec![0, 1, 2, 5]);
        drop(tx);
        assert_eq!(rx.recv().await, None);
        assert_eq!(rx.recv_many(&mut got, 10).await, 0);
    }

    #[tokio::test]
    async fn a_gone_consumer_is_reported() {
        let (mut tx, rx) = channel::<u32>(1);
        drop(rx);
        tx.push(1);
        assert_eq!(tx.try_flush(), Err(Closed));
        assert_eq!(tx.send(2).await, Err(Closed));
        assert!(tx.is_closed());
    }
}
