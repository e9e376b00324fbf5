//! History sync: every shot the machine has, stored as its history copy, once.

use std::collections::BTreeSet;
use std::fmt;

use meticulous::api::{Api, ApiError, HistoryQuery};
use storage::{Applied, StorageError, Store, Upserted, Write};

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The machine's history could not be listed.
    #[error("listing the machine's history: {0}")]
    List(#[source] ApiError),
    /// A shot could not be fetched.
    #[error("fetching shot {id}: {source}")]
    Fetch {
        /// The shot's UUID.
        id: String,
        /// The machine's API's reason.
        source: ApiError,
    },
    /// The store failed.
    #[error("storing the history: {0}")]
    Storage(#[from] StorageError),
}

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Shots the machine lists.
    pub listed: usize,
    /// Shots fetched (those the store did not hold as history copies).
    pub fetched: usize,
    /// New shots.
    pub inserted: usize,
    /// Live copies replaced by the machine's.
    pub replaced: usize,
    /// Already stored.
    pub unchanged: usize,
    /// Listed but gone by the time they were fetched.
    pub missing: usize,
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on the machine, {} fetched: {} new, {} replacing live copies, {} unchanged, {} gone",
            self.listed, self.fetched, self.inserted, self.replaced, self.unchanged, self.missing
        )
    }
}

/// Lists the machine's whole history without samples, page by page (`end_date` paging, as the
/// API has no offset), then fetches each shot the store lacks and upserts it. `progress` gets
/// `(done, total)` as shots are fetched. Idempotent.
pub async fn sync(
    api: &Api,
    store: &Store,
    machine: &str,
    mut progress: impl FnMut(usize, usize),
) -> Result<SyncReport, SyncError> {
    const PAGE: usize = 100;
    let mut ids: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut end_date: Option<f64> = None;
    loop {
        let page = api
            .history(&HistoryQuery {
                max_results: Some(PAGE),
                dump_data: Some(false),
                end_date,
                ..HistoryQuery::default()
            })
            .await
            .map_err(SyncError::List)?;
        let count = page.history.len();
        let oldest = page
            .history
            .iter()
            .map(|e| e.time)
            .fold(f64::INFINITY, f64::min);
        let mut new = 0;
        for entry in page.history {
            if seen.insert(entry.id.clone()) {
                ids.push(entry.id);
                new += 1;
            }
        }
        if count < PAGE || new == 0 || !oldest.is_finite() {
            break;
        }
        // Shots at the same second as the oldest are listed again and deduplicated.
        end_date = Some(oldest);
    }
    let known = store.reader()?.history_ids(machine)?;
    let todo: Vec<&String> = ids.iter().filter(|id| !known.contains(*id)).collect();
    let mut report = SyncReport {
        listed: ids.len(),
        unchanged: ids.len() - todo.len(),
        ..SyncReport::default()
    };
    progress(0, todo.len());
    for (i, id) in todo.iter().enumerate() {
        match api.shot(id).await.map_err(|source| SyncError::Fetch {
            id: id.to_string(),
            source,
        })? {
            Some(entry) => {
                report.fetched += 1;
                let applied = store
                    .write(Write::UpsertHistory {
                        machine: machine.to_owned(),
                        entry: Box::new(entry),
                    })
                    .await?;
                match applied {
                    Applied::History(Upserted::Inserted) => report.inserted += 1,
                    Applied::History(Upserted::Replaced) => report.replaced += 1,
                    _ => report.unchanged += 1,
                }
            }
            None => report.missing += 1,
        }
        progress(i + 1, todo.len());
    }
    Ok(report)
}
