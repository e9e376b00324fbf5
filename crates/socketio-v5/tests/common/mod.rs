//! Helpers shared by the suites against each server.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use socketio_v5::{Event, Events};

/// The next event, or a failure after 5 s.
pub async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s")
        .expect("the stream goes on")
}

/// The next message event's name and raw arguments.
pub async fn message(events: &mut Events) -> (String, String) {
    loop {
        if let Event::Message(event) = next(events).await {
            return (event.name().to_string(), event.raw_args().unwrap());
        }
    }
}

/// The raw arguments of the next message named `name`.
pub async fn named(events: &mut Events, name: &str) -> String {
    loop {
        let (n, args) = message(events).await;
        if n == name {
            return args;
        }
    }
}
