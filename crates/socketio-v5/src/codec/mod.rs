//! The socket.io v5 packet codec. Pure: text in, packets out; packets in, text out.
//!
//! A socket.io packet travels as one Engine.IO `message`:
//!
//! ```text
//! <type>[<#attachments>-][<namespace>,][<ack id>][<JSON payload>]
//! ```
//!
//! followed, for `BINARY_EVENT` and `BINARY_ACK`, by `#attachments` binary Engine.IO messages that
//! [`Reassembler`] collects.
//!
//! Payloads stay raw JSON ([`Json`]): [`decode`] validates them in one pass and reads the event
//! name, but never builds a tree; consumers deserialize the arguments into their own types when
//! they want them.
//!
//! ```
//! use socketio_v5::codec::{decode, EventName, PacketKind};
//!
//! let packet = decode(r#"2/admin,12["status",{"state":"idle"}]"#).unwrap();
//! assert_eq!(packet.kind(), PacketKind::Event);
//! assert_eq!(packet.namespace(), "/admin");
//! assert_eq!(packet.id(), Some(12));
//! assert_eq!(packet.event_name(), Some(EventName::from("status")));
//!
//! #[derive(serde::Deserialize)]
//! struct Status { state: String }
//! let (status,): (Status,) = packet.args().unwrap();
//! assert_eq!(status.state, "idle");
//! ```

mod binary;
mod error;
mod json;
mod scan;

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};

pub use binary::{DEFAULT_MAX_ATTACHMENTS, Message, Placeholder, Reassembler};
pub use error::{DecodeError, DecodeErrorKind, EncodeError};
pub use json::{EventName, Json, Str};

/// The default namespace.
pub const DEFAULT_NAMESPACE: &str = "/";

/// Event names that the socket.io client and server use for themselves: receiving one is an
/// error, and emitting one makes the server close the whole session.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// The seven socket.io v5 packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// `0`: connect to a namespace (client, with optional auth) or its acceptance (server, with
    /// `sid`).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event: `["name", args...]`.
    Event,
    /// `3`: the answer to an event that carried an ack id.
    Ack,
    /// `4`: the server refused the namespace CONNECT.
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an ack with binary attachments.
    BinaryAck,
}

impl PacketKind {
    /// The type of a type character.
    pub fn from_char(byte: u8) -> Option<Self> {
        Some(match byte {
            b'0' => Self::Connect,
            b'1' => Self::Disconnect,
            b'2' => Self::Event,
            b'3' => Self::Ack,
            b'4' => Self::ConnectError,
            b'5' => Self::BinaryEvent,
            b'6' => Self::BinaryAck,
            _ => return None,
        })
    }

    /// The type character.
    pub fn as_char(self) -> u8 {
        match self {
            Self::Connect => b'0',
            Self::Disconnect => b'1',
            Self::Event => b'2',
            Self::Ack => b'3',
            Self::ConnectError => b'4',
            Self::BinaryEvent => b'5',
            Self::BinaryAck => b'6',
        }
    }

    /// Whether binary attachments follow this type (`BINARY_EVENT`, `BINARY_ACK`).
    pub fn is_binary(self) -> bool {
        matches!(self, Self::BinaryEvent | Self::BinaryAck)
    }

    /// Whether it is an event, binary or not.
    pub fn is_event(self) -> bool {
        matches!(self, Self::Event | Self::BinaryEvent)
    }

    /// Whether it is an ack, binary or not.
    pub fn is_ack(self) -> bool {
        matches!(self, Self::Ack | Self::BinaryAck)
    }
}

/// One socket.io packet. Strings borrow from the decoded text where they can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    kind: PacketKind,
    namespace: Cow<'a, str>,
    id: Option<u64>,
    attachments: usize,
    data: Option<Json<'a>>,
    event: Name<'a>,
}

/// Where an event's name is: most names are a plain string inside the payload, kept as a byte
/// range of it (no second buffer to carry or share).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Name<'a> {
    None,
    /// The name is `data[start..end]`.
    InData(u32, u32),
    /// Names with escapes, and numbers.
    Other(EventName<'a>),
}

