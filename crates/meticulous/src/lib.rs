//! The Meticulous espresso machine as crema sees it: the live socket.io events (`status` and
//! `sensors` at about 10 Hz, and the rarer ones), the shot history (`/api/v1/history`), and the
//! mapping from a live frame to a history sample. Plain data: no IO.
//!
//! ```
//! use meticulous::{MachineEvent, Sample};
//!
//! let status = r#"{"name":"Infusion","sensors":{"p":-0.1,"f":2.1,"w":12.5,"t":90.1,"g":"NaN"},
//!     "setpoints":{"active":"pressure","pressure":9.0},"time":5120,"profile":"Classic",
//!     "profile_time":5120,"state":"brewing","extracting":true,"loaded_profile":"Classic",
//!     "id":"0f1c2e3d-4b5a-4c6d-8e7f-9a0b1c2d3e4f"}"#;
//! let MachineEvent::Status(status) = MachineEvent::parse("status", status).unwrap() else {
//!     unreachable!()
//! };
//! assert!(status.extracting);
//! // `status.id` is the loaded profile's id, not a shot's.
//! let sample = Sample::from_live(&status, None);
//! assert_eq!(
//!     serde_json::to_string(&sample.shot).unwrap(),
//!     r#"{"pressure":0,"flow":2.1,"weight":12.5,"gravimetric_flow":"NaN","setpoints":{"active":"pressure","pressure":9.0}}"#
//! );
//! ```
#![deny(missing_docs)]

pub mod analysis;
#[cfg(feature = "api")]
pub mod api;
mod history;
pub mod identity;
mod live;
mod reading;

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

pub use history::{CurrentShot, Entry, HistoryPage, HistorySensors, Sample, ShotValues};
pub use live::{
    Button, MAX_EVENT_NAME, MachineEvent, MachineState, Notification, ProfileChange, Sensors,
    SensorsSource, Status, StatusSensors, plain_event_name,
};
pub use reading::Reading;

/// Why a machine event or a history document could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// An event's payload does not have the shape this model expects.
    #[error("the machine's {event:?} event does not read as expected: {source}")]
    Event {
        /// The event name.
        event: String,
        /// serde_json's explanation, with the line and column.
        source: serde_json::Error,
    },
}

/// JSON kept as the machine sent it (setpoints, profiles, unknown events): same keys in the same
/// order, same numbers, without the white space between tokens (so a pretty-printed history file
/// and a compact live frame hold the same text).
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct RawJson(Box<serde_json::value::RawValue>);

impl RawJson {
    /// Validates `text` as JSON and keeps it, compact.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

/// Milliseconds as the machine writes them: an integer, or a float from older firmware.
fn lenient_ms<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f.abs() < 9.0e15 => Ok(f.round() as i64),
        _ => Err(serde::de::Error::custom(format!(
            "{n} is not a number of milliseconds"
        ))),
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        let text = raw.get();
        if !text.bytes().any(|b| b.is_ascii_whitespace()) {
            return Ok(RawJson(raw));
        }
        serde_json::value::RawValue::from_string(compact(text))
            .map(RawJson)
            .map_err(serde::de::Error::custom)
    }
}

/// Valid JSON text without the white space between its tokens.
fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}
