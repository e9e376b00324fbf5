//! A Visualizer stand-in on 127.0.0.1, for tests: `POST /api/shots/upload` as visualizer.coffee
//! answers it, and the file read as its Meticulous parser reads it ([`read_shot_file`]).
//!
//! What it does as the real one does: HTTP Basic (email and password) or a bearer token, else
//! `401` with an empty body; the file from the `multipart/form-data` field `file`, else `422`
//! `{"error": …}`; the Meticulous parser chosen by `profile_name` and `data` at the top of a
//! file that starts with `{`; shots keyed on their `data`, so the same file twice is one shot
//! with one id. Answers can be forced for the next requests ([`StandIn::answer_next`]), to test
//! retries.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The eight series Visualizer's Meticulous parser keeps, by the path it reads them from.
pub const SERIES: [(&str, &[&str]); 8] = [
    ("espresso_pressure", &["shot", "pressure"]),
    ("espresso_flow", &["shot", "flow"]),
    ("espresso_weight", &["shot", "weight"]),
    ("espresso_flow_weight", &["shot", "gravimetric_flow"]),
    ("espresso_pressure_goal", &["shot", "setpoints", "pressure"]),
    ("espresso_flow_goal", &["shot", "setpoints", "flow"]),
    ("espresso_temperature_mix", &["sensors", "tube"]),
    ("espresso_state_change", &["status"]),
];

/// A shot file as Visualizer's Meticulous parser reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadShot {
    /// `time`: the start, Unix seconds.
    pub start_time: f64,
    /// `profile_name`.
    pub profile_title: String,
    /// Each point's `time` in seconds (it is written in milliseconds).
    pub timeframe: Vec<f64>,
    /// The eight series of [`SERIES`], in that order, as read (a number, `"NaN"`, a stage name
    /// or `null`), each as long as `timeframe`.
    pub series: Vec<Vec<Value>>,
    /// The last point's `shot.weight`.
    pub drink_weight: Value,
    /// The indices where the stage (`status`) changes.
    pub stages: Vec<usize>,
}

/// Reads `file` as Visualizer's Meticulous parser does, and more strictly where its parser
/// would fail with a `500` or chart a value as 0: the error says what Visualizer would not
/// accept.
pub fn read_shot_file(file: &[u8]) -> Result<ReadShot, String> {
    if !file.starts_with(b"{") {
        return Err("the file does not start with '{' (no byte-order mark, no whitespace)".into());
    }
    // Strict JSON: a bare NaN token fails Ruby's parser as it fails serde_json.
    let json: Value =
        serde_json::from_slice(file).map_err(|e| format!("not JSON Visualizer parses: {e}"))?;
    for other in ["mill", "brewFlow", "datapoints", "samples"] {
        if json.get(other).is_some() {
            return Err(format!(
                "`{other}` at the top: read as another machine's file"
            ));
        }
    }
    if json.get("profile_name").is_none() || json.get("data").is_none() {
        return Err(
            "no `profile_name` and `data` at the top: not read as a Meticulous file".into(),
        );
    }
    let start_time = json["time"]
        .as_f64()
        .ok_or("`time` (Unix seconds) is missing or not a number")?;
    if !(1e9..1e10).contains(&start_time) {
        return Err(format!("`time` {start_time} is not Unix seconds"));
    }
    let profile_title = json["profile_name"]
        .as_str()
        .ok_or("`profile_name` is not a string")?
        .to_owned();
    let data = json["data"].as_array().ok_or("`data` is not an array")?;
    let mut read = ReadShot {
        start_time,
        profile_title,
        timeframe: Vec::new(),
        series: vec![Vec::new(); SERIES.len()],
        drink_weight: Value::Null,
        stages: Vec::new(),
    };
    let mut last_stage: Option<String> = None;
    for (i, point) in data.iter().enumerate() {
        let ms = point["time"]
            .as_f64()
            .ok_or_else(|| format!("point {i} has no `time` in milliseconds"))?;
        read.timeframe.push(ms / 1000.0);
        for ((name, path), series) in SERIES.iter().zip(&mut read.series) {
            let value = path.iter().fold(point, |v, key| &v[*key]).clone();
            let fits = match (&value, *name) {
                (Value::String(_), "espresso_state_change") | (Value::Null, _) => true,
                (Value::Number(_), n) => n != "espresso_state_change",
                (Value::String(s), _) => s == "NaN",
                _ => false,
            };
            if !fits {
                return Err(format!("point {i}: {name} is {value}"));
            }
            series.push(value);
        }
        let stage = point["status"].as_str().unwrap_or_default();
        if !stage.is_empty() && last_stage.as_deref() != Some(stage) {
            if last_stage.is_some() {
                read.stages.push(i);
            }
            last_stage = Some(stage.to_owned());
        }
    }
    read.drink_weight = data
        .last()
        .map(|p| p["shot"]["weight"].clone())
        .unwrap_or(Value::Null);
    Ok(read)
}