impl<'a> Name<'a> {
    /// `event` as read from `data` (the payload's text).
    fn new(event: Option<EventName<'a>>, data: Option<&str>) -> Self {
        let Some(event) = event else {
            return Name::None;
        };
        if let (EventName::Str(name), Some(whole)) = (&event, data) {
            let part = name.as_str();
            // `part` was read from `data`: a sub-slice, so a bounds check is enough here (and
            // `event_name` slices with `get` anyway).
            let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
            if let Some(end) = start.checked_add(part.len())
                && end <= whole.len()
                && let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(end))
            {
                return Name::InData(start, end);
            }
        }
        Name::Other(event)
    }

    fn detach(self, source: Option<&engineio_codec::Text>) -> Name<'static> {
        match self {
            Name::None => Name::None,
            Name::InData(start, end) => Name::InData(start, end),
            Name::Other(e) => Name::Other(match source {
                Some(source) => e.into_shared(source),
                None => e.into_owned(),
            }),
        }
    }
}

impl<'a> Packet<'a> {
    /// `CONNECT` to `namespace`, with the auth payload if any (must be a JSON object).
    pub fn connect(namespace: &'a str, auth: Option<Json<'a>>) -> Result<Self, DecodeError> {
        Self::checked(PacketKind::Connect, namespace, None, 0, auth)
    }

    /// `DISCONNECT` from `namespace`.
    pub fn disconnect(namespace: &'a str) -> Result<Self, DecodeError> {
        Self::checked(PacketKind::Disconnect, namespace, None, 0, None)
    }

    /// An `EVENT` whose `payload` is the whole JSON array `["name", args...]`.
    ///
    /// Fails when `payload` is not such an array or the name is reserved.
    pub fn event(
        namespace: &'a str,
        id: Option<u64>,
        payload: Json<'a>,
    ) -> Result<Self, DecodeError> {
        Self::checked(PacketKind::Event, namespace, id, 0, Some(payload))
    }

    /// An `ACK` for `id` whose `payload` is the JSON array of the answer's arguments.
    pub fn ack(namespace: &'a str, id: u64, payload: Json<'a>) -> Result<Self, DecodeError> {
        Self::checked(PacketKind::Ack, namespace, Some(id), 0, Some(payload))
    }

    /// Any packet from its parts, validated as [`decode`] validates what it reads.
    pub fn checked(
        kind: PacketKind,
        namespace: &'a str,
        id: Option<u64>,
        attachments: usize,
        data: Option<Json<'a>>,
    ) -> Result<Self, DecodeError> {
        if !is_valid_namespace(namespace) {
            return Err(DecodeError::new(
                DecodeErrorKind::InvalidNamespace {
                    namespace: namespace.to_owned(),
                },
                0,
            ));
        }
        let event = match &data {
            Some(json) => {
                Name::new(validate_payload(kind, json.as_str())?, Some(json.as_str())).detach(None)
            }
            None => Name::new(validate_absent(kind)?, None),
        };
        let attachments = if kind.is_binary() { attachments } else { 0 };
        Ok(Self {
            kind,
            namespace: Cow::Borrowed(namespace),
            id,
            attachments,
            data,
            event,
        })
    }

    /// The packet type.
    pub fn kind(&self) -> PacketKind {
        self.kind
    }

    /// The namespace, `/` by default.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The ack id, if the sender wants an answer (events) or this answers one (acks).
    pub fn id(&self) -> Option<u64> {
        self.id
    }

    /// How many binary attachments follow (0 unless `BINARY_EVENT` / `BINARY_ACK`).
    pub fn attachments(&self) -> usize {
        self.attachments
    }

