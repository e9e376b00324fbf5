//! QA checks and `shot-facts/1` on the fixture shot (clean) and on shots built from it with one
//! defect each: each defect is found by its check, and the clean shot passes every check.

use meticulous::analysis::{QaShot, qa, shot_facts};
use meticulous::{HistoryPage, Reading, Sample};

fn fixture() -> Vec<Sample> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/meticulous/meticulous_history.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str::<HistoryPage>(&text)
        .unwrap()
        .history
        .remove(0)
        .data
}

fn shot(samples: &[Sample]) -> QaShot<'_> {
    QaShot {
        samples,
        live: true,
        end_reason: Some("finished"),
        age_s: 60.0,
    }
}

/// The names of the checks that failed.
fn failed(shot: &QaShot<'_>) -> Vec<&'static str> {
    qa(shot)
        .into_iter()
        .filter(|v| !v.passed)
        .map(|v| v.check)
        .collect()
}

#[test]
fn the_clean_fixture_shot_passes_every_check() {
    let samples = fixture();
    let verdicts = qa(&shot(&samples));
    assert_eq!(
        verdicts.iter().map(|v| v.check).collect::<Vec<_>>(),
        [
            "empty_recording",
            "too_short",
            "sensor_dropout",
            "stalled_controller",
            "scale_absent",
            "not_reconciled"
        ]
    );
    assert!(verdicts.iter().all(|v| v.passed), "{verdicts:#?}");
    // A history copy is never "not reconciled", however old.
    let old = QaShot {
        live: false,
        age_s: 1e9,
        ..shot(&samples)
    };
    assert!(failed(&old).is_empty());
}

#[test]
fn each_defect_is_found_by_its_check() {
    let clean = fixture();
    assert_eq!(
        failed(&shot(&[])),
        ["empty_recording", "too_short"],
        "no samples"
    );
    let mut no_data = clean.clone();
    for s in &mut no_data {
        (s.shot.pressure, s.shot.flow, s.shot.weight) = (None, None, Some(Reading::NaN));
    }
    assert_eq!(failed(&shot(&no_data)), ["empty_recording", "scale_absent"]);
    assert_eq!(failed(&shot(&clean[..12])), ["too_short"]);

    let dropout: Vec<Sample> = clean
        .iter()
        .filter(|s| !(5_000..7_000).contains(&s.time))
        .cloned()
        .collect();
    let verdicts = qa(&shot(&dropout));
    let v = verdicts
        .iter()
        .find(|v| v.check == "sensor_dropout")
        .unwrap();
    assert!(!v.passed && v.message.contains("no sample for 2."), "{v:?}");
    assert_eq!(failed(&shot(&dropout)), ["sensor_dropout"]);

    let mut frozen = clean.clone();
    let repeated = frozen[100].clone();
    frozen.insert(101, repeated);
    assert_eq!(failed(&shot(&frozen)), ["stalled_controller"]);
    let ended_stalled = QaShot {
        end_reason: Some("stalled"),
        ..shot(&clean)
    };
    assert_eq!(failed(&ended_stalled), ["stalled_controller"]);

    let mut no_scale = clean.clone();
    for s in &mut no_scale {
        s.shot.weight = None;
    }
    assert_eq!(failed(&shot(&no_scale)), ["scale_absent"]);

    let unreconciled = QaShot {
        age_s: 2.0 * 86_400.0,
        ..shot(&clean)
    };
    let verdicts = qa(&unreconciled);
    let v = verdicts
        .iter()
        .find(|v| v.check == "not_reconciled")
        .unwrap();
    assert!(!v.passed && v.message.contains("2 days"), "{v:?}");
}

#[test]
fn shot_facts_of_the_fixture() {
    let samples = fixture();
    let facts = shot_facts(&samples);
    assert_eq!(facts.analyzer, "shot-facts/1");
    assert_eq!(facts.samples, 214);
    assert_eq!(facts.total_time_s, Some(28.268));
    let names: Vec<&str> = facts.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Preinfusion", "Infusion", "retracting"]);
    let staged: f64 = facts.stages.iter().map(|s| s.duration_s).sum();
    assert!(
        (staged - 28.268).abs() < 0.01,
        "stages cover the shot: {staged}"
    );
    let last_weight = samples
        .iter()
        .rev()
        .find_map(|s| s.shot.weight.as_ref().and_then(Reading::value))
        .unwrap();
    assert_eq!(facts.yield_g, Some((last_weight * 1000.0).round() / 1000.0));
    let drip = facts.first_drip_s.unwrap();
    let before = samples.iter().filter(|s| (s.time as f64) < drip * 1000.0);
    assert!(
        before.clone().all(|s| s
            .shot
            .weight
            .as_ref()
            .and_then(Reading::value)
            .unwrap_or(0.0)
            <= 0.5),
        "no drip before {drip} s"
    );
    let peak = facts.peak_pressure_bar.unwrap();
    assert!(
        peak >= facts.mean_pressure_bar.unwrap() && peak < 15.0,
        "{peak}"
    );
    assert!(facts.mean_flow_ml_s.unwrap() > 0.0);
    // Deterministic: the same samples, the same facts.
    assert_eq!(shot_facts(&samples), facts);
}

#[test]
fn flow_rising_while_pressure_falls_in_the_main_stage_is_a_channeling_hint() {
    let clean = fixture();
    assert!(
        shot_facts(&clean).channeling.is_none(),
        "the fixture shot is clean"
    );
    let mut channeled = clean.clone();
    // From 15 s into the Infusion stage: pressure sags while flow surges.
    for s in channeled
        .iter_mut()
        .filter(|s| s.time >= 15_000 && s.status == "Infusion")
    {
        let t = (s.time - 15_000) as f64 / 1000.0;
        s.shot.pressure = Some(Reading::from((8.5 - t).max(2.0)));
        s.shot.flow = Some(Reading::from(2.0 + t));
    }
    let hint = shot_facts(&channeled).channeling.expect("a hint");
    // The first one-second window that sees the surge begins up to a second before it.
    assert!((14.0..16.0).contains(&hint.at_s), "{hint:?}");
    assert!(hint.flow_rise > 0.3 && hint.pressure_drop > 0.3);
}
