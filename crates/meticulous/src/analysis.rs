//! What can be said of a recorded shot, from its samples alone (pure: no IO, no clock; the
//! caller passes the shot's age). Two things:
//!
//! - [`qa`]: quality checks, each with a stable name and a sentence a person can act on:
//!   `empty_recording`, `too_short`, `sensor_dropout`, `stalled_controller`, `scale_absent`,
//!   `not_reconciled`.
//! - [`shot_facts`]: the deterministic analyzer [`SHOT_FACTS`]: total time, yield, peak and mean
//!   pressure, mean flow, time to first drip, stage durations, and a channeling hint.

use serde::Serialize;

use crate::Sample;

/// The deterministic analyzer's name, stored with its results.
pub const SHOT_FACTS: &str = "shot-facts/1";

/// Fewer samples than this make a shot too short (the recorder keeps no shorter live shot).
pub const MIN_SAMPLES: usize = 20;

/// Samples further apart than this (ms) are a sensor dropout.
pub const MAX_GAP_MS: i64 = 1000;

/// A live copy the machine's history has not replaced after this long (s) is flagged.
pub const RECONCILE_WITHIN_S: f64 = 86_400.0;

/// What the checks need besides the samples.
#[derive(Debug, Clone, Copy)]
pub struct QaShot<'a> {
    /// The samples, in order.
    pub samples: &'a [Sample],
    /// Recorded live (not imported from the machine's history).
    pub live: bool,
    /// How the recording ended (`stalled`, `finished`, …), when it was recorded live.
    pub end_reason: Option<&'a str>,
    /// How long ago the shot was pulled, seconds.
    pub age_s: f64,
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The check's stable name.
    pub check: &'static str,
    /// Whether the shot passed.
    pub passed: bool,
    /// What was found, for a person.
    pub message: String,
}

fn verdict(check: &'static str, failure: Option<String>, ok: &str) -> Verdict {
    match failure {
        Some(message) => Verdict {
            check,
            passed: false,
            message,
        },
        None => Verdict {
            check,
            passed: true,
            message: ok.to_owned(),
        },
    }
}

fn value(r: Option<&crate::Reading>) -> Option<f64> {
    r.and_then(crate::Reading::value).filter(|v| v.is_finite())
}

/// Every check, in a fixed order.
pub fn qa(shot: &QaShot<'_>) -> Vec<Verdict> {
    let samples = shot.samples;
    let has_data = samples.iter().any(|s| {
        value(s.shot.pressure.as_ref()).is_some()
            || value(s.shot.flow.as_ref()).is_some()
            || value(s.shot.weight.as_ref()).is_some()
    });
    let empty = if samples.is_empty() {
        Some("the recording has no samples".to_owned())
    } else if !has_data {
        Some(format!(
            "none of the {} samples has a pressure, flow or weight",
            samples.len()
        ))
    } else {
        None
    };
    let short = (samples.len() < MIN_SAMPLES).then(|| {
        format!(
            "{} samples, fewer than the {MIN_SAMPLES} a shot needs",
            samples.len()
        )
    });
    let gap = samples
        .windows(2)
        .map(|w| (w[1].time - w[0].time, w[0].time))
        .max_by_key(|(gap, _)| *gap)
        .filter(|(gap, _)| *gap > MAX_GAP_MS)
        .map(|(gap, at)| {
            format!(
                "no sample for {:.1} s after {:.1} s into the shot (sensor dropout)",
                gap as f64 / 1000.0,
                at as f64 / 1000.0
            )
        });
    let frozen = samples.windows(2).find(|w| w[1].time <= w[0].time);
    let stalled = match (frozen, shot.end_reason) {
        (Some(w), _) => Some(format!(
            "the controller's time stood at {:.1} s for more than one sample (stage {})",
            w[0].time as f64 / 1000.0,
            w[1].status
        )),
        (None, Some("stalled")) => {
            Some("the recording ended because the controller stopped sending samples".to_owned())
        }
        _ => None,
    };
    let scale = (!samples.is_empty()
        && samples
            .iter()
            .all(|s| value(s.shot.weight.as_ref()).is_none()))
    .then(|| "no sample has a weight: the scale was absent or never read".to_owned());
    let unreconciled = (shot.live && shot.age_s > RECONCILE_WITHIN_S).then(|| {
        format!(
            "recorded live {:.0} days ago and never replaced by the machine's own history copy",
            shot.age_s / 86_400.0
        )
    });
    vec![
        verdict("empty_recording", empty, "samples with data"),
        verdict("too_short", short, &format!("{} samples", samples.len())),
        verdict("sensor_dropout", gap, "no gap over 1 s between samples"),
        verdict(
            "stalled_controller",
            stalled,
            "the controller's time always moved on",
        ),
        verdict("scale_absent", scale, "the scale reported weights"),
        verdict(
            "not_reconciled",
            unreconciled,
            if shot.live {
                "recorded live less than a day ago, or reconciled"
            } else {
                "the machine's own history copy"
            },
        ),
    ]
}

