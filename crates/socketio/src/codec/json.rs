//! Raw JSON kept as text until a consumer asks for a type, and event names.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Visitor};

/// Valid JSON text, kept raw: borrowed from the decoded packet, or owned.
///
/// It plays the part of `&RawValue` / `Box<RawValue>`, but can borrow from a packet whose JSON
/// was already validated, without scanning it a second time.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Json<'a>(Cow<'a, str>);

impl<'a> Json<'a> {
    /// Validates `text` as one JSON value (surrounding whitespace allowed) and keeps it raw.
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<de::IgnoredAny>(text)?;
        Ok(Self(Cow::Borrowed(text)))
    }

    /// JSON the decoder has already validated.
    pub(crate) fn new_unchecked(text: &'a str) -> Self {
        Self(Cow::Borrowed(text))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Deserializes the JSON into `T`.
    pub fn deserialize<T: de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// An owned copy.
    pub fn into_owned(self) -> Json<'static> {
        Json(Cow::Owned(self.0.into_owned()))
    }

    /// The same JSON as a `serde_json` raw value.
    pub fn to_raw_value(&self) -> Box<serde_json::value::RawValue> {
        // Every `Json` holds validated JSON (parsed, decoded or serialized), so this only copies.
        serde_json::value::RawValue::from_string(self.0.trim().to_owned())
            .expect("Json always holds valid JSON")
    }
}

impl Json<'static> {
    /// Serializes `value` to JSON.
    pub fn from_value<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        Ok(Self(Cow::Owned(serde_json::to_string(value)?)))
    }
}

impl fmt::Debug for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event name: a string, or (rarely) a number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventName<'a> {
    /// `"status"`.
    Str(Cow<'a, str>),
    /// `1`: socket.io allows numeric event names.
    Number(serde_json::Number),
}

impl EventName<'_> {
    /// The name as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            EventName::Str(s) => Some(s),
            EventName::Number(_) => None,
        }
    }

    /// An owned copy.
    pub fn into_owned(self) -> EventName<'static> {
        match self {
            EventName::Str(s) => EventName::Str(Cow::Owned(s.into_owned())),
            EventName::Number(n) => EventName::Number(n),
        }
    }
}

impl<'a> From<&'a str> for EventName<'a> {
    fn from(s: &'a str) -> Self {
        EventName::Str(Cow::Borrowed(s))
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
        Ok(EventName::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(EventName::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(EventName::Str(Cow::Owned(v)))
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
