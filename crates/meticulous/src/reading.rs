//! A sensor reading as the machine writes it: a JSON number, or the string `"NaN"`.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One reading: a number kept as the machine wrote it (`0` stays `0`, `40.49` stays `40.49`), or
/// `"NaN"`, which the machine sends for a sensor without a value (the motor thermistor, an absent
/// scale). Serializes back to exactly that.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// A number.
    Number(serde_json::Number),
    /// The machine's `"NaN"`.
    NaN,
}

impl Reading {
    /// The value, `None` for `"NaN"`.
    pub fn value(&self) -> Option<f64> {
        match self {
            Reading::Number(n) => n.as_f64(),
            Reading::NaN => None,
        }
    }

    /// The reading clamped at zero as the machine clamps pressure and flow in its history: a
    /// negative number becomes the integer `0` (Python's `max(x, 0)`), anything else is kept.
    pub fn clamped_at_zero(&self) -> Reading {
        match self.value() {
            Some(v) if v < 0.0 => Reading::Number(0.into()),
            _ => self.clone(),
        }
    }
}

impl From<f64> for Reading {
    fn from(v: f64) -> Self {
        serde_json::Number::from_f64(v).map_or(Reading::NaN, Reading::Number)
    }
}

impl Serialize for Reading {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Reading::Number(n) => n.serialize(s),
            Reading::NaN => s.serialize_str("NaN"),
        }
    }
}

impl<'de> Deserialize<'de> for Reading {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ReadingVisitor)
    }
}

struct ReadingVisitor;

impl Visitor<'_> for ReadingVisitor {
    type Value = Reading;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number or the string \"NaN\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Reading, E> {
        Ok(Reading::Number(v.into()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Reading, E> {
        Ok(Reading::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Reading, E> {
        Ok(Reading::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Reading, E> {
        match v {
            "NaN" | "nan" => Ok(Reading::NaN),
            other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_form_and_nan_stays_a_string() {
        for text in ["0", "40.49", "-1", "300.0", "\"NaN\""] {
            let reading: Reading = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&reading).unwrap(), text);
        }
        let nan: Reading = serde_json::from_str("\"NaN\"").unwrap();
        assert_eq!(nan.value(), None);
        assert!(serde_json::from_str::<Reading>("\"12\"").is_err());
        assert!(serde_json::from_str::<Reading>("true").is_err());
    }

    #[test]
    fn clamping_follows_the_machine() {
        let clamp = |t: &str| {
            let r: Reading = serde_json::from_str(t).unwrap();
            serde_json::to_string(&r.clamped_at_zero()).unwrap()
        };
        assert_eq!(clamp("-0.2"), "0");
        assert_eq!(clamp("0.0"), "0.0");
        assert_eq!(clamp("3.5"), "3.5");
        assert_eq!(clamp("\"NaN\""), "\"NaN\"");
    }
}
