//! **API boundary.** socket.io v5 for Rust.
//!
//! * [`codec`]: the pure packet codec — namespaces, ack ids, binary attachments, raw JSON
//!   payloads read lazily. No IO, no clock.
//! * The event client on `engineio-client` (namespaces, acks, typed events) comes with the client
//!   issue.
#![deny(missing_docs)]

pub mod codec;
