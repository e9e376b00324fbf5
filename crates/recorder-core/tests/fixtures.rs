//! The recorder replaying the machine's streams in `fixtures/meticulous/`, on a fake clock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use meticulous::{CurrentShot, HistoryPage, MachineEvent, Sample};
use recorder_core::{
    Config, DiscardReason, EndReason, Input, Output, Recorder, ShotKey, ShotStatus,
};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/meticulous")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(serde::Deserialize)]
struct Line<'a> {
    event: String,
    at_ms: u64,
    #[serde(borrow)]
    data: &'a serde_json::value::RawValue,
}

/// An output with the fake time it came out at.
type Timed = (Duration, Output);

/// Replays a stream file; lookups are answered at once by `answer`.
fn replay(
    file: &str,
    mut answer: impl FnMut(ShotKey, Duration) -> Result<Option<CurrentShot>, String>,
) -> Vec<Timed> {
    let t0 = Instant::now();
    let mut recorder = Recorder::new(Config::default(), 1);
    let mut out: Vec<Timed> = Vec::new();
    let mut drain = |recorder: &mut Recorder, at: Duration, out: &mut Vec<Timed>| {
        while let Some(o) = recorder.poll_output() {
            if let Output::LookupCurrentShot { key } = o {
                let result = answer(key, at);
                recorder.handle_input(t0 + at, Input::CurrentShot { key, result });
            }
            out.push((at, o));
        }
    };
    let advance =
        |recorder: &mut Recorder,
         to: Duration,
         out: &mut Vec<Timed>,
         drain: &mut dyn FnMut(&mut Recorder, Duration, &mut Vec<Timed>)| {
            while let Some(due) = recorder.poll_timeout() {
                if due > t0 + to {
                    break;
                }
                recorder.handle_timeout(due);
                drain(recorder, due - t0, out);
            }
        };
    recorder.handle_input(t0, Input::Connected);
    let text = fixture(file);
    let mut last = Duration::ZERO;
    for line in text.lines() {
        let line: Line<'_> = serde_json::from_str(line).unwrap();
        let at = Duration::from_millis(line.at_ms);
        last = last.max(at);
        advance(&mut recorder, at, &mut out, &mut drain);
        let input = match line.event.as_str() {
            "_scenario" => continue,
            "_disconnect" => Input::Disconnected,
            "_connect" => Input::Connected,
            event => Input::Event {
                event: MachineEvent::parse(event, line.data.get()).unwrap(),
                unix_s: 1_767_254_400.0 + at.as_secs_f64(),
            },
        };
        recorder.handle_input(t0 + at, input);
        drain(&mut recorder, at, &mut out);
    }
    advance(
        &mut recorder,
        last + Duration::from_secs(60),
        &mut out,
        &mut drain,
    );
    out
}

fn history() -> meticulous::Entry {
    serde_json::from_str::<HistoryPage>(&fixture("meticulous_history.json"))
        .unwrap()
        .history
        .remove(0)
}

/// The samples journaled for each shot, in order.
fn journals(outputs: &[Timed]) -> BTreeMap<ShotKey, Vec<Sample>> {
    let mut j: BTreeMap<ShotKey, Vec<Sample>> = BTreeMap::new();
    for (_, o) in outputs {
        match o {
            Output::Journal { key, samples } => {
                j.entry(*key).or_default().extend(samples.iter().cloned())
            }
            Output::Merged { from, into } => {
                let moved = j.remove(from).unwrap_or_default();
                j.entry(*into).or_default().extend(moved);
            }
            _ => {}
        }
    }
    j
}

