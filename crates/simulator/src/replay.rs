//! The scenarios, and the task that plays one at its real cadence (or faster).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meticulous::{HistoryPage, MachineEvent};
use serde_json::value::RawValue;
use socketioxide::SocketIo;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{Shared, SimulatorConfig, serve_namespace};

const STREAM: &str = include_str!("../../../fixtures/meticulous/meticulous_stream.jsonl");
const EDGE_CASES: &str = include_str!("../../../fixtures/meticulous/meticulous_edgecases.jsonl");
const HISTORY: &str = include_str!("../../../fixtures/meticulous/meticulous_history.json");

/// What the simulated machine does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Idle, one 28 s shot (214 samples), the auto purge, idle, a manual flush, idle.
    Normal,
    /// A manual flush alone (never a shot).
    Flush,
    /// A shot aborted early: it stays extracting through `home` until `idle`.
    Aborted,
    /// The backend restarts mid-shot: the connection drops, the machine loses the shot.
    RestartMidShot,
    /// The controller stalls mid-shot: the same frame again and again, for 12 s.
    Stalled,
}

/// One line of a stream: an event (or a `_disconnect` / `_connect` marker), when it is sent
/// (ms from the scenario's start) and its data as sent.
#[derive(Debug, Clone)]
pub struct Line {
    /// Event name.
    pub event: String,
    /// Milliseconds from the start.
    pub at_ms: u64,
    /// The event's data, raw JSON.
    pub data: Box<RawValue>,
}

#[derive(serde::Deserialize)]
struct RawLine {
    event: String,
    at_ms: u64,
    data: Box<RawValue>,
}

fn lines(text: &str) -> Vec<Line> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<RawLine>(l).ok())
        .map(|l| Line {
            event: l.event,
            at_ms: l.at_ms,
            data: l.data,
        })
        .collect()
}

/// The lines of `scenario`, timed from 0.
pub fn stream(scenario: Scenario) -> Vec<Line> {
    let mut out = match scenario {
        Scenario::Normal => lines(STREAM),
        Scenario::Flush => lines(STREAM)
            .into_iter()
            .filter(|l| l.at_ms >= 64_000)
            .collect(),
        Scenario::Aborted | Scenario::RestartMidShot | Scenario::Stalled => {
            let name = match scenario {
                Scenario::Aborted => "aborted_shot_then_home",
                Scenario::RestartMidShot => "backend_restart_mid_shot",
                _ => "esp_stall_stale_frames",
            };
            let all = lines(EDGE_CASES);
            let mut section = Vec::new();
            let mut inside = false;
            for line in all {
                if line.event == "_scenario" {
                    inside = line.data.get().trim_matches('"') == name;
                    continue;
                }
                if inside {
                    section.push(line);
                }
            }
            section
        }
    };
    if scenario == Scenario::Stalled {
        // The backend keeps re-sending the last sample at 10 Hz while the controller is stuck,
        // then the machine gives up and goes idle.
        let tail: Vec<Line> = out.iter().rev().take(2).rev().cloned().collect();
        let last = out.last().map_or(0, |l| l.at_ms);
        for tick in 1..=120u64 {
            for (i, line) in tail.iter().enumerate() {
                let mut line = line.clone();
                line.at_ms = last + tick * 100 + i as u64;
                out.push(line);
            }
        }
        let idle = lines(STREAM).into_iter().take(2).collect::<Vec<_>>();
        for (i, mut line) in idle.into_iter().enumerate() {
            line.at_ms = last + 121 * 100 + i as u64;
            out.push(line);
        }
    }
    let first = out.first().map_or(0, |l| l.at_ms);
    for line in &mut out {
        line.at_ms -= first;
    }
    out
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Plays the scenario (again and again with `repeat`), then says it is done.
pub(crate) async fn run(
    config: SimulatorConfig,
    io: SocketIo,
    machine: Shared,
    done: watch::Sender<bool>,
) {
    let profile = serde_json::from_str::<HistoryPage>(HISTORY)
        .ok()
        .and_then(|page| page.history.into_iter().next())
        .and_then(|entry| entry.profile);
    if let Ok(mut m) = machine.lock() {
        m.profile = profile;
    }
    let speed = if config.speed.is_finite() && config.speed > 0.0 {
        config.speed
    } else {
        1.0
    };
    let lines = stream(config.scenario);
    loop {
        let start = Instant::now();
        for line in &lines {
            let due = start + Duration::from_secs_f64(line.at_ms as f64 / 1000.0 / speed);
            tokio::time::sleep_until(due).await;
            match line.event.as_str() {
                "_disconnect" => {
                    if let Ok(mut m) = machine.lock() {
                        m.down = true;
                        m.restart();
                    }
                    // Every connection drops, as when the backend process dies.
                    io.close().await;
                }
                "_connect" => {
                    let firmware = machine.lock().ok().and_then(|m| m.firmware.clone());
                    serve_namespace(&io, firmware);
                    if let Ok(mut m) = machine.lock() {
                        m.down = false;
                    }
                }
                name => {
                    match MachineEvent::parse(name, line.data.get()) {
                        Ok(event) => {
                            if let Ok(mut m) = machine.lock() {
                                m.observe(&event, unix_now());
                            }
                        }
                        Err(e) => tracing::warn!("simulator: {e}"),
                    }
                    if let Err(e) = io.emit(name.to_owned(), &line.data).await {
                        tracing::debug!("simulator: emit {name}: {e}");
                    }
                }
            }
        }
        if !config.repeat {
            break;
        }
        tokio::time::sleep(config.pause.div_f64(speed)).await;
    }
    let _ = done.send(true);
}
