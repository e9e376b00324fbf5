//! The broker against a real Redis server (a private one from `testbed`): two instances' hubs
//! see the same events with the same numbers and frames, a stale publisher is fenced, a late
//! instance gets the same snapshot, and a Redis restart neither repeats nor renumbers events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::Broker;
use fanout::Hub;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "machine:kitchen";

fn data(i: u64) -> Box<RawValue> {
    RawValue::from_string(format!("{{\"i\":{i}}}")).unwrap()
}

async fn instance(url: &str, stop: &CancellationToken) -> (Arc<Hub>, Broker) {
    let epoch = Broker::epoch(url, "crema").await.unwrap();
    let hub = Arc::new(Hub::new(epoch, 1024, 4096));
    hub.declare(TOPIC);
    let broker =
        Broker::start(url, "crema", hub.clone(), vec![TOPIC.into()], stop.clone()).unwrap();
    (hub, broker)
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn frames(hub: &Hub) -> Vec<String> {
    hub.snapshot(TOPIC)
        .iter()
        .map(|e| e.frame().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_sees_the_same_events_once() {
    let Some(mut redis) = testbed::Redis::start() else {
        return;
    };
    let url = redis.url();
    let stop = CancellationToken::new();
    let (a, broker_a) = instance(&url, &stop).await;
    let (b, _broker_b) = instance(&url, &stop).await;
    assert_eq!(a.epoch(), b.epoch(), "one epoch for the deployment");
    let mut live_b = b.subscribe(TOPIC).live;
    until("both readers", || broker_a.healthy()).await;

    let publish = broker_a.publisher(TOPIC);
    for i in 1..=100 {
        let name = if i % 2 == 0 { "status" } else { "sensors" };
        publish(1, name, &data(i));
    }
    until("100 events on both", || {
        a.last_seq(TOPIC) == 100 && b.last_seq(TOPIC) == 100
    })
    .await;
    for seq in 1..=100 {
        let event = live_b.recv().await.unwrap();
        assert_eq!(event.seq, seq, "in order, none twice, none missing");
        assert_eq!(event.skipped, 0);
    }
    assert_eq!(frames(&a), frames(&b), "the same snapshot, byte for byte");
    let (a_ring, b_ring) = (a.resume(TOPIC, 50).unwrap(), b.resume(TOPIC, 50).unwrap());
    let texts = |r: &fanout::hub::Resumed| {
        r.missed
            .iter()
            .map(|e| e.frame().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        texts(&a_ring),
        texts(&b_ring),
        "a resume is the same on both"
    );
    assert_eq!(a_ring.missed.len(), 50);

    // A newer holder of the machine's lease publishes: the old holder's events are refused.
    publish(2, "status", &data(1000));
    until("the new holder's event", || b.last_seq(TOPIC) == 101).await;
    assert_eq!(live_b.recv().await.unwrap().seq, 101);
    publish(1, "status", &data(2000));
    until("the stale event refused", || {
        broker_a
            .health()
            .fenced
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.last_seq(TOPIC), 101, "nothing from a fenced publisher");

    // A late instance: the same snapshot as the others.
    let (c, _broker_c) = instance(&url, &stop).await;
    until("the late instance caught up", || c.last_seq(TOPIC) == 101).await;
    assert_eq!(frames(&c), frames(&a));

    // Redis restarts empty: numbers go on from where they were, never back, never twice.
    redis.restart();
    until("the publisher back", || {
        publish(2, "sensors", &data(3000));
        a.last_seq(TOPIC) > 101
    })
    .await;
    until("every instance past the restart", || {
        b.last_seq(TOPIC) > 101 && c.last_seq(TOPIC) > 101
    })
    .await;
    let first_after = live_b.recv().await.unwrap();
    assert_eq!(
        (first_after.seq, first_after.skipped),
        (102, 0),
        "the counter goes on from the last number the publisher saw: no hole, no repeat"
    );
    stop.cancel();
}
