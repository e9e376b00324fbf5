//! `rust_socketio` 0.6 (async) consuming a load source's stream, in a binary of its own.
//! Run by `cargo xtask bench client`: `bench-client-rust-socketio URL COUNT HZ`, as
//! `bench-client-crema` (each event's arguments read into the typed `Sensors`); prints one JSON
//! line of figures.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crema_bench::{Latencies, Sensors, Usage};
use serde::Deserialize as _;

fn main() -> anyhow::Result<()> {
    let (url, count, hz) = crema_bench::client_args("bench-client-rust-socketio")?;
    run(&url, count, hz)
}

fn run(url: &str, count: u64, hz: u64) -> anyhow::Result<()> {
    use futures_util::FutureExt as _;
    use rust_socketio::asynchronous::ClientBuilder;
    use rust_socketio::{Payload, TransportType};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let figures = rt.block_on(async {
        let seen = Arc::new(Mutex::new((0u64, Latencies::new(count, hz))));
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
        let (open_tx, mut open_rx) = tokio::sync::mpsc::channel::<()>(1);
        let counter = seen.clone();
        let client = ClientBuilder::new(url)
            .transport_type(TransportType::Websocket)
            .on("open", move |_, _| {
                let tx = open_tx.clone();
                async move {
                    let _ = tx.send(()).await;
                }
                .boxed()
            })
            .on("sensors", move |payload, _| {
                if let Payload::Text(args) = payload
                    && let Some(value) = args.get(1)
                    && let Ok(sensors) = Sensors::deserialize(value)
                {
                    let mut seen = counter.lock().expect("not poisoned");
                    seen.0 += 1;
                    seen.1.event(sensors.t);
                }
                async {}.boxed()
            })
            .on("done", move |_, _| {
                let tx = done_tx.clone();
                async move {
                    let _ = tx.send(()).await;
                }
                .boxed()
            })
            .connect()
            .await?;
        let _ = tokio::time::timeout(Duration::from_secs(5), open_rx.recv()).await;
        let t0 = Instant::now();
        let usage = Usage::now();
        client
            .emit("go", serde_json::json!({ "count": count, "hz": hz }))
            .await?;
        done_rx.recv().await;
        let seconds = t0.elapsed().as_secs_f64();
        let (received, latencies) = std::mem::replace(
            &mut *seen.lock().expect("not poisoned"),
            (0, Latencies::new(0, 1)),
        );
        let figures = usage.figures(received, seconds, latencies.into_samples());
        let _ = client.disconnect().await;
        anyhow::Ok(figures)
    })?;
    figures.print();
    Ok(())
}
