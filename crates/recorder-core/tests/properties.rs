//! Invariants of the recorder over arbitrary interleavings of frames, sensor events, connects,
//! disconnects, lookup answers and waits.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use meticulous::{CurrentShot, MachineEvent};
use proptest::prelude::*;
use recorder_core::{Config, Input, Output, Recorder, ShotKey, ShotStatus};

#[derive(Debug, Clone)]
enum Step {
    /// A status frame: `advance` says whether `time` moves on.
    Frame {
        advance: bool,
        extracting: bool,
        state: u8,
        after_ms: u64,
    },
    Sensors,
    Connect,
    Disconnect,
    /// Answers the oldest lookup: with shot id `id` (0 or 1), none, or an error.
    Answer {
        id: Option<u8>,
        ok: bool,
    },
    Wait {
        ms: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (any::<bool>(), prop::bool::weighted(0.7), 0u8..6, 0u64..300)
            .prop_map(|(advance, extracting, state, after_ms)| Step::Frame { advance, extracting, state, after_ms }),
        3 => Just(Step::Sensors),
        1 => Just(Step::Connect),
        1 => Just(Step::Disconnect),
        2 => (prop::option::of(0u8..2), any::<bool>()).prop_map(|(id, ok)| Step::Answer { id, ok }),
        1 => (0u64..15_000).prop_map(|ms| Step::Wait { ms }),
    ]
}

fn status(time: i64, extracting: bool, state: u8) -> MachineEvent {
    // Mostly brewing; sometimes the states that end a shot.
    let state = ["brewing", "brewing", "brewing", "idle", "purge", "home"][usize::from(state)];
    let json = format!(
        r#"{{"name":"Infusion","sensors":{{"p":-0.5,"f":2.0,"w":"NaN","t":90.0,"g":1.0}},"time":{time},"profile_time":{time},"profile":"P","state":"{state}","extracting":{extracting},"id":"profile-1"}}"#
    );
    MachineEvent::parse("status", &json).unwrap()
}

