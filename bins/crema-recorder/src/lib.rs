//! The recorder's moving parts, shared with `crema-gateway`: recording one machine into the
//! store ([`record`]), syncing its history ([`sync`]), runs of sync, QA and analysis with
//! their progress ([`runs`]), and the work after each shot: analysis and webhooks
//! ([`after`]). The binary is the CLI around them.

pub mod after;
mod http;
pub mod process;
pub mod record;
pub mod runs;
pub mod sync;

/// Now, in Unix seconds (what the store, the machine and the runs count in).
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
