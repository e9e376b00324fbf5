//! Single Engine.IO v4 packets: the text form (`<type char><data>`, one WebSocket text frame or one
//! long-polling record) and the binary form (one WebSocket binary frame, always a `message`).

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{DecodeError, DecodeErrorKind};

/// The seven Engine.IO v4 packet types, by their type character `'0'..='6'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `0`: the server's handshake.
    Open,
    /// `1`: close the session (long-polling only, either side).
    Close,
    /// `2`: heartbeat ping (server → client), or `2probe` (client → server, during an upgrade).
    Ping,
    /// `3`: heartbeat pong (client → server), or `3probe` (server → client, during an upgrade).
    Pong,
    /// `4`: application data, text or binary.
    Message,
    /// `5`: the client switches to the probed WebSocket.
    Upgrade,
    /// `6`: no operation; the server uses it to release a pending long-polling request.
    Noop,
}

impl PacketType {
    /// The type of a type character, `None` for anything but `'0'..='6'`.
    pub fn from_char(byte: u8) -> Option<Self> {
        Some(match byte {
            b'0' => Self::Open,
            b'1' => Self::Close,
            b'2' => Self::Ping,
            b'3' => Self::Pong,
            b'4' => Self::Message,
            b'5' => Self::Upgrade,
            b'6' => Self::Noop,
            _ => return None,
        })
    }

    /// The type character written on the wire.
    pub fn as_char(self) -> u8 {
        match self {
            Self::Open => b'0',
            Self::Close => b'1',
            Self::Ping => b'2',
            Self::Pong => b'3',
            Self::Message => b'4',
            Self::Upgrade => b'5',
            Self::Noop => b'6',
        }
    }
}

/// The payload of a `message` packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data<'a> {
    /// UTF-8 text, borrowed from the frame.
    Text(&'a str),
    /// Binary data: borrowed from a WebSocket binary frame, owned when decoded from a base64
    /// long-polling record.
    Binary(Cow<'a, [u8]>),
}

/// The OPEN handshake the server sends first (`0{"sid":…}`).
///
/// Unknown keys are ignored, so newer servers stay compatible. `maxPayload` is optional: servers
/// before engine.io 6.2 do not send it.
///
/// ```
/// use engineio_codec::{decode, Packet};
/// let open = br#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"extra":1}"#;
/// let Packet::Open(handshake) = decode(open).unwrap() else { panic!("an OPEN packet") };
/// assert!(handshake.offers_upgrade("websocket"));
/// assert_eq!((handshake.ping_interval_ms, handshake.max_payload), (25_000, None));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handshake {
    /// The session id; the client sends it as `sid` on every later request.
    pub sid: String,
    /// Transports the session may upgrade to, e.g. `["websocket"]`; empty when opened over WebSocket.
    pub upgrades: Vec<String>,
    /// How often the server pings, in milliseconds.
    #[serde(rename = "pingInterval")]
    pub ping_interval_ms: u64,
    /// How long the server waits for the pong, in milliseconds.
    #[serde(rename = "pingTimeout")]
    pub ping_timeout_ms: u64,
    /// The largest long-polling payload the server accepts, in bytes (absent before engine.io 6.2).
    #[serde(
        rename = "maxPayload",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_payload: Option<u64>,
}

impl Handshake {
    /// Whether the server offers an upgrade to `transport` (`"websocket"`).
    pub fn offers_upgrade(&self, transport: &str) -> bool {
        self.upgrades.iter().any(|t| t == transport)
    }
}

/// One Engine.IO packet. Text and binary data borrow from the decoded input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// `0{…}`: the server's handshake, parsed.
    Open(Handshake),
    /// `1`.
    Close,
    /// `2` or `2probe`; the payload after the type character (usually empty).
    Ping(&'a str),
    /// `3` or `3probe`; the payload after the type character (usually empty).
    Pong(&'a str),
    /// `4…` (text) or a binary frame or `b…` record.
    Message(Data<'a>),
    /// `5`.
    Upgrade,
    /// `6`.
    Noop,
}

/// The payload of the probe ping and pong exchanged during an upgrade.
pub const PROBE: &str = "probe";

/// Which kind of WebSocket frame an encoded packet must travel in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A text frame: the bytes are UTF-8, starting with the type character.
    Text,
    /// A binary frame: the bytes are the message's raw data, with no type byte.
    Binary,
}

impl<'a> Packet<'a> {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Open(_) => PacketType::Open,
            Packet::Close => PacketType::Close,
            Packet::Ping(_) => PacketType::Ping,
            Packet::Pong(_) => PacketType::Pong,
            Packet::Message(_) => PacketType::Message,
            Packet::Upgrade => PacketType::Upgrade,
            Packet::Noop => PacketType::Noop,
        }
    }

    /// A text message.
    pub fn text(text: &'a str) -> Self {
        Packet::Message(Data::Text(text))
    }

    /// A binary message borrowing `bytes`.
    pub fn binary(bytes: &'a [u8]) -> Self {
        Packet::Message(Data::Binary(Cow::Borrowed(bytes)))
    }

    /// Whether this is `2probe`.
    pub fn is_probe_ping(&self) -> bool {
        matches!(self, Packet::Ping(PROBE))
    }

    /// Whether this is `3probe`.
    pub fn is_probe_pong(&self) -> bool {
        matches!(self, Packet::Pong(PROBE))
    }
}

