//! The model against the machine's streams and history in `fixtures/meticulous/`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use meticulous::{CurrentShot, HistoryPage, MachineEvent, Sample, Sensors};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/meticulous")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `(event, at_ms, data as JSON text)` for each line, markers (`_scenario`, …) included.
fn stream(name: &str) -> Vec<(String, u64, String)> {
    fixture(name)
        .lines()
        .map(|line| {
            // The data's own text, key order kept (a `Value` would sort the keys).
            #[derive(serde::Deserialize)]
            struct Line<'a> {
                event: String,
                at_ms: u64,
                #[serde(borrow)]
                data: &'a serde_json::value::RawValue,
            }
            let l: Line<'_> = serde_json::from_str(line).unwrap();
            (l.event, l.at_ms, l.data.get().to_owned())
        })
        .collect()
}

/// JSON text without the white space outside strings.
fn minify(text: &str) -> String {
    let (mut out, mut in_string, mut escaped) = (String::new(), false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !c.is_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

#[test]
fn every_event_of_the_streams_reads() {
    for file in ["meticulous_stream.jsonl", "meticulous_edgecases.jsonl"] {
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for (event, at, data) in stream(file) {
            if event.starts_with('_') {
                continue;
            }
            let parsed = MachineEvent::parse(&event, &data)
                .unwrap_or_else(|e| panic!("{file} at {at} ms: {e}"));
            let kind = match parsed {
                MachineEvent::Status(_) => "status",
                MachineEvent::Sensors { .. } => "sensors",
                MachineEvent::Other { .. } => "other",
                _ => "typed",
            };
            *counts.entry(kind).or_default() += 1;
        }
        assert!(
            counts["status"] > 100 && counts["sensors"] > 100,
            "{file}: {counts:?}"
        );
    }
}

#[test]
fn nan_strings_and_legacy_events_read() {
    let MachineEvent::Sensors { sensors, .. } = MachineEvent::parse(
        "sensors",
        r#"{"t_ext_1":104.9,"motor_temp":"NaN","new_one":1}"#,
    )
    .unwrap() else {
        panic!("not sensors")
    };
    assert_eq!(sensors.motor_temp.as_ref().and_then(|r| r.value()), None);
    assert_eq!(sensors.other["new_one"], 1);
    // The four older events, merged.
    let mut merged = Sensors::default();
    for (event, data) in [
        ("sensors", r#"{"t_ext_1":100.0,"t_bar_up":80.0}"#),
        ("comunication", r#"{"p":301.0,"a_0":49.0}"#),
        ("actuators", r#"{"m_pos":12.5,"bh_pwr":0.0}"#),
        ("accessories", r#"{"motor_thermistor":"NaN"}"#),
    ] {
        let MachineEvent::Sensors { sensors, .. } = MachineEvent::parse(event, data).unwrap()
        else {
            panic!("{event} is not a sensors event");
        };
        merged.update(*sensors);
    }
    let text = serde_json::to_string(&merged).unwrap();
    assert_eq!(
        text,
        r#"{"t_ext_1":100.0,"t_bar_up":80.0,"p":301.0,"a_0":49.0,"m_pos":12.5,"bh_pwr":0.0,"motor_temp":"NaN"}"#
    );
    // A notification is a JSON string holding an object; heater_status a bare number.
    let MachineEvent::Notification(n) = MachineEvent::parse(
        "notification",
        r#""{\"id\":\"n1\",\"message\":\"Descale soon\",\"responses\":[\"OK\"]}""#,
    )
    .unwrap() else {
        panic!("not a notification")
    };
    assert_eq!(n.message.as_deref(), Some("Descale soon"));
    assert_eq!(
        MachineEvent::parse("heater_status", "490.63").unwrap(),
        MachineEvent::HeaterStatus(490.63)
    );
    // Unknown events are kept raw; a wrong shape says which event.
    let MachineEvent::Other { data, .. } =
        MachineEvent::parse("profileHover", r#"{"id":"x"}"#).unwrap()
    else {
        panic!("not kept raw")
    };
    assert_eq!(data.get(), r#"{"id":"x"}"#);
    let error = MachineEvent::parse("status", r#"{"name":3}"#)
        .unwrap_err()
        .to_string();
    assert!(error.contains("\"status\""), "{error}");
}

#[test]
fn history_round_trips_byte_for_byte() {
    let text = fixture("meticulous_history.json");
    let page: HistoryPage = serde_json::from_str(&text).unwrap();
    assert_eq!(page.history.len(), 1);
    let entry = &page.history[0];
    assert_eq!(entry.data.len(), 214);
    // Each sample written back is the machine's own text (key order, 0 vs 0.0, "NaN").
    let raw: Value = serde_json::from_str(&text).unwrap();
    let raw_samples = raw["history"][0]["data"].as_array().unwrap();
    let original: Vec<&serde_json::value::RawValue> = {
        #[derive(serde::Deserialize)]
        struct Page<'a> {
            #[serde(borrow)]
            history: Vec<EntryRaw<'a>>,
        }
        #[derive(serde::Deserialize)]
        struct EntryRaw<'a> {
            #[serde(borrow)]
            data: Vec<&'a serde_json::value::RawValue>,
        }
        let page: Page<'_> = serde_json::from_str(&text).unwrap();
        page.history.into_iter().next().unwrap().data
    };
    assert_eq!(original.len(), raw_samples.len());
    for (ours, theirs) in entry.data.iter().zip(original) {
        assert_eq!(serde_json::to_string(ours).unwrap(), minify(theirs.get()));
    }
    let current: CurrentShot =
        serde_json::from_str(&fixture("meticulous_history_current.json")).unwrap();
    assert_eq!(current.id, entry.id);
    assert_eq!(current.data.len(), 60);
}

#[test]
fn a_live_frame_maps_to_the_history_sample_of_its_time() {
    let entry = serde_json::from_str::<HistoryPage>(&fixture("meticulous_history.json"))
        .unwrap()
        .history
        .remove(0);
    let by_time: BTreeMap<i64, &Sample> = entry.data.iter().map(|s| (s.time, s)).collect();
    let events = stream("meticulous_stream.jsonl");
    let mut matched = 0;
    let mut seen = std::collections::BTreeSet::new();
    for (i, (event, _, data)) in events.iter().enumerate() {
        let Ok(MachineEvent::Status(status)) = MachineEvent::parse(event, data) else {
            continue;
        };
        if !status.extracting || !seen.insert(status.time) {
            continue;
        }
        // The sensors of the same tick follow the status frame.
        let sensors =
            events[i + 1..]
                .iter()
                .find_map(|(e, _, d)| match MachineEvent::parse(e, d) {
                    Ok(MachineEvent::Sensors { sensors, .. }) => Some(*sensors),
                    _ => None,
                });
        let ours = Sample::from_live(&status, sensors.as_ref());
        let theirs = by_time[&status.time];
        // The shot values, times and stage are the machine's, clamping and number forms included.
        assert_eq!(
            serde_json::to_string(&ours.shot).unwrap(),
            serde_json::to_string(&theirs.shot).unwrap(),
            "at time {}",
            status.time
        );
        assert_eq!(
            (ours.profile_time, &ours.status),
            (theirs.profile_time, &theirs.status)
        );
        // The sensors carry the same names in the same order (their values are the fixture's noise).
        let keys = |s: &Sample| -> Vec<String> {
            let v: Value = serde_json::to_value(s.sensors.as_ref().unwrap()).unwrap();
            let text = serde_json::to_string(s.sensors.as_ref().unwrap()).unwrap();
            let mut names: Vec<(usize, String)> = v
                .as_object()
                .unwrap()
                .keys()
                .map(|k| (text.find(&format!("\"{k}\":")).unwrap(), k.clone()))
                .collect();
            names.sort();
            names.into_iter().map(|(_, k)| k).collect()
        };
        assert_eq!(keys(&ours), keys(theirs));
        matched += 1;
    }
    assert_eq!(matched, 214);
}

#[test]
fn listings_without_data_and_older_shapes_read() {
    // `dump_data=false` sends `data: null`.
    let page: HistoryPage = serde_json::from_str(
        r#"{"history":[{"id":"a","db_key":1,"time":1.5,"file":null,"debug_file":null,"name":"P","data":null,"profile":{"name":"P"}}]}"#,
    )
    .unwrap();
    assert!(page.history[0].data.is_empty());
    // A pre-2025 sample: a temperature, no setpoints, gravimetric flow or profile_time, a float time.
    let old = r#"{"shot":{"pressure":8.9,"flow":0,"weight":12.0,"temperature":92.1},"time":1200.0,"status":"Infusion"}"#;
    let sample: Sample = serde_json::from_str(old).unwrap();
    assert_eq!(sample.time, 1200);
    assert_eq!(
        serde_json::to_string(&sample).unwrap(),
        r#"{"shot":{"pressure":8.9,"flow":0,"weight":12.0,"temperature":92.1},"time":1200,"status":"Infusion"}"#
    );
}
