//! The pure shot recorder: `handle_input(now, Input)`, `poll_output()`, `poll_timeout()`. No IO, no
//! clock, no tokio, no SQL.
//!
//! Not built yet: this crate holds its place in the workspace map until the recorder issue lands.
#![deny(missing_docs)]