/// Runs the steps, then a disconnect and a long wait; returns every output.
fn run(steps: &[Step]) -> Vec<Output> {
    let t0 = Instant::now();
    let mut now = Duration::ZERO;
    let mut time = 0i64;
    let mut recorder = Recorder::new(Config::default(), 1);
    let mut lookups: VecDeque<ShotKey> = VecDeque::new();
    let mut out = Vec::new();
    let feed = |recorder: &mut Recorder,
                at: Duration,
                input: Option<Input>,
                out: &mut Vec<Output>,
                lookups: &mut VecDeque<ShotKey>| {
        while let Some(due) = recorder.poll_timeout() {
            if due > t0 + at {
                break;
            }
            recorder.handle_timeout(due);
            while let Some(o) = recorder.poll_output() {
                if let Output::LookupCurrentShot { key } = &o {
                    lookups.push_back(*key);
                }
                out.push(o);
            }
        }
        if let Some(input) = input {
            recorder.handle_input(t0 + at, input);
        }
        while let Some(o) = recorder.poll_output() {
            if let Output::LookupCurrentShot { key } = &o {
                lookups.push_back(*key);
            }
            out.push(o);
        }
    };
    feed(
        &mut recorder,
        now,
        Some(Input::Connected),
        &mut out,
        &mut lookups,
    );
    for s in steps {
        let input = match s {
            Step::Frame {
                advance,
                extracting,
                state,
                after_ms,
            } => {
                now += Duration::from_millis(*after_ms);
                if *advance {
                    time += 130;
                }
                Input::Event {
                    event: status(time, *extracting, *state),
                    unix_s: now.as_secs_f64(),
                }
            }
            Step::Sensors => Input::Event {
                event: MachineEvent::parse(
                    "sensors",
                    r#"{"t_ext_1":100.0,"p":300.0,"motor_temp":"NaN"}"#,
                )
                .unwrap(),
                unix_s: now.as_secs_f64(),
            },
            Step::Connect => Input::Connected,
            Step::Disconnect => Input::Disconnected,
            Step::Answer { id, ok } => {
                let Some(key) = lookups.pop_front() else {
                    continue;
                };
                let result = if *ok {
                    Ok(id.map(|id| CurrentShot {
                        id: format!("shot-{id}"),
                        time: 1.7e9,
                        profile_name: None,
                        data: Vec::new(),
                        profile: None,
                    }))
                } else {
                    Err("unreachable".to_owned())
                };
                Input::CurrentShot { key, result }
            }
            Step::Wait { ms } => {
                now += Duration::from_millis(*ms);
                feed(&mut recorder, now, None, &mut out, &mut lookups);
                continue;
            }
        };
        feed(&mut recorder, now, Some(input), &mut out, &mut lookups);
    }
    feed(
        &mut recorder,
        now,
        Some(Input::Disconnected),
        &mut out,
        &mut lookups,
    );
    feed(
        &mut recorder,
        now + Duration::from_secs(3600),
        None,
        &mut out,
        &mut lookups,
    );
    assert_eq!(
        recorder.current(),
        None,
        "nothing is recording after a disconnect"
    );
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn identical_inputs_give_identical_outputs(steps in prop::collection::vec(step(), 0..200)) {
        prop_assert_eq!(run(&steps), run(&steps));
    }

    #[test]
    fn every_sample_belongs_to_exactly_one_shot(steps in prop::collection::vec(step(), 0..300)) {
        let out = run(&steps);
        let min = Config::default().min_samples;
        // Samples journaled per key, keys open now, and how each key ended.
        let mut journaled: BTreeMap<ShotKey, usize> = BTreeMap::new();
        let mut open: BTreeSet<ShotKey> = BTreeSet::new();
        let mut kept: BTreeMap<ShotKey, usize> = BTreeMap::new();
        let mut total_journaled = 0usize;
        let mut discarded = 0usize;
        for o in &out {
            match o {
                Output::Started(s) => {
                    prop_assert!(open.insert(s.key), "key {} started twice", s.key);
                    prop_assert!(!kept.contains_key(&s.key));
                }
                Output::Journal { key, samples } => {
                    prop_assert!(open.contains(key), "journal for shot {} that is not open", key);
                    prop_assert!(!samples.is_empty());
                    *journaled.entry(*key).or_default() += samples.len();
                    total_journaled += samples.len();
                }
                Output::Merged { from, into } => {
                    prop_assert!(open.remove(from), "merge from a shot that is not open");
                    prop_assert!(kept.remove(into).is_some(), "merge into a shot that was not kept");
                    let moved = journaled.remove(from).unwrap_or(0);
                    *journaled.entry(*into).or_default() += moved;
                    open.insert(*into);
                }
                Output::Finish(shot) => {
                    prop_assert!(open.remove(&shot.key), "shot {} finished while not open", shot.key);
                    let n = journaled.get(&shot.key).copied().unwrap_or(0);
                    prop_assert_eq!(shot.samples, n, "every sample of a kept shot was journaled");
                    if shot.status == ShotStatus::Complete {
                        prop_assert!(shot.samples >= min, "complete shot with {} samples", shot.samples);
                    }
                    kept.insert(shot.key, n);
                }
                Output::Discard { key, .. } => {
                    prop_assert!(open.remove(key), "shot {} discarded while not open", key);
                    discarded += journaled.remove(key).unwrap_or(0);
                }
                Output::Identified { key, .. } | Output::LookupCurrentShot { key } | Output::Stalled { key, .. } => {
                    prop_assert!(open.contains(key), "output for shot {} that is not open", key);
                }
            }
        }
        prop_assert!(open.is_empty(), "shots left open: {:?}", open);
        // Each journaled sample ends in exactly one kept shot, or in a discarded one.
        let in_kept: usize = kept.values().sum();
        prop_assert_eq!(in_kept + discarded, total_journaled);
    }
}
