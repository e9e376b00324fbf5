//! `tail`: watch a socket.io device from the terminal.
//!
//! ```text
//! cargo run --example tail -- http://meticulous.local --transport websocket
//! tail <URL> [--transport polling|websocket|upgrade] [--namespace NS] [--auth JSON]
//!            [--emit EVENT[=JSON]] [--until EVENT] [--quiet]
//! ```
//!
//! Prints each received event as one JSON line `{"event": NAME, "args": [...]}`. `--emit` sends
//! one event once connected (JSON: one argument, or an array of arguments); `--until` exits 0
//! when that event arrives; `--quiet` prints only a final line with the count and the rate. It
//! reconnects by itself when the server goes away and comes back. Logs go to stderr
//! (`RUST_LOG=info` for more).

use std::io::Write as _;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use engineio_client::TransportMode;
use serde_json::Value;
use socketio_v5::{Auth, Client, ClientConfig, Event};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Transport {
    Polling,
    Websocket,
    Upgrade,
}

/// Watch a socket.io server's events, one JSON line each.
#[derive(Debug, Parser)]
#[command(name = "tail")]
struct Args {
    /// The server, e.g. http://127.0.0.1:8080
    url: String,
    /// Which transports to use.
    #[arg(long, value_enum, default_value = "upgrade")]
    transport: Transport,
    /// The namespace to join.
    #[arg(long, default_value = "/")]
    namespace: String,
    /// The CONNECT auth payload, a JSON object.
    #[arg(long)]
    auth: Option<String>,
    /// Send EVENT (with JSON arguments) once connected.
    #[arg(long, value_name = "EVENT[=JSON]")]
    emit: Option<String>,
    /// Exit 0 when this event arrives.
    #[arg(long, value_name = "EVENT")]
    until: Option<String>,
    /// Print only a final line with the count and the rate.
    #[arg(long)]
    quiet: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let auth = match &args.auth {
        Some(text) => Auth::Static(
            serde_json::from_str(text).map_err(|e| format!("--auth is not JSON: {e}"))?,
        ),
        None => Auth::None,
    };
    let emit = match &args.emit {
        Some(spec) => Some(match spec.split_once('=') {
            Some((name, json)) => {
                let value: Value =
                    serde_json::from_str(json).map_err(|e| format!("--emit JSON: {e}"))?;
                let args = match value {
                    Value::Array(items) => items,
                    other => vec![other],
                };
                (name.to_owned(), args)
            }
            None => (spec.clone(), Vec::new()),
        }),
        None => None,
    };
    let mode = match args.transport {
        Transport::Polling => TransportMode::Polling,
        Transport::Websocket => TransportMode::WebSocket,
        Transport::Upgrade => TransportMode::PollingThenUpgrade,
    };
    let client = Client::new(ClientConfig::new(&args.url)?.engine(|e| e.transport(mode)));
    let (socket, mut events) = client.socket(&args.namespace, auth).await?;

    let started = Instant::now();
    let mut count: u64 = 0;
    let mut emitted = false;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let code = loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = &mut interrupted => break 130,
        };
        match event {
            Some(Event::Connect { sid, recovered }) => {
                tracing::info!(%sid, recovered, "connected to {}", args.namespace);
                if let (Some((name, values)), false) = (&emit, emitted) {
                    socket.emit(name, values.clone()).await?;
                    emitted = true;
                }
            }
            Some(Event::Message(event)) => {
                count += 1;
                let name = event.name().to_string();
                if !args.quiet {
                    writeln!(
                        out,
                        r#"{{"event":{},"args":{}}}"#,
                        Value::from(name.as_str()),
                        event.raw_args()?
                    )?;
                    out.flush()?;
                }
                if args.until.as_deref() == Some(name.as_str()) {
                    break 0;
                }
            }
            Some(Event::Disconnect(reason)) => eprintln!("disconnected: {reason}"),
            Some(Event::ConnectError { message, data }) => {
                eprintln!("refused: {message} {}", data.unwrap_or_default());
                break 1;
            }
            Some(_) => {}
            None => break 1,
        }
    };
    let secs = started
        .elapsed()
        .as_secs_f64()
        .max(Duration::from_millis(1).as_secs_f64());
    if args.quiet {
        writeln!(
            out,
            r#"{{"events":{count},"seconds":{secs:.3},"per_second":{:.0}}}"#,
            count as f64 / secs
        )?;
    }
    out.flush()?;
    client.close();
    std::process::exit(code);
}
