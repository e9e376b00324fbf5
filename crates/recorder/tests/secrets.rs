//! What holds a secret does not print it: `Debug` of the configuration and of what it builds
//! (webhooks, analyzers, Visualizer, OTLP, the database URL), and the URLs that logs and stored
//! errors show.

use recorder::config::Shared;
use recorder::hooks::{HookFlags, Hooks};

const CONFIG: &str = r#"
db = "postgres://crema:SECRET-db@db.internal:5432/crema"

[[webhooks]]
name = "slack"
url = "https://hooks.slack.com/services/T000/B000/SECRET-slack"
token = "SECRET-token"

[[webhooks]]
name = "phone"
url = "https://ntfy.sh/SECRET-topic"
format = "ntfy"

[[analyzers]]
name = "coach"
url = "https://coach.example/analyze?key=SECRET-key"

[visualizer]
username = "me@example.com"
password = "SECRET-password"

[otlp]
endpoint = "https://otlp.example:4318"
headers = { "x-api-key" = "SECRET-header" }
"#;

#[test]
fn debug_shows_no_secret() {
    let (shared, _) = Shared::split("crema.toml", CONFIG).unwrap();
    let hooks = Hooks::configure(
        shared.webhooks.clone(),
        shared.analyzers.clone(),
        HookFlags::new(
            &["log=https://example.com/hook/SECRET-flag".to_owned()],
            &[],
            &[],
        ),
        shared.visualizer.as_ref(),
    )
    .unwrap();
    let otlp = shared.otlp.as_ref().unwrap().build().unwrap();
    let token = recorder::visualizer::VisualizerConfig {
        url: "https://visualizer.coffee/SECRET-path".into(),
        username: None,
        password: None,
        token: Some("SECRET-oauth".into()),
    };
    for shown in [
        format!("{shared:?}"),
        format!("{hooks:?}"),
        format!("{otlp:?}"),
        format!("{token:?}"),
        format!("{:?}", token.build().unwrap()),
    ] {
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(!shown.is_empty());
    }
    // What is not secret still shows: names, hosts, header names.
    let all = format!("{shared:?}");
    for plain in [
        "slack",
        "hooks.slack.com",
        "ntfy.sh",
        "x-api-key",
        "me@example.com",
    ] {
        assert!(all.contains(plain), "{plain} in {all}");
    }
}

/// Names an analyzer may not take: the built-in's, and `visualizer`, under which uploads are
/// kept (an analyzer answering `{"url": "javascript:…"}` under it was linked from the page).
#[test]
fn the_visualizer_name_is_reserved() {
    for name in ["visualizer", "Visualizer", "shot-facts/2"] {
        let flag = format!("{name}=http://127.0.0.1:9/analyze");
        let refused = Hooks::configure(
            Vec::new(),
            Vec::new(),
            HookFlags::new(&[], &[], &[flag]),
            None,
        );
        assert!(refused.is_err(), "{name}");
    }
}