/// One upload the stand-in accepted.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The id it answered.
    pub id: String,
    /// The `Authorization` header it came with.
    pub authorization: String,
    /// The file's name in the form.
    pub filename: Option<String>,
    /// The file, as sent.
    pub file: Vec<u8>,
    /// The file as Visualizer reads it.
    pub read: ReadShot,
}

#[derive(Debug, Default)]
struct Inner {
    /// `Authorization` values accepted.
    accepted: Vec<String>,
    /// Answers forced for the next requests: status, `Retry-After`.
    forced: VecDeque<(u16, Option<u64>)>,
    /// Every request's `Authorization` header, accepted or not.
    requests: Vec<Option<String>>,
    uploads: Vec<Upload>,
    /// Shots by their data: the same data is the same shot.
    shots: Vec<(String, String)>,
}

/// A Visualizer stand-in. Dropping it stops the server.
#[derive(Debug)]
pub struct StandIn {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandIn {
    /// Starts one on the current runtime that accepts the account `username`:`password` by
    /// HTTP Basic and `token` as a bearer token.
    pub async fn start(username: &str, password: &str, token: &str) -> std::io::Result<StandIn> {
        use base64::Engine as _;
        let pair = format!("{username}:{password}");
        let basic = base64::engine::general_purpose::STANDARD.encode(pair);
        let inner = Arc::new(Mutex::new(Inner {
            accepted: vec![format!("Basic {basic}"), format!("Bearer {token}")],
            ..Inner::default()
        }));
        let app = axum::Router::new()
            .route("/api/shots/upload", axum::routing::post(upload))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Ok(StandIn { addr, inner, task })
    }

    /// Its base URL, as `[visualizer] url` takes it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next `n` requests get `status` (with `Retry-After: retry_after` seconds when given)
    /// whatever they hold.
    pub fn answer_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        let mut inner = self.inner.lock().unwrap();
        inner
            .forced
            .extend(std::iter::repeat_n((status, retry_after), n));
    }

    /// Every accepted upload, in order (the same shot twice is listed twice, with one id).
    pub fn uploads(&self) -> Vec<Upload> {
        self.inner.lock().unwrap().uploads.clone()
    }

    /// How many requests came, accepted or not.
    pub fn requests(&self) -> usize {
        self.inner.lock().unwrap().requests.len()
    }
}

/// `POST /api/shots/upload`.
async fn upload(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    {
        let mut inner = inner.lock().unwrap();
        inner.requests.push(authorization.clone());
        if let Some((status, retry_after)) = inner.forced.pop_front() {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = (
                status,
                axum::Json(json!({"error": "Too many requests. Please try again later."})),
            )
                .into_response();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, seconds.into());
            }
            return response;
        }
        if !authorization
            .as_ref()
            .is_some_and(|a| inner.accepted.contains(a))
        {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    let refuse = |why: String| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({ "error": format!("Could not save the provided file. {why}") })),
        )
            .into_response()
    };
    let Ok(mut multipart) = multipart else {
        return refuse("No shot file provided.".into());
    };
    let mut file = None;
    while let Ok(Some(field)) = multipart.next_field().await {
        if field.name() == Some("file") {
            let filename = field.file_name().map(str::to_owned);
            match field.bytes().await {
                Ok(bytes) => file = Some((filename, bytes.to_vec())),
                Err(e) => return refuse(e.to_string()),
            }
        }
    }
    let Some((filename, file)) = file else {
        return refuse("No shot file provided.".into());
    };
    let read = match read_shot_file(&file) {
        Ok(read) => read,
        Err(why) => return refuse(why),
    };
    let key = serde_json::from_slice::<Value>(&file)
        .map(|v| v["data"].to_string())
        .unwrap_or_default();
    let mut inner = inner.lock().unwrap();
    let id = match inner.shots.iter().find(|(data, _)| *data == key) {
        Some((_, id)) => id.clone(),
        None => {
            let id = format!("00000000-0000-4000-8000-{:012x}", inner.shots.len() + 1);
            inner.shots.push((key, id.clone()));
            id
        }
    };
    inner.uploads.push(Upload {
        id: id.clone(),
        authorization: authorization.unwrap_or_default(),
        filename,
        file,
        read,
    });
    axum::Json(json!({ "id": id })).into_response()
}
