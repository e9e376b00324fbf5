//! `crema-gateway`: one connection per machine, fanned out to many browsers over WebSocket and
//! Server-Sent Events, every shot recorded. Thin: wiring, configuration and the CLI.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use broker::Broker;
use clap::Parser;
use fanout::Hub;
use fanout::admission::{Admission, Caps};
use fanout::auth::{Auth, AuthConfig};
use fanout::guard::Access;
use fanout::hosts::Hosts;
use fanout::ws::{Limits, WsState};
use recorder::config::{Shared, Tuned};
use recorder::hooks::{HookFlags, Hooks};
use recorder::outbox::FinishedShots;
use recorder::process::{LogFormat, init_logs, stop_on_signals};
use recorder::record;
use recorder::runs::{Runs, SyncTarget};
use serde::Deserialize as _;
use storage::{Database, Options, Store};
use telemetry::otlp::OtlpConfig;
use tokio_util::sync::CancellationToken;

/// The prefix of every key the gateways keep in the broker.
const BROKER_PREFIX: &str = "crema";

mod api;
mod runs_api;
mod state;

/// One connection per espresso machine, fanned out to many browsers; every shot recorded.
/// No `Debug`: it holds URLs with secrets (a broker's password, webhook paths).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML configuration file (machines, auth, origins); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A machine: `URL` (named `default`) or `NAME=URL`. Repeatable.
    #[arg(long = "machine")]
    machines: Vec<String>,
    /// The database: a SQLite file, or a PostgreSQL URL `postgres://user:password@host:port/db`
    /// that several gateways share.
    #[arg(long)]
    db: Option<Database>,
    /// A Redis server that several gateways share (`redis://host:port`): each machine's events
    /// go through it to every gateway. Without it, events stay in this process.
    #[arg(long)]
    broker: Option<String>,
    /// Where to listen.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Run a simulated machine in this process and connect to it (a shot about every 90 s).
    #[arg(long)]
    demo: bool,
    /// How many times faster than real time the demo machine runs (for tests).
    #[arg(long, default_value_t = 1.0, hide = true)]
    demo_speed: f64,
    /// Listen on a non-loopback address without auth (everyone on the network reads everything).
    #[arg(long)]
    allow_remote: bool,
    /// POST every finished shot's summary as JSON to this URL: `NAME=URL`. Repeatable.
    #[arg(long = "webhook", value_name = "NAME=URL")]
    webhooks: Vec<String>,
    /// Notify an ntfy topic URL (a line of text) of every finished shot: `NAME=URL`.
    /// Repeatable.
    #[arg(long = "ntfy", value_name = "NAME=URL")]
    ntfy: Vec<String>,
    /// An external analyzer: every finished shot (and every shot of an analysis run) is POSTed
    /// to it and its JSON answer stored under NAME: `NAME=URL`. Repeatable.
    #[arg(long = "analyzer", value_name = "NAME=URL")]
    analyzers: Vec<String>,
    /// Log lines as `text` for people, or `json` for machines.
    #[arg(long, default_value = "text")]
    log_format: LogFormat,
    /// Read the configuration and the flags, say what is wrong (exit 1) or that they are
    /// fine, and exit without starting.
    #[arg(long)]
    check: bool,
}

/// The keys of `crema.toml` only the gateway reads (the rest are `recorder::config::Shared`).
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayKeys {
    /// A `redis://` URL: the broker several gateways share.
    broker: Option<String>,
    #[serde(default)]
    auth: AuthConfig,
    /// Pages allowed to open the WebSocket and send `POST`s, besides the gateway's own.
    origins: Option<Vec<String>>,
    /// `Host` names answered besides loopback ones (DNS rebinding: `fanout::hosts::Hosts`).
    hosts: Option<Vec<String>>,
    /// Whether a scraper on this host reads `/metrics` without credentials.
    #[serde(default)]
    metrics_loopback: bool,
}

/// `crema.toml` as the gateway reads it.
fn read_config(path: &str, text: &str) -> anyhow::Result<(Shared, GatewayKeys)> {
    let (shared, gateway) = Shared::split(path, text)?;
    let gateway = GatewayKeys::deserialize(toml::Value::Table(gateway))
        .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    Ok((shared, gateway))
}

