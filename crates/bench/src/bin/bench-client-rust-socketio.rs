//! `rust_socketio` 0.6 (async) consuming the blaster's stream, in a binary of its own.
//! Run by `cargo xtask bench client`: `bench-client-rust-socketio URL COUNT` prints one JSON line of figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crema_bench::{Figures, cpu_seconds, peak_rss_kb};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, count] = args.as_slice() else {
        anyhow::bail!("usage: bench-client-rust-socketio URL COUNT");
    };
    run(url, count.parse().context("COUNT")?)
}

/// rust_socketio 0.6 (async), in this process: `crema-bench client-rust-socketio URL COUNT`.
fn run(url: &str, count: u64) -> anyhow::Result<()> {
    use futures_util::FutureExt as _;
    use rust_socketio::TransportType;
    use rust_socketio::asynchronous::ClientBuilder;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let figures = rt.block_on(async {
        let received = Arc::new(AtomicU64::new(0));
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
        let (open_tx, mut open_rx) = tokio::sync::mpsc::channel::<()>(1);
        let counter = received.clone();
        let client = ClientBuilder::new(url)
            .transport_type(TransportType::Websocket)
            .on("open", move |_, _| {
                let tx = open_tx.clone();
                async move {
                    let _ = tx.send(()).await;
                }
                .boxed()
            })
            .on("sensors", move |_, _| {
                counter.fetch_add(1, Ordering::Relaxed);
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
        let cpu0 = cpu_seconds();
        client
            .emit("go", serde_json::json!({ "count": count }))
            .await?;
        done_rx.recv().await;
        let figures = Figures {
            events: received.load(Ordering::Relaxed),
            seconds: t0.elapsed().as_secs_f64(),
            cpu_seconds: cpu_seconds() - cpu0,
            peak_rss_kb: peak_rss_kb(),
        };
        let _ = client.disconnect().await;
        anyhow::Ok(figures)
    })?;
    figures.print();
    Ok(())
}
