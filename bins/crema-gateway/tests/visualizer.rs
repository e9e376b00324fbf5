//! `[visualizer]` in the gateway's `crema.toml`: a finished live shot is uploaded once to a
//! Visualizer stand-in on 127.0.0.1, and `GET /api/v1/shots/{id}` links it there; without an
//! account an `upload` run is refused, saying what to configure.

mod common;

use std::time::Duration;

use common::{brewing, eventually, get_json, post_json, start};
use serde_json::json;
use simulator::visualizer::StandIn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_uploads_a_finished_shot_and_links_it() {
    let stand_in = StandIn::start("me@example.com", "pw", "tk").await.unwrap();
    let config = format!(
        "[visualizer]\nurl = \"{}\"\nusername = \"me@example.com\"\npassword = \"pw\"\n",
        stand_in.url()
    );
    let brewing = brewing(&config, 10.0).await;
    let gw = &brewing.gateway;
    let doc = eventually(Duration::from_secs(60), "an uploaded shot", || async {
        let (_, page) = get_json(&gw.addr, "/api/v1/shots").await;
        let id = page["shots"][0]["id"].as_str()?.to_owned();
        let (_, doc) = get_json(&gw.addr, &format!("/api/v1/shots/{id}")).await;
        doc["visualizer_id"].is_string().then_some(doc)
    })
    .await;
    let uploads = stand_in.uploads();
    assert_eq!(uploads.len(), 1);
    let id = uploads[0].id.as_str();
    assert_eq!(doc["visualizer_id"], id);
    assert_eq!(
        doc["visualizer_url"],
        format!("{}/shots/{id}", stand_in.url())
    );
    assert!(uploads[0].authorization.starts_with("Basic "));

    // The history run finds nothing left: the live shot is on Visualizer already.
    let (status, run) = post_json(&gw.addr, "/api/v1/runs", &json!({"kind": "upload"})).await;
    assert_eq!(status, 202, "{run}");
    let id = run["id"].as_i64().unwrap();
    let run = eventually(Duration::from_secs(30), "the upload run", || async {
        let (_, run) = get_json(&gw.addr, &format!("/api/v1/runs/{id}")).await;
        (run["status"] == "succeeded").then_some(run)
    })
    .await;
    assert_eq!(run["kind"], "upload");
    assert_eq!(stand_in.uploads().len(), 1, "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_run_without_an_account_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    let gw = start(&[
        "--machine",
        "http://127.0.0.1:9",
        "--db",
        db.to_str().unwrap(),
    ])
    .await;
    let (status, body) = post_json(&gw.addr, "/api/v1/runs", &json!({"kind": "upload"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string().contains("[visualizer]"),
        "it says what to configure: {body}"
    );
}
