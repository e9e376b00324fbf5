//! `crema-recorder`: the headless recorder. Thin: wiring, configuration and the CLI.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use recorder::config::Shared;
use recorder::document;
use recorder::hooks::{HookFlags, Hooks};
use recorder::outbox::FinishedShots;
use recorder::process::{LogFormat, init_logs, stop_on_signals};
use recorder::record::Recording;
use recorder::runs::{RunRequest, Runs, Started, SyncTarget};
use recorder::visualizer::VisualizerConfig;
use storage::{Database, Options, Reader, RunKind, RunStatus, Store};
use tokio_util::sync::CancellationToken;

mod decode;
mod status;

/// Records every shot of a Meticulous espresso machine into SQLite.
/// No `Debug`: it holds URLs with secrets (webhook paths, ntfy topics).
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
    /// Log lines as `text` for people, or `json` for machines.
    #[arg(long, global = true, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Args)]
struct RunArgs {
    /// The machine's URL, e.g. `http://meticulous.local`.
    #[arg(long, required_unless_present_any = ["demo", "config"])]
    machine: Option<String>,
    /// The machine's name in the database (letters, digits, '-' and '_'; `default` unless the
    /// config names it): give each machine its own when several recorders share one database
    /// file. With several `[[machines]]` in the config, the one to record.
    #[arg(long, value_parser = machine_name)]
    name: Option<String>,
    /// The database: a SQLite file (created if missing; `crema.db`), or a PostgreSQL URL
    /// `postgres://user:password@host:port/db` shared with other recorders and gateways.
    #[arg(long)]
    db: Option<Database>,
    /// Read `crema.toml` (the gateway's file): `[[machines]]`, `db`, `listen`, `[[webhooks]]`,
    /// `[[analyzers]]`, `[visualizer]`. Flags override it.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Record from a simulated machine started in this process (real time, a shot every ~90 s).
    #[arg(long)]
    demo: bool,
    /// POST every finished shot's summary as JSON to this URL: `NAME=URL`. Repeatable.
    #[arg(long = "webhook", value_name = "NAME=URL")]
    webhooks: Vec<String>,
    /// Notify an ntfy topic URL (a line of text) of every finished shot: `NAME=URL`.
    /// Repeatable.
    #[arg(long = "ntfy", value_name = "NAME=URL")]
    ntfy: Vec<String>,
    /// An external analyzer: every finished shot is POSTed to it and its JSON answer stored
    /// under NAME: `NAME=URL`. Repeatable.
    #[arg(long = "analyzer", value_name = "NAME=URL")]
    analyzers: Vec<String>,
    /// Serve `/metrics` and `/healthz` on PORT (loopback) or ADDRESS:PORT. Off by default.
    #[arg(long, value_name = "PORT|ADDRESS:PORT", value_parser = status::parse_listen)]
    listen: Option<std::net::SocketAddr>,
    /// Upload every finished shot to Visualizer at URL (`https://visualizer.coffee`), signed in
    /// with VISUALIZER_USERNAME and VISUALIZER_PASSWORD (the account's email and password) or
    /// VISUALIZER_TOKEN from the environment.
    #[arg(long, value_name = "URL")]
    visualizer: Option<String>,
}

/// What `run` does: the flags over the config file, checked.
struct Setup {
    /// The machine's URL (`None` with `--demo`).
    url: Option<String>,
    name: String,
    db: Database,
    listen: Option<std::net::SocketAddr>,
    hooks: Hooks,
    /// Where metrics are pushed (`[otlp]`).
    otlp: Option<telemetry::otlp::OtlpConfig>,
    /// `[tuning]`.
    tuned: recorder::config::Tuned,
}

