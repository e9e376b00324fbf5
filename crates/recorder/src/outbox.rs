//! The work after every finished live shot, durably and once: its `shot-facts/1`, and its
//! webhook deliveries, analyzer requests ([`crate::hooks`]) and Visualizer upload
//! ([`crate::visualizer`]) through the store's outbox ([`storage::outbox`]).
//!
//! The recording loop never waits for any of it: it only offers a notice on a channel
//! ([`crate::record::Stored`]), and [`FinishedShots::follow`] only spawns the facts and wakes
//! the deliverer. One process of those sharing a store delivers, the one that holds the
//! `outbox` lease (the others wait for it, as standbys, and take over when it stops). It plans
//! each finished shot's deliveries, one per configured webhook and analyzer, each under a stable
//! `Idempotency-Key`, and runs one worker per target, so a slow analyzer delays no webhook:
//! each tries its due deliveries in order, records the outcome (an analyzer's answer with it),
//! and schedules the next try with the target's back-off, which therefore holds across
//! restarts. Every write is fenced with the lease: a deliverer that lost it records nothing
//! more.
//!
//! A delivery whose answer was accepted but not yet recorded when the process died is made
//! again after the restart, under the same `Idempotency-Key`: receivers deduplicate on it.

use std::sync::Arc;
use std::time::Duration;

use meticulous::analysis;
use storage::{Analysis, Delivery, NewDelivery, Store, Write};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::document;
use crate::hooks::{
    AnalyzeError, Analyzer, FinishedShot, Hooks, Retry, Tried, Webhook, delivery_id,
};
use crate::lease::{Held, LeaseError};
use crate::unix_now;
use crate::visualizer::{self, Uploaded, Visualizer};

/// How often a standby asks for the outbox again, and how often the deliverer looks for shots
/// that other processes (recording other machines into the store) finished.
const POLL: Duration = Duration::from_secs(2);

/// A finished shot older than this when its deliveries are planned is not announced, seconds.
const STALE_S: f64 = 24.0 * 3600.0;

/// How an analyzer's request is retried: three tries, 2 s then 4 s apart.
const ANALYZER_RETRY: Retry = Retry {
    attempts: 3,
    first: Duration::from_secs(2),
    max: Duration::from_secs(60),
};

/// One target of deliveries.
#[derive(Debug, Clone)]
enum Target {
    Webhook(Arc<Webhook>),
    Analyzer(Arc<Analyzer>),
    Visualizer(Arc<Visualizer>),
}

impl Target {
    /// Its name in the outbox: `webhook:<name>`, `analyzer:<name>`, `visualizer`.
    fn key(&self) -> String {
        match self {
            Target::Webhook(w) => format!("webhook:{}", w.name()),
            Target::Analyzer(a) => format!("analyzer:{}", a.name()),
            Target::Visualizer(_) => "visualizer".to_owned(),
        }
    }

    /// The delivery of a finished shot to this target. Webhooks and analyzers hear of a shot
    /// cut by a disconnect twice (when it is cut, and when its resumed recording ends: the
    /// sample count tells them apart); Visualizer gets each shot once, as it is when its
    /// upload is made.
    fn delivery(&self, shot_key: i64, samples: i64) -> String {
        match self {
            Target::Visualizer(_) => format!("shot-{shot_key}"),
            _ => delivery_id(shot_key, samples),
        }
    }
}

/// The work after every stored live shot, shared by the recording loops of one process. See
/// the [module docs](self).
#[derive(Debug)]
pub struct FinishedShots {
    store: Arc<Store>,
    analyzers: Vec<Arc<Analyzer>>,
    webhooks: Vec<Arc<Webhook>>,
    visualizer: Option<Arc<Visualizer>>,
    /// Wakes the outbox's deliverer when a shot ended here.
    wake: Arc<Notify>,
    /// Shots being read and reduced to their facts at once.
    slots: Semaphore,
}

