//! HTTP fan-out: a topic hub with a snapshot on subscribe and per-connection queues, served over
//! WebSocket and Server-Sent Events. Knows nothing of espresso: topics carry opaque JSON events.
//!
//! Not built yet: this crate holds its place in the workspace map until the gateway issue lands.
#![deny(missing_docs)]
