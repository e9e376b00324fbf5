//! The recorder's moving parts, shared with `crema-gateway`: recording one machine into the
//! store ([`record`]) and syncing its history ([`sync`]). The binary is the CLI around them.

pub mod process;
pub mod record;
pub mod sync;
