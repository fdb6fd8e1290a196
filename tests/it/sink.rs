//! Every webhook kind in `sink::SINKS` goes through the generic paths, with
//! no code of its own outside its module: config knows its name, the
//! renderer renders its built-in templates, the ledger stores its payload
//! under its name and reads it back, and the sender posts its parts.

use std::path::Path;

use serde_json::Value;
use trainwatch::outbox::{DeliveryKind, Payload};
use trainwatch::render::Renderer;
use trainwatch::sink::WebhookKind;

use crate::common::secrets::env;
use crate::render_fixture::report;
use crate::webhook_support::{Receiver, answer, policy, sender};

#[test]
fn an_unknown_webhook_kind_is_refused_naming_every_kind_there_is() {
    let source = "[samsara]\ntoken = \"t\"\n[webhooks.w]\nkind = \"pager\"\nurl = \"https://example.com/x\"\n[[jobs]]\nname = \"j\"\nschedule = \"0 8 * * Mon\"\nwindow = { last = \"7d\" }\ndeliver = [{ archive = { dir = \"out\" } }]\n";
    let text = trainwatch::check::load_str(source, Path::new("trainwatch.toml"), &env)
        .expect_err("an unknown kind is an error")
        .to_string();
    assert!(
        text.contains(&format!(
            "trainwatch.toml:4:8: unknown webhook kind `pager`: use {}",
            WebhookKind::names()
        )),
        "{text}"
    );
    for kind in WebhookKind::all() {
        assert!(text.contains(kind.as_str()), "{kind} missing from: {text}");
    }
}

#[test]
fn every_kind_renders_its_built_in_templates_and_its_failure_message() {
    let renderer = Renderer::new(None).unwrap();
    let report = report();
    for kind in WebhookKind::all() {
        let names: Vec<&str> = kind
            .builtin_templates()
            .iter()
            .filter_map(|(file, _)| file.strip_suffix(kind.template_suffix()))
            .collect();
        for name in names {
            let parts = renderer
                .webhook(kind, name, &report, false)
                .unwrap_or_else(|e| panic!("{kind} {name}: {e}"));
            assert!(!parts.is_empty(), "{kind} {name}");
            assert!(
                !kind.summary(parts.len(), false).is_empty(),
                "{kind} {name}"
            );
        }
        let failure = kind.failure(
            "trainwatch: job j failed",
            "the API said 500",
            serde_json::json!({"error": "the API said 500"}),
        );
        assert!(
            failure.to_string().contains("the API said 500"),
            "{kind}: {failure}"
        );
    }
}

#[test]
fn every_kind_is_stored_under_its_name_and_read_back_as_itself() {
    for kind in WebhookKind::all() {
        let parts = vec![serde_json::json!({"text": "a"})];
        let payload = Payload::Webhook {
            kind,
            parts: parts.clone(),
        };
        let stored = serde_json::to_value(&payload).unwrap();
        assert_eq!(stored["kind"], kind.as_str());
        let back: Payload = serde_json::from_value(stored).unwrap();
        assert_eq!(back.kind(), DeliveryKind::Webhook(kind));
        let Payload::Webhook { parts: read, .. } = back else {
            panic!("{kind}: not a webhook payload");
        };
        assert_eq!(read, parts, "{kind}");
        assert_eq!(
            DeliveryKind::parse(kind.as_str()),
            Some(DeliveryKind::Webhook(kind))
        );
    }
}

#[tokio::test(start_paused = true)]
async fn every_kind_posts_each_part_as_json_to_its_url() {
    for kind in WebhookKind::all() {
        let rx = Receiver::start().await;
        rx.script([answer(200, "ok"), answer(200, "ok")]);
        let parts: Vec<Value> = match kind.multi_part() {
            true => vec![
                serde_json::json!({"text": "1"}),
                serde_json::json!({"text": "2"}),
            ],
            false => vec![serde_json::json!({"text": "1"})],
        };
        let out = sender()
            .post(
                kind,
                "hook",
                &rx.url("h"),
                None,
                &parts,
                0,
                "key-1",
                &policy(),
            )
            .await;
        assert_eq!(out.result, Ok(()), "{kind}");
        assert_eq!(out.parts_sent, parts.len(), "{kind}");
        let got = rx.received();
        assert_eq!(got.len(), parts.len(), "{kind}");
        for (received, part) in got.iter().zip(&parts) {
            assert_eq!(&received.json(), part, "{kind}");
            assert_eq!(
                received.header("content-type"),
                Some("application/json"),
                "{kind}"
            );
        }
    }
}
