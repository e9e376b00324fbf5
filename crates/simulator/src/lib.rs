//! A simulated Meticulous machine (socket.io server and `/api/v1/history*`) replaying fixture
//! streams, for `--demo`, tests and benchmarks. Never used by production paths.
//!
//! Not built yet: this crate holds its place in the workspace map until the recorder issue lands.
#![deny(missing_docs)]