fn main() {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    if let Err(e) = run(cli) {
        // Each cause once (a storage error already names its SQLite cause).
        eprintln!("crema-gateway: {}", recorder::error_chain(e.as_ref()));
        std::process::exit(1);
    }
}

/// A machine flag: `URL` or `NAME=URL`.
fn parse_machine(flag: &str) -> anyhow::Result<(String, String)> {
    let (name, url) = match flag.split_once('=') {
        Some((name, url)) if !name.contains("://") => (name.to_owned(), url.to_owned()),
        _ => ("default".to_owned(), flag.to_owned()),
    };
    record::check_name(&name).map_err(anyhow::Error::msg)?;
    meticulous::api::Api::new(&url, Duration::from_secs(1))?;
    Ok((name, url))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (config, gateway) = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the configuration {}", path.display()))?;
            read_config(&path.display().to_string(), &text)?
        }
        None => (Shared::default(), GatewayKeys::default()),
    };
    let mut machines: Vec<(String, String)> = config
        .machines
        .iter()
        .map(|m| parse_machine(&format!("{}={}", m.name, m.url)))
        .collect::<anyhow::Result<_>>()?;
    for flag in &cli.machines {
        machines.push(parse_machine(flag)?);
    }
    if machines.is_empty() && !cli.demo {
        anyhow::bail!("no machine: pass --machine [NAME=]URL (or --demo)");
    }
    let listen = cli
        .listen
        .or(config.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let auth = gateway.auth.build().map_err(anyhow::Error::msg)?;
    if matches!(auth, Auth::None) && !listen.ip().is_loopback() && !cli.allow_remote {
        anyhow::bail!(
            "refusing to listen on {listen} without auth: everyone on the network could read every machine. \
             Configure auth in the config file, or pass --allow-remote"
        );
    }
    let flags = HookFlags::new(&cli.webhooks, &cli.ntfy, &cli.analyzers);
    let visualizer = config.visualizer.as_ref();
    let hooks = Hooks::configure(config.webhooks, config.analyzers, flags, visualizer)?;
    let db = cli
        .db
        .or_else(|| config.db.as_deref().map(Database::parse))
        .unwrap_or_else(|| Database::parse("crema.db"));
    let otlp = config
        .otlp
        .as_ref()
        .map(|o| o.build().map_err(anyhow::Error::msg))
        .transpose()?;
    let tuned = config.tuning.resolve().map_err(anyhow::Error::msg)?;
    if cli.check {
        println!("the configuration and flags are fine");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let store = Arc::new(Store::open_database(&db, Options::default())?);
    let demo = cli.demo.then_some(cli.demo_speed);
    let result = rt.block_on(serve(
        machines,
        demo,
        listen,
        Access {
            hosts: Hosts::configure(auth.is_on(), gateway.hosts, cli.allow_remote),
            origins: gateway.origins,
            metrics_loopback: gateway.metrics_loopback,
        },
        auth,
        hooks,
        store.clone(),
        cli.broker.or(gateway.broker),
        otlp,
        tuned,
    ));
    drop(rt);
    if let Ok(store) = Arc::try_unwrap(store) {
        store.close();
    }
    result
}

#[allow(clippy::too_many_arguments)] // the composition root: what main read, wired once
async fn serve(
    mut machines: Vec<(String, String)>,
    demo: Option<f64>,
    listen: SocketAddr,
    access: Access,
    auth: Auth,
    hooks: Hooks,
    store: Arc<Store>,
    broker: Option<String>,
    otlp: Option<OtlpConfig>,
    tuned: Tuned,
) -> anyhow::Result<()> {
    let _simulator = if let Some(speed) = demo {
        let sim = simulator::Simulator::start(simulator::SimulatorConfig {
            repeat: true,
            speed,
            ..simulator::SimulatorConfig::default()
        })
        .await
        .context("starting the simulated machine")?;
        machines.push(("demo".to_owned(), sim.url()));
        Some(sim)
    } else {
        None
    };
    let epoch = broker::epoch(broker.as_deref(), BROKER_PREFIX).await?;
    let hub = Arc::new(Hub::new(
        epoch,
        tuned.replay_events,
        tuned.subscriber_lag_events,
    ));
    let stop = CancellationToken::new();
    let topics = machines
        .iter()
        .map(|(n, _)| format!("machine:{n}"))
        .collect();
    let broker = broker
        .map(|url| Broker::start(&url, BROKER_PREFIX, hub.clone(), topics, stop.clone()))
        .transpose()?
        .map(Arc::new);
    let finished = FinishedShots::start(store.clone(), hooks);
    let mut recorders = Vec::new();
    let mut states = Vec::new();
    for (name, url) in &machines {
        let topic = format!("machine:{name}");
        // Browsers may subscribe before the machine's first event; no other topic exists.
        hub.declare(&topic);
        let sink = broker::sink(broker.as_deref(), &hub, &topic);
        let config = tuned.machine(name, url);
        states.push(state::MachineInfo {
            name: name.clone(),
            url: url.clone(),
            stats: config.stats.clone(),
        });
        let (stored, notices) = tokio::sync::mpsc::channel(256);
        tokio::spawn(finished.clone().follow(notices));
        recorders.push(tokio::spawn(record::standby(
            config,
            store.clone(),
            stop.clone(),
            Some(stored),
            Some(sink),
        )));
    }
    let admission = Admission::new(Caps::default());
    let ws = WsState::with_auth(
        hub.clone(),
        Limits {
            ping_every: tuned.ws_ping,
            silence: tuned.ws_silence,
            data_bytes: tuned.ws_queue_bytes,
            ..Limits::default()
        },
        auth.clone(),
        access.origins.clone(),
        admission,
    );
    let targets = states
        .iter()
        .map(|m| SyncTarget {
            name: m.name.clone(),
            url: m.url.clone(),
            stats: Some(m.stats.clone()),
        })
        .collect();
    let uploads = finished.visualizer().cloned();
    let runs = Runs::new(
        store.clone(),
        targets,
        finished.analyzers().to_vec(),
        uploads,
    );
    tokio::spawn(runs.clone().schedule_sync(tuned.sync_every, stop.clone()));
    let health = api::health_check(hub.clone(), store.clone(), states.clone(), broker.clone());
    let application = recorder::metrics::Application::new(
        states
            .iter()
            .map(|m| (m.name.clone(), m.stats.clone()))
            .collect(),
        store.clone(),
        finished.clone(),
        runs.clone(),
        health.clone(),
    );
    let metrics = Arc::new(api::registry(
        hub.clone(),
        ws.clone(),
        broker.clone(),
        application,
    ));
    let otlp = otlp
        .map(|c| recorder::metrics::export(metrics.clone(), &store, &c, "crema-gateway"))
        .transpose()?;
    let app = api::router(state::AppState {
        hub: hub.clone(),
        store: store.clone(),
        machines: states,
        auth,
        access: access.clone(),
        ws: ws.clone(),
        runs: runs.clone(),
        health,
        metrics,
    })
    .merge(fanout::ws::router(ws));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(
        "serving on http://{listen}/ ({} machine(s))",
        machines.len()
    );
    let signals = stop.clone();
    tokio::spawn(async move {
        stop_on_signals(signals).await;
        std::process::exit(130);
    });
    let graceful = stop.clone();
    let connections = Arc::new(fanout::serve::Connections::default());
    let mut server = tokio::spawn(fanout::serve::serve(
        listener,
        app,
        fanout::serve::ServeConfig {
            hosts: access.hosts,
            ..Default::default()
        },
        connections,
        async move { graceful.cancelled().await },
    ));
    tokio::select! {
        served = &mut server => served.context("the HTTP server stopped")?,
        () = stop.cancelled() => {
            // Open WebSocket and SSE streams get a moment to end, then they are cut.
            if tokio::time::timeout(Duration::from_secs(3), &mut server).await.is_err() {
                server.abort();
            }
        }
    }
    runs.stop(Duration::from_secs(5)).await;
    for r in recorders {
        if let Err(e) = r.await {
            tracing::error!("a recorder panicked: {e}");
        }
    }
    if let Some(otlp) = otlp {
        let _ = tokio::task::spawn_blocking(move || otlp.shutdown()).await;
    }
    Ok(())
}
