//! The live socket.io events: `status` and `sensors` at about 10 Hz, and the rarer ones.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::{ModelError, RawJson, Reading, lenient_ms};

/// The machine's coarse state (`status.state`). The stage is [`Status::name`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineState {
    /// Nothing running.
    Idle,
    /// A manual flush.
    Purge,
    /// Homing the piston (also after an aborted shot).
    Home,
    /// A profile run, from `starting...` to its end (heating, the shot, retracting, auto purge).
    Brewing,
    /// A state this model does not know.
    Other(String),
}

impl MachineState {
    /// The state as the machine writes it.
    pub fn as_str(&self) -> &str {
        match self {
            MachineState::Idle => "idle",
            MachineState::Purge => "purge",
            MachineState::Home => "home",
            MachineState::Brewing => "brewing",
            MachineState::Other(s) => s,
        }
    }
}

impl fmt::Display for MachineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MachineState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "idle" => MachineState::Idle,
            "purge" => MachineState::Purge,
            "home" => MachineState::Home,
            "brewing" => MachineState::Brewing,
            _ => MachineState::Other(s),
        })
    }
}

impl Serialize for MachineState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The five shot values inside `status.sensors`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct StatusSensors {
    /// Pressure, bar.
    #[serde(default)]
    pub p: Option<Reading>,
    /// Flow, ml/s.
    #[serde(default)]
    pub f: Option<Reading>,
    /// Weight, g.
    #[serde(default)]
    pub w: Option<Reading>,
    /// Temperature, °C.
    #[serde(default)]
    pub t: Option<Reading>,
    /// Gravimetric flow, g/s.
    #[serde(default)]
    pub g: Option<Reading>,
}

/// The `status` event, about 10 times a second in every state.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Status {
    /// The stage: `idle`, `heating`, `closing valve`, the profile's own stage names, `retracting`,
    /// `purge`, … (user text: never match on it beyond the machine's own names).
    pub name: String,
    /// Pressure, flow, weight, temperature, gravimetric flow.
    #[serde(default)]
    pub sensors: StatusSensors,
    /// The active setpoints, kept as sent.
    #[serde(default)]
    pub setpoints: Option<RawJson>,
    /// Milliseconds since the extraction started; frozen after the shot, `-1` after boot.
    #[serde(deserialize_with = "lenient_ms")]
    pub time: i64,
    /// The running profile's name (`idle`, `Purge`, …).
    #[serde(default)]
    pub profile: Option<String>,
    /// Milliseconds into the profile.
    #[serde(default, deserialize_with = "lenient_ms_opt")]
    pub profile_time: Option<i64>,
    /// The coarse state.
    pub state: MachineState,
    /// Whether the machine is recording this shot into its history.
    #[serde(default)]
    pub extracting: bool,
    /// The loaded profile's name.
    #[serde(default)]
    pub loaded_profile: Option<String>,
    /// The loaded **profile's** id (not a shot id).
    #[serde(default)]
    pub id: Option<String>,
}

fn lenient_ms_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    lenient_ms(d).map(Some)
}

/// Which event a [`Sensors`] update came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorsSource {
    /// `sensors`: all 23 readings (since 2025-07), or the temperatures alone (before).
    Sensors,
    /// `comunication` (sic) (before 2025-07): the pressure sensor and the ADCs.
    Communication,
    /// `actuators` (before 2025-07): motor and band heater.
    Actuators,
    /// `accessories` (before 2025-07): the motor thermistor.
    Accessories,
}

impl SensorsSource {
    /// The source for an event name, if it carries sensor readings.
    pub fn from_event(name: &str) -> Option<Self> {
        Some(match name {
            "sensors" => SensorsSource::Sensors,
            "comunication" | "communication" => SensorsSource::Communication,
            "actuators" => SensorsSource::Actuators,
            "accessories" => SensorsSource::Accessories,
            _ => return None,
        })
    }
}

/// The machine's sensor readings under their live (short) names. Every field is optional: the
/// merged event carries all of them, the four older events a part each ([`Sensors::update`]
/// merges them).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[allow(missing_docs)]
pub struct Sensors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_ext_1: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_ext_2: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_bar_up: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_bar_mu: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_bar_md: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_bar_down: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_tube: Option<Reading>,
    /// The motor temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_motor_temp: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lam_temp: Option<Reading>,
    /// The raw pressure-sensor count (about 300), not bar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_0: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_1: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_2: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_3: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_pos: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_spd: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_pwr: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_cur: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bh_pwr: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bh_cur: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w_stat: Option<bool>,
    /// The motor **thermistor** (`motor_thermistor` in the older `accessories` event).
    #[serde(
        default,
        alias = "motor_thermistor",
        skip_serializing_if = "Option::is_none"
    )]
    pub motor_temp: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_pred: Option<Reading>,
    /// Readings this model does not know, kept as sent.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Sensors {
    /// Takes every reading `newer` has; keeps the others.
    pub fn update(&mut self, newer: Sensors) {
        macro_rules! take {
            ($($field:ident),*) => { $( if newer.$field.is_some() { self.$field = newer.$field; } )* };
        }
        take!(
            t_ext_1,
            t_ext_2,
            t_bar_up,
            t_bar_mu,
            t_bar_md,
            t_bar_down,
            t_tube,
            t_motor_temp,
            lam_temp,
            p,
            a_0,
            a_1,
            a_2,
            a_3,
            m_pos,
            m_spd,
            m_pwr,
            m_cur,
            bh_pwr,
            bh_cur,
            w_stat,
            motor_temp,
            weight_pred
        );
        self.other.extend(newer.other);
    }
}

