//! **API boundary.** socket.io v5 for Rust.
//!
//! * `Client` (feature `client`, on by default): one Engine.IO connection (`engineio_client`),
//!   any number of namespaces on it;
//!   CONNECT with auth (asked again on every reconnect), emits buffered in order until the
//!   namespace is connected, acks both ways with timeouts, binary attachments anywhere in the
//!   arguments ([`Binary`]), connection state recovery.
//! * [`connection::Connection`]: the same protocol logic as a pure state machine (time passed in).
//! * [`codec`]: the pure packet codec: namespaces, ack ids, binary attachments, raw JSON payloads
//!   read lazily.
//!
//! ```no_run
//! use std::time::Duration;
//! use socketio_v5::{Auth, Client, ClientConfig, Event};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new(ClientConfig::new("http://127.0.0.1:3000")?);
//! let (socket, mut events) = client.socket("/", Auth::None).await?;
//! // Sent as soon as the namespace is connected: never lost.
//! socket.emit("hello", ("world", 42)).await?;
//! let (answer,): (String,) = socket.emit_with_ack("echo", ("ping",), Duration::from_secs(5)).await?;
//! while let Some(event) = events.recv().await {
//!     if let Event::Message(mut event) = event {
//!         println!("{} {}", event.name(), event.raw_args()?);
//!         event.ack(("thanks",)).await?; // answers only if the server asked
//!     }
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
// On docs.rs, items behind a feature say which one.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod binary;
#[cfg(feature = "client")]
mod client;
pub mod codec;
pub mod connection;

pub use binary::Binary;
#[cfg(feature = "client")]
pub use client::{
    Args, Auth, AuthProvider, Client, ClientConfig, Error, Event, Events, ReceivedEvent, Socket,
    Typed,
};
pub use connection::{AckError, DisconnectReason, EmitError};
/// The Engine.IO client under [`Client`], for its configuration ([`ClientConfig::engine`]) and
/// its connection state, without naming another crate.
#[cfg(feature = "client")]
pub use engineio_client as engine;

/// The README's examples, compiled and run with the other doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
