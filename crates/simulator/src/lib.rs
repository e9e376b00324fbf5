//! A simulated Meticulous machine for `--demo`, the tests and the benchmarks; never on a
//! production path.
//!
//! It serves what the real machine serves, on 127.0.0.1: a socket.io v5 server (socketioxide) on
//! `/socket.io/` that broadcasts the fixture streams' `status`, `sensors` and other events at their
//! real cadence (10 Hz, a new sample every 110–155 ms) or `speed` times faster, and the history
//! API: `GET /api/v1/history` (20 newest with samples by default; `max_results`, `dump_data`,
//! `ids`, `start_date`, `end_date`, `sort`), `/api/v1/history/current` (the shot in progress, from
//! its first extracting frame) and `/api/v1/history/last`. Like the machine, it saves every shot
//! when `extracting` falls, however short, and loses the shot in progress when its server
//! restarts.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use simulator::{Scenario, Simulator, SimulatorConfig};
//! let machine = Simulator::start(SimulatorConfig {
//!     scenario: Scenario::Normal,
//!     speed: 10.0,
//!     ..SimulatorConfig::default()
//! })
//! .await?;
//! println!("a machine at {}", machine.url());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod collector;
pub mod hostile;
mod machine;
pub mod pairing;
mod replay;
pub mod visualizer;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use meticulous::{CurrentShot, Entry};
use serde::Deserialize;
use socketioxide::SocketIo;
use tokio::sync::watch;

pub use machine::Machine;
pub use replay::{Line, Scenario, stream};

/// How the simulator runs.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// What the machine does.
    pub scenario: Scenario,
    /// 1.0 is real time; 10.0 replays ten times faster.
    pub speed: f64,
    /// Play the scenario again and again (each run is a new shot), or once.
    pub repeat: bool,
    /// Pause between repeats, at real time (scaled by `speed` like the rest).
    pub pause: Duration,
    /// Where to listen (`127.0.0.1:0`: any free port).
    pub listen: SocketAddr,
    /// Whether `/api/v1/history` and `/history/last` list the saved shots (true). Off, they
    /// answer none, as a machine whose history database is broken would: what a recorder keeps
    /// is then only what it recorded live (the fault suite checks that).
    pub history: bool,
    /// Whether it runs the pairing firmware ([`pairing`]): every REST call but the public ones
    /// and the socket.io CONNECT need a device token. Off: an open machine, as older firmware.
    pub pairing: bool,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            scenario: Scenario::Normal,
            speed: 1.0,
            repeat: false,
            pause: Duration::from_secs(5),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            history: true,
            pairing: false,
        }
    }
}

