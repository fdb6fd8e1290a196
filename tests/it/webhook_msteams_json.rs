//! Teams Workflows and generic JSON webhooks against a real local receiver.

use crate::webhook_support;

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::Sha256;
use trainwatch::deliver::{Attempted, SendError};
use webhook_support::{Receiver, Reply, URL_SECRET, answer, policy, sender};

const HMAC_SECRET: &str = "hmac-SECRET-9f31";
const KEY: &str = "overdue/2026-03-02T00:00:00Z/1/ops";

fn card() -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": "3 overdue"}]}
        }]
    })
}

fn report() -> Value {
    json!({"job": "overdue", "totals": {"assignments": 3}, "names": ["Zoë", "Ōtani", "\"quoted\""], "ratio": 0.5})
}

/// The hex HMAC-SHA256 of `body`, computed here, apart from the sender.
fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn teams_202_is_success() {
    let rx = Receiver::start().await;
    rx.script([answer(202, "")]);

    let out = sender()
        .msteams("ops-teams", &rx.url("t"), &card(), &policy())
        .await;

    assert_eq!(
        out,
        Attempted {
            attempts: 1,
            result: Ok(())
        }
    );
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json(), card());
    assert_eq!(got[0].header("content-type"), Some("application/json"));
}

#[tokio::test(start_paused = true)]
async fn teams_400_fails_at_once_quoting_the_answer() {
    let rx = Receiver::start().await;
    rx.script([answer(400, r#"{"error":{"code":"InvalidRequestContent"}}"#)]);

    let out = sender()
        .msteams("ops-teams", &rx.url("t"), &card(), &policy())
        .await;

    assert_eq!(out.attempts, 1);
    assert_eq!(rx.received().len(), 1);
    assert_eq!(
        out.result,
        Err(SendError::permanent(
            r#"msteams webhook "ops-teams": HTTP 400 Bad Request: {"error":{"code":"InvalidRequestContent"}}"#
        ))
    );
}

#[tokio::test(start_paused = true)]
async fn teams_429_waits_its_retry_after_and_5xx_retries() {
    let rx = Receiver::start().await;
    rx.script([
        Reply::Answer(429, vec![("Retry-After", "0.5")], String::new()),
        answer(502, "bad gateway"),
    ]);

    let out = sender()
        .msteams("ops-teams", &rx.url("t"), &card(), &policy())
        .await;

    assert_eq!(out.result, Ok(()));
    assert_eq!(out.attempts, 3);
    let got = rx.received();
    let waited = got[1].at - got[0].at;
    assert!(waited >= Duration::from_millis(500), "waited {waited:?}");
    assert!(waited < Duration::from_millis(600), "waited {waited:?}");
}

#[tokio::test(start_paused = true)]
async fn json_is_signed_with_the_hmac_of_the_exact_bytes_sent() {
    let rx = Receiver::start().await;
    let secret = SecretString::from(HMAC_SECRET);

    let out = sender()
        .json(
            "ingest",
            &rx.url("j"),
            Some(&secret),
            &report(),
            KEY,
            &policy(),
        )
        .await;

    assert_eq!(out.result, Ok(()));
    let got = &rx.received()[0];
    assert_eq!(got.body.as_ref(), serde_json::to_vec(&report()).unwrap());
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("idempotency-key"), Some(KEY));
    assert_eq!(
        got.header("x-trainwatch-signature").unwrap(),
        format!("sha256={}", hmac_hex(HMAC_SECRET, &got.body))
    );
}

#[tokio::test(start_paused = true)]
async fn json_without_a_secret_is_unsigned_but_keyed() {
    let rx = Receiver::start().await;
    rx.script([answer(204, "")]);

    let out = sender()
        .json("ingest", &rx.url("j"), None, &report(), KEY, &policy())
        .await;

    assert_eq!(out.result, Ok(()));
    let got = &rx.received()[0];
    assert_eq!(got.header("x-trainwatch-signature"), None);
    assert_eq!(got.header("idempotency-key"), Some(KEY));
    assert_eq!(got.json(), report());
}

#[tokio::test(start_paused = true)]
async fn json_retries_send_the_same_key_and_signature_and_4xx_is_permanent() {
    let rx = Receiver::start().await;
    rx.script([answer(503, ""), answer(422, "schema mismatch")]);
    let secret = SecretString::from(HMAC_SECRET);

    let out = sender()
        .json(
            "ingest",
            &rx.url("j"),
            Some(&secret),
            &report(),
            KEY,
            &policy(),
        )
        .await;

    assert_eq!(out.attempts, 2);
    assert_eq!(
        out.result,
        Err(SendError::permanent(
            r#"json webhook "ingest": HTTP 422 Unprocessable Entity: schema mismatch"#
        ))
    );
    let got = rx.received();
    assert_eq!(
        got[0].header("idempotency-key"),
        got[1].header("idempotency-key")
    );
    assert_eq!(
        got[0].header("x-trainwatch-signature"),
        got[1].header("x-trainwatch-signature")
    );
    assert_eq!(got[0].body, got[1].body);
}

#[tokio::test(start_paused = true)]
async fn a_key_that_is_not_a_header_value_fails_before_sending() {
    let rx = Receiver::start().await;

    let out = sender()
        .json(
            "ingest",
            &rx.url("j"),
            None,
            &report(),
            "bad\nkey",
            &policy(),
        )
        .await;

    assert!(matches!(out.result, Err(SendError::Permanent { .. })));
    assert!(rx.received().is_empty());
}

#[tokio::test(start_paused = true)]
async fn no_error_names_the_url_or_the_secret() {
    let rx = Receiver::start().await;
    rx.script([Reply::EchoPath(404), Reply::EchoPath(410)]);
    let (url, secret) = (rx.url("j"), SecretString::from(HMAC_SECRET));

    let json = sender()
        .json("ingest", &url, Some(&secret), &report(), KEY, &policy())
        .await;
    let teams = sender()
        .msteams("ops-teams", &url, &card(), &policy())
        .await;

    for out in [json, teams] {
        let err = out.result.as_ref().unwrap_err();
        let printed = format!("{err}\n{err:?}\n{out:?}");
        assert!(printed.contains("webhook \""), "{printed}");
        for leak in [URL_SECRET, url.expose_secret(), HMAC_SECRET] {
            assert!(!printed.contains(leak), "{leak} in {printed}");
        }
    }
}