impl FinishedShots {
    /// Starts the outbox's deliverer when any webhook or analyzer is configured (on the
    /// current runtime).
    pub fn start(store: Arc<Store>, hooks: Hooks) -> Arc<Self> {
        let Hooks {
            webhooks,
            analyzers,
            visualizer,
        } = hooks;
        let wake = Arc::new(Notify::new());
        let targets: Vec<Target> = webhooks
            .iter()
            .cloned()
            .map(Target::Webhook)
            .chain(analyzers.iter().cloned().map(Target::Analyzer))
            .chain(visualizer.iter().cloned().map(Target::Visualizer))
            .collect();
        if !targets.is_empty() {
            start(store.clone(), targets, wake.clone());
        }
        Arc::new(Self {
            store,
            analyzers,
            webhooks,
            visualizer,
            wake,
            slots: Semaphore::new(2),
        })
    }

    /// The external analyzers.
    pub fn analyzers(&self) -> &[Arc<Analyzer>] {
        &self.analyzers
    }

    /// The webhooks.
    pub fn hooks(&self) -> impl Iterator<Item = &Arc<Webhook>> {
        self.webhooks.iter()
    }

    /// Where finished shots are uploaded, if anywhere.
    pub fn visualizer(&self) -> Option<&Arc<Visualizer>> {
        self.visualizer.as_ref()
    }

    /// The store the deliveries are kept in.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Follows one recording loop's notices until the loop stops: for every finished shot,
    /// its facts, and the deliverer woken. The loop here only spawns that work, so it keeps
    /// up with the notices however slow a webhook or an analyzer is.
    pub async fn follow(self: Arc<Self>, mut stored: mpsc::Receiver<crate::record::Stored>) {
        while let Some(notice) = stored.recv().await {
            let recorder_core::Output::Finish(shot) = notice.output else {
                continue;
            };
            self.wake.notify_one();
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.facts(shot.key).await {
                    tracing::warn!(shot = shot.key, "after a recorded shot: {e}");
                }
            });
        }
    }

    /// The live shot the recorder numbered `recording_key` ended and is stored: its
    /// `shot-facts/1`. The error is the log line's text.
    async fn facts(&self, recording_key: u64) -> Result<(), String> {
        let Ok(_reading) = self.slots.acquire().await else {
            return Ok(()); // closed: the process is stopping
        };
        let store = self.store.clone();
        let loaded = tokio::task::spawn_blocking(move || -> Result<_, document::ReadError> {
            let reader = store.reader()?;
            let Some(key) = reader.key_of_recording(recording_key)? else {
                return Ok(None);
            };
            Ok(document::load(&*reader, key)?
                .map(|(summary, samples)| (summary.key, analysis::shot_facts(&samples))))
        })
        .await
        .map_err(|e| format!("reading the shot panicked: {e}"))?
        .map_err(|e| format!("reading the shot: {}", crate::error_chain(&e)))?;
        let Some((key, facts)) = loaded else {
            return Ok(());
        };
        self.store
            .write(Write::Analyses(vec![Analysis {
                shot: key,
                analyzer: analysis::SHOT_FACTS.to_owned(),
                result: serde_json::to_string(&facts).unwrap_or_else(|_| "null".into()),
            }]))
            .await
            .map_err(|e| format!("storing the shot's facts: {e}"))?;
        Ok(())
    }
}

/// Starts delivering (on the current runtime) for as long as the process runs.
fn start(store: Arc<Store>, targets: Vec<Target>, wake: Arc<Notify>) {
    tokio::spawn(async move {
        let mut told = false;
        loop {
            match Held::take(store.clone(), storage::lease::OUTBOX).await {
                Ok(held) => {
                    told = false;
                    deliver(&store, Arc::new(held), &targets, &wake).await;
                }
                Err(LeaseError::Held(holder)) => {
                    if !std::mem::replace(&mut told, true) {
                        tracing::info!(
                            "webhooks, analyzers and uploads of this store are delivered by {holder}; taking over when it stops"
                        );
                    }
                }
                Err(LeaseError::Storage(e)) => {
                    tracing::warn!("cannot take the outbox lease (retrying): {e}");
                }
            }
            tokio::time::sleep(POLL).await;
        }
    });
}

