//! crema's application layer: everything a process that keeps an espresso machine's record does,
//! between the pure cores (`recorder-core`, `meticulous`) and the binaries.
//!
//! - [`record`]: one machine's recording loop. Its socket.io events go through the pure
//!   recorder into the store; it answers the recorder's lookups, reconciles each finished shot
//!   with the machine's history, and starts the periodic history sync as a run.
//! - [`lease`]: holding a lease of the store while this process owns a machine or a run, so
//!   that many processes can share one store.
//! - [`sync`]: a history sync of one machine (list, then fetch what the store lacks).
//! - [`runs`]: sync, QA and analysis as tracked background runs, one at a time, with progress.
//! - [`hooks`]: what is called after every finished live shot: webhooks, external analyzers.
//! - [`visualizer`]: uploads of shot files to Visualizer (visualizer.coffee).
//! - [`outbox`]: the work after every finished live shot, durably and once: its
//!   `shot-facts/1`, and the hooks' deliveries through the store's outbox.
//! - [`config`]: the keys of `crema.toml` both binaries read, with the same meaning.
//! - [`document`]: the one JSON shape of a shot (summary and whole document) for every consumer.
//! - [`metrics`]: Prometheus text for the loops, the store, the hooks and the runs.
//! - [`process`]: log set-up and signals, the same for both binaries.
//!
//! Errors at this crate's seam are typed ([`record::RecordError`], [`sync::SyncError`],
//! [`runs::RunError`], [`hooks::HookError`], [`visualizer::VisualizerError`]); each says what failed and on what.
#![deny(missing_docs)]

pub mod config;
pub mod document;
pub mod hooks;
mod http;
pub mod lease;
pub mod metrics;
pub mod outbox;
pub mod process;
pub mod record;
pub mod runs;
pub mod sync;
mod unstored;
pub mod visualizer;

/// Now, in Unix seconds (what the store, the machine and the runs count in).
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub use http_client::error_chain;
