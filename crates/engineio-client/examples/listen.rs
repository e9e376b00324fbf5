//! `listen`: connect to an Engine.IO v4 server and print what it sends.
//!
//! ```text
//! cargo run -p engineio-client --example listen -- http://127.0.0.1:3000 [PATH] [MESSAGE]
//! ```
//!
//! PATH is the Engine.IO path (`/engine.io/` by default; `/socket.io/` for a socket.io server,
//! whose packets then show raw). MESSAGE, when given, is sent once each session opens. Every
//! event is printed: the session opening, each message, the upgrade to WebSocket, a close, and
//! each reconnection with its cause. Ctrl-C, or a closed server with nobody to reconnect to
//! after 5 attempts, ends it.

use std::time::Duration;

use engineio_client::{Client, Config, Event, Lost, Payload, Reconnect};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), engineio_client::Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:3000".to_owned());
    let path = args.next().unwrap_or_else(|| "/engine.io/".to_owned());
    let greeting = args.next();

    let config = Config::new(&url)?.path(&path).reconnect(Reconnect {
        max_attempts: Some(5),
        ..Reconnect::default()
    });
    // The connection runs in a task of its own; this handle sends, the stream receives.
    let (client, mut events) = Client::connect(config);
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(event) = event else { break };
        match event {
            Event::Open {
                handshake,
                transport,
            } => {
                println!("open: sid {} on {transport}", handshake.sid);
                if let Some(greeting) = &greeting {
                    client.send(greeting.as_str()).await?;
                }
            }
            Event::Message(Payload::Text(text)) => println!("text: {text}"),
            Event::Message(Payload::Binary(bytes)) => println!("binary: {} bytes", bytes.len()),
            Event::Upgrade { transport } => println!("upgraded to {transport}"),
            Event::Close { reason } => println!("closed: {reason}"),
            Event::Reconnecting {
                attempt,
                delay,
                cause,
            } => {
                // The cause keeps its type: decide on it, not on its text.
                let hint = match &cause {
                    Lost::Failed(error) if error.is_refused() => " (nothing listens there)",
                    Lost::Failed(error) if error.is_timeout() => " (no answer in time)",
                    _ => "",
                };
                println!("reconnecting in {delay:?} (attempt {attempt}): {cause}{hint}");
            }
            other => println!("{other:?}"),
        }
    }
    client.close();
    // Give the close a moment to reach the server.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}