#[test]
fn the_stream_holds_exactly_one_shot_of_214_samples() {
    let current: CurrentShot =
        serde_json::from_str(&fixture("meticulous_history_current.json")).unwrap();
    let outputs = replay("meticulous_stream.jsonl", |_, _| Ok(Some(current.clone())));
    let finished: Vec<_> = outputs
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Finish(shot) => Some(shot.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(finished.len(), 1, "{outputs:#?}");
    let shot = &finished[0];
    let entry = history();
    assert_eq!(shot.samples, 214);
    assert_eq!(shot.status, ShotStatus::Complete);
    assert_eq!(shot.reason, EndReason::Finished);
    assert_eq!(shot.id.as_deref(), Some(entry.id.as_str()));
    assert_eq!(shot.started_unix_s, entry.time);
    // Nothing else started: not the pre-shot retracting, the auto purge or the manual flush.
    let started = outputs
        .iter()
        .filter(|(_, o)| matches!(o, Output::Started(_)))
        .count();
    assert_eq!(started, 1);
    assert!(
        !outputs
            .iter()
            .any(|(_, o)| matches!(o, Output::Discard { .. } | Output::Stalled { .. }))
    );
    // The journal is the machine's history: the same times, stages and shot values.
    let journal = journals(&outputs).remove(&shot.key).unwrap();
    assert_eq!(journal.len(), 214);
    for (ours, theirs) in journal.iter().zip(&entry.data) {
        assert_eq!(
            (ours.time, ours.profile_time, &ours.status),
            (theirs.time, theirs.profile_time, &theirs.status)
        );
        assert_eq!(
            serde_json::to_string(&ours.shot).unwrap(),
            serde_json::to_string(&theirs.shot).unwrap()
        );
        assert!(ours.sensors.is_some());
    }
    assert_eq!(
        journal.last().unwrap().status,
        "retracting",
        "the drip tail belongs to the shot"
    );
}

#[test]
fn samples_are_journaled_within_250_ms_in_small_batches() {
    let outputs = replay("meticulous_stream.jsonl", |_, _| Err("offline".into()));
    // When each sample's frame arrived: its `time` maps to the status frame's `at_ms`.
    let text = fixture("meticulous_stream.jsonl");
    let mut arrived: BTreeMap<i64, Duration> = BTreeMap::new();
    for line in text.lines() {
        let line: Line<'_> = serde_json::from_str(line).unwrap();
        if let Ok(MachineEvent::Status(s)) = MachineEvent::parse(&line.event, line.data.get())
            && s.extracting
        {
            arrived
                .entry(s.time)
                .or_insert(Duration::from_millis(line.at_ms));
        }
    }
    let mut journaled = 0;
    for (at, o) in &outputs {
        if let Output::Journal { samples, .. } = o {
            assert!(samples.len() <= Config::default().journal_batch);
            for s in samples {
                let waited = *at - arrived[&s.time];
                assert!(
                    waited <= Duration::from_millis(250),
                    "sample {} waited {waited:?}",
                    s.time
                );
            }
            journaled += samples.len();
        }
    }
    assert_eq!(journaled, 214);
    // Without the machine's answer the shot is kept all the same, without its UUID.
    let shot = outputs.iter().find_map(|(_, o)| match o {
        Output::Finish(s) => Some(s),
        _ => None,
    });
    assert!(shot.is_some_and(|s| s.id.is_none() && s.samples == 214));
}

#[test]
fn edge_cases_abort_restart_and_stall() {
    let mut ids = 0;
    let outputs = replay("meticulous_edgecases.jsonl", |_, _| {
        ids += 1;
        Ok(Some(CurrentShot {
            id: format!("shot-{ids}"),
            time: 1_767_254_400.0,
            profile_name: None,
            data: Vec::new(),
            profile: None,
        }))
    });
    let ends: Vec<&Output> = outputs
        .iter()
        .map(|(_, o)| o)
        .filter(|o| {
            matches!(
                o,
                Output::Finish(_) | Output::Discard { .. } | Output::Stalled { .. }
            )
        })
        .collect();
    assert_eq!(ends.len(), 4, "{ends:#?}");
    // (a) The aborted shot stays extracting through `home`, and is kept with those samples.
    let Output::Finish(aborted) = ends[0] else {
        panic!("{:?}", ends[0])
    };
    assert_eq!(
        (aborted.status, aborted.reason),
        (ShotStatus::Complete, EndReason::Finished)
    );
    assert!(aborted.samples >= 20);
    let journal = journals(&outputs);
    assert!(journal[&aborted.key].iter().any(|s| s.status == "home"));
    // (b) The backend restarts mid-shot: what was recorded is kept as partial, and nothing
    // starts on reconnect (the frames after it are not extracting).
    let Output::Finish(cut) = ends[1] else {
        panic!("{:?}", ends[1])
    };
    assert_eq!(
        (cut.status, cut.reason),
        (ShotStatus::Partial, EndReason::Disconnected)
    );
    assert!(cut.samples > 0 && cut.samples < 20);
    // (c) Identical frames: flagged as a stall after 10 s, and too short to keep.
    assert!(matches!(ends[2], Output::Stalled { .. }));
    assert!(matches!(
        ends[3],
        Output::Discard {
            reason: DiscardReason::TooShort { samples: 1, .. },
            ..
        }
    ));
    let started = outputs
        .iter()
        .filter(|(_, o)| matches!(o, Output::Started(_)))
        .count();
    assert_eq!(started, 3);
}

fn frame(time: i64, extracting: bool) -> Input {
    let json = format!(
        r#"{{"name":"Infusion","sensors":{{"p":9.0,"f":2.0,"w":1.0,"t":90.0,"g":1.0}},"time":{time},"profile_time":{time},"profile":"P","state":"brewing","extracting":{extracting}}}"#
    );
    Input::Event {
        event: MachineEvent::parse("status", &json).unwrap(),
        unix_s: 1.7e9,
    }
}

fn current(id: &str) -> Input {
    Input::CurrentShot {
        key: 0,
        result: Ok(Some(CurrentShot {
            id: id.to_owned(),
            time: 1.7e9,
            profile_name: None,
            data: Vec::new(),
            profile: None,
        })),
    }
}

/// Drives `recorder` through a shot cut by a disconnect, then a reconnect while the machine is
/// still extracting, whose lookup answers `second_id`.
fn cut_and_resume(second_id: &str) -> Vec<Output> {
    let t0 = Instant::now();
    let mut r = Recorder::new(Config::default(), 7);
    let mut out = Vec::new();
    let step = |r: &mut Recorder, ms: u64, input: Input, out: &mut Vec<Output>| {
        let input = match input {
            // Answer the shot that asked.
            Input::CurrentShot { result, .. } => Input::CurrentShot {
                key: r.current().unwrap(),
                result,
            },
            other => other,
        };
        r.handle_input(t0 + Duration::from_millis(ms), input);
        out.extend(std::iter::from_fn(|| r.poll_output()));
    };
    step(&mut r, 0, Input::Connected, &mut out);
    step(&mut r, 0, frame(0, false), &mut out);
    for i in 1..=10 {
        step(&mut r, 130 * i, frame(130 * i as i64, true), &mut out);
    }
    step(&mut r, 1400, current("shot-a"), &mut out);
    step(&mut r, 1500, Input::Disconnected, &mut out);
    step(&mut r, 5000, Input::Connected, &mut out);
    for i in 40..=60 {
        step(&mut r, 130 * i, frame(130 * i as i64, true), &mut out);
    }
    step(&mut r, 8000, current(second_id), &mut out);
    for i in 61..=70 {
        step(&mut r, 130 * i, frame(130 * i as i64, true), &mut out);
    }
    step(&mut r, 9500, frame(9100, false), &mut out);
    out
}

#[test]
fn a_reconnect_mid_shot_goes_on_recording_into_the_same_shot() {
    let out = cut_and_resume("shot-a");
    let finishes: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Finish(s) => Some(s),
            _ => None,
        })
        .collect();
    // First the cut (partial, 10 samples), then the same shot finished whole.
    assert_eq!(finishes.len(), 2);
    assert_eq!(
        (finishes[0].key, finishes[0].status, finishes[0].samples),
        (7, ShotStatus::Partial, 10)
    );
    assert!(out.contains(&Output::Merged { from: 8, into: 7 }));
    assert_eq!(
        (finishes[1].key, finishes[1].status),
        (7, ShotStatus::Complete)
    );
    assert_eq!(finishes[1].samples, 10 + 21 + 10);
    assert_eq!(finishes[1].id.as_deref(), Some("shot-a"));
    assert_eq!(
        journals(
            &out.into_iter()
                .map(|o| (Duration::ZERO, o))
                .collect::<Vec<_>>()
        )[&7]
            .len(),
        41
    );
}