/// A physical input: `{"type": "TARE", "time_since_last_event": 512}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Button {
    /// `ENCODER_PUSH`, `TARE`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Milliseconds since the previous input (10000 means "more").
    #[serde(default)]
    pub time_since_last_event: Option<i64>,
}

/// A `notification`. The machine sends it as a JSON **string** holding the object.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Notification {
    /// Its id.
    #[serde(default)]
    pub id: Option<String>,
    /// The text; empty (with no image) when the notification is withdrawn.
    #[serde(default)]
    pub message: Option<String>,
    /// An image, if any.
    #[serde(default)]
    pub image: Option<String>,
    /// The answers offered.
    #[serde(default)]
    pub responses: Vec<String>,
    /// When, ISO 8601.
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// A `profile` change: `{"change": "load", "profile_id": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ProfileChange {
    /// `create`, `update`, `delete`, `full_reload` or `load`.
    pub change: String,
    /// The profile concerned.
    #[serde(default)]
    pub profile_id: Option<String>,
}

/// One event from the machine, typed where this model knows it.
#[derive(Debug, Clone, PartialEq)]
pub enum MachineEvent {
    /// `status`.
    Status(Box<Status>),
    /// `sensors`, or one of the four older events that carried a part of the readings.
    Sensors {
        /// Which event.
        source: SensorsSource,
        /// The readings it carried.
        sensors: Box<Sensors>,
    },
    /// `button`.
    Button(Button),
    /// `notification`.
    Notification(Notification),
    /// `profile`.
    Profile(ProfileChange),
    /// `heater_status`: preheat seconds remaining, 0 when off (a bare number).
    HeaterStatus(f64),
    /// Anything else (`profileHover`, `settings`, `OSUpdate`, …), kept as raw JSON to forward.
    Other {
        /// The event name.
        name: String,
        /// Its first argument, raw JSON (`null` when it had none).
        data: RawJson,
    },
}

/// The longest event name a machine may send.
pub const MAX_EVENT_NAME: usize = 64;

/// Whether `name` is a plain event name: 1 to [`MAX_EVENT_NAME`] ASCII letters, digits and
/// `_ . : -` (every name the machine sends is one). Any other name is not forwarded, stored or
/// shown: it would break a stream format (a line break ends an SSE field) or a log line.
///
/// ```
/// assert!(meticulous::plain_event_name("heater_status"));
/// assert!(meticulous::plain_event_name("profileHover"));
/// assert!(!meticulous::plain_event_name("evil\nname"));
/// assert!(!meticulous::plain_event_name(""));
/// assert!(!meticulous::plain_event_name(&"a".repeat(65)));
/// ```
pub fn plain_event_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_EVENT_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

impl MachineEvent {
    /// Reads event `name` whose first argument is the JSON text `data`.
    pub fn parse(name: &str, data: &str) -> Result<Self, ModelError> {
        let error = |source: serde_json::Error| ModelError::Event {
            event: name.to_owned(),
            source,
        };
        if let Some(source) = SensorsSource::from_event(name) {
            let sensors = serde_json::from_str(data).map_err(error)?;
            return Ok(MachineEvent::Sensors { source, sensors });
        }
        Ok(match name {
            "status" => MachineEvent::Status(serde_json::from_str(data).map_err(error)?),
            "button" => MachineEvent::Button(serde_json::from_str(data).map_err(error)?),
            "notification" => {
                // A string holding JSON; an object is accepted too.
                let value: serde_json::Value = serde_json::from_str(data).map_err(error)?;
                let notification = match value {
                    serde_json::Value::String(inner) => serde_json::from_str(&inner),
                    other => serde_json::from_value(other),
                };
                MachineEvent::Notification(notification.map_err(error)?)
            }
            "profile" => MachineEvent::Profile(serde_json::from_str(data).map_err(error)?),
            "heater_status" => {
                MachineEvent::HeaterStatus(serde_json::from_str(data).map_err(error)?)
            }
            _ => MachineEvent::Other {
                name: name.to_owned(),
                data: RawJson::parse(data).map_err(error)?,
            },
        })
    }
}