    /// The raw JSON payload, if any.
    pub fn data(&self) -> Option<&Json<'a>> {
        self.data.as_ref()
    }

    /// The event name, for `EVENT` and `BINARY_EVENT`.
    pub fn event_name(&self) -> Option<EventName<'_>> {
        match &self.event {
            Name::None => None,
            Name::InData(start, end) => {
                let data = self.data.as_ref()?.as_str();
                let name = data.get(*start as usize..*end as usize)?;
                Some(EventName::Str(Str::from(name)))
            }
            Name::Other(name) => Some(name.clone()),
        }
    }

    /// Deserializes the arguments: the event's array without its name, or the ack's array.
    ///
    /// `T` is usually a tuple (`(Status,)`) or a `Vec`; the first element of an event (the
    /// name) is skipped without being parsed again. Fails for packets without arguments.
    pub fn args<T: de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        let raw = self.data.as_ref().map_or("null", Json::as_str);
        let skip = usize::from(self.kind.is_event());
        let mut de = serde_json::Deserializer::from_str(raw);
        let value = de::Deserializer::deserialize_seq(&mut de, SkipFirst::<T>::new(skip))?;
        de.end()?;
        Ok(value)
    }

    /// The arguments as raw JSON values, for consumers that forward them untouched.
    pub fn raw_args(&self) -> Result<Vec<&serde_json::value::RawValue>, serde_json::Error> {
        let raw = self.data.as_ref().map_or("null", Json::as_str);
        let mut all: Vec<&serde_json::value::RawValue> = serde_json::from_str(raw)?;
        if self.kind.is_event() && !all.is_empty() {
            all.remove(0);
        }
        Ok(all)
    }

    /// An owned copy that no longer borrows from the decoded text.
    pub fn into_owned(self) -> Packet<'static> {
        self.detach(None)
    }

    /// An owned copy that shares `source`'s buffer where the packet was decoded from it
    /// (no copy of the payload or the event name).
    pub fn into_shared(self, source: &engineio_codec::Text) -> Packet<'static> {
        self.detach(Some(source))
    }

    fn detach(self, source: Option<&engineio_codec::Text>) -> Packet<'static> {
        Packet {
            kind: self.kind,
            // The main namespace needs no allocation.
            namespace: if self.namespace == DEFAULT_NAMESPACE {
                Cow::Borrowed(DEFAULT_NAMESPACE)
            } else {
                Cow::Owned(self.namespace.into_owned())
            },
            id: self.id,
            attachments: self.attachments,
            data: self.data.map(|d| match source {
                Some(source) => d.into_shared(source),
                None => d.into_owned(),
            }),
            event: self.event.detach(source),
        }
    }

    /// Reads a `CONNECT` answer from the server: `{"sid": …, "pid": …}`.
    pub fn connect_ack(&self) -> Option<ConnectAck> {
        if self.kind != PacketKind::Connect {
            return None;
        }
        self.data.as_ref()?.deserialize().ok()
    }

    /// Reads a `CONNECT_ERROR`: `{"message": …, "data": …}`, or the legacy bare string.
    pub fn connect_error(&self) -> Option<ConnectError> {
        if self.kind != PacketKind::ConnectError {
            return None;
        }
        let json = self.data.as_ref()?;
        json.deserialize::<ConnectError>().ok().or_else(|| {
            json.deserialize::<String>()
                .ok()
                .map(|message| ConnectError {
                    message,
                    data: None,
                })
        })
    }
}

impl fmt::Display for Packet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        encode(self, &mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

/// The server's answer to a namespace `CONNECT`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ConnectAck {
    /// The socket id in this namespace (not the Engine.IO sid).
    pub sid: String,
    /// The private session id for connection state recovery, when the server enables it.
    #[serde(default)]
    pub pid: Option<String>,
}

/// The server's refusal of a namespace `CONNECT`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ConnectError {
    /// Why, in the server's words.
    pub message: String,
    /// Extra data the server attached, if any.
    #[serde(default)]
    pub data: Option<Box<serde_json::value::RawValue>>,
}

