//! Holding a lease of the store ([`storage::lease`]) while this process owns something: a
//! machine it records, the run it executes. The holder renews it every third of its life in
//! the background; when a renewal finds another holder, [`Held::lost`] fires and the owner
//! stops (its fenced writes would be refused anyway).

use std::sync::Arc;

use storage::{Applied, Holder, Recovered, StorageError, Store, Write, lease::TTL};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Why a lease could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// Another live process holds it.
    #[error("{0}")]
    Held(Holder),
    /// The store failed.
    #[error("taking the lease: {0}")]
    Storage(#[from] StorageError),
}

/// A lease this process holds, renewed until dropped (then given up).
#[derive(Debug)]
pub struct Held {
    name: String,
    /// The fencing token, as of taking: fenced writes carry it.
    token: u64,
    recovered: Vec<Recovered>,
    first_key: Option<u64>,
    lost: CancellationToken,
    _renewing: DropGuard,
}

impl Held {
    /// Takes lease `name` and keeps renewing it (every [`TTL`] / 3) until dropped; on drop it
    /// is given up.
    pub async fn take(store: Arc<Store>, name: &str) -> Result<Held, LeaseError> {
        let take = Write::Lease {
            name: name.to_owned(),
            ttl: TTL,
        };
        let (token, recovered, first_key) = match store.write(take).await? {
            Applied::Leased {
                token,
                recovered,
                first_key,
            } => (token, recovered, first_key),
            Applied::LeaseHeld(holder) => return Err(LeaseError::Held(holder)),
            other => unreachable!("taking a lease answered {other:?}"),
        };
        Ok(Held::keep(store, name, token, recovered, first_key, true))
    }

    /// Keeps renewing lease `name`, which a write of this process already took with `token`,
    /// until dropped, and leaves giving it up to a write of the owner's: the runs lease, which
    /// `Write::CreateRun` takes and the run's last progress write gives up, each in the same
    /// transaction as the run's start and end. (Given up again here, late, it could give up the
    /// lease of the next run this process started meanwhile.)
    pub fn renew(store: Arc<Store>, name: &str, token: u64) -> Held {
        Held::keep(store, name, token, Vec::new(), None, false)
    }

    fn keep(
        store: Arc<Store>,
        name: &str,
        token: u64,
        recovered: Vec<Recovered>,
        first_key: Option<u64>,
        release: bool,
    ) -> Held {
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        tokio::spawn(keep_renewing(
            store,
            name.to_owned(),
            token,
            lost.clone(),
            stop.clone(),
            release,
        ));
        Held {
            name: name.to_owned(),
            token,
            recovered,
            first_key,
            lost,
            _renewing: stop.drop_guard(),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the previous holder of a `machine:` lease left recording, finished as partial as
    /// the lease changed hands.
    pub fn recovered(&self) -> &[Recovered] {
        &self.recovered
    }

    /// For a `machine:` lease: the first recording key free for the machine's next shot, in
    /// the machine's own slot of keys.
    pub fn first_key(&self) -> Option<u64> {
        self.first_key
    }

    /// Gives the lease up now (a clean stop), rather than when the renewer notices the drop.
    pub async fn release(self, store: &Store) {
        if let Err(e) = store
            .write(Write::Release {
                name: self.name.clone(),
            })
            .await
            && !matches!(e, StorageError::Closed)
        {
            tracing::warn!(
                "cannot give up the lease {}: {e}; it expires within {TTL:?}",
                self.name
            );
        }
    }

    /// Fires when another process has taken the lease (this one stalled past its life).
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// The fencing token: larger with every new holder (what a broker checks too).
    pub fn token(&self) -> u64 {
        self.token
    }

    /// `write`, applied only while this process holds the lease.
    pub fn fence(&self, write: Write) -> Write {
        Write::Fenced {
            lease: self.name.clone(),
            token: self.token,
            write: Box::new(write),
        }
    }
}

/// Renews the lease until `stop`; fires `lost` if another process holds it; gives it up at
/// the end if `release`.
async fn keep_renewing(
    store: Arc<Store>,
    name: String,
    token: u64,
    lost: CancellationToken,
    stop: CancellationToken,
    release: bool,
) {
    let renewal = Write::Renew {
        name: name.clone(),
        token,
        ttl: TTL,
    };
    let every = TTL / 3;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
        match store.write(renewal.clone()).await {
            Ok(_) => {}
            // Another process took it (this one stalled past its life, on another host's
            // clock): what it covered is that process's now.
            Err(e @ StorageError::LeaseLost { .. }) => {
                tracing::error!("{e}; stopping what it covered");
                lost.cancel();
                return;
            }
            Err(StorageError::Closed) => return,
            // A full disk, say: the next renewal may go through; if none does before the lease
            // expires, another process may take it and the fenced writes say so.
            Err(e) => tracing::warn!("cannot renew the lease {name} (retrying in {every:?}): {e}"),
        }
    }
    if !release {
        return;
    }
    if let Err(e) = store.write(Write::Release { name: name.clone() }).await
        && !matches!(e, StorageError::Closed)
    {
        tracing::warn!("cannot give up the lease {name}: {e}; it expires within {TTL:?}");
    }
}