#[test]
fn a_different_shot_after_a_reconnect_is_a_shot_of_its_own() {
    let out = cut_and_resume("shot-b");
    assert!(!out.iter().any(|o| matches!(o, Output::Merged { .. })));
    let finishes: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Finish(s) => Some((s.key, s.id.clone(), s.samples)),
            _ => None,
        })
        .collect();
    assert_eq!(
        finishes,
        vec![
            (7, Some("shot-a".to_owned()), 10),
            (8, Some("shot-b".to_owned()), 31)
        ]
    );
}

#[test]
fn a_key_stride_numbers_shots_apart() {
    let t0 = Instant::now();
    let mut r = Recorder::new(Config::default(), 5).with_key_stride(3);
    let mut keys = Vec::new();
    let mut ms = 0;
    let mut step = |r: &mut Recorder, input: Input| {
        ms += 130;
        r.handle_input(t0 + Duration::from_millis(ms), input);
        while let Some(o) = r.poll_output() {
            if let Output::Started(start) = o {
                keys.push(start.key);
            }
        }
    };
    step(&mut r, Input::Connected);
    for _shot in 0..3 {
        step(&mut r, frame(0, false));
        for i in 1..=30 {
            step(&mut r, frame(130 * i, true));
        }
        step(&mut r, frame(4000, false));
    }
    assert_eq!(keys, [5, 8, 11]);
}

