//! What a WebSocket client sends, decoded (pure: bytes in, frames and requests out, no IO). The gateway's
//! connections are server-side only, and clients send only small requests, so this is the small
//! part of RFC 6455 a server needs: masked frames of at most `max` bytes, text (UTF-8 checked),
//! binary, ping, pong and close. A fragmented message is reported once and its continuation
//! frames skipped; frame headers are parsed by tungstenite.

use std::io::Cursor;

use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// One thing the client said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A whole text message.
    Text(String),
    /// A binary message (the protocol has none).
    Binary,
    /// The first frame of a fragmented message; the rest of it is skipped.
    Fragmented,
    /// A ping, with its payload (answer with a pong carrying it).
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// A close frame, with its status code (1005, "none", when it has none).
    Close(u16),
}

/// Why the connection must end: the close code to send, and a sentence for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The close status code (RFC 6455 §7.4.1).
    pub code: u16,
    /// What was wrong.
    pub reason: String,
}

fn fault(code: u16, reason: impl Into<String>) -> Fault {
    Fault {
        code,
        reason: reason.into(),
    }
}

/// See the [module docs](self).
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    max: usize,
    skipping: bool,
}

impl Decoder {
    /// A decoder refusing messages over `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max,
            skipping: false,
        }
    }

    /// Bytes received and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame's meaning, `Ok(None)` until more bytes come, or the fault that ends
    /// the connection. Nothing more should be decoded after a fault.
    pub fn decode(&mut self) -> Result<Option<Inbound>, Fault> {
        loop {
            let mut cursor = Cursor::new(&self.buf[..]);
            let (header, len) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return Ok(None),
                Err(e) => return Err(fault(1002, format!("a malformed frame: {e}"))),
            };
            let Some(mask) = header.mask else {
                return Err(fault(1002, "client frames must be masked (RFC 6455 §5.3)"));
            };
            if header.rsv1 || header.rsv2 || header.rsv3 {
                return Err(fault(
                    1002,
                    "reserved bits set, and no extension was agreed",
                ));
            }
            if len > self.max as u64 {
                return Err(fault(
                    1009,
                    format!("messages are limited to {} bytes", self.max),
                ));
            }
            let start = cursor.position() as usize;
            let end = start + len as usize;
            if self.buf.len() < end {
                return Ok(None);
            }
            let mut payload: Vec<u8> = self.buf[start..end].to_vec();
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
            self.buf.drain(..end);
            if self.buf.is_empty() {
                // An idle connection keeps no buffer.
                self.buf = Vec::new();
            }
            let is_control = matches!(header.opcode, OpCode::Control(_));
            if is_control && (!header.is_final || payload.len() > 125) {
                return Err(fault(
                    1002,
                    "control frames must be whole and at most 125 bytes",
                ));
            }
            let inbound = match header.opcode {
                OpCode::Control(Control::Ping) => Inbound::Ping(payload),
                OpCode::Control(Control::Pong) => Inbound::Pong,
                OpCode::Control(Control::Close) => match payload.len() {
                    0 => Inbound::Close(1005),
                    1 => return Err(fault(1002, "a close frame with a one-byte body")),
                    _ => Inbound::Close(u16::from_be_bytes([payload[0], payload[1]])),
                },
                OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                    return Err(fault(1002, "a reserved opcode"));
                }
                OpCode::Data(Data::Continue) => {
                    if !self.skipping {
                        return Err(fault(1002, "a continuation frame with no message"));
                    }
                    self.skipping = !header.is_final;
                    continue;
                }
                OpCode::Data(_) if self.skipping => {
                    return Err(fault(1002, "a new message inside a fragmented one"));
                }
                OpCode::Data(_) if !header.is_final => {
                    self.skipping = true;
                    Inbound::Fragmented
                }
                OpCode::Data(Data::Binary) => Inbound::Binary,
                OpCode::Data(Data::Text) => match String::from_utf8(payload) {
                    Ok(text) => Inbound::Text(text),
                    Err(_) => return Err(fault(1007, "a text frame that is not UTF-8")),
                },
            };
            return Ok(Some(inbound));
        }
    }
}

/// What a request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Send me the topic's snapshot, then its events.
    Subscribe,
    /// Stop.
    Unsubscribe,
}

/// A client's request, a text message: `{"op":"subscribe"|"unsubscribe","topic":T}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// What it asks.
    pub op: Op,
    /// Of which topic.
    pub topic: String,
}

/// The longest topic name a request may carry.
pub const MAX_TOPIC: usize = 256;

