//! The OTLP exporter against a collector stand-in that decodes the protobuf with the
//! OpenTelemetry project's own message types: the registry's families arrive as instruments
//! of the same names, kinds, labels and values, with the headers configured, and the last
//! values are pushed at shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use simulator::collector::{Collector, Export, Shape};
use telemetry::otlp::{Exporter, OtlpConfig};
use telemetry::{Families, Registry};

/// Waits up to 20 s for a push that satisfies `done`.
async fn push_where(collector: &Collector, done: impl Fn(&Export) -> bool) -> Export {
    let start = Instant::now();
    loop {
        if let Some(e) = collector.exports().into_iter().rev().find(|e| done(e)) {
            return e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no such push; received {:#?}, refused {:?}",
            collector.exports(),
            collector.errors()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn registry(events: Arc<AtomicU64>) -> Registry {
    let mut registry = Registry::new();
    registry.register(move |m: &mut Families| {
        m.counter("crema_test_events", "Events.")
            .sample(&[("machine", "kitchen")], events.load(Relaxed))
            .sample(&[("machine", "office \"2\"")], 1);
        m.gauge("crema_test_up", "Up.").sample(&[], 1);
        m.gauge("crema_test_last_seconds", "When.")
            .sample(&[], 1_700_000_000);
        m.histogram("crema_test_seconds", "Times.", 0.5, 1, vec![(1.0, 1)]);
    });
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn families_arrive_as_instruments_of_the_same_names_and_the_last_values_at_shutdown() {
    let collector = Collector::start().await.unwrap();
    let events = Arc::new(AtomicU64::new(7));
    let registry = Arc::new(registry(events.clone()));
    let mut config = OtlpConfig::new(&collector.url(), Duration::from_secs(1)).unwrap();
    config.headers.insert("x-api-key".into(), "k-123".into());
    let exporter = Exporter::start(registry.clone(), &config, "crema-test").unwrap();
    let record = exporter.seconds_histogram("crema_test_seconds", "Times.", &[0.01, 0.1, 1.0]);
    for ms in [5, 50, 500] {
        record(Duration::from_millis(ms));
    }

    let export = push_where(&collector, |e| e.metric("crema_test_seconds").is_some()).await;
    assert_eq!(
        export.headers.get("x-api-key").map(String::as_str),
        Some("k-123")
    );
    assert_eq!(
        export.resource.get("service.name").map(String::as_str),
        Some("crema-test")
    );
    let events_metric = export.metric("crema_test_events").expect("the counter");
    assert_eq!(events_metric.shape, Shape::Counter, "{events_metric:?}");
    assert_eq!(events_metric.description, "Events.");
    let by_machine = |e: &Export, machine: &str| {
        e.metric("crema_test_events")
            .and_then(|m| {
                m.points
                    .iter()
                    .find(|p| p.attributes.get("machine").map(String::as_str) == Some(machine))
            })
            .map(|p| p.value)
    };
    assert_eq!(by_machine(&export, "kitchen"), Some(7.0));
    assert_eq!(by_machine(&export, "office \"2\""), Some(1.0));
    let up = export.metric("crema_test_up").expect("the gauge");
    assert_eq!((up.shape, up.points[0].value), (Shape::Gauge, 1.0));
    let last = export
        .metric("crema_test_last_seconds")
        .expect("a gauge in seconds");
    assert_eq!(last.unit, "s");
    let times = export.metric("crema_test_seconds").expect("the histogram");
    assert_eq!(times.shape, Shape::Histogram);
    assert_eq!(times.unit, "s");
    let point = &times.points[0];
    assert_eq!(point.count, 3);
    assert_eq!(point.bounds, [0.01, 0.1, 1.0]);
    assert_eq!(point.bucket_counts, [1, 1, 1, 0]);
    assert!((point.value - 0.555).abs() < 1e-9, "{point:?}");
    // The registry's histogram family is left to the histogram measured: one metric by the name.
    assert_eq!(
        export
            .metrics
            .iter()
            .filter(|m| m.name == "crema_test_seconds")
            .count(),
        1
    );

    // A value changed after the last push goes out with the shutdown.
    events.store(9, Relaxed);
    let pushed = collector.exports().len();
    tokio::task::spawn_blocking(move || exporter.shutdown())
        .await
        .unwrap();
    let exports = collector.exports();
    assert!(exports.len() > pushed, "shutdown pushed nothing");
    assert_eq!(by_machine(exports.last().unwrap(), "kitchen"), Some(9.0));
    assert!(collector.errors().is_empty(), "{:?}", collector.errors());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_away_costs_nothing_but_a_warning() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let registry = Arc::new(registry(Arc::new(AtomicU64::new(1))));
    let config =
        OtlpConfig::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(1)).unwrap();
    let exporter = Exporter::start(registry.clone(), &config, "crema-test").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The registry still answers, and the exporter stops in bounded time.
    assert!(registry.text(None).1.contains("crema_test_up 1"));
    let started = Instant::now();
    tokio::task::spawn_blocking(move || exporter.shutdown())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn configurations_that_cannot_work_are_refused() {
    assert!(OtlpConfig::new("collector:4318", Duration::from_secs(60)).is_err());
    assert!(OtlpConfig::new("ftp://collector", Duration::from_secs(60)).is_err());
    let error = OtlpConfig::new("http://collector:4318", Duration::from_millis(10)).unwrap_err();
    assert!(error.contains("at least 1 s"), "{error}");
    let config = OtlpConfig::new("http://collector:4318/", Duration::from_secs(60)).unwrap();
    assert_eq!(config.metrics_url(), "http://collector:4318/v1/metrics");
    let config =
        OtlpConfig::new("https://otlp.example/v1/metrics", Duration::from_secs(60)).unwrap();
    assert_eq!(config.metrics_url(), "https://otlp.example/v1/metrics");
    // A path under which the collector answers is kept.
    let config = OtlpConfig::new("http://gw.example/otlp", Duration::from_secs(60)).unwrap();
    assert_eq!(config.metrics_url(), "http://gw.example/otlp/v1/metrics");
    // A query or fragment would end up before /v1/metrics, credentials in the logs.
    for (endpoint, says) in [
        ("http://collector:4318/?key=x", "query"),
        ("http://collector:4318/#x", "fragment"),
        ("http://user:secret@collector:4318", "headers"),
    ] {
        let error = OtlpConfig::new(endpoint, Duration::from_secs(60)).unwrap_err();
        assert!(error.contains(says), "{endpoint}: {error}");
        assert!(!error.contains("secret"), "{error}");
    }
}

/// An exporter dropped without `shutdown` (a process leaving on an error) still pushes its last
/// values, on a blocking thread: the drop itself returns at once on the async thread (the only
/// one here: a drop that waited for the push there would wait for itself, 5 s).
#[tokio::test]
async fn a_dropped_exporter_pushes_its_last_values_off_the_async_threads() {
    let collector = Collector::start().await.unwrap();
    let registry = Arc::new(registry(Arc::new(AtomicU64::new(5))));
    let config = OtlpConfig::new(&collector.url(), Duration::from_secs(60)).unwrap();
    let exporter = Exporter::start(registry, &config, "crema-test").unwrap();
    let started = Instant::now();
    drop(exporter);
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "the drop waited {:?}",
        started.elapsed()
    );
    let export = push_where(&collector, |e| e.metric("crema_test_events").is_some()).await;
    let kitchen = export.metric("crema_test_events").and_then(|m| {
        m.points
            .iter()
            .find(|p| p.attributes.get("machine").map(String::as_str) == Some("kitchen"))
            .map(|p| p.value)
    });
    assert_eq!(kitchen, Some(5.0));
}
