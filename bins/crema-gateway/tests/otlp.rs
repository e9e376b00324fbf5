//! `[otlp]` in the gateway's `crema.toml`: its metrics reach an OTLP/HTTP collector stand-in
//! (protobuf decoded with OpenTelemetry's own message types), every family of `/metrics` as
//! an instrument of the same name, kind and labels.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{brewing, eventually, request};
use simulator::collector::{Collector, Shape};

/// The families of a Prometheus text: name (as written) and type.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_pushes_every_family_of_metrics_over_otlp() {
    let collector = Collector::start().await.unwrap();
    let config = format!(
        "[otlp]\nendpoint = \"{}\"\ninterval_s = 1\nheaders = {{ \"x-api-key\" = \"k\" }}\n",
        collector.url()
    );
    let brewing = brewing(&config, 10.0).await;
    let gw = &brewing.gateway;
    let export = eventually(
        Duration::from_secs(30),
        "a push with the machine connected and events counted",
        || async {
            collector.exports().into_iter().rev().find(|e| {
                let point = |name: &str| {
                    e.metric(name).and_then(|m| {
                        m.points
                            .iter()
                            .find(|p| {
                                p.attributes.get("machine").map(String::as_str) == Some("kitchen")
                            })
                            .map(|p| p.value)
                    })
                };
                point("crema_machine_connected") == Some(1.0)
                    && point("crema_machine_events").is_some_and(|n| n > 0.0)
                    && e.metric("crema_storage_commit_seconds")
                        .is_some_and(|m| m.points.iter().any(|p| p.count > 0))
            })
        },
    )
    .await;
    assert_eq!(
        export.headers.get("x-api-key").map(String::as_str),
        Some("k")
    );
    assert_eq!(
        export.resource.get("service.name").map(String::as_str),
        Some("crema-gateway")
    );

    // Every family of /metrics is an instrument of the next push, of the same kind.
    let (status, text) = request(&gw.addr, "GET", "/metrics", "", "").await;
    assert_eq!(status, 200);
    let seen = collector.exports().len();
    let export = eventually(Duration::from_secs(10), "the next push", || async {
        collector.exports().into_iter().nth(seen)
    })
    .await;
    let scraped = families(&text);
    assert!(scraped.len() >= 30, "{scraped:?}");
    let pushed: BTreeMap<String, String> = export
        .metrics
        .iter()
        .map(|m| match m.shape {
            Shape::Counter => (format!("{}_total", m.name), "counter".to_owned()),
            Shape::Gauge => (m.name.clone(), "gauge".to_owned()),
            Shape::Histogram => (m.name.clone(), "histogram".to_owned()),
            other => (m.name.clone(), format!("{other:?}")),
        })
        .collect();
    // Families without samples yet (no webhook, no analyzer configured) are described in
    // /metrics and have no points to push; every other one is pushed.
    let empty: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .filter(|name| {
            !text
                .lines()
                .any(|l| !l.starts_with('#') && l.starts_with(name))
        })
        .collect();
    for (name, kind) in &scraped {
        if empty.contains(&name.as_str()) {
            continue;
        }
        assert_eq!(
            pushed.get(name),
            Some(kind),
            "{name} in /metrics, pushed: {pushed:?}"
        );
    }
    for name in pushed.keys() {
        assert!(scraped.contains_key(name), "{name} pushed, not in /metrics");
    }
    assert!(collector.errors().is_empty(), "{:?}", collector.errors());
}

/// A clean stop (SIGTERM) pushes the last values before the process exits: with a push every
/// minute, the only push of a short run is the one at the stop, and it has what was counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_gateway_pushes_its_last_values() {
    let collector = Collector::start().await.unwrap();
    let config = format!(
        "[otlp]\nendpoint = \"{}\"\ninterval_s = 60\n",
        collector.url()
    );
    let mut brewing = brewing(&config, 10.0).await;
    let gw = &mut brewing.gateway;
    eventually(Duration::from_secs(30), "events counted", || async {
        let (_, text) = request(&gw.addr, "GET", "/metrics", "", "").await;
        text.lines()
            .any(|l| l.starts_with("crema_machine_events_total{") && !l.ends_with(" 0"))
            .then_some(())
    })
    .await;
    assert!(collector.exports().is_empty(), "a push before the stop");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &gw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let until = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = gw.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < until,
            "the gateway did not stop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    let exports = collector.exports();
    assert_eq!(exports.len(), 1, "{exports:?}");
    let events = exports[0]
        .metric("crema_machine_events")
        .and_then(|m| m.points.first())
        .map(|p| p.value);
    assert!(events.is_some_and(|n| n > 0.0), "{events:?}");
}
