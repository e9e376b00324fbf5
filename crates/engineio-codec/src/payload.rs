//! Long-polling payloads: packets joined by the record separator `\x1e`, binary messages as
//! `b<base64>` records.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::packet::{Data, Packet, decode};

/// The record separator between the packets of a long-polling payload.
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// Decodes a long-polling payload (an HTTP body) into its packets, lazily.
///
/// The iterator yields each packet in order and stops after the first error, as the reference
/// parser does; the error's offset counts from the start of `body`. An empty body is one empty
/// record, which is an error.
///
/// ```
/// use engineio_codec::{decode_payload, Packet};
/// let packets: Vec<_> = decode_payload(b"4hello\x1e2\x1ebAQIDBA==").collect::<Result<_, _>>().unwrap();
/// assert_eq!(packets[0], Packet::text("hello"));
/// assert_eq!(packets[1], Packet::Ping(""));
/// assert_eq!(packets[2], Packet::binary(&[1, 2, 3, 4]));
/// ```
pub fn decode_payload(body: &[u8]) -> PayloadDecoder<'_> {
    PayloadDecoder {
        body,
        position: 0,
        done: false,
    }
}

/// The iterator returned by [`decode_payload`].
#[derive(Debug, Clone)]
pub struct PayloadDecoder<'a> {
    body: &'a [u8],
    position: usize,
    done: bool,
}

impl<'a> Iterator for PayloadDecoder<'a> {
    type Item = Result<Packet<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let start = self.position;
        let rest = &self.body[start..];
        let record = match rest.iter().position(|&b| b == RECORD_SEPARATOR) {
            Some(end) => {
                self.position = start + end + 1;
                &rest[..end]
            }
            None => {
                self.done = true;
                rest
            }
        };
        let result = decode_record(record).map_err(|e| e.shifted(start));
        if result.is_err() {
            self.done = true;
        }
        Some(result)
    }
}

/// Decodes one long-polling record: a text packet, or `b<base64>` for a binary message.
pub fn decode_record(record: &[u8]) -> Result<Packet<'_>, DecodeError> {
    match record.split_first() {
        Some((b'b', encoded)) => match STANDARD.decode(encoded) {
            Ok(bytes) => Ok(Packet::Message(Data::Binary(Cow::Owned(bytes)))),
            Err(e) => {
                let offset = match e {
                    base64::DecodeError::InvalidByte(at, _)
                    | base64::DecodeError::InvalidLastSymbol(at, _) => at,
                    base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidPadding => {
                        encoded.len()
                    }
                };
                Err(DecodeError::new(
                    DecodeErrorKind::Base64 {
                        reason: e.to_string(),
                    },
                    1 + offset,
                ))
            }
        },
        _ => decode(record),
    }
}

/// Appends one packet as a long-polling record (no separator): text packets in their text form,
/// binary messages as `b<base64>`.
///
/// Fails, writing nothing, when text data contains the record separator.
pub fn encode_record(packet: &Packet<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match packet {
        Packet::Message(Data::Binary(bytes)) => {
            out.push(b'b');
            let start = out.len();
            out.resize(start + base64_len(bytes.len()), 0);
            let written = STANDARD
                .encode_slice(bytes, &mut out[start..])
                .expect("the buffer was sized for the encoded length");
            out.truncate(start + written);
        }
        Packet::Message(Data::Text(text)) | Packet::Ping(text) | Packet::Pong(text) => {
            if let Some(offset) = text.bytes().position(|b| b == RECORD_SEPARATOR) {
                return Err(EncodeError::RecordSeparator { offset });
            }
            crate::packet::encode(packet, out);
        }
        _ => {
            crate::packet::encode(packet, out);
        }
    }
    Ok(())
}

/// Appends a whole long-polling payload: the records of `packets` joined by `\x1e`.
///
/// On error nothing of the failing packet is written, but earlier records stay in `out`;
/// callers that need all-or-nothing truncate `out` back to its old length.
///
/// ```
/// use engineio_codec::{encode_payload, Packet};
/// let mut body = Vec::new();
/// encode_payload(&[Packet::text("hello"), Packet::binary(&[1, 2, 3, 4])], &mut body).unwrap();
/// assert_eq!(body, b"4hello\x1ebAQIDBA==");
/// ```
pub fn encode_payload(packets: &[Packet<'_>], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    for (i, packet) in packets.iter().enumerate() {
        if i > 0 {
            out.push(RECORD_SEPARATOR);
        }
        let before = out.len();
        if let Err(e) = encode_record(packet, out) {
            out.truncate(before.saturating_sub(usize::from(i > 0)));
            return Err(e);
        }
    }
    Ok(())
}

/// The exact number of bytes [`encode_record`] writes for `packet` (without a separator).
///
/// Use it to batch packets within the server's `maxPayload`: a payload of records `r1..rn`
/// takes `Σ record_len + (n - 1)` bytes.
pub fn record_len(packet: &Packet<'_>) -> usize {
    match packet {
        Packet::Message(Data::Binary(bytes)) => 1 + base64_len(bytes.len()),
        Packet::Message(Data::Text(text)) | Packet::Ping(text) | Packet::Pong(text) => {
            1 + text.len()
        }
        Packet::Open(_) => {
            let mut out = Vec::new();
            crate::packet::encode(packet, &mut out);
            out.len()
        }
        Packet::Close | Packet::Upgrade | Packet::Noop => 1,
    }
}

/// The length of padded standard base64 for `n` bytes.
fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}
