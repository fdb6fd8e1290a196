//! `SmtpSender` against a real SMTP server (mailin-embedded) on loopback:
//! plain, STARTTLS and implicit TLS with a private CA, AUTH, what arrives on
//! the server side, failure classes, retries, and one session per run.

use crate::smtp_support;

use std::time::Duration;

use mail_parser::MimeHeaders;
use smtp_support::{Script, Security, TestSmtp, closed_port, with_credentials};
use trainwatch::config::SmtpSecurity;
use trainwatch::deliver::email::{Email, SmtpSender};
use trainwatch::deliver::with_retries;
use trainwatch::retry::RetryPolicy;

const CSV: &[u8] = b"learner,course,status\r\nDana Ortiz,Forklift safety,overdue\r\n";

fn email() -> Email {
    Email {
        from: "Training Reports <training@example.com>".into(),
        to: vec!["Dana Ortiz <dana.ortiz@example.com>".into()],
        cc: vec!["yard-leads@example.com".into()],
        bcc: vec!["audit@example.com".into()],
        subject: "Overdue training, north-yard: 3".into(),
        text: "3 assignments are overdue.".into(),
        html: "<p>3 assignments are <b>overdue</b>.</p>".into(),
        attachment: Some(("assignments.csv".into(), CSV.to_vec())),
        message_id: Some("<run-42.north-yard@trainwatch.example.com>".into()),
        inline: Vec::new(),
    }
}

/// Retries without real waiting: up to three attempts, 10–100 ms apart.
fn quick_retries() -> RetryPolicy {
    crate::support::fast_retry(3)
}

#[tokio::test]
async fn plain_delivery_reaches_every_recipient_with_both_parts_and_the_csv() {
    let server = TestSmtp::plain().await;
    let sender = SmtpSender::new(&server.config("127.0.0.1"), None).unwrap();

    sender.send(&email()).await.unwrap();

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let received = &messages[0];
    assert_eq!(received.from, "training@example.com");
    let mut recipients = received.recipients.clone();
    recipients.sort();
    assert_eq!(
        recipients,
        [
            "audit@example.com",
            "dana.ortiz@example.com",
            "yard-leads@example.com"
        ],
        "to, cc and bcc are all envelope recipients"
    );
    let parsed = received.parsed();
    assert_eq!(parsed.subject(), Some("Overdue training, north-yard: 3"));
    assert_eq!(
        parsed.message_id(),
        Some("run-42.north-yard@trainwatch.example.com"),
        "the caller's Message-ID is kept"
    );
    assert_eq!(
        parsed.body_text(0).as_deref(),
        Some("3 assignments are overdue.")
    );
    assert_eq!(
        parsed.body_html(0).as_deref(),
        Some("<p>3 assignments are <b>overdue</b>.</p>")
    );
    assert_eq!(parsed.attachment_count(), 1);
    let csv = parsed.attachment(0).unwrap();
    assert_eq!(csv.attachment_name(), Some("assignments.csv"));
    assert_eq!(csv.content_type().unwrap().subtype(), Some("csv"));
    assert_eq!(csv.contents(), CSV, "the attachment's bytes arrive intact");
    let raw = String::from_utf8_lossy(&received.data);
    assert!(!raw.contains("audit@example.com"), "no Bcc header: {raw}");
}

