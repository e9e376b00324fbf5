//! Reconnect timing on paused tokio time: deterministic, no sleeping in real time.

use std::time::Duration;

use engineio_client::{Backoff, Client, Config, Event, Reconnect, TransportMode};

/// A port nobody listens on: every attempt is refused at once.
fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

async fn delays(backoff: Backoff, attempts: u32) -> Vec<(Duration, Duration)> {
    let config = Config::new(&refused_url())
        .unwrap()
        .transport(TransportMode::WebSocket)
        .reconnect(Reconnect {
            backoff,
            max_attempts: Some(attempts),
            ..Reconnect::default()
        });
    let (_client, mut events) = Client::connect(config);
    let mut out = Vec::new();
    let mut last = tokio::time::Instant::now();
    let mut announced = None;
    while let Some(event) = events.recv().await {
        if let Event::Reconnecting { delay, .. } = event {
            let now = tokio::time::Instant::now();
            if let Some(previous) = announced {
                // The gap between two announcements is the announced delay (plus a refused
                // connect, which takes no virtual time).
                out.push((previous, now - last));
            }
            announced = Some(delay);
            last = now;
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn delays_double_from_min_to_max_and_are_honoured() {
    let backoff = Backoff {
        min: Duration::from_secs(1),
        max: Duration::from_secs(5),
        jitter: 0.0,
    };
    let seen = delays(backoff, 6).await;
    let announced: Vec<u64> = seen.iter().map(|(d, _)| d.as_secs()).collect();
    assert_eq!(announced, vec![1, 2, 4, 5, 5]);
    for (announced, waited) in seen {
        let slack = waited.saturating_sub(announced);
        assert!(
            waited >= announced && slack < Duration::from_millis(50),
            "announced {announced:?}, waited {waited:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn jitter_stays_within_bounds_and_varies_at_the_cap() {
    let backoff = Backoff {
        min: Duration::from_secs(1),
        max: Duration::from_secs(5),
        jitter: 0.5,
    };
    let seen = delays(backoff, 12).await;
    let at_cap: Vec<Duration> = seen.iter().skip(4).map(|(d, _)| *d).collect();
    assert!(
        at_cap
            .iter()
            .all(|d| *d >= Duration::from_millis(2500) && *d <= Duration::from_secs(5)),
        "{at_cap:?}"
    );
    let distinct: std::collections::BTreeSet<_> = at_cap.iter().collect();
    assert!(distinct.len() > 1, "no lock-step at the cap: {at_cap:?}");
}