/// Decodes one socket.io packet from the text of an Engine.IO message. Never panics.
///
/// Binary packets come back with their attachment count; feed them to a [`Reassembler`] (which
/// calls this) to collect the attachments.
pub fn decode(input: &str) -> Result<Packet<'_>, DecodeError> {
    let parts = decode_parts(input)?;
    Ok(Packet {
        kind: parts.kind,
        namespace: Cow::Borrowed(parts.namespace),
        id: parts.id,
        attachments: parts.attachments,
        data: parts
            .payload_at
            .map(|at| Json::new_unchecked(input.get(at..).unwrap_or_default())),
        event: parts.event,
    })
}

/// Decodes one socket.io packet from a received message, as [`decode`] does, into a packet that
/// keeps its payload in the message's shared buffer: nothing is copied.
pub fn decode_shared(text: &engineio_codec::Text) -> Result<Packet<'static>, DecodeError> {
    let input = text.as_str();
    let parts = decode_parts(input)?;
    let data = match parts.payload_at {
        Some(at) => {
            let payload = input.get(at..).unwrap_or_default();
            Some(match text.slice_ref(payload) {
                Some(shared) => Json::held(shared),
                None => Json::new_unchecked(payload).into_owned(),
            })
        }
        None => None,
    };
    Ok(Packet {
        kind: parts.kind,
        namespace: if parts.namespace == DEFAULT_NAMESPACE {
            Cow::Borrowed(DEFAULT_NAMESPACE)
        } else {
            Cow::Owned(parts.namespace.to_owned())
        },
        id: parts.id,
        attachments: parts.attachments,
        data,
        event: parts.event.detach(Some(text)),
    })
}

/// What [`decode`] reads, before it decides how to hold the payload.
struct Parts<'a> {
    kind: PacketKind,
    namespace: &'a str,
    id: Option<u64>,
    attachments: usize,
    /// Where the JSON payload starts, if there is one.
    payload_at: Option<usize>,
    event: Name<'a>,
}

fn decode_parts(input: &str) -> Result<Parts<'_>, DecodeError> {
    let bytes = input.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err(DecodeError::new(DecodeErrorKind::Empty, 0));
    };
    let Some(kind) = PacketKind::from_char(first) else {
        return Err(DecodeError::new(
            DecodeErrorKind::UnknownType { found: first },
            0,
        ));
    };
    let mut i = 1;

    let mut attachments = 0;
    if kind.is_binary() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || bytes.get(i) != Some(&b'-') {
            return Err(DecodeError::new(DecodeErrorKind::Attachments, i));
        }
        attachments = input[start..i]
            .parse()
            .map_err(|_| DecodeError::new(DecodeErrorKind::Attachments, start))?;
        i += 1;
    }

    let mut namespace = DEFAULT_NAMESPACE;
    if bytes.get(i) == Some(&b'/') {
        let start = i;
        let end = input[start..].find(',').map_or(bytes.len(), |n| start + n);
        namespace = &input[start..end];
        i = (end + 1).min(bytes.len());
    }

    let mut id = None;
    let start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    if i > start {
        id = Some(
            input[start..i]
                .parse::<u64>()
                .map_err(|_| DecodeError::new(DecodeErrorKind::AckIdOverflow, start))?,
        );
    }

    let payload = &input[i..];
    let (payload_at, event) = if payload.is_empty() {
        let event = validate_absent(kind).map_err(|e| e.shifted(i))?;
        (None, Name::new(event, None))
    } else {
        let event = validate_payload(kind, payload).map_err(|e| e.shifted(i))?;
        (Some(i), Name::new(event, Some(payload)))
    };
    Ok(Parts {
        kind,
        namespace,
        id,
        attachments,
        payload_at,
        event,
    })
}

/// Appends the text form of `packet` to `out` (the Engine.IO message's data; attachments, if
/// any, are sent separately as binary messages).
pub fn encode(packet: &Packet<'_>, out: &mut Vec<u8>) {
    out.push(packet.kind.as_char());
    if packet.kind.is_binary() {
        write_decimal(out, packet.attachments as u64);
        out.push(b'-');
    }
    if packet.namespace != DEFAULT_NAMESPACE {
        out.extend_from_slice(packet.namespace.as_bytes());
        out.push(b',');
    }
    if let Some(id) = packet.id {
        write_decimal(out, id);
    }
    if let Some(data) = &packet.data {
        out.extend_from_slice(data.as_str().as_bytes());
    }
}

