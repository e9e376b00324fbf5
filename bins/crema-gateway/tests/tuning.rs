//! `[tuning]` in `crema.toml` reaches what it tunes: a `min_samples` no shot reaches discards
//! the shot the recorder would have kept, and `ws_ping_s`/`ws_silence_s` drop a browser's
//! WebSocket that answers nothing within seconds, where the defaults wait a minute. A value out
//! of range stops the gateway at start, naming the key.

mod common;

use std::time::{Duration, Instant};

use common::{brewing, eventually, request};
use futures_util::StreamExt as _;
use tokio_tungstenite::tungstenite::Message;

/// The value of the metric line `name` (with its labels) in `/metrics`.
async fn metric(addr: &str, name: &str) -> Option<f64> {
    let (_, text) = request(addr, "GET", "/metrics", "", "").await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The defaults `[tuning]` documents (the recorder crate's `Tuned`) are the fan-out's own.
#[test]
fn the_fanout_defaults_are_fanouts() {
    let (tuned, limits) = (
        recorder::config::Tuned::default(),
        fanout::ws::Limits::default(),
    );
    assert_eq!(tuned.ws_ping, limits.ping_every);
    assert_eq!(tuned.ws_silence, limits.silence);
    assert_eq!(tuned.ws_queue_bytes, limits.data_bytes);
    assert_eq!(tuned.replay_events, fanout::hub::REPLAY_RING);
    assert_eq!(tuned.subscriber_lag_events, fanout::hub::SUBSCRIBER_LAG);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuning_reaches_the_recorder_and_the_fanout() {
    let brewing = brewing(
        "[tuning]\nmin_samples = 100000\nws_ping_s = 1\nws_silence_s = 2\n",
        10.0,
    )
    .await;
    let gw = &brewing.gateway;

    // A WebSocket that never reads (so never answers a ping) is dropped after 2 s.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", gw.addr))
        .await
        .unwrap();
    let opened = Instant::now();
    eventually(Duration::from_secs(5), "the WebSocket counted", || async {
        (metric(&gw.addr, "crema_ws_connections").await == Some(1.0)).then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(10),
        "the silent WebSocket dropped",
        || async { (metric(&gw.addr, "crema_ws_connections").await == Some(0.0)).then_some(()) },
    )
    .await;
    let dropped = opened.elapsed();
    assert!(
        dropped >= Duration::from_millis(1500) && dropped < Duration::from_secs(8),
        "dropped after {dropped:?}"
    );
    // What the client reads now: the pings it never answered, then the end.
    let mut pings = 0;
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .map(|f| f.and_then(Result::ok))
    {
        match frame {
            Message::Ping(_) => pings += 1,
            Message::Close(_) => break,
            _ => {}
        }
    }
    assert!(pings >= 1, "pings every second: {pings}");

    // The shot plays through, and is discarded: it has fewer than 100,000 samples.
    let discarded = "crema_recorder_shots_discarded_total{machine=\"kitchen\"}";
    eventually(Duration::from_secs(60), "the shot discarded", || async {
        (metric(&gw.addr, discarded).await >= Some(1.0)).then_some(())
    })
    .await;
    let recorded = "crema_recorder_shots_recorded_total{machine=\"kitchen\"}";
    assert_eq!(metric(&gw.addr, recorded).await, Some(0.0));
}

#[tokio::test]
async fn a_tuning_value_out_of_range_stops_the_gateway_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("crema.toml");
    std::fs::write(&config, "[tuning]\nws_ping_s = 30\nws_silence_s = 10\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crema-gateway"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "--machine",
            "http://127.0.0.1:9",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(
            "crema.toml: tuning: ws_silence_s (10 s) must be at least 1 s longer than ws_ping_s (30 s)"
        ),
        "{said}"
    );
}
