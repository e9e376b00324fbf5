//! One try of an upload against the Visualizer stand-in (`simulator::visualizer`): what each
//! answer means. A bearer token and Basic credentials are both sent as Visualizer takes them;
//! a refusal for good (wrong credentials, a file it cannot read) says Visualizer's reason; its
//! rate limit (`429` with `Retry-After`) and a server error are tried again.

use std::time::Duration;

use recorder::visualizer::{Uploaded, VisualizerConfig};
use simulator::visualizer::StandIn;

const FILE: &[u8] = br#"{"time":1767116178.4,"profile_name":"Adaptive v1","id":"x","profile":null,"data":[
{"shot":{"pressure":0.0,"flow":3.24,"weight":0.0,"gravimetric_flow":"NaN","setpoints":{"active":"flow","flow":8.0}},"time":4,"status":"Prefill","sensors":{"tube":88.69}},
{"shot":{"pressure":2.5,"flow":3.0,"weight":0.4,"gravimetric_flow":0.1,"setpoints":{"active":"pressure","pressure":3.0}},"time":154,"status":"Fill","sensors":{"tube":88.7}}]}"#;

fn config(
    url: &str,
    user: Option<&str>,
    password: Option<&str>,
    token: Option<&str>,
) -> VisualizerConfig {
    VisualizerConfig {
        url: url.to_owned(),
        username: user.map(str::to_owned),
        password: password.map(str::to_owned),
        token: token.map(str::to_owned),
    }
}

#[tokio::test]
async fn each_answer_means_what_visualizer_means_by_it() {
    let stand_in = StandIn::start("me@example.com", "pw", "tk").await.unwrap();
    let url = stand_in.url();

    let bearer = config(&url, None, None, Some("tk")).build().unwrap();
    let Uploaded::Done { id } = bearer.upload(1, FILE, "x.shot.json", 1).await else {
        panic!("uploaded with the token")
    };
    let basic = config(&url, Some("me@example.com"), Some("pw"), None)
        .build()
        .unwrap();
    assert_eq!(
        basic.upload(1, FILE, "x.shot.json", 1).await,
        Uploaded::Done { id: id.clone() },
        "the same file is the same shot"
    );
    let uploads = stand_in.uploads();
    assert_eq!(uploads.len(), 2);
    assert_eq!(uploads[0].authorization, "Bearer tk");
    assert!(uploads[1].authorization.starts_with("Basic "));
    assert_eq!(uploads[0].read.profile_title, "Adaptive v1");
    assert_eq!(uploads[0].read.timeframe, vec![0.004, 0.154]);
    assert_eq!(uploads[0].read.stages, vec![1]);
    assert_eq!(basic.shot_url(&id), format!("{url}/shots/{id}"));

    // Wrong credentials: final, and said so.
    let wrong = config(&url, None, None, Some("nope")).build().unwrap();
    let Uploaded::Refused(error) = wrong.upload(2, FILE, "y.shot.json", 1).await else {
        panic!("refused")
    };
    assert!(error.contains("HTTP 401"), "{error}");

    // A file Visualizer cannot read: final, with its reason.
    let Uploaded::Refused(error) = basic.upload(3, b" {}", "z.shot.json", 1).await else {
        panic!("refused")
    };
    assert!(
        error.contains("HTTP 422") && error.contains("does not start with"),
        "{error}"
    );

    // Its rate limit and its errors: again, when it says.
    stand_in.answer_next(1, 429, Some(7));
    assert_eq!(
        basic.upload(4, FILE, "x.shot.json", 1).await,
        Uploaded::Again {
            wait: Some(Duration::from_secs(7)),
            error: format!("{url} answered HTTP 429: Too many requests. Please try again later."),
        }
    );
    stand_in.answer_next(1, 503, None);
    assert!(matches!(
        basic.upload(4, FILE, "x.shot.json", 2).await,
        Uploaded::Again { wait: None, .. }
    ));
    // Nobody there: again.
    drop(stand_in);
    let gone = basic.upload(5, FILE, "x.shot.json", 1).await;
    assert!(matches!(gone, Uploaded::Again { .. }), "{gone:?}");
    // The last try gives up.
    let last = basic
        .upload(5, FILE, "x.shot.json", recorder::visualizer::RETRY.attempts)
        .await;
    assert!(
        matches!(&last, Uploaded::Refused(e) if e.starts_with("out of tries")),
        "{last:?}"
    );
    assert_eq!(
        basic
            .stats
            .uploaded
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