impl fmt::Display for Packet<'_> {
    /// A short human description for logs: the type and, for messages, the length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Packet::Open(h) => write!(f, "open (sid {})", h.sid),
            Packet::Close => f.write_str("close"),
            Packet::Ping("") => f.write_str("ping"),
            Packet::Ping(p) => write!(f, "ping {p:?}"),
            Packet::Pong("") => f.write_str("pong"),
            Packet::Pong(p) => write!(f, "pong {p:?}"),
            Packet::Message(Data::Text(t)) => write!(f, "text message ({} bytes)", t.len()),
            Packet::Message(Data::Binary(b)) => write!(f, "binary message ({} bytes)", b.len()),
            Packet::Upgrade => f.write_str("upgrade"),
            Packet::Noop => f.write_str("noop"),
        }
    }
}

/// Decodes one text-form packet (a WebSocket text frame, or one long-polling record) given as bytes.
///
/// The bytes must be UTF-8. Data borrows from `input`. Never panics.
///
/// ```
/// use engineio_codec::{decode, Packet};
/// assert_eq!(decode(b"4hello").unwrap(), Packet::text("hello"));
/// assert_eq!(decode(b"2probe").unwrap(), Packet::Ping("probe"));
/// assert!(decode(b"9").is_err());
/// ```
pub fn decode(input: &[u8]) -> Result<Packet<'_>, DecodeError> {
    match std::str::from_utf8(input) {
        Ok(text) => decode_str(text),
        Err(e) => {
            // Report the unknown type first: it is the more useful message for garbage input.
            if let Some(&first) = input.first()
                && PacketType::from_char(first).is_none()
            {
                return Err(DecodeError::new(
                    DecodeErrorKind::UnknownType { found: first },
                    0,
                ));
            }
            Err(DecodeError::new(
                DecodeErrorKind::InvalidUtf8,
                e.valid_up_to(),
            ))
        }
    }
}

/// Decodes one text-form packet from a string (a WebSocket text frame is already UTF-8).
///
/// Any data after the type character of `close`, `upgrade` and `noop` is ignored, as the
/// reference parser does.
pub fn decode_str(input: &str) -> Result<Packet<'_>, DecodeError> {
    let Some(&first) = input.as_bytes().first() else {
        return Err(DecodeError::new(DecodeErrorKind::Empty, 0));
    };
    let Some(packet_type) = PacketType::from_char(first) else {
        return Err(DecodeError::new(
            DecodeErrorKind::UnknownType { found: first },
            0,
        ));
    };
    // The type character is ASCII, so index 1 is a char boundary.
    let data = &input[1..];
    Ok(match packet_type {
        PacketType::Open => Packet::Open(decode_handshake(data)?),
        PacketType::Close => Packet::Close,
        PacketType::Ping => Packet::Ping(data),
        PacketType::Pong => Packet::Pong(data),
        PacketType::Message => Packet::Message(Data::Text(data)),
        PacketType::Upgrade => Packet::Upgrade,
        PacketType::Noop => Packet::Noop,
    })
}

/// Decodes a WebSocket binary frame: in Engine.IO v4 it is always a `message` whose data is the
/// whole frame (there is no type byte).
pub fn decode_binary(frame: &[u8]) -> Packet<'_> {
    Packet::Message(Data::Binary(Cow::Borrowed(frame)))
}

fn decode_handshake(json: &str) -> Result<Handshake, DecodeError> {
    serde_json::from_str(json).map_err(|e| {
        // serde_json reports 1-based line and column; the handshake is one line in practice.
        let offset = 1 + json_error_offset(json, &e);
        DecodeError::new(
            DecodeErrorKind::Handshake {
                reason: e.to_string(),
            },
            offset,
        )
    })
}

/// The byte offset within `json` that a `serde_json` error points at (serde_json reports a line
/// and a column; both codecs report faults by byte).
pub fn json_error_offset(json: &str, error: &serde_json::Error) -> usize {
    let mut line_start = 0;
    for _ in 1..error.line() {
        match json[line_start..].find('\n') {
            Some(i) => line_start += i + 1,
            None => break,
        }
    }
    (line_start + error.column().saturating_sub(1)).min(json.len())
}

/// Appends the text or binary WebSocket form of `packet` to `out` and says which frame kind it
/// needs. Text messages are written as `4<text>`; binary messages as their raw bytes.
///
/// ```
/// use engineio_codec::{encode, FrameKind, Packet};
/// let mut out = Vec::new();
/// assert_eq!(encode(&Packet::Pong(""), &mut out), FrameKind::Text);
/// assert_eq!(out, b"3");
/// ```
pub fn encode(packet: &Packet<'_>, out: &mut Vec<u8>) -> FrameKind {
    if let Packet::Message(Data::Binary(bytes)) = packet {
        out.extend_from_slice(bytes);
        return FrameKind::Binary;
    }
    out.push(packet.packet_type().as_char());
    match packet {
        Packet::Open(handshake) => {
            // Serializing plain strings and integers into memory cannot fail.
            serde_json::to_writer(&mut *out, handshake)
                .expect("a handshake always serializes to JSON");
        }
        Packet::Ping(payload) | Packet::Pong(payload) => out.extend_from_slice(payload.as_bytes()),
        Packet::Message(Data::Text(text)) => out.extend_from_slice(text.as_bytes()),
        Packet::Message(Data::Binary(_)) | Packet::Close | Packet::Upgrade | Packet::Noop => {}
    }
    FrameKind::Text
}