/// A namespace the text form can carry: `/`, or `/` followed by anything but `,`.
fn is_valid_namespace(namespace: &str) -> bool {
    namespace.starts_with('/') && !namespace.contains(',')
}

fn write_decimal(out: &mut Vec<u8>, n: u64) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{n}");
}

fn validate_absent(kind: PacketKind) -> Result<Option<EventName<'static>>, DecodeError> {
    match kind {
        PacketKind::Connect | PacketKind::Disconnect => Ok(None),
        _ => Err(DecodeError::new(
            DecodeErrorKind::InvalidPayload {
                expected: expected_payload(kind),
            },
            0,
        )),
    }
}

fn expected_payload(kind: PacketKind) -> &'static str {
    match kind {
        PacketKind::Connect => "CONNECT carries a JSON object or nothing",
        PacketKind::Disconnect => "DISCONNECT carries no payload",
        PacketKind::Event | PacketKind::BinaryEvent => {
            "an event is a non-empty JSON array whose first element (the name) is a string or a number"
        }
        PacketKind::Ack | PacketKind::BinaryAck => "an ack carries a JSON array",
        PacketKind::ConnectError => "CONNECT_ERROR carries a JSON object or string",
    }
}

/// Validates a payload in one pass; returns the event name for events.
fn validate_payload(kind: PacketKind, payload: &str) -> Result<Option<EventName<'_>>, DecodeError> {
    match validate_fast(kind, payload) {
        Some(name) => Ok(name),
        None => validate_with_serde(kind, payload),
    }
}

/// The common case, checked by the [`scan`] scanner: a valid payload of the right shape, and for
/// events a name that is a plain string (no escapes) and not reserved. `None` for anything else,
/// which [`validate_with_serde`] then accepts or explains.
fn validate_fast(kind: PacketKind, payload: &str) -> Option<Option<EventName<'_>>> {
    use scan::Shape;
    match (kind, scan::scan(payload)?) {
        (PacketKind::Connect, Shape::Object)
        | (PacketKind::ConnectError, Shape::Object | Shape::String)
        | (PacketKind::Ack | PacketKind::BinaryAck, Shape::Array { .. }) => Some(None),
        (
            PacketKind::Event | PacketKind::BinaryEvent,
            Shape::Array {
                first: Some((start, end)),
            },
        ) => {
            let name = payload
                .get(start..end)?
                .strip_prefix('"')?
                .strip_suffix('"')?;
            if name.contains('\\') || RESERVED_EVENTS.contains(&name) {
                return None;
            }
            Some(Some(EventName::Str(Str::from(name))))
        }
        _ => None,
    }
}

/// Validates a payload with `serde_json`, which also explains what is wrong.
fn validate_with_serde(
    kind: PacketKind,
    payload: &str,
) -> Result<Option<EventName<'_>>, DecodeError> {
    let mut de = serde_json::Deserializer::from_str(payload);
    let shape = match kind {
        PacketKind::Event | PacketKind::BinaryEvent => {
            de::Deserializer::deserialize_any(&mut de, EventVisitor).map(Shape::Event)
        }
        _ => de::Deserializer::deserialize_any(&mut de, ShapeVisitor),
    };
    let shape = shape
        .and_then(|shape| de.end().map(|()| shape))
        .map_err(|e| {
            let offset = engineio_codec::json_error_offset(payload, &e);
            let kind = if e.is_data() {
                DecodeErrorKind::InvalidPayload {
                    expected: expected_payload(kind),
                }
            } else {
                DecodeErrorKind::InvalidJson {
                    reason: e.to_string(),
                }
            };
            DecodeError::new(kind, offset)
        })?;
    let ok = matches!(
        (kind, &shape),
        (PacketKind::Connect, Shape::Object)
            | (PacketKind::ConnectError, Shape::Object | Shape::String)
            | (PacketKind::Ack | PacketKind::BinaryAck, Shape::Array)
            | (PacketKind::Event | PacketKind::BinaryEvent, Shape::Event(_))
    );
    if !ok {
        return Err(DecodeError::new(
            DecodeErrorKind::InvalidPayload {
                expected: expected_payload(kind),
            },
            0,
        ));
    }
    match shape {
        Shape::Event(name) => {
            if let EventName::Str(s) = &name
                && RESERVED_EVENTS.contains(&s.as_str())
            {
                return Err(DecodeError::new(
                    DecodeErrorKind::ReservedEvent {
                        name: s.to_string(),
                    },
                    0,
                ));
            }
            Ok(Some(name))
        }
        _ => Ok(None),
    }
}

