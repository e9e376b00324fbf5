//! The recorder's moving parts, shared with `crema-gateway`: recording one machine into the
//! store ([`record`]), syncing its history ([`sync`]), and runs of sync, QA and analysis with
//! their progress ([`runs`]). The binary is the CLI around them.

pub mod process;
pub mod record;
pub mod runs;
pub mod sync;