impl Request {
    /// Reads a request; the error is the `message` of the `bad_request` answer (bounded: it
    /// quotes at most a few dozen characters of what was sent).
    pub fn parse(text: &str) -> Result<Request, String> {
        let request: Request = serde_json::from_str(text).map_err(|e| {
            let why = http_client::one_line(&e.to_string(), 80);
            format!("expected {{\"op\":\"subscribe\"|\"unsubscribe\",\"topic\":…}}: {why}")
        })?;
        if request.topic.is_empty() || request.topic.len() > MAX_TOPIC {
            return Err(format!("a topic is 1 to {MAX_TOPIC} bytes"));
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A masked client frame.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [9, 200, 31, 4];
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn all(decoder: &mut Decoder) -> Result<Vec<Inbound>, Fault> {
        let mut out = Vec::new();
        while let Some(i) = decoder.decode()? {
            out.push(i);
        }
        Ok(out)
    }

    #[test]
    fn every_kind_of_frame() {
        let mut d = Decoder::new(4096);
        let mut bytes = frame(0x81, br#"{"op":"subscribe"}"#);
        bytes.extend(frame(0x82, b"\x00\x01"));
        bytes.extend(frame(0x89, b"hello"));
        bytes.extend(frame(0x8a, b""));
        bytes.extend(frame(0x01, b"frag"));
        bytes.extend(frame(0x00, b"ment"));
        bytes.extend(frame(0x80, b"ed"));
        bytes.extend(frame(0x88, &[0x03, 0xe9, b'b', b'y', b'e']));
        d.push(&bytes);
        assert_eq!(
            all(&mut d).unwrap(),
            vec![
                Inbound::Text(r#"{"op":"subscribe"}"#.into()),
                Inbound::Binary,
                Inbound::Ping(b"hello".to_vec()),
                Inbound::Pong,
                Inbound::Fragmented,
                Inbound::Close(1001),
            ]
        );
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn faults_carry_their_close_code() {
        let code = |bytes: Vec<u8>| {
            let mut d = Decoder::new(100);
            d.push(&bytes);
            all(&mut d).unwrap_err().code
        };
        assert_eq!(code(vec![0x81, 0x02, b'h', b'i']), 1002, "unmasked");
        assert_eq!(code(frame(0x81, &[b'x'; 101])), 1009, "too big");
        assert_eq!(code(frame(0x81, &[0xff, 0xfe])), 1007, "not UTF-8");
        assert_eq!(code(frame(0x83, b"")), 1002, "reserved opcode");
        assert_eq!(code(frame(0xc1, b"x")), 1002, "rsv1 without an extension");
        assert_eq!(code(frame(0x00, b"x")), 1002, "continuation of nothing");
        assert_eq!(code(frame(0x09, b"x")), 1002, "fragmented ping");
        assert_eq!(code(frame(0x88, b"x")), 1002, "one-byte close");
    }

    #[test]
    fn a_frame_split_anywhere_decodes_the_same() {
        let bytes = frame(0x81, "héllo wörld".repeat(20).as_bytes());
        for cut in 0..bytes.len() {
            let mut d = Decoder::new(4096);
            d.push(&bytes[..cut]);
            assert_eq!(d.decode(), Ok(None), "cut at {cut}");
            d.push(&bytes[cut..]);
            assert_eq!(
                d.decode().unwrap(),
                Some(Inbound::Text("héllo wörld".repeat(20)))
            );
        }
    }

    proptest! {
        /// Arbitrary bytes, in arbitrary chunks: no panic, and the buffer never holds more than
        /// one largest frame (header included) while the decoder waits for the rest.
        #[test]
        fn arbitrary_bytes_never_panic_or_grow(bytes in prop::collection::vec(any::<u8>(), 0..600), chunk in 1usize..64) {
            let mut d = Decoder::new(64);
            'feed: for piece in bytes.chunks(chunk) {
                d.push(piece);
                loop {
                    match d.decode() {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
                prop_assert!(d.buffered() <= 64 + 14 + chunk);
            }
        }
    }
}

#[cfg(test)]
mod request_tests {
    use super::*;

    #[test]
    fn requests_and_their_refusals() {
        assert_eq!(
            Request::parse(r#"{"op":"subscribe","topic":"machine:a"}"#),
            Ok(Request {
                op: Op::Subscribe,
                topic: "machine:a".into()
            })
        );
        for bad in [
            r#"{"op":"publish","topic":"t"}"#,
            r#"{"op":"subscribe","topic":"t","extra":1}"#,
            r#"{"op":"subscribe"}"#,
            r#"{"op":"subscribe","topic":""}"#,
            "[]",
            "not json",
        ] {
            let why = Request::parse(bad).unwrap_err();
            assert!(why.len() < 300, "{why}");
        }
        let long = format!(
            r#"{{"op":"subscribe","topic":"{}"}}"#,
            "t".repeat(MAX_TOPIC + 1)
        );
        assert!(Request::parse(&long).unwrap_err().contains("1 to 256"));
        let garbage = format!(r#"{{"op":"{}"}}"#, "é".repeat(2000));
        let why = Request::parse(&garbage).unwrap_err();
        assert!(
            why.len() < 300,
            "an error quotes little of what was sent: {why}"
        );
    }
}
