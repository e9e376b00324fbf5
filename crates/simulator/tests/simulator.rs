//! The simulated machine seen from outside: our socket.io client on its stream, plain HTTP on
//! its history API.

use std::time::Duration;

use meticulous::{CurrentShot, HistoryPage, MachineEvent};
use simulator::{Scenario, Simulator, SimulatorConfig};
use socketio_v5::{Auth, Client, ClientConfig, Event};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// `GET path` over HTTP/1.0; the body.
async fn get(sim: &Simulator, path: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.0\r\nHost: sim\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_run_streams_a_shot_and_saves_it() {
    let mut sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::Normal,
        speed: 40.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = Client::new(
        ClientConfig::new(&sim.url())
            .unwrap()
            .engine(|e| e.transport(engineio_client::TransportMode::WebSocket)),
    );
    let (_socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    let mut statuses = 0;
    let mut extracting = 0;
    let mut mid_shot_checked = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while statuses < 700 {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap()
            .unwrap();
        let Event::Message(event) = event else {
            continue;
        };
        if event.name().as_str() != Some("status") {
            continue;
        }
        statuses += 1;
        let raw = event.raw_args().unwrap();
        let json = raw.trim_start_matches('[').trim_end_matches(']');
        let Ok(MachineEvent::Status(status)) = MachineEvent::parse("status", json) else {
            panic!("{json}")
        };
        if status.extracting {
            extracting += 1;
            if !mid_shot_checked && status.time > 5000 {
                // During the shot the machine answers what it is recording.
                let current: Option<CurrentShot> =
                    serde_json::from_str(&get(&sim, "/api/v1/history/current").await).unwrap();
                assert!(current.is_some_and(|c| !c.data.is_empty()));
                mid_shot_checked = true;
            }
        }
    }
    assert!(extracting >= 200, "{extracting} extracting frames");
    assert!(mid_shot_checked);
    sim.finished().await;
    let saved = sim.saved();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].data.len(), 214);
    // The history API: 20 newest with data by default; ids; dump_data=false sends null.
    let page: HistoryPage = serde_json::from_str(&get(&sim, "/api/v1/history").await).unwrap();
    assert_eq!(page.history.len(), 1);
    assert_eq!(page.history[0].data.len(), 214);
    let listed = get(&sim, "/api/v1/history?dump_data=false&max_results=5").await;
    assert!(listed.contains("\"data\":null"), "{listed}");
    let by_id = get(&sim, &format!("/api/v1/history?ids={}", saved[0].id)).await;
    assert_eq!(
        serde_json::from_str::<HistoryPage>(&by_id)
            .unwrap()
            .history
            .len(),
        1
    );
    assert_eq!(get(&sim, "/api/v1/history/current").await, "null");
    let last: meticulous::Entry =
        serde_json::from_str(&get(&sim, "/api/v1/history/last").await).unwrap();
    assert_eq!(last.id, saved[0].id);
    // The same through the machine API client.
    let api = meticulous::api::Api::new(&sim.url(), Duration::from_secs(5)).unwrap();
    assert_eq!(
        api.shot(&saved[0].id).await.unwrap().unwrap().data.len(),
        214
    );
    assert!(api.shot("no-such-shot").await.unwrap().is_none());
    assert!(api.current().await.unwrap().is_none());
    assert_eq!(api.last().await.unwrap().unwrap().id, saved[0].id);
    let listed = api
        .history(&meticulous::api::HistoryQuery {
            dump_data: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(listed.history[0].data.is_empty());
    client.close();
}

#[tokio::test]
async fn api_errors_name_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let api = meticulous::api::Api::new(&url, Duration::from_secs(2)).unwrap();
    let error = api.current().await.unwrap_err().to_string();
    assert!(
        error.contains(&format!("{url}/api/v1/history/current")) && error.contains("cannot reach"),
        "{error}"
    );
    let error = meticulous::api::Api::new("ftp://machine", Duration::from_secs(1))
        .unwrap_err()
        .to_string();
    assert!(error.contains("plain http"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_shot_drops_the_connection_and_loses_the_shot() {
    let mut sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::RestartMidShot,
        speed: 4.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = Client::new(ClientConfig::new(&sim.url()).unwrap().engine(|e| {
        e.transport(engineio_client::TransportMode::WebSocket)
            .reconnect(engineio_client::Reconnect {
                backoff: engineio_client::Backoff {
                    min: Duration::from_millis(100),
                    max: Duration::from_millis(300),
                    jitter: 0.5,
                },
                ..engineio_client::Reconnect::default()
            })
    }));
    let (_socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    let (mut connects, mut disconnects) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while connects < 2 {
        match tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Event::Connect { .. } => connects += 1,
            Event::Disconnect(_) => disconnects += 1,
            _ => {}
        }
    }
    assert_eq!(disconnects, 1);
    sim.finished().await;
    assert!(
        sim.saved().is_empty(),
        "the machine lost the shot it was recording"
    );
    client.close();
}