/// A stage: its name, when it began and how long it lasted, seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    /// The stage name, as the machine reported it.
    pub name: String,
    /// When it began, seconds into the shot.
    pub start_s: f64,
    /// How long it lasted, seconds.
    pub duration_s: f64,
}

/// Where flow rose while pressure fell in the main stage: a sign of channeling.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelingHint {
    /// When it began, seconds into the shot.
    pub at_s: f64,
    /// How much flow rose (ml/s) and pressure fell (bar) over the window.
    pub flow_rise: f64,
    /// See `flow_rise`.
    pub pressure_drop: f64,
}

/// The deterministic facts of a shot ([`SHOT_FACTS`]). Values a shot lacks are `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Facts {
    /// The analyzer.
    pub analyzer: &'static str,
    /// Samples analyzed.
    pub samples: usize,
    /// The last sample's time, seconds.
    pub total_time_s: Option<f64>,
    /// The last weight, grams.
    pub yield_g: Option<f64>,
    /// The highest pressure, bar.
    pub peak_pressure_bar: Option<f64>,
    /// The mean pressure, bar.
    pub mean_pressure_bar: Option<f64>,
    /// The mean flow, ml/s.
    pub mean_flow_ml_s: Option<f64>,
    /// The first time the weight passed 0.5 g, seconds.
    pub first_drip_s: Option<f64>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
    /// The first place in the main (longest) stage where flow rose by more than 0.3 ml/s while
    /// pressure fell by more than 0.3 bar within a second.
    pub channeling: Option<ChannelingHint>,
}

/// Weight past which the first drip has fallen, grams.
pub const FIRST_DRIP_G: f64 = 0.5;

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| round(sum / n as f64))
}