/// Delivers while `held` lasts.
async fn deliver(store: &Arc<Store>, held: Arc<Held>, targets: &[Target], wake: &Notify) {
    let lost = held.lost().clone();
    let stop = lost.child_token();
    let (planned, planned_rx) = watch::channel(0u64);
    for target in targets {
        tokio::spawn(worker(
            store.clone(),
            held.clone(),
            target.clone(),
            planned_rx.clone(),
            stop.clone(),
        ));
    }
    let _stop_workers = stop.clone().drop_guard();
    loop {
        match plan(store, &held, targets).await {
            Ok(0) => {}
            Ok(_) => planned.send_modify(|n| *n += 1),
            Err(e) => tracing::warn!("cannot plan the deliveries of finished shots: {e}"),
        }
        tokio::select! {
            () = lost.cancelled() => {
                tracing::warn!("another process took the outbox over; this one stops delivering");
                return;
            }
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Plans the deliveries of every finished shot not planned yet; how many shots it planned.
async fn plan(store: &Arc<Store>, held: &Held, targets: &[Target]) -> Result<usize, String> {
    let mut planned = 0;
    loop {
        let reader_store = store.clone();
        let events = tokio::task::spawn_blocking(move || {
            reader_store
                .reader()
                .and_then(|r| r.unexpanded(Some(unix_now()), 64))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        if events.is_empty() {
            return Ok(planned);
        }
        let mut stale = 0;
        for event in events {
            // A shot that ended long ago, while no process delivered (none had a webhook or an
            // analyzer configured), is not announced now: a webhook added today does not get
            // the whole history. Planned with no deliveries.
            let deliveries = if unix_now() - event.at > STALE_S {
                stale += 1;
                Vec::new()
            } else {
                targets
                    .iter()
                    .map(|t| NewDelivery {
                        target: t.key(),
                        delivery: t.delivery(event.shot_key, event.samples),
                    })
                    .collect()
            };
            let expand = Write::Expand {
                finished: event.id,
                deliveries,
            };
            store
                .write(held.fence(expand))
                .await
                .map_err(|e| e.to_string())?;
            planned += 1;
        }
        if stale > 0 {
            tracing::info!(
                "{stale} shot(s) ended over a day ago, while nothing delivered this store's webhooks and analyzers: not sending them now"
            );
        }
    }
}

/// Makes `target`'s due deliveries, oldest first, until `stop`.
async fn worker(
    store: Arc<Store>,
    held: Arc<Held>,
    target: Target,
    mut planned: watch::Receiver<u64>,
    stop: CancellationToken,
) {
    let key = target.key();
    while !stop.is_cancelled() {
        let (reader_store, k) = (store.clone(), key.clone());
        let read = tokio::task::spawn_blocking(move || {
            let reader = reader_store.reader()?;
            let due = reader.pending_deliveries(Some(&k), Some(unix_now()), 16)?;
            let next = match due.is_empty() {
                true => reader
                    .pending_deliveries(Some(&k), None, 1)?
                    .first()
                    .map(|d| d.next_at),
                false => None,
            };
            Ok::<_, storage::StorageError>((due, next))
        })
        .await;
        let (due, next) = match read {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::warn!("{key}: cannot read its deliveries (retrying): {e}");
                (Vec::new(), None)
            }
            Err(e) => {
                tracing::error!("{key}: reading its deliveries panicked: {e}");
                (Vec::new(), None)
            }
        };
        if due.is_empty() {
            let wait = next.map_or(POLL, |at| {
                Duration::from_secs_f64((at - unix_now()).clamp(0.0, POLL.as_secs_f64()))
            });
            tokio::select! {
                () = stop.cancelled() => return,
                _ = planned.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        for delivery in due {
            if stop.is_cancelled() {
                return;
            }
            let outcome = attempt(&store, &target, &delivery).await;
            // The outcome is kept until it is stored: while the database refuses writes (a full
            // disk), the request is not made again, only its record is retried.
            let mut told = false;
            loop {
                match store.write(held.fence(outcome.clone())).await {
                    Ok(_) => break,
                    Err(
                        storage::StorageError::LeaseLost { .. } | storage::StorageError::Closed,
                    ) => {
                        return;
                    }
                    Err(e) => {
                        if !std::mem::replace(&mut told, true) {
                            tracing::warn!(
                                "{key}: cannot record delivery {} (retrying the record, not the request): {e}",
                                delivery.delivery
                            );
                        }
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(POLL) => {}
                        }
                    }
                }
            }
        }
    }
}

/// One try of `delivery`: the write that records its outcome.
async fn attempt(store: &Arc<Store>, target: &Target, delivery: &Delivery) -> Write {
    let (id, attempt) = (delivery.id, delivery.attempts + 1);
    let failed = |error: String, retry_at: Option<f64>| Write::DeliveryFailed {
        id,
        error,
        retry_at,
    };
    let (reader_store, shot_key) = (store.clone(), delivery.shot_key);
    if let Target::Visualizer(uploader) = target {
        return upload(store, uploader, delivery).await;
    }
    let wants_document = matches!(target, Target::Analyzer(_));
    let loaded = tokio::task::spawn_blocking(move || -> Result<_, document::ReadError> {
        let reader = reader_store.reader()?;
        let Some((summary, samples)) = document::load(&*reader, shot_key)? else {
            return Ok(None);
        };
        let doc = if wants_document {
            document::document(&*reader, &summary)?
        } else {
            None
        };
        Ok(Some((summary, samples, doc)))
    })
    .await;
    let (summary, samples, doc) = match loaded {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) => return failed(format!("shot {shot_key} is gone"), None),
        Ok(Err(e)) => {
            let error = format!("reading shot {shot_key}: {}", crate::error_chain(&e));
            return failed(error, Some(unix_now() + POLL.as_secs_f64()));
        }
        Err(e) => return failed(format!("reading shot {shot_key} panicked: {e}"), None),
    };
    match target {
        Target::Webhook(hook) => {
            let shot = FinishedShot {
                facts: analysis::shot_facts(&samples),
                summary,
            };
            match hook.attempt(&shot, &delivery.delivery, attempt).await {
                Tried::Delivered => Write::Delivered { id, analysis: None },
                Tried::Refused(error) => failed(error, None),
                Tried::Again { wait, error } => {
                    let wait = hook.retry().wait(attempt, wait);
                    failed(error, Some(unix_now() + wait.as_secs_f64()))
                }
            }
        }
        Target::Visualizer(_) => unreachable!("uploads are tried above"),
        Target::Analyzer(analyzer) => {
            let Some(doc) = doc else {
                return failed(format!("shot {shot_key} is gone"), None);
            };
            match analyzer.analyze(&doc).await {
                Ok(result) => Write::Delivered {
                    id,
                    analysis: Some(Analysis {
                        shot: shot_key,
                        analyzer: analyzer.name().to_owned(),
                        result,
                    }),
                },
                Err(e) => {
                    let final_ = matches!(&e, AnalyzeError::Status { status, .. }
                        if (400..500).contains(status) && !matches!(status, 408 | 425 | 429));
                    tracing::warn!(
                        shot = shot_key,
                        "{e} (try {attempt} of {})",
                        ANALYZER_RETRY.attempts
                    );
                    if final_ || attempt >= ANALYZER_RETRY.attempts {
                        failed(e.to_string(), None)
                    } else {
                        let wait = ANALYZER_RETRY.wait(attempt, None);
                        failed(e.to_string(), Some(unix_now() + wait.as_secs_f64()))
                    }
                }
            }
        }
    }
}

/// One try of an upload: the shot file only (no samples parsed, no document built), and the
/// write that records the outcome, with Visualizer's id as the analysis [`visualizer::ANALYSIS`].
async fn upload(store: &Arc<Store>, uploader: &Visualizer, delivery: &Delivery) -> Write {
    let (id, attempt, shot_key) = (delivery.id, delivery.attempts + 1, delivery.shot_key);
    let failed = |error: String, retry_at: Option<f64>| Write::DeliveryFailed {
        id,
        error,
        retry_at,
    };
    let reader_store = store.clone();
    let read = tokio::task::spawn_blocking(move || {
        visualizer::upload_of(&*reader_store.reader()?, shot_key)
    })
    .await;
    let (name, body) = match read {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) => return failed(format!("shot {shot_key} is gone"), None),
        Ok(Err(e)) => {
            let error = format!("reading shot {shot_key}: {e}");
            return failed(error, Some(unix_now() + POLL.as_secs_f64()));
        }
        Err(e) => return failed(format!("reading shot {shot_key} panicked: {e}"), None),
    };
    match uploader.upload(shot_key, &body, &name, attempt).await {
        Uploaded::Done { id: at } => Write::Delivered {
            id,
            analysis: Some(uploader.analysis(shot_key, &at)),
        },
        Uploaded::Refused(error) => failed(error, None),
        Uploaded::Again { wait, error } => {
            let wait = visualizer::RETRY.wait(attempt, wait);
            failed(error, Some(unix_now() + wait.as_secs_f64()))
        }
    }
}