impl RunArgs {
    fn setup(&self) -> anyhow::Result<Setup> {
        let (shared, path) = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the config file {}", path.display()))?;
                let path = path.display().to_string();
                let (shared, gateway) = Shared::parse(&path, &text)?;
                if !gateway.is_empty() {
                    let keys = gateway.join(", ");
                    tracing::info!("{path}: {keys} are the gateway's; the recorder leaves them");
                }
                (shared, path)
            }
            None => (Shared::default(), String::new()),
        };
        let entry = match &self.machine {
            Some(_) => None,
            None => shared.machine(&path, self.name.as_deref())?.cloned(),
        };
        let url = self
            .machine
            .clone()
            .or(entry.as_ref().map(|m| m.url.clone()));
        if url.is_none() && !self.demo {
            anyhow::bail!("--machine URL is required (or --demo, or [[machines]] in --config)");
        }
        let name = (self.name.clone().or(entry.map(|m| m.name))).unwrap_or("default".into());
        recorder::record::check_name(&name).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        let flags = HookFlags::new(&self.webhooks, &self.ntfy, &self.analyzers);
        let visualizer = match &self.visualizer {
            Some(url) => Some(VisualizerConfig::from_env(url, |v| std::env::var(v).ok())),
            None => shared.visualizer,
        };
        let (webhooks, analyzers) = (shared.webhooks, shared.analyzers);
        let fanout = shared.tuning.fanout_keys();
        if !fanout.is_empty() {
            let keys = fanout.join(", ");
            tracing::info!(
                "{path}: tuning {keys} are the gateway's fan-out's; the recorder leaves them"
            );
        }
        let tuned = (shared.tuning.resolve()).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        let otlp = (shared.otlp.as_ref())
            .map(|o| o.build().map_err(|e| anyhow::anyhow!("{path}: {e}")))
            .transpose()?;
        Ok(Setup {
            url,
            name,
            db: (self.db.clone())
                .or(shared.db.as_deref().map(Database::parse))
                .unwrap_or_else(|| Database::parse("crema.db")),
            listen: self.listen.or(shared.listen),
            hooks: Hooks::configure(webhooks, analyzers, flags, visualizer.as_ref())?,
            otlp,
            tuned,
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Record every shot (the default command). SIGINT/SIGTERM stop it cleanly; a second one at once.
    Run(RunArgs),
    /// List every stored shot, partial ones too.
    Shots {
        /// The database: a SQLite file or a `postgres://` URL.
        #[arg(long)]
        db: Database,
        /// Print `{"shots":[…]}` instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print (or write) one shot as a Meticulous shot file, the format Visualizer accepts.
    Export {
        /// The database: a SQLite file or a `postgres://` URL.
        #[arg(long)]
        db: Database,
        /// The shot: the machine's UUID, or the store's key from `shots`.
        #[arg(long)]
        id: String,
        /// Write it to this file (atomically) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Copy the machine's whole history into the database (idempotent), with a progress bar.
    Sync {
        /// The machine's URL.
        #[arg(long)]
        machine: String,
        /// The database: a SQLite file or a `postgres://` URL.
        #[arg(long)]
        db: Database,
    },
    /// Run the quality checks over the shots not checked yet (or every shot), with a progress
    /// bar, and list what they found. Ctrl-C cancels the run.
    Qa {
        /// The database: a SQLite file or a `postgres://` URL.
        #[arg(long)]
        db: Database,
        /// Check every stored shot again, not only those never checked.
        #[arg(long)]
        all: bool,
    },
    /// Upload to Visualizer every stored shot it does not have yet, with a progress bar,
    /// signed in with VISUALIZER_USERNAME and VISUALIZER_PASSWORD, or VISUALIZER_TOKEN, from
    /// the environment. Ctrl-C cancels the run.
    Upload {
        /// The database: a SQLite file or a `postgres://` URL.
        #[arg(long)]
        db: Database,
        /// Visualizer's URL.
        #[arg(long, value_name = "URL", default_value = recorder::visualizer::DEFAULT_URL)]
        visualizer: String,
    },
    /// Decode captured Engine.IO traffic, one packet per line (a WebSocket text frame, or a
    /// long-polling record with binary as `b<base64>`), and print each socket.io event as a JSON
    /// line `{"namespace","event","args"}`. Errors go to stderr with their line number.
    Decode {
        /// The capture; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    if let Err(e) = dispatch(cli) {
        // Each cause once (a storage error already names its SQLite cause).
        eprintln!("crema-recorder: {}", recorder::error_chain(e.as_ref()));
        std::process::exit(1);
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => run(cli.run),
        Some(Command::Run(args)) => run(args),
        Some(Command::Shots { db, json }) => shots(&db, json),
        Some(Command::Export { db, id, out }) => export(&db, &id, out.as_deref()),
        Some(Command::Sync { machine, db }) => sync_command(&machine, &db),
        Some(Command::Qa { db, all }) => qa_command(&db, all),
        Some(Command::Upload { db, visualizer }) => upload_command(&db, &visualizer),
        Some(Command::Decode { file }) => decode_command(file),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn open_store(db: &Database) -> anyhow::Result<Arc<Store>> {
    Ok(Arc::new(Store::open_database(db, Options::default())?))
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let Setup {
        url,
        name,
        db,
        listen,
        hooks,
        otlp,
        tuned,
    } = args.setup()?;
    // A wrong URL is reported before anything is created.
    if let Some(url) = &url {
        meticulous::api::Api::new(url, Duration::from_secs(1))?;
    }
    let rt = runtime()?;
    let store = open_store(&db)?;
    let stop = CancellationToken::new();
    let result = rt.block_on(async {
        let _simulator;
        let url = match (&url, args.demo) {
            (_, true) => {
                let sim = simulator::Simulator::start(simulator::SimulatorConfig {
                    repeat: true,
                    ..simulator::SimulatorConfig::default()
                })
                .await
                .context("starting the simulated machine")?;
                let url = sim.url();
                tracing::info!(%url, "demo: a simulated machine brews a shot about every 90 s");
                _simulator = sim;
                url
            }
            (Some(url), false) => url.clone(),
            (None, false) => unreachable!("setup requires a machine unless --demo"),
        };
        tokio::spawn(exit_on_second_signal(stop.clone()));
        let (stored, notices) = tokio::sync::mpsc::channel(256);
        let finished = FinishedShots::start(store.clone(), hooks);
        tokio::spawn(finished.clone().follow(notices));
        let machine = tuned.machine(&name, &url);
        let target = SyncTarget {
            stats: Some(machine.stats.clone()),
            ..SyncTarget::new(&machine.name, &url)
        };
        let uploads = finished.visualizer().cloned();
        let runs = Runs::new(
            store.clone(),
            vec![target],
            finished.analyzers().to_vec(),
            uploads,
        );
        let status = Arc::new(status::Status::new(
            store.clone(),
            machine.name.clone(),
            machine.stats.clone(),
            finished.clone(),
            runs.clone(),
        ));
        if let Some(listen) = listen {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listening on {listen} for /metrics and /healthz"))?;
            let at = listener.local_addr()?;
            tracing::info!("serving /metrics and /healthz on http://{at}");
            tokio::spawn(status::serve(listener, status.clone(), stop.clone()));
        }
        let otlp = (otlp.as_ref())
            .map(|c| recorder::metrics::export(status.metrics.clone(), &store, c, "crema-recorder"))
            .transpose()?;
        // Fails at once when another process records this machine into this database.
        let recording = Recording::start(machine, store.clone(), Some(stored), None).await?;
        tokio::spawn(runs.clone().schedule_sync(tuned.sync_every, stop.clone()));
        let result = recording.run(stop).await;
        runs.stop(Duration::from_secs(5)).await;
        if let Some(otlp) = otlp {
            // The last values, pushed as the recorder stops.
            let _ = tokio::task::spawn_blocking(move || otlp.shutdown()).await;
        }
        Ok(result?)
    });
    drop(rt);
    // Every write was answered; the writer checkpoints the WAL as it closes.
    match Arc::try_unwrap(store) {
        Ok(store) => store.close(),
        Err(_) => tracing::warn!(
            "the database is still in use at exit; SQLite recovers the WAL on the next start"
        ),
    }
    result
}

/// A machine name, checked.
fn machine_name(name: &str) -> Result<String, String> {
    recorder::record::check_name(name).map(|()| name.to_owned())
}

/// The first SIGINT/SIGTERM cancels `stop`; the second exits at once.
async fn exit_on_second_signal(stop: CancellationToken) {
    stop_on_signals(stop).await;
    std::process::exit(130);
}

fn reader(db: &Database) -> anyhow::Result<Box<dyn Reader>> {
    if let Some(path) = db.path()
        && !path.exists()
    {
        anyhow::bail!("there is no database at {}", path.display());
    }
    db.reader()
        .with_context(|| format!("cannot read the database {db}"))
}

fn shots(db: &Database, json: bool) -> anyhow::Result<()> {
    let shots = reader(db)?.all_shots()?;
    let mut out = std::io::stdout().lock();
    if json {
        let list: Vec<document::Summary> = shots.iter().map(document::summary).collect();
        serde_json::to_writer(&mut out, &serde_json::json!({ "shots": list }))?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{:>6}  {:<36}  {:<20}  {:<8} {:<9} {:>7}  profile",
            "key", "id", "time (unix s)", "source", "status", "samples"
        )?;
        for s in &shots {
            writeln!(
                out,
                "{:>6}  {:<36}  {:<20.1}  {:<8} {:<9} {:>7}  {}",
                s.key,
                s.id.as_deref().unwrap_or("-"),
                s.time,
                s.source,
                s.status,
                s.sample_count,
                s.profile_name.as_deref().unwrap_or("")
            )?;
        }
    }
    Ok(())
}

fn export(db: &Database, id: &str, out: Option<&Path>) -> anyhow::Result<()> {
    let reader = reader(db)?;
    let shot = reader
        .find(id)?
        .with_context(|| format!("no shot {id} in {db}"))?;
    match out {
        Some(path) => {
            reader.export(shot.key, path)?;
            eprintln!(
                "wrote shot {id} ({} samples) to {}",
                shot.sample_count,
                path.display()
            );
        }
        None => {
            let file = reader
                .shot_file(shot.key)?
                .with_context(|| format!("no shot {id}"))?;
            let mut stdout = std::io::stdout().lock();
            serde_json::to_writer(&mut stdout, &file)?;
            writeln!(stdout)?;
        }
    }
    Ok(())
}

fn sync_command(machine: &str, db: &Database) -> anyhow::Result<()> {
    // A wrong URL is reported before anything is created.
    meticulous::api::Api::new(machine, Duration::from_secs(1))?;
    let targets = vec![SyncTarget::new("default", machine)];
    let run = follow(db, targets, None, "syncing history", |_| {
        Ok(RunRequest {
            kind: RunKind::Sync,
            shots: None,
            machine: None,
            started_by: "cli".into(),
        })
    })?;
    println!("{}", run.summary.unwrap_or_default());
    Ok(())
}

fn qa_command(db: &Database, all: bool) -> anyhow::Result<()> {
    let run = follow(db, Vec::new(), None, "checking shots", |store| {
        let shots = if all {
            None
        } else {
            let keys = store.reader()?.unchecked_shot_keys()?;
            Some(keys.iter().map(ToString::to_string).collect())
        };
        Ok(RunRequest {
            kind: RunKind::Qa,
            shots,
            machine: None,
            started_by: "cli".into(),
        })
    })?;
    let store = open_store(db)?;
    let reader = store.reader()?;
    for shot in reader.all_shots()? {
        for finding in reader.qa_results(shot.key)?.iter().filter(|r| !r.passed) {
            println!(
                "shot {} ({}): {}: {}",
                shot.key,
                shot.id.as_deref().unwrap_or("no UUID"),
                finding.check,
                finding.message
            );
        }
    }
    println!("{}", run.summary.unwrap_or_default());
    Ok(())
}

fn upload_command(db: &Database, url: &str) -> anyhow::Result<()> {
    let config = VisualizerConfig::from_env(url, |name| std::env::var(name).ok());
    let visualizer = Some(Arc::new(config.build()?));
    let run = follow(db, Vec::new(), visualizer, "uploading shots", |_| {
        Ok(RunRequest {
            kind: RunKind::Upload,
            shots: None,
            machine: None,
            started_by: "cli".into(),
        })
    })?;
    println!("{}", run.summary.unwrap_or_default());
    Ok(())
}

/// Starts the run `request` builds over the store at `db` and shows its progress until it
/// ends; SIGINT/SIGTERM cancel it. Fails when another run is active or this one failed.
fn follow(
    db: &Database,
    machines: Vec<SyncTarget>,
    visualizer: Option<Arc<recorder::visualizer::Visualizer>>,
    message: &'static str,
    request: impl FnOnce(&Store) -> anyhow::Result<RunRequest>,
) -> anyhow::Result<storage::Run> {
    let rt = runtime()?;
    let store = open_store(db)?;
    let request = request(&store)?;
    let runs = Runs::new(store.clone(), machines, Vec::new(), visualizer);
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} shots ({eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(message);
    let result = rt.block_on(async {
        let run = match runs.start(request).await? {
            Started::Started(run) => run,
            Started::Busy(active) => anyhow::bail!(
                "run {} ({}) is {} in this database; try again when it has ended",
                active.id,
                active.kind.as_str(),
                active.status.as_str()
            ),
        };
        let mut progress = runs
            .watch(run.id)
            .context("the run ended before it could be followed")?;
        let stop = CancellationToken::new();
        tokio::spawn(exit_on_second_signal(stop.clone()));
        let mut cancelled = false;
        loop {
            let now = progress.borrow_and_update().clone();
            bar.set_length(now.total);
            bar.set_position(now.done);
            if !now.status.is_active() {
                return Ok(now);
            }
            tokio::select! {
                changed = progress.changed() => if changed.is_err() {
                    return Ok(runs.get(run.id)?);
                },
                () = stop.cancelled(), if !cancelled => {
                    cancelled = true;
                    runs.cancel(run.id)?;
                }
            }
        }
    });
    bar.finish_and_clear();
    drop(runs);
    drop(rt);
    if let Ok(store) = Arc::try_unwrap(store) {
        store.close();
    }
    let run: storage::Run = result?;
    if run.status == RunStatus::Failed {
        anyhow::bail!("run {} failed: {}", run.id, run.error.unwrap_or_default());
    }
    Ok(run)
}

fn decode_command(file: Option<PathBuf>) -> anyhow::Result<()> {
    let input: Box<dyn BufRead> = match file.as_deref() {
        None => Box::new(std::io::stdin().lock()),
        Some(p) if p.as_os_str() == "-" => Box::new(std::io::stdin().lock()),
        Some(p) => Box::new(BufReader::new(
            std::fs::File::open(p)
                .with_context(|| format!("cannot open capture {}", p.display()))?,
        )),
    };
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::new(stdout);
    let stats = decode::run(input, &mut out, &mut std::io::stderr().lock())?;
    out.flush()?;
    eprintln!(
        "{} lines: {} events, {} other packets, {} errors",
        stats.lines, stats.events, stats.other, stats.errors
    );
    if stats.errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}
