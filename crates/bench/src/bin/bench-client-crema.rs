//! crema's `socketio::Client` consuming the blaster's stream, in a binary of its own.
//! Run by `cargo xtask bench client`: `bench-client-crema URL COUNT` prints one JSON line of figures.

use std::time::Instant;

use anyhow::Context as _;
use crema_bench::{Figures, cpu_seconds, peak_rss_kb};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, count] = args.as_slice() else {
        anyhow::bail!("usage: bench-client-crema URL COUNT");
    };
    run(url, count.parse().context("COUNT")?)
}

/// Our client, in this process: `crema-bench client-crema URL COUNT`.
fn run(url: &str, count: u64) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let figures = rt.block_on(async {
        let config = socketio::ClientConfig::new(url)?
            .engine(|e| e.transport(engineio_client::TransportMode::WebSocket));
        let client = socketio::Client::new(config);
        let (socket, mut events) = client.socket("/", socketio::Auth::None).await?;
        let mut received = 0u64;
        let mut start = None;
        let mut batch = Vec::with_capacity(64);
        'outer: while events.recv_many(&mut batch, 64).await > 0 {
            for event in batch.drain(..) {
                match event {
                    socketio::Event::Connect { .. } => {
                        start = Some((Instant::now(), cpu_seconds()));
                        socket
                            .emit("go", (serde_json::json!({ "count": count }),))
                            .await?;
                    }
                    socketio::Event::Message(event) => {
                        if event.name().as_str() == Some("done") {
                            break 'outer;
                        }
                        received += 1;
                    }
                    _ => {}
                }
            }
        }
        let (t0, cpu0) = start.context("never connected")?;
        client.close();
        anyhow::Ok(Figures {
            events: received,
            seconds: t0.elapsed().as_secs_f64(),
            cpu_seconds: cpu_seconds() - cpu0,
            peak_rss_kb: peak_rss_kb(),
        })
    })?;
    figures.print();
    Ok(())
}
