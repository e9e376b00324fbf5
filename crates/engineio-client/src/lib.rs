//! **API boundary.** An async Engine.IO v4 client for tokio.
//!
//! WebSocket (tokio-tungstenite) and HTTP long-polling (hyper) transports, the polling →
//! WebSocket upgrade exactly as the reference client does it, the v4 heartbeat (the server pings,
//! the client answers, silence for `pingInterval + pingTimeout` ends the session), and reconnection
//! with exponential backoff and jitter. The protocol decisions live in the pure
//! [`engineio_codec::session::Session`]; this crate moves bytes.
//!
//! ```no_run
//! use engineio_client::{Client, Config, Event, Payload, TransportMode};
//!
//! # async fn demo() -> Result<(), engineio_client::Error> {
//! let config = Config::new("http://127.0.0.1:3000")?.transport(TransportMode::WebSocket);
//! let (client, mut events) = Client::connect(config);
//! while let Some(event) = events.recv().await {
//!     match event {
//!         Event::Open { .. } => client.send("hello").await?,
//!         Event::Message(Payload::Text(text)) => println!("got {text}"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
// On docs.rs, items behind a feature say which one.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backoff;
mod client;
mod coalesce;
mod config;
pub mod deadline;
mod driver;
mod error;
mod event;
pub mod queue;
#[cfg(feature = "rustls")]
mod tls;
mod transport;

pub use backoff::Backoff;
pub use client::{Client, Events};
pub use config::{
    Config, DEFAULT_MAX_PAYLOAD, DEFAULT_RECEIVE_COALESCING, HeaderProvider, Reconnect,
    TransportMode,
};
pub use engineio_codec as codec;
pub use engineio_codec::Handshake;
pub use engineio_codec::Text;
pub use engineio_codec::session::{CloseReason, Transport};
pub use error::Cause;
pub use error::Error;
pub use event::{ConnectionState, Event, Lost, Payload};
#[cfg(feature = "rustls")]
pub use rustls;

/// The README's examples, compiled and run with the other doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
