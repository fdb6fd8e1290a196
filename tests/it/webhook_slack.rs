//! Slack incoming webhooks against a real local receiver, under tokio's
//! paused clock: retries, permanent failures, digests and pacing.

use crate::common;
use crate::webhook_support;

use std::sync::Arc;
use std::time::Duration;

use common::max_in_any_window;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::time::Instant;
use trainwatch::deliver::SendError;
use trainwatch::deliver::webhook::WebhookSender;
use trainwatch::samsara::RateLimits;
use webhook_support::{Receiver, Reply, URL_SECRET, answer, policy, sender};

fn message(n: usize) -> Value {
    json!({"text": format!("part {n}"), "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": format!("part {n}")}}]})
}

fn digest(parts: usize) -> Vec<Value> {
    (1..=parts).map(message).collect()
}

fn too_many(retry_after: &'static str) -> Reply {
    Reply::Answer(
        429,
        vec![("Retry-After", retry_after)],
        "rate_limited".into(),
    )
}

#[tokio::test(start_paused = true)]
async fn a_429_waits_its_fractional_retry_after_then_delivers() {
    let rx = Receiver::start().await;
    rx.script([too_many("0.5")]);

    let out = sender()
        .slack("alerts", &rx.url("a"), &digest(1), &policy())
        .await;

    assert_eq!(out.result, Ok(()));
    assert_eq!(out.attempts, 2);
    let got = rx.received();
    assert_eq!(got.len(), 2);
    let waited = got[1].at - got[0].at;
    assert!(waited >= Duration::from_millis(500), "waited {waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_longer_than_the_pacing_is_honoured() {
    let rx = Receiver::start().await;
    rx.script([too_many("2.5")]);

    let out = sender()
        .slack("alerts", &rx.url("a"), &digest(1), &policy())
        .await;

    assert_eq!(out.result, Ok(()));
    let got = rx.received();
    let waited = got[1].at - got[0].at;
    assert!(waited >= Duration::from_millis(2500), "waited {waited:?}");
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_500_is_retried_and_delivered() {
    let rx = Receiver::start().await;
    rx.script([answer(500, "internal_error")]);

    let out = sender()
        .slack("alerts", &rx.url("a"), &digest(1), &policy())
        .await;

    assert_eq!(out.result, Ok(()));
    assert_eq!(out.attempts, 2);
    assert_eq!(rx.received().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn invalid_blocks_fails_at_once_quoting_slack() {
    let rx = Receiver::start().await;
    rx.script([answer(400, "invalid_blocks")]);

    let out = sender()
        .slack("alerts", &rx.url("a"), &digest(1), &policy())
        .await;

    assert_eq!(out.attempts, 1);
    assert_eq!(out.parts_sent, 0);
    assert_eq!(rx.received().len(), 1);
    let err = out.result.unwrap_err();
    assert!(!err.is_transient());
    assert_eq!(
        err.to_string(),
        r#"slack webhook "alerts": HTTP 400 Bad Request: invalid_blocks"#
    );
}

#[tokio::test(start_paused = true)]
async fn only_200_is_success() {
    let rx = Receiver::start().await;
    rx.script([answer(204, "")]);

    let out = sender()
        .slack("alerts", &rx.url("a"), &digest(1), &policy())
        .await;

    assert!(matches!(out.result, Err(SendError::Permanent { .. })));
}

#[tokio::test(start_paused = true)]
async fn a_digest_is_posted_in_order_one_message_per_second() {
    let rx = Receiver::start().await;

    let out = sender()
        .slack("alerts", &rx.url("a"), &digest(3), &policy())
        .await;

    assert_eq!(out.result, Ok(()));
    assert_eq!((out.attempts, out.parts_sent), (3, 3));
    let got = rx.received();
    let texts: Vec<_> = got.iter().map(|r| r.json()["text"].clone()).collect();
    assert_eq!(texts, ["part 1", "part 2", "part 3"]);
    for pair in got.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_secs(1), "gap {gap:?}");
        assert!(
            gap < Duration::from_millis(1100),
            "needlessly slow: {gap:?}"
        );
    }
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("user-agent").unwrap().starts_with("trainwatch/"));
}

#[tokio::test(start_paused = true)]
async fn senders_posting_to_one_url_share_its_pacing_and_other_urls_do_not_wait() {
    let rx = Arc::new(Receiver::start().await);
    let limits = Arc::new(RateLimits::default());
    let new_sender = || WebhookSender::with_settings(None, limits.clone()).unwrap();
    let (shared, other) = (rx.url("shared"), rx.url("other"));
    let started = Instant::now();

    let post = |sender: WebhookSender, url: SecretString| {
        tokio::spawn(async move { sender.slack("hook", &url, &digest(3), &policy()).await })
    };
    let jobs = [
        post(new_sender(), shared.clone()),
        post(new_sender(), shared.clone()),
        post(new_sender(), other.clone()),
    ];
    for job in jobs {
        assert_eq!(job.await.unwrap().result, Ok(()));
    }

    let got = rx.received();
    let at = |hook: &str| -> Vec<Instant> {
        got.iter()
            .filter(|r| r.path.starts_with(&format!("/services/{hook}/")))
            .map(|r| r.at)
            .collect()
    };
    let (shared_at, other_at) = (at("shared"), at("other"));
    assert_eq!(shared_at.len(), 6);
    assert_eq!(max_in_any_window(&shared_at, Duration::from_secs(1)), 1);
    assert_eq!(other_at.len(), 3);
    assert_eq!(max_in_any_window(&other_at, Duration::from_secs(1)), 1);
    // The other hook started at once and finished in two gaps, not behind
    // the shared hook's six messages.
    assert!(other_at[0] - started < Duration::from_millis(100));
    assert!(other_at[2] - started < Duration::from_millis(2100));
}

#[tokio::test(start_paused = true)]
async fn a_part_that_fails_for_good_is_named_and_parts_before_it_are_not_resent() {
    let rx = Receiver::start().await;
    rx.script([
        answer(200, "ok"),
        answer(503, "busy"),
        answer(400, "no_text"),
    ]);

    let out = sender()
        .slack("digest", &rx.url("a"), &digest(3), &policy())
        .await;

    let texts: Vec<_> = rx
        .received()
        .iter()
        .map(|r| r.json()["text"].clone())
        .collect();
    assert_eq!(texts, ["part 1", "part 2", "part 2"], "part 3 never sent");
    assert_eq!((out.attempts, out.parts_sent), (3, 1));
    assert_eq!(
        out.result.unwrap_err().to_string(),
        r#"slack webhook "digest", part 2 of 3: HTTP 400 Bad Request: no_text"#
    );
}

#[tokio::test(start_paused = true)]
async fn a_digest_resumes_at_the_part_that_failed() {
    let rx = Receiver::start().await;
    rx.script([answer(404, "no_service")]);

    let out = sender()
        .slack_from("digest", &rx.url("a"), &digest(3), 1, &policy())
        .await;
    assert_eq!(out.parts_sent, 1);
    assert!(out.result.unwrap_err().to_string().contains("part 2 of 3"));

    let out = sender()
        .slack_from("digest", &rx.url("a"), &digest(3), 1, &policy())
        .await;
    assert_eq!(out.result, Ok(()));
    assert_eq!(out.parts_sent, 3);
    let texts: Vec<_> = rx
        .received()
        .iter()
        .map(|r| r.json()["text"].clone())
        .collect();
    assert_eq!(texts, ["part 2", "part 2", "part 3"]);
}

#[tokio::test(start_paused = true)]
async fn a_request_that_times_out_is_retried() {
    let rx = Receiver::start().await;
    rx.script([Reply::Hang]);
    // A real timeout: the paused clock jumps to it while the receiver hangs.
    let sender = WebhookSender::with_settings(
        Some(Duration::from_secs(5)),
        Arc::new(RateLimits::default()),
    )
    .unwrap();
    let started = Instant::now();

    let out = sender
        .slack("alerts", &rx.url("a"), &digest(1), &policy())
        .await;

    assert_eq!(out.result, Ok(()));
    assert_eq!(out.attempts, 2);
    assert!(started.elapsed() >= Duration::from_secs(5));
}

/// Everything a caller might print of a failed delivery.
fn printed(out: &trainwatch::deliver::webhook::SlackAttempted) -> String {
    let err = out.result.as_ref().unwrap_err();
    format!("{err}\n{err:?}\n{out:?}")
}

#[tokio::test(start_paused = true)]
async fn no_error_names_the_url_even_when_the_receiver_echoes_it() {
    let rx = Receiver::start().await;
    rx.script([Reply::EchoPath(404)]);
    let url = rx.url("a");

    let out = sender().slack("alerts", &url, &digest(1), &policy()).await;

    let printed = printed(&out);
    assert!(printed.contains(r#"slack webhook "alerts""#), "{printed}");
    assert!(printed.contains("404"), "{printed}");
    assert!(!printed.contains(URL_SECRET), "{printed}");
    assert!(!printed.contains(url.expose_secret()), "{printed}");
    let debug = format!("{:?}", sender());
    assert!(!debug.contains(URL_SECRET), "{debug}");
}

#[tokio::test(start_paused = true)]
async fn a_connection_error_is_transient_and_does_not_name_the_url() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = SecretString::from(format!(
        "http://{}/services/T/{URL_SECRET}",
        listener.local_addr().unwrap()
    ));
    drop(listener);

    let out = sender().slack("alerts", &url, &digest(1), &policy()).await;

    assert_eq!(out.attempts, policy().max_attempts);
    assert!(out.result.as_ref().unwrap_err().is_transient());
    let printed = printed(&out);
    assert!(printed.contains(r#"slack webhook "alerts""#), "{printed}");
    assert!(!printed.contains(URL_SECRET), "{printed}");
    assert!(!printed.contains(url.expose_secret()), "{printed}");
}

#[tokio::test(start_paused = true)]
async fn a_refused_connection_is_retried_by_the_service_and_final_for_run_once() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = SecretString::from(format!("http://127.0.0.1:{port}/{URL_SECRET}"));

    let service = sender().slack("alerts", &url, &digest(1), &policy()).await;
    let run_once = sender()
        .refused_is_final(true)
        .slack("alerts", &url, &digest(1), &policy())
        .await;

    assert_eq!(service.attempts, 4, "the service retries: {service:?}");
    assert!(matches!(service.result, Err(SendError::Refused { .. })));
    assert_eq!(run_once.attempts, 1, "run-once does not: {run_once:?}");
    let err = run_once.result.unwrap_err();
    assert!(!err.is_transient());
    assert_eq!(
        err.to_string(),
        r#"slack webhook "alerts": connection refused (nothing listens at the webhook's address) (not retried by run-once)"#
    );
}
