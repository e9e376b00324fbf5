//! crema's `socketio_v5::Client` consuming a load source's stream, in a binary of its own.
//! Run by `cargo xtask bench client`: `bench-client-crema URL COUNT HZ` asks for COUNT events at
//! HZ (0: as fast as the server sends), deserializes each into the typed `Sensors` an
//! application would use, and prints one JSON line of figures. `CREMA_BENCH_COALESCING_US`
//! sets the receive coalescing bound (the library's default otherwise);
//! `CREMA_BENCH_DECODE=count` counts events without deserializing them.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use crema_bench::{Latencies, Sensors, Usage};

fn main() -> anyhow::Result<()> {
    let (url, count, hz) = crema_bench::client_args("bench-client-crema")?;
    run(&url, count, hz)
}

fn run(url: &str, count: u64, hz: u64) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let figures = rt.block_on(async {
        // `count`: events are counted, not deserialized (the figure of earlier reports).
        let count_only = std::env::var("CREMA_BENCH_DECODE").is_ok_and(|v| v == "count");
        // The harness also runs this client with coalescing off, to show what it buys.
        let coalescing = std::env::var("CREMA_BENCH_COALESCING_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(
                engineio_client::DEFAULT_RECEIVE_COALESCING,
                Duration::from_micros,
            );
        let config = socketio_v5::ClientConfig::new(url)?.engine(|e| {
            e.transport(engineio_client::TransportMode::WebSocket)
                .receive_coalescing(coalescing)
        });
        let client = socketio_v5::Client::new(config);
        let (socket, mut events) = client.socket("/", socketio_v5::Auth::None).await?;
        let mut received = 0u64;
        let mut latencies = Latencies::new(count, hz);
        let mut start = None;
        let mut batch = Vec::with_capacity(64);
        'outer: while events.recv_many(&mut batch, 64).await > 0 {
            for event in batch.drain(..) {
                match event {
                    socketio_v5::Event::Connect { .. } => {
                        start = Some((Instant::now(), Usage::now()));
                        socket
                            .emit("go", (serde_json::json!({ "count": count, "hz": hz }),))
                            .await?;
                    }
                    socketio_v5::Event::Message(event) => {
                        if event.name().as_str() == Some("done") {
                            break 'outer;
                        }
                        if !count_only {
                            let (_, sensors): (u32, Sensors) = event.args()?;
                            latencies.event(sensors.t);
                        }
                        received += 1;
                    }
                    _ => {}
                }
            }
        }
        let (t0, usage) = start.context("never connected")?;
        let seconds = t0.elapsed().as_secs_f64();
        client.close();
        anyhow::Ok(usage.figures(received, seconds, latencies.into_samples()))
    })?;
    figures.print();
    Ok(())
}