/// A running simulated machine. Dropping it stops it.
#[derive(Debug)]
pub struct Simulator {
    addr: SocketAddr,
    machine: Arc<Mutex<Machine>>,
    done: watch::Receiver<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Simulator {
    /// Binds, and starts serving and replaying (on the current tokio runtime).
    pub async fn start(config: SimulatorConfig) -> std::io::Result<Simulator> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let mut new = Machine::new();
        new.history_off = !config.history;
        let firmware = config.pairing.then(|| {
            Arc::new(Mutex::new(pairing::Firmware::new(
                &new.serial_number(),
                vec![format!("http://{addr}")],
            )))
        });
        new.firmware = firmware.clone();
        let machine = Arc::new(Mutex::new(new));
        let (layer, io) = SocketIo::builder()
            .ping_interval(Duration::from_secs(10))
            .ping_timeout(Duration::from_secs(60))
            .build_layer();
        serve_namespace(&io, firmware.clone());
        let mut app = Router::new()
            .route("/api/v1/history", get(history))
            .route("/api/v1/history/current", get(current))
            .route("/api/v1/history/last", get(last))
            .with_state(machine.clone());
        app = match &firmware {
            Some(firmware) => app
                .route_layer(axum::middleware::from_fn_with_state(
                    firmware.clone(),
                    pairing::require_token,
                ))
                .merge(pairing::routes(firmware.clone())),
            None => app.route(
                "/api/v1/machine",
                get(|| async { Json(serde_json::json!({"name": "Simulated Meticulous"})) }),
            ),
        };
        let app = app
            .layer(layer)
            // Outermost, so that socket.io requests are refused too while the backend restarts.
            .layer(axum::middleware::from_fn_with_state(
                machine.clone(),
                refuse_while_down,
            ));
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("simulator server stopped: {e}");
            }
        });
        let (done_tx, done) = watch::channel(false);
        let replay = tokio::spawn(replay::run(config, io, machine.clone(), done_tx));
        Ok(Simulator {
            addr,
            machine,
            done,
            tasks: vec![server, replay],
        })
    }

    /// The machine's base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shots saved so far, oldest first.
    pub fn saved(&self) -> Vec<Entry> {
        self.machine
            .lock()
            .map(|m| m.saved.clone())
            .unwrap_or_default()
    }

    /// The pairing firmware's state, when it runs one: the code on its screen, its key; revoke
    /// its devices or reset its identity with it.
    pub fn firmware(&self) -> Option<pairing::Shared> {
        self.machine.lock().ok()?.firmware.clone()
    }

    /// The last pairing code the machine showed, `(pairing_id, code)`.
    pub fn pairing_code(&self) -> Option<(String, String)> {
        self.firmware()?.lock().ok()?.shown.clone()
    }

    /// Waits until a scenario played once (`repeat: false`) has finished.
    pub async fn finished(&mut self) {
        let _ = self.done.wait_for(|done| *done).await;
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

type Shared = Arc<Mutex<Machine>>;

/// The machine's one namespace. It greets with `profileHover` only; `status` follows within
/// 100 ms.
pub(crate) fn serve_namespace(io: &SocketIo, firmware: Option<pairing::Shared>) {
    use socketioxide::extract::{SocketRef, TryData};
    use socketioxide::handler::ConnectHandler as _;
    let greet = async |socket: SocketRef| {
        socket
            .emit(
                "profileHover",
                &serde_json::json!({"id": "0f1c2e3d-4b5a-4c6d-8e7f-9a0b1c2d3e4f", "from": "backend", "type": "focus"}),
            )
            .ok();
    };
    match firmware {
        None => io.ns("/", greet),
        // With pairing, the CONNECT's `auth` must carry a paired device's token.
        Some(firmware) => {
            let paired = async move |TryData(auth): TryData<serde_json::Value>| {
                let token = auth
                    .ok()
                    .and_then(|a| a["token"].as_str().map(str::to_owned));
                let known = token.is_some_and(|t| firmware.lock().is_ok_and(|f| f.knows(&t)));
                if known {
                    Ok(())
                } else {
                    Err("Unauthorized".to_owned())
                }
            };
            io.ns("/", greet.with(paired));
        }
    }
}

/// While the simulated backend restarts, every request fails as a dead server's would.
async fn refuse_while_down(
    State(machine): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if machine.lock().is_ok_and(|m| m.down) {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "restarting").into_response();
    }
    next.run(request).await
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    max_results: Option<usize>,
    dump_data: Option<bool>,
    ids: Option<String>,
    start_date: Option<f64>,
    end_date: Option<f64>,
    sort: Option<String>,
}

async fn history(State(machine): State<Shared>, Query(q): Query<HistoryQuery>) -> Response {
    let Ok(m) = machine.lock() else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let ids: Option<Vec<&str>> = q.ids.as_deref().map(|ids| ids.split(',').collect());
    let listed = if m.history_off { &[][..] } else { &m.saved[..] };
    let mut shots: Vec<&Entry> = listed
        .iter()
        .filter(|e| {
            ids.as_ref().is_none_or(|ids| {
                ids.iter()
                    .any(|id| *id == e.id || e.db_key.is_some_and(|k| id.parse() == Ok(k)))
            })
        })
        .filter(|e| q.start_date.is_none_or(|s| e.time >= s))
        .filter(|e| q.end_date.is_none_or(|s| e.time <= s))
        .collect();
    shots.sort_by(|a, b| a.time.total_cmp(&b.time));
    if q.sort.as_deref() != Some("asc") {
        shots.reverse();
    }
    match q.max_results.unwrap_or(20) {
        0 => {}
        n => shots.truncate(n),
    }
    let dump = q.dump_data.unwrap_or(true);
    let history: Vec<Listed<'_>> = shots
        .into_iter()
        .map(|e| Listed {
            id: &e.id,
            db_key: e.db_key,
            time: e.time,
            file: e.file.as_deref(),
            debug_file: e.debug_file.as_deref(),
            name: &e.name,
            data: dump.then_some(e.data.as_slice()),
            profile: e.profile.as_ref(),
        })
        .collect();
    Json(Page { history }).into_response()
}

#[derive(serde::Serialize)]
struct Page<'a> {
    history: Vec<Listed<'a>>,
}

/// An entry as `/api/v1/history` lists it: the machine's key order, `data: null` without samples.
#[derive(serde::Serialize)]
struct Listed<'a> {
    id: &'a str,
    db_key: Option<i64>,
    time: f64,
    file: Option<&'a str>,
    debug_file: Option<&'a str>,
    name: &'a str,
    data: Option<&'a [meticulous::Sample]>,
    profile: Option<&'a meticulous::RawJson>,
}

async fn current(State(machine): State<Shared>) -> Json<Option<CurrentShot>> {
    Json(machine.lock().ok().and_then(|m| m.current_shot()))
}

async fn last(State(machine): State<Shared>) -> Json<Option<Entry>> {
    Json(
        machine
            .lock()
            .ok()
            .filter(|m| !m.history_off)
            .and_then(|m| m.saved.last().cloned()),
    )
}
