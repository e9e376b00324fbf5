//! Two gateways on one database and one machine: the second waits while the first records it,
//! and takes the machine over at once when the first is killed (`kill -9`), recording into the
//! same database.

use std::time::Duration;

use simulator::{Scenario, Simulator, SimulatorConfig};

mod common;
use common::{eventually, request, start};

/// The value of `crema_machine_connected{machine="kitchen"}` on the gateway at `addr`.
async fn connected(addr: &str) -> Option<f64> {
    let (status, text) = request(addr, "GET", "/metrics", "", "").await;
    assert_eq!(status, 200);
    text.lines()
        .find_map(|l| l.strip_prefix("crema_machine_connected{machine=\"kitchen\"} "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_takes_the_machine_over_when_the_first_dies() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    let sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::Normal,
        speed: 10.0,
        repeat: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let machine = format!("kitchen={}", sim.url());
    let args = ["--machine", &machine, "--db", db.to_str().unwrap()];
    let mut first = start(&args).await;
    eventually(
        Duration::from_secs(20),
        "the first gateway connected",
        || async { (connected(&first.addr).await == Some(1.0)).then_some(()) },
    )
    .await;
    let second = start(&args).await;
    // The second stands by: the machine is the first's.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(connected(&second.addr).await, Some(0.0));
    assert_eq!(connected(&first.addr).await, Some(1.0));

    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let killed = std::time::Instant::now();
    eventually(
        Duration::from_secs(15),
        "the second gateway took over",
        || async { (connected(&second.addr).await == Some(1.0)).then_some(()) },
    )
    .await;
    // On the same host a dead holder holds nothing: the retry (every 5 s) takes it at once.
    assert!(
        killed.elapsed() < Duration::from_secs(7),
        "{:?}",
        killed.elapsed()
    );
    // And it records: the next shot lands in the shared database.
    eventually(
        Duration::from_secs(30),
        "a shot recorded by the second",
        || async {
            let (_, text) = request(&second.addr, "GET", "/metrics", "", "").await;
            text.lines()
                .find_map(|l| {
                    l.strip_prefix("crema_recorder_shots_recorded_total{machine=\"kitchen\"} ")
                })
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|n| *n >= 1.0)
        },
    )
    .await;
}