enum Shape<'a> {
    Object,
    Array,
    String,
    Other,
    Event(EventName<'a>),
}

/// Classifies a JSON value while skipping its contents.
struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Shape::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shape::Array)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Shape::String)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
}

/// Reads `["name", args...]`: the name as a value, the arguments skipped (validated only).
struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = EventName<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let name = seq
            .next_element::<EventName<'de>>()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(name)
    }
}

/// Deserializes a sequence into `T` after skipping its first `skip` elements.
struct SkipFirst<T> {
    skip: usize,
    marker: std::marker::PhantomData<T>,
}

impl<T> SkipFirst<T> {
    fn new(skip: usize) -> Self {
        Self {
            skip,
            marker: std::marker::PhantomData,
        }
    }
}

impl<'de, T: de::Deserialize<'de>> Visitor<'de> for SkipFirst<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of arguments")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        for _ in 0..self.skip {
            seq.next_element::<IgnoredAny>()?;
        }
        T::deserialize(de::value::SeqAccessDeserializer::new(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [PacketKind; 7] = [
        PacketKind::Connect,
        PacketKind::Disconnect,
        PacketKind::Event,
        PacketKind::Ack,
        PacketKind::ConnectError,
        PacketKind::BinaryEvent,
        PacketKind::BinaryAck,
    ];

    /// Wherever the fast path answers, it answers what `serde_json` answers.
    fn check_agree(payload: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        for kind in KINDS {
            if let Some(fast) = validate_fast(kind, payload) {
                let slow = validate_with_serde(kind, payload);
                proptest::prop_assert_eq!(Ok(fast), slow, "{:?} {:?}", kind, payload);
            }
        }
        Ok(())
    }

    #[test]
    fn fast_path_takes_the_common_payloads() {
        for (kind, payload) in [
            (PacketKind::Event, r#"["status",{"state":"idle"}]"#),
            (PacketKind::Event, r#"[ "sensors" , 1 ]"#),
            (PacketKind::Ack, "[]"),
            (PacketKind::Connect, r#"{"sid":"x"}"#),
            (PacketKind::ConnectError, r#""nope""#),
        ] {
            assert!(validate_fast(kind, payload).is_some(), "{payload}");
            check_agree(payload).unwrap();
        }
        // Left to serde_json: escaped and numeric names, reserved names, wrong shapes.
        for (kind, payload) in [
            (PacketKind::Event, r#"["st\u0061tus"]"#),
            (PacketKind::Event, "[1]"),
            (PacketKind::Event, r#"["connect"]"#),
            (PacketKind::Event, "[]"),
            (PacketKind::Ack, "{}"),
        ] {
            assert!(validate_fast(kind, payload).is_none(), "{payload}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(2000))]

        #[test]
        fn fast_path_agrees_with_serde_on_json_like_text(
            payload in r#"[\[\]{}:,"\\ 0-9a-z.]{0,24}"#
        ) {
            check_agree(&payload)?;
        }

        #[test]
        fn fast_path_agrees_with_serde_on_events(
            name in "[a-z_\\\\\"]{0,8}",
            args in r#"(,("[a-z]*"|[0-9]+|\{\}|\[\]|null))*"#,
        ) {
            check_agree(&format!("[\"{name}\"{args}]"))?;
        }
    }
}
