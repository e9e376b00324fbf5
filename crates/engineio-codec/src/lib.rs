//! Engine.IO v4 on the wire, with no IO and no clock.
//!
//! * [`decode`] / [`decode_str`] / [`decode_binary`] and [`encode`]: single packets, as carried by
//!   one WebSocket frame. Decoding borrows from the input; encoding appends to a caller's buffer.
//! * [`decode_payload`] / [`encode_payload`]: long-polling bodies, packets joined by `\x1e`, binary
//!   messages as `b<base64>`.
//! * [`session::Session`]: the pure client session state machine (handshake, heartbeat deadline,
//!   polling → WebSocket upgrade), driven by `engineio-client` with the time passed in.
//!
//! Decoders never panic, whatever the bytes; errors say at which byte and why.
//!
//! ```
//! use engineio_codec::{decode_payload, encode, FrameKind, Packet};
//!
//! // A long-polling body with the server's handshake.
//! let body = br#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
//! let Some(Ok(Packet::Open(handshake))) = decode_payload(body).next() else { panic!() };
//! assert_eq!(handshake.sid, "lv_VI97HAXpY6yYWAAAC");
//! assert_eq!(handshake.max_payload, Some(1_000_000));
//!
//! // The v4 heartbeat: the server pings, the client answers with a pong.
//! let mut frame = Vec::new();
//! assert_eq!(encode(&Packet::Pong(""), &mut frame), FrameKind::Text);
//! assert_eq!(frame, b"3");
//! ```
#![deny(missing_docs)]

mod error;
mod packet;
mod payload;
pub mod session;
mod text;

pub use error::{DecodeError, DecodeErrorKind, EncodeError};
pub use packet::{
    Data, FrameKind, Handshake, PROBE, Packet, PacketType, decode, decode_binary, decode_str,
    encode, json_error_offset,
};
pub use payload::{
    PayloadDecoder, RECORD_SEPARATOR, decode_payload, decode_record, encode_payload, encode_record,
    record_len,
};
pub use text::Text;

/// The README's examples, compiled and run with the other doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
