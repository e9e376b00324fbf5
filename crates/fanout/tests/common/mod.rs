//! What the WebSocket tests share: a server on 127.0.0.1 and a client's helpers.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fanout::Hub;
use fanout::ws::{Limits, WsState, router};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

pub(crate) async fn serve(hub: Arc<Hub>, limits: Limits) -> String {
    serve_state(WsState::new(hub, limits)).await
}

pub(crate) async fn serve_state(state: Arc<WsState>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(fanout::ws::listener(listener), router(state))
            .await
            .ok();
    });
    format!("ws://{addr}/ws")
}

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("the connection stays")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

pub(crate) async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

pub(crate) fn publish(hub: &Hub, topic: &str, name: &str, data: &str) {
    let raw = serde_json::value::RawValue::from_string(data.to_owned()).unwrap();
    hub.publish(topic, name, &raw, SystemTime::now());
}
