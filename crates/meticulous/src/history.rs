//! The machine's shot history (`/api/v1/history`), and the live → history sample mapping.

use serde::{Deserialize, Serialize};

use crate::live::{Sensors, Status};
use crate::{RawJson, Reading, lenient_ms};

/// One saved shot, as `GET /api/v1/history` lists it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Entry {
    /// The shot's UUID.
    pub id: String,
    /// The machine's database key.
    #[serde(default)]
    pub db_key: Option<i64>,
    /// When the shot started, Unix seconds.
    pub time: f64,
    /// The machine's file for the shot.
    #[serde(default)]
    pub file: Option<String>,
    /// The machine's debug file, if any.
    #[serde(default)]
    pub debug_file: Option<String>,
    /// The profile's name.
    pub name: String,
    /// The samples (empty when listed with `dump_data=false`, which sends `null`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub data: Vec<Sample>,
    /// The profile the shot ran, kept as sent.
    #[serde(default)]
    pub profile: Option<RawJson>,
}

/// `GET /api/v1/history` answers `{"history": [entry, …]}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct HistoryPage {
    /// Newest first.
    pub history: Vec<Entry>,
}

/// The shot in progress, as `GET /api/v1/history/current` returns it (`null` between shots).
/// The same shape as [`Entry`] but for `profile_name` in place of `name`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct CurrentShot {
    /// The shot's UUID: the id its history entry will have.
    pub id: String,
    /// When the shot started, Unix seconds.
    pub time: f64,
    /// The profile's name.
    #[serde(default)]
    pub profile_name: Option<String>,
    /// The samples so far.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub data: Vec<Sample>,
    /// The profile, kept as sent.
    #[serde(default)]
    pub profile: Option<RawJson>,
}

/// One sample of a shot, in the history's shape. Older shots lack `profile_time`, the setpoints
/// or some sensors: those stay absent, and absent fields are not written back.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Sample {
    /// The shot values.
    pub shot: ShotValues,
    /// Milliseconds since the extraction started.
    #[serde(deserialize_with = "lenient_ms")]
    pub time: i64,
    /// Milliseconds into the profile.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_ms_opt"
    )]
    pub profile_time: Option<i64>,
    /// The stage name.
    pub status: String,
    /// The sensor readings under their history (long) names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensors: Option<HistorySensors>,
}

fn lenient_ms_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    lenient_ms(d).map(Some)
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Sample>, D::Error> {
    Ok(Option::<Vec<Sample>>::deserialize(d)?.unwrap_or_default())
}

/// Pressure (bar), flow (ml/s), weight (g), gravimetric flow (g/s) and the setpoints. Shots
/// from before 2025 carry a temperature and no gravimetric flow or setpoints; what a sample
/// lacks stays absent when written back.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ShotValues {
    /// Bar, never below 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure: Option<Reading>,
    /// ml/s, never below 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<Reading>,
    /// Grams on the scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Reading>,
    /// g/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gravimetric_flow: Option<Reading>,
    /// °C, in older shots only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Reading>,
    /// The setpoints, kept as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setpoints: Option<RawJson>,
}

/// The sensor readings under the names the history uses, in its order.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[allow(missing_docs)]
pub struct HistorySensors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_1: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_2: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bar_up: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bar_mid_up: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bar_mid_down: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bar_down: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tube: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motor_temp: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lam_temp: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motor_position: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motor_speed: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motor_power: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motor_current: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandheater_power: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandheater_current: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure_sensor: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adc_0: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adc_1: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adc_2: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adc_3: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub water_status: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motor_thermistor: Option<Reading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_prediction: Option<Reading>,
}

impl From<&Sensors> for HistorySensors {
    /// The live names → the history names (`t_bar_up` → `bar_up`, `p` → `pressure_sensor`,
    /// `motor_temp` → `motor_thermistor`, `t_motor_temp` → `motor_temp`, …).
    fn from(s: &Sensors) -> Self {
        HistorySensors {
            external_1: s.t_ext_1.clone(),
            external_2: s.t_ext_2.clone(),
            bar_up: s.t_bar_up.clone(),
            bar_mid_up: s.t_bar_mu.clone(),
            bar_mid_down: s.t_bar_md.clone(),
            bar_down: s.t_bar_down.clone(),
            tube: s.t_tube.clone(),
            motor_temp: s.t_motor_temp.clone(),
            lam_temp: s.lam_temp.clone(),
            motor_position: s.m_pos.clone(),
            motor_speed: s.m_spd.clone(),
            motor_power: s.m_pwr.clone(),
            motor_current: s.m_cur.clone(),
            bandheater_power: s.bh_pwr.clone(),
            bandheater_current: s.bh_cur.clone(),
            pressure_sensor: s.p.clone(),
            adc_0: s.a_0.clone(),
            adc_1: s.a_1.clone(),
            adc_2: s.a_2.clone(),
            adc_3: s.a_3.clone(),
            water_status: s.w_stat,
            motor_thermistor: s.motor_temp.clone(),
            weight_prediction: s.weight_pred.clone(),
        }
    }
}

impl Sample {
    /// The history sample the machine writes for a live `status` frame and the sensor readings
    /// of the same tick: pressure and flow clamped at 0 as the machine clamps them, the stage
    /// name as `status`, the sensors under their long names.
    pub fn from_live(status: &Status, sensors: Option<&Sensors>) -> Sample {
        let s = &status.sensors;
        Sample {
            shot: ShotValues {
                pressure: s.p.as_ref().map(Reading::clamped_at_zero),
                flow: s.f.as_ref().map(Reading::clamped_at_zero),
                weight: s.w.clone(),
                gravimetric_flow: s.g.clone(),
                temperature: None,
                setpoints: status.setpoints.clone(),
            },
            time: status.time,
            profile_time: status.profile_time,
            status: status.name.clone(),
            sensors: sensors.map(HistorySensors::from),
        }
    }
}