#[tokio::test]
async fn starttls_with_a_private_ca_delivers() {
    let server = TestSmtp::start(Script {
        tls: Security::StartTls,
        ..Script::default()
    })
    .await;
    let sender = SmtpSender::new(&server.config("localhost"), server.ca_pem()).unwrap();

    sender.send(&email()).await.unwrap();

    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn implicit_tls_with_a_private_ca_delivers() {
    let server = TestSmtp::start(Script {
        tls: Security::Implicit,
        ..Script::default()
    })
    .await;
    let sender = SmtpSender::new(&server.config("127.0.0.1"), server.ca_pem()).unwrap();

    sender.send(&email()).await.unwrap();

    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_a_permanent_error() {
    for tls in [Security::StartTls, Security::Implicit] {
        let server = TestSmtp::start(Script {
            tls,
            ..Script::default()
        })
        .await;
        let sender = SmtpSender::new(&server.config("localhost"), None).unwrap();

        let err = sender.send(&email()).await.unwrap_err();

        assert!(!err.is_transient(), "{tls:?}: {err:?}");
        let message = err.to_string();
        let endpoint = format!("localhost:{}", server.addr.port());
        assert!(message.contains(&endpoint), "{message}");
        assert!(message.contains("TLS certificate rejected"), "{message}");
        assert!(server.messages().is_empty());
    }
}

#[tokio::test]
async fn auth_with_the_right_password_delivers() {
    let server = TestSmtp::start(Script {
        tls: Security::StartTls,
        auth: Some(("reports".into(), "correct horse".into())),
        ..Script::default()
    })
    .await;
    let config = with_credentials(server.config("localhost"), "reports", "correct horse");
    let sender = SmtpSender::new(&config, server.ca_pem()).unwrap();

    sender.send(&email()).await.unwrap();

    assert_eq!(server.messages().len(), 1);
    assert_eq!(server.log().auths, [("PLAIN", "reports".to_string(), true)]);
}

#[tokio::test]
async fn auth_login_is_used_when_plain_is_not_offered() {
    let server = TestSmtp::start(Script {
        tls: Security::StartTls,
        auth: Some(("reports".into(), "correct horse".into())),
        login_only: true,
        ..Script::default()
    })
    .await;
    let config = with_credentials(server.config("localhost"), "reports", "correct horse");
    let sender = SmtpSender::new(&config, server.ca_pem()).unwrap();

    sender.send(&email()).await.unwrap();

    assert_eq!(server.messages().len(), 1);
    assert_eq!(server.log().auths, [("LOGIN", "reports".to_string(), true)]);
}

#[tokio::test]
async fn a_wrong_password_is_permanent_and_never_quoted() {
    let server = TestSmtp::start(Script {
        tls: Security::StartTls,
        auth: Some(("reports".into(), "correct horse".into())),
        ..Script::default()
    })
    .await;
    let config = with_credentials(server.config("localhost"), "reports", "battery staple");
    let sender = SmtpSender::new(&config, server.ca_pem()).unwrap();

    let email = email();
    let out = with_retries(&quick_retries(), |_| sender.send(&email)).await;

    assert_eq!(out.attempts, 1, "a 535 is not retried");
    let err = out.result.unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("535"), "{message}");
    assert!(message.contains("\"reports\""), "names the user: {message}");
    assert!(
        message.contains(&server.addr.port().to_string()),
        "{message}"
    );
    assert!(!message.contains("battery staple"), "{message}");
    assert!(!format!("{err:?}").contains("battery staple"));
    assert!(!format!("{sender:?}").contains("battery staple"));
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_451_is_retried_and_delivered_on_the_second_attempt() {
    let server = TestSmtp::start(Script {
        data_replies: [(451, "Greylisted, try again later".to_string())].into(),
        ..Script::default()
    })
    .await;
    let sender = SmtpSender::new(&server.config("127.0.0.1"), None).unwrap();

    let email = email();
    let out = with_retries(&quick_retries(), |_| sender.send(&email)).await;

    assert_eq!(out.attempts, 2);
    assert_eq!(out.result, Ok(()));
    assert_eq!(server.messages().len(), 1);
    assert_eq!(server.log().refused, 1);
    assert_eq!(
        server.connections(),
        2,
        "the session that saw the 451 is dropped; the retry opens a new one"
    );
}

#[tokio::test]
async fn a_451_alone_is_transient_and_says_what_and_where() {
    let server = TestSmtp::start(Script {
        data_replies: [(451, "Greylisted, try again later".to_string())].into(),
        ..Script::default()
    })
    .await;
    let sender = SmtpSender::new(&server.config("127.0.0.1"), None).unwrap();

    let err = sender.send(&email()).await.unwrap_err();

    assert!(err.is_transient(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "sending the message to 127.0.0.1:{}: SMTP 451 Greylisted, try again later",
            server.addr.port()
        )
    );
}

#[tokio::test]
async fn a_550_fails_at_once() {
    let server = TestSmtp::start(Script {
        data_replies: [(550, "Message rejected as spam".to_string())].into(),
        ..Script::default()
    })
    .await;
    let sender = SmtpSender::new(&server.config("127.0.0.1"), None).unwrap();

    let email = email();
    let out = with_retries(&quick_retries(), |_| sender.send(&email)).await;

    assert_eq!(out.attempts, 1);
    let err = out.result.unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    assert!(
        err.to_string()
            .contains("SMTP 550 Message rejected as spam"),
        "{err}"
    );
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_refused_recipient_is_permanent() {
    let server = TestSmtp::start(Script {
        refuse_recipients: vec!["audit@example.com".into()],
        ..Script::default()
    })
    .await;
    let sender = SmtpSender::new(&server.config("127.0.0.1"), None).unwrap();

    let err = sender.send(&email()).await.unwrap_err();

    assert!(!err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("SMTP 550"), "{err}");
}

#[tokio::test]
async fn an_invalid_address_is_permanent_and_nothing_connects() {
    let server = TestSmtp::plain().await;
    let sender = SmtpSender::new(&server.config("127.0.0.1"), None).unwrap();
    let mut bad = email();
    bad.cc = vec!["not an address".into()];

    let err = sender.send(&bad).await.unwrap_err();

    assert!(!err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("\"not an address\""), "{err}");
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn a_server_that_is_down_is_transient() {
    let port = closed_port();
    let mut config = TestSmtp::plain().await.config("127.0.0.1");
    config.port = port;
    let sender = SmtpSender::new(&config, None).unwrap();

    let err = sender.send(&email()).await.unwrap_err();

    assert!(err.is_transient(), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("connecting to 127.0.0.1:{port}: ")),
        "{message}"
    );
}

#[tokio::test]
async fn a_server_that_never_greets_times_out_transiently() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let (socket, _) = silent.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(socket);
    });
    let mut config = TestSmtp::plain().await.config("127.0.0.1");
    config.port = port;
    config.timeout = Duration::from_millis(300);
    let sender = SmtpSender::new(&config, None).unwrap();

    let err = sender.send(&email()).await.unwrap_err();

    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("timed out after 300ms"), "{err}");
    held.abort();
}