/// A recorder started after a crash that cut shot 7 (begun at `cut_started`, this host's clock)
/// before the machine named it. The shot in progress is joined at `time` 2,600 ms, its first
/// frame arriving at 1.7e9 + 2.6 s: it began at 1.7e9. Within the tolerance it is shot 7, going
/// on (and named now); a shot that began far from it is a shot of its own.
fn resume_unnamed(cut_started: f64) -> Vec<Output> {
    let t0 = Instant::now();
    let mut r = Recorder::new(Config::default(), 20);
    r.resume_candidate(7, None, 12, cut_started);
    let mut out = Vec::new();
    let mut step = |r: &mut Recorder, ms: u64, input: Input| {
        r.handle_input(t0 + Duration::from_millis(ms), input);
        while let Some(o) = r.poll_output() {
            if let Output::LookupCurrentShot { key } = o {
                let answer = Input::CurrentShot {
                    key,
                    result: Ok(Some(CurrentShot {
                        id: "shot-a".into(),
                        // The machine's clock, which this check does not use.
                        time: 1.0e9,
                        profile_name: None,
                        data: Vec::new(),
                        profile: None,
                    })),
                };
                r.handle_input(t0 + Duration::from_millis(ms), answer);
            }
            out.push(o);
        }
    };
    step(&mut r, 0, Input::Connected);
    for i in 20..=50 {
        let time = 130 * i as i64;
        let json = format!(
            r#"{{"name":"Infusion","sensors":{{"p":9.0,"f":2.0,"w":1.0,"t":90.0,"g":1.0}},"time":{time},"profile_time":{time},"profile":"P","state":"brewing","extracting":true}}"#
        );
        let frame = Input::Event {
            event: MachineEvent::parse("status", &json).unwrap(),
            unix_s: 1.7e9 + time as f64 / 1000.0,
        };
        step(&mut r, 130 * i, frame);
    }
    step(&mut r, 7000, frame(7000, false));
    out
}

#[test]
fn a_shot_a_crash_cut_before_it_was_named_goes_on_when_it_began_alike() {
    let out = resume_unnamed(1.7e9 + 0.4);
    assert!(
        out.contains(&Output::Merged { from: 20, into: 7 }),
        "{out:?}"
    );
    assert!(out.iter().any(|o| matches!(o,
        Output::Identified { key: 7, id, .. } if id == "shot-a")));
    let finish = out.iter().find_map(|o| match o {
        Output::Finish(s) => Some(s),
        _ => None,
    });
    let finish = finish.unwrap();
    assert_eq!((finish.key, finish.samples), (7, 12 + 31));
    assert_eq!(finish.id.as_deref(), Some("shot-a"));

    let out = resume_unnamed(1.7e9 - 30.0);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Merged { .. })),
        "{out:?}"
    );
    assert!(out.iter().any(|o| matches!(o,
        Output::Identified { key: 20, id, .. } if id == "shot-a")));
}