/// The facts of a shot's samples.
pub fn shot_facts(samples: &[Sample]) -> Facts {
    let pressure = |s: &Sample| value(s.shot.pressure.as_ref());
    let flow = |s: &Sample| value(s.shot.flow.as_ref());
    let weight = |s: &Sample| value(s.shot.weight.as_ref());
    let secs = |ms: i64| round(ms as f64 / 1000.0);
    let mut stages: Vec<Stage> = Vec::new();
    let mut bounds: Vec<(usize, usize)> = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        match (stages.last_mut(), bounds.last_mut()) {
            (Some(stage), Some(b)) if stage.name == s.status => {
                stage.duration_s = round(secs(s.time) - stage.start_s);
                b.1 = i;
            }
            _ => {
                if let Some(stage) = stages.last_mut() {
                    stage.duration_s = round(secs(s.time) - stage.start_s);
                }
                stages.push(Stage {
                    name: s.status.clone(),
                    start_s: secs(s.time),
                    duration_s: 0.0,
                });
                bounds.push((i, i));
            }
        }
    }
    let channeling = stages
        .iter()
        .zip(&bounds)
        .max_by(|a, b| a.0.duration_s.total_cmp(&b.0.duration_s))
        .and_then(|(_, &(from, to))| {
            let main = &samples[from..=to];
            main.iter().enumerate().find_map(|(i, a)| {
                let b = main[i..]
                    .iter()
                    .take_while(|b| b.time - a.time <= 1000)
                    .last()?;
                let rise = flow(b)? - flow(a)?;
                let drop = pressure(a)? - pressure(b)?;
                (rise > 0.3 && drop > 0.3).then(|| ChannelingHint {
                    at_s: secs(a.time),
                    flow_rise: round(rise),
                    pressure_drop: round(drop),
                })
            })
        });
    Facts {
        analyzer: SHOT_FACTS,
        samples: samples.len(),
        total_time_s: samples.last().map(|s| secs(s.time)),
        yield_g: samples.iter().rev().find_map(weight).map(round),
        peak_pressure_bar: samples
            .iter()
            .filter_map(pressure)
            .reduce(f64::max)
            .map(round),
        mean_pressure_bar: mean(samples.iter().filter_map(pressure)),
        mean_flow_ml_s: mean(samples.iter().filter_map(flow)),
        first_drip_s: samples
            .iter()
            .find(|s| weight(s).is_some_and(|w| w > FIRST_DRIP_G))
            .map(|s| secs(s.time)),
        stages,
        channeling,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Reading, ShotValues};
    use proptest::prelude::*;

    fn sample(time: i64, status: u8, p: Option<f64>, f: Option<f64>, w: Option<f64>) -> Sample {
        Sample {
            shot: ShotValues {
                pressure: p.map(Reading::from),
                flow: f.map(Reading::from),
                weight: w.map(Reading::from),
                gravimetric_flow: None,
                temperature: None,
                setpoints: None,
            },
            time,
            profile_time: None,
            status: ["Preinfusion", "Infusion", "Decline"][usize::from(status % 3)].to_owned(),
            sensors: None,
        }
    }

    fn samples() -> impl Strategy<Value = Vec<Sample>> {
        prop::collection::vec(
            (
                0i64..2_000,
                0u8..3,
                prop::option::of(0.0f64..12.0),
                prop::option::of(0.0f64..8.0),
                prop::option::of(-1.0f64..60.0),
            ),
            0..80,
        )
        .prop_map(|rows| {
            let mut time = 0;
            rows.into_iter()
                .map(|(step, stage, p, f, w)| {
                    time += step;
                    sample(time, stage, p, f, w)
                })
                .collect()
        })
    }

    proptest! {
        /// Any samples: six verdicts in a fixed order, and facts whose stages tile the shot
        /// from its first sample to its last, in order, with every mean within its range.
        #[test]
        fn facts_and_verdicts_hold_for_any_samples(samples in samples(), live: bool, age in 0.0f64..1e6) {
            let verdicts = qa(&QaShot { samples: &samples, live, end_reason: None, age_s: age });
            prop_assert_eq!(verdicts.len(), 6);
            let facts = shot_facts(&samples);
            prop_assert_eq!(facts.samples, samples.len());
            if let (Some(first), Some(total)) = (samples.first(), facts.total_time_s) {
                let staged: f64 = facts.stages.iter().map(|s| s.duration_s).sum();
                prop_assert!((staged - (total - first.time as f64 / 1000.0)).abs() < 0.01 * facts.stages.len() as f64 + 1e-9);
                prop_assert!(facts.stages.windows(2).all(|w| w[0].start_s <= w[1].start_s));
            } else {
                prop_assert!(facts.stages.is_empty());
            }
            if let (Some(mean), Some(peak)) = (facts.mean_pressure_bar, facts.peak_pressure_bar) {
                prop_assert!(mean <= peak + 1e-9);
            }
            prop_assert_eq!(shot_facts(&samples), facts, "deterministic");
        }
    }
}
