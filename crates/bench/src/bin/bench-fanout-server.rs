//! The crema side of `cargo xtask bench fanout`: the gateway's fan-out (`fanout::Hub` and the
//! `/ws` endpoint, with the gateway's limits) on 127.0.0.1, and a publisher the load generator
//! drives: `POST /bench/publish?rate=R&secs=S` publishes `sensors` events of about 200 bytes on
//! `machine:bench` at R per second for S seconds, then answers `{"published": N}`. Each event
//! carries its publication time (`"t"`, Unix nanoseconds) for the latency figures.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::routing::post;
use fanout::Hub;
use fanout::ws::{Limits, WsState};
use serde_json::value::RawValue;

#[derive(serde::Deserialize)]
struct Publish {
    rate: f64,
    secs: f64,
}

/// A `sensors` event like the machine's, stamped with the time it is published.
fn event(seq: u64) -> Box<RawValue> {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let text = format!(
        r#"{{"t":{t},"n":{seq},"p":9.12,"f":2.31,"w":18.4,"g":1.98,"temp":92.6,"stage":"infusion"}}"#
    );
    RawValue::from_string(text).expect("valid JSON")
}

async fn publish(State(hub): State<Arc<Hub>>, Query(q): Query<Publish>) -> String {
    let start = Instant::now();
    let mut done: u64 = 0;
    let total = (q.rate * q.secs).round() as u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while done < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * q.rate) as u64).min(total);
        while done < due {
            done += 1;
            hub.publish("machine:bench", "sensors", &event(done), SystemTime::now());
        }
    }
    format!("{{\"published\":{done}}}")
}

fn main() -> anyhow::Result<()> {
    let threads: usize = std::env::var("CREMA_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // The gateway's own settings (bins/crema-gateway/src/main.rs).
        let mut hub = Hub::new(1, 1024, 4096);
        if let Some(us) = std::env::var("CREMA_BENCH_PACE_US")
            .ok()
            .and_then(|p| p.parse().ok())
        {
            hub = hub.with_pace(Duration::from_micros(us));
        }
        let hub = Arc::new(hub);
        // The topic the load generator subscribes to, before its first event.
        hub.declare("machine:bench");
        let ws = WsState::new(hub.clone(), Limits::default());
        let app = fanout::ws::router(ws).merge(
            axum::Router::new()
                .route("/bench/publish", post(publish))
                .with_state(hub),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening {}", listener.local_addr()?.port());
        axum::serve(fanout::ws::listener(listener), app).await?;
        anyhow::Ok(())
    })
}
