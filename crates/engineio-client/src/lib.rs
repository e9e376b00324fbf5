//! **API boundary.** The async Engine.IO v4 client: WebSocket and long-polling transports, the
//! polling → WebSocket upgrade, heartbeat and reconnect, driving the pure
//! [`engineio_codec::session::Session`].
//!
//! Not built yet: this crate holds its place in the workspace map until the client issue lands.
#![deny(missing_docs)]

pub use engineio_codec as codec;