#[tokio::test]
async fn many_messages_in_a_run_share_one_connection() {
    let server = TestSmtp::start(Script {
        tls: Security::StartTls,
        auth: Some(("reports".into(), "correct horse".into())),
        ..Script::default()
    })
    .await;
    let config = with_credentials(server.config("localhost"), "reports", "correct horse");
    let sender = SmtpSender::new(&config, server.ca_pem()).unwrap();

    sender.test_connection().await.unwrap();
    for i in 0..20 {
        let mut e = email();
        e.subject = format!("report {i}");
        e.message_id = None;
        sender.send(&e).await.unwrap();
    }
    // Concurrent callers wait for the one session rather than opening more.
    let concurrent = (20..30).map(|i| {
        let mut e = email();
        e.subject = format!("report {i}");
        e.message_id = None;
        let sender = &sender;
        async move { sender.send(&e).await }
    });
    for result in futures::future::join_all(concurrent).await {
        result.unwrap();
    }
    sender.close().await;

    assert_eq!(server.messages().len(), 30);
    assert_eq!(server.connections(), 1, "one TCP connection for the run");
    assert_eq!(sender.sessions_opened(), 1);
    assert_eq!(server.log().auths.len(), 1, "authenticated once");
}

#[tokio::test]
async fn a_security_mismatch_is_permanent() {
    let plain = TestSmtp::plain().await;
    let mut config = plain.config("127.0.0.1");
    config.security = SmtpSecurity::StartTls;
    let err = SmtpSender::new(&config, None)
        .unwrap()
        .send(&email())
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("does not offer STARTTLS"), "{err}");

    config.security = SmtpSecurity::Tls;
    let err = SmtpSender::new(&config, None)
        .unwrap()
        .send(&email())
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("Check `security`"), "{err}");
}

#[tokio::test]
async fn a_bad_extra_root_is_a_setup_error() {
    let server = TestSmtp::start(Script {
        tls: Security::StartTls,
        ..Script::default()
    })
    .await;
    let err = SmtpSender::new(
        &server.config("localhost"),
        Some(b"-----BEGIN CERTIFICATE-----\nnope"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("root certificate"), "{err}");
}
