//! `cargo xtask bench codec`: decode throughput of real-shaped Engine.IO frames
//! (`42["status",{…}]`, built from `fixtures/meticulous/meticulous_stream.jsonl`).
//!
//! Contenders, all decoding the same frames in one run:
//! * crema: `engineio_codec::decode` then `socketio_v5::codec::decode` (UTF-8 check, both packet
//!   headers, the whole JSON validated, the event name read);
//! * floor: `serde_json` validating the JSON part into `IgnoredAny`, the least a correct
//!   decoder must pay;
//! * rust_engineio 0.6: its public `Packet::try_from(Bytes)` alone (no JSON work);
//! * rust_engineio + rust_socketio 0.6 steps: rust_socketio's socket.io parser is crate-private
//!   (`pub(crate) mod packet`), so this row calls rust_engineio's decode and then makes the two
//!   JSON passes rust_socketio 0.6 makes for every event (an `IgnoredAny` validation in its
//!   `Packet::try_from`, then a `serde_json::Value` parse in `handle_event`);
//! * socketioxide-parser-common 0.17: the independent Rust server's public `decode_str`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use serde::de::IgnoredAny;
use socketioxide_core::parser::{Parse as _, ParseConfig, ParserState};

use crate::{median, read_fixture, rounds_arg};

/// One decoder under test: decodes the whole stream once per call.
type Contender<'a> = Box<dyn FnMut() + 'a>;

/// How many times each round decodes the whole stream.
const PASSES: usize = 40;

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let rounds = rounds_arg(args, 21)?;
    let frames = frames()?;
    let bytes: usize = frames.iter().map(Vec::len).sum();
    let shared: Vec<Bytes> = frames.iter().map(|f| Bytes::from(f.clone())).collect();
    let strs: Vec<socketioxide_core::Str> = frames
        .iter()
        .map(|f| socketioxide_core::Str::from(String::from_utf8(f[1..].to_vec()).expect("utf-8")))
        .collect();
    println!(
        "codec: {} frames ({} bytes, {} B median) from fixtures/meticulous/meticulous_stream.jsonl, \
         {PASSES} passes per round, {rounds} rounds, median reported",
        frames.len(),
        bytes,
        {
            let mut lens: Vec<usize> = frames.iter().map(Vec::len).collect();
            lens.sort_unstable();
            lens[lens.len() / 2]
        }
    );

    // Sanity: every contender accepts every frame, so all measure the same work.
    for f in &frames {
        crema(f).context("crema rejected a fixture frame")?;
        floor(f)?;
        rust_socketio_steps(&Bytes::from(f.clone()))?;
    }

    let config = ParseConfig::default();
    let state = ParserState::default();
    let mut contenders: Vec<(&str, Contender<'_>)> = vec![
        (
            "crema engineio-codec + socketio_v5::codec",
            Box::new(|| {
                for f in &frames {
                    black_box(crema(black_box(f)).ok());
                }
            }),
        ),
        (
            "floor: serde_json -> IgnoredAny",
            Box::new(|| {
                for f in &frames {
                    black_box(floor(black_box(f)).ok());
                }
            }),
        ),
        (
            "rust_engineio 0.6 Packet::try_from only",
            Box::new(|| {
                for b in &shared {
                    black_box(rust_engineio::Packet::try_from(black_box(b.clone())).ok());
                }
            }),
        ),
        (
            "rust_engineio + rust_socketio 0.6 JSON passes",
            Box::new(|| {
                for b in &shared {
                    black_box(rust_socketio_steps(black_box(b)).ok());
                }
            }),
        ),
        (
            "socketioxide-parser-common 0.17 decode_str",
            Box::new(|| {
                for s in &strs {
                    black_box(
                        socketioxide_parser_common::CommonParser
                            .decode_str(&config, &state, black_box(s.clone()))
                            .ok(),
                    );
                }
            }),
        ),
    ];
    // Rounds are interleaved across contenders, so a noisy moment hurts all of them alike.
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); contenders.len()];
    for round in 0..=rounds {
        for (i, (_, f)) in contenders.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..PASSES {
                f();
            }
            // Round 0 is the warm-up.
            if round > 0 {
                times[i].push(start.elapsed());
            }
        }
    }
    let rows: Vec<(&str, Duration)> = contenders
        .iter()
        .zip(&mut times)
        .map(|((name, _), t)| {
            t.sort();
            (*name, median(t))
        })
        .collect();

    // Correctness next to speed: does each decoder notice a broken payload after the name?
    let broken = br#"42["status",{"state":"idle",}]"#;
    println!(
        "rejects broken JSON after the event name: crema {}, rust_socketio steps {}, socketioxide {}",
        yes_no(crema(broken).is_err()),
        yes_no(rust_socketio_steps(&Bytes::from_static(broken)).is_err()),
        yes_no(
            socketioxide_parser_common::CommonParser
                .decode_str(
                    &config,
                    &state,
                    socketioxide_core::Str::from(
                        String::from_utf8_lossy(&broken[1..]).into_owned()
                    )
                )
                .is_err()
        ),
    );

    let total_bytes = (bytes * PASSES) as f64;
    let total_frames = (frames.len() * PASSES) as f64;
    let ours = rows[0].1;
    println!(
        "\n{:<48} {:>10} {:>12} {:>14}",
        "decoder", "MB/s", "frames/s", "crema speed ×"
    );
    for (name, t) in &rows {
        let secs = t.as_secs_f64();
        println!(
            "{:<48} {:>10.1} {:>12.0} {:>14.2}",
            name,
            total_bytes / secs / 1e6,
            total_frames / secs,
            secs / ours.as_secs_f64()
        );
    }
    let ratio = |i: usize| rows[i].1.as_secs_f64() / ours.as_secs_f64();
    println!(
        "\ncrema vs floor: {:.0} % of serde_json's IgnoredAny throughput (target ≥ 80 %)",
        ratio(1) * 100.0
    );
    println!(
        "crema vs rust_engineio + rust_socketio steps: {:.2}× (target ≥ 5×)",
        ratio(3)
    );
    println!("crema vs socketioxide-parser-common: {:.2}×", ratio(4));
    Ok(())
}

/// `42["<event>",<data>]` for every line of the stream fixture.
fn frames() -> anyhow::Result<Vec<Vec<u8>>> {
    let text = read_fixture("fixtures/meticulous/meticulous_stream.jsonl")?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)?;
            let event = v["event"].as_str().context("event name")?;
            Ok(format!("42{}", serde_json::to_string(&(event, &v["data"]))?).into_bytes())
        })
        .collect()
}

fn crema(frame: &[u8]) -> anyhow::Result<usize> {
    match engineio_codec::decode(frame)? {
        engineio_codec::Packet::Message(engineio_codec::Data::Text(text)) => {
            let packet = socketio_v5::codec::decode(text)?;
            Ok(packet
                .event_name()
                .map_or(0, |n| n.as_str().map_or(0, str::len)))
        }
        other => anyhow::bail!("not a text message: {other}"),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn floor(frame: &[u8]) -> anyhow::Result<IgnoredAny> {
    Ok(serde_json::from_slice::<IgnoredAny>(&frame[2..])?)
}

fn rust_socketio_steps(frame: &Bytes) -> anyhow::Result<usize> {
    let packet = rust_engineio::Packet::try_from(frame.clone())?;
    let text = std::str::from_utf8(&packet.data)?;
    // Type character, then the JSON (no namespace or id in these frames).
    let json = &text[1..];
    serde_json::from_str::<IgnoredAny>(json)?;
    let value: Vec<serde_json::Value> = serde_json::from_str(json)?;
    Ok(value.len())
}
