//! Raw JSON kept as text until a consumer asks for a type, and event names.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use engineio_codec::Text;
use serde::de::{self, Visitor};

/// Text borrowed from a decoded message, or held (owned or shared) in a reference-counted buffer.
///
/// Packets decoded from a received [`Text`] keep their JSON and event name in the message's own
/// buffer ([`Str::into_shared`]): nothing is copied on the way to the consumer.
#[derive(Clone)]
pub struct Str<'a>(Repr<'a>);

#[derive(Clone)]
enum Repr<'a> {
    Borrowed(&'a str),
    Held(Text),
}

impl<'a> Str<'a> {
    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Borrowed(s) => s,
            Repr::Held(t) => t.as_str(),
        }
    }

    /// A copy that no longer borrows (text already held is shared, not copied).
    pub fn into_owned(self) -> Str<'static> {
        match self.0 {
            Repr::Borrowed(s) => Str(Repr::Held(Text::from(s))),
            Repr::Held(t) => Str(Repr::Held(t)),
        }
    }

    /// A copy that no longer borrows, sharing `source`'s buffer when this text is a part of it
    /// (no copy); otherwise as [`Str::into_owned`].
    pub fn into_shared(self, source: &Text) -> Str<'static> {
        match self.0 {
            Repr::Borrowed(s) => match source.slice_ref(s) {
                Some(t) => Str(Repr::Held(t)),
                None => Str(Repr::Held(Text::from(s))),
            },
            Repr::Held(t) => Str(Repr::Held(t)),
        }
    }
}

impl Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Str<'_> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl<'a> From<&'a str> for Str<'a> {
    fn from(s: &'a str) -> Self {
        Str(Repr::Borrowed(s))
    }
}

impl From<String> for Str<'static> {
    fn from(s: String) -> Self {
        Str(Repr::Held(Text::from(s)))
    }
}

impl From<Text> for Str<'static> {
    fn from(t: Text) -> Self {
        Str(Repr::Held(t))
    }
}

impl PartialEq for Str<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Str<'_> {}

impl PartialEq<str> for Str<'_> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Str<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Hash for Str<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Valid JSON text, kept raw: borrowed from the decoded packet, or held.
///
/// It plays the part of `&RawValue` / `Box<RawValue>`, but can borrow from a packet whose JSON
/// was already validated, without scanning it a second time, and share a received message's
/// buffer instead of copying it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Json<'a>(Str<'a>);

impl<'a> Json<'a> {
    /// Validates `text` as one JSON value (surrounding whitespace allowed) and keeps it raw.
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<de::IgnoredAny>(text)?;
        Ok(Self(Str::from(text)))
    }

    /// JSON the decoder has already validated.
    pub(crate) fn new_unchecked(text: &'a str) -> Self {
        Self(Str::from(text))
    }

    /// Validated JSON held in a shared buffer.
    pub(crate) fn held(text: Text) -> Json<'static> {
        Json(Str::from(text))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Deserializes the JSON into `T`.
    pub fn deserialize<T: de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.as_str())
    }

    /// An owned copy.
    pub fn into_owned(self) -> Json<'static> {
        Json(self.0.into_owned())
    }

    /// An owned value sharing `source`'s buffer when the JSON was decoded from it.
    pub fn into_shared(self, source: &Text) -> Json<'static> {
        Json(self.0.into_shared(source))
    }

    /// The same JSON as a `serde_json` raw value.
    pub fn to_raw_value(&self) -> Box<serde_json::value::RawValue> {
        // Every `Json` holds validated JSON (parsed, decoded or serialized), so this only copies.
        serde_json::value::RawValue::from_string(self.as_str().trim().to_owned())
            .expect("Json always holds valid JSON")
    }
}

impl Json<'static> {
    /// Serializes `value` to JSON.
    pub fn from_value<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        Ok(Self(Str::from(serde_json::to_string(value)?)))
    }
}

impl fmt::Debug for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event name: a string, or (rarely) a number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventName<'a> {
    /// `"status"`.
    Str(Str<'a>),
    /// `1`: socket.io allows numeric event names.
    Number(serde_json::Number),
}

impl EventName<'_> {
    /// The name as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            EventName::Str(s) => Some(s.as_str()),
            EventName::Number(_) => None,
        }
    }

    /// An owned copy.
    pub fn into_owned(self) -> EventName<'static> {
        match self {
            EventName::Str(s) => EventName::Str(s.into_owned()),
            EventName::Number(n) => EventName::Number(n),
        }
    }

    /// An owned value sharing `source`'s buffer when the name was decoded from it.
    pub fn into_shared(self, source: &Text) -> EventName<'static> {
        match self {
            EventName::Str(s) => EventName::Str(s.into_shared(source)),
            EventName::Number(n) => EventName::Number(n),
        }
    }
}

impl<'a> From<&'a str> for EventName<'a> {
    fn from(s: &'a str) -> Self {
        EventName::Str(Str::from(s))
    }
}

impl fmt::Display for EventName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventName::Str(s) => f.write_str(s),
            EventName::Number(n) => write!(f, "{n}"),
        }
    }
}

impl<'de> de::Deserialize<'de> for EventName<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EventNameVisitor)
    }
}

struct EventNameVisitor;

impl<'de> Visitor<'de> for EventNameVisitor {
    type Value = EventName<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event name (a string or a number)")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(EventName::Str(Str::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(EventName::Str(Str::from(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(EventName::Str(Str::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(EventName::Number(v.into()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(EventName::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        serde_json::Number::from_f64(v)
            .map(EventName::Number)
            .ok_or_else(|| E::custom("event name is not a finite number"))
    }
}
