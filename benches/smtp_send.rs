//! Benchmark: 1,000 per-team report emails (~30 KB of HTML plus a text part,
//! every fourth with a CSV attachment) sent by `SmtpSender` to a local SMTP
//! server (mailin-embedded on 127.0.0.1, port 0) over one session: plain,
//! STARTTLS and implicit TLS. Prints messages per second and the total time; checks that all
//! arrived over a single connection.
//!
//! `cargo bench --bench smtp_send`
//! (`TRAINWATCH_BENCH_EMAILS=200` for a shorter run.)

#[path = "../tests/it/smtp_support/mod.rs"]
mod smtp_support;

use std::fmt::Write as _;
use std::time::Instant;

use smtp_support::{Script, Security, TestSmtp};
use trainwatch::deliver::email::{Email, SmtpSender};

/// A team's overdue report: a table of ~110 rows is about 30 KB of HTML.
fn team_email(team: usize) -> Email {
    let mut html = String::from(
        "<!doctype html><html><body><h1>Overdue training</h1><table>\
         <tr><th>Learner</th><th>Course</th><th>Due</th><th>Status</th></tr>",
    );
    let mut text = String::from("Overdue training\n\n");
    let mut csv = String::from("learner_id,learner,course,due,status\r\n");
    let mut row = 0;
    while html.len() < 30_000 {
        let learner = format!("Driver {team}-{row:03}");
        let course = format!(
            "Course {} — Defensive driving, module {}",
            row % 40,
            row % 7
        );
        let _ = write!(
            html,
            "<tr><td style=\"padding:4px 8px\">{learner}</td><td style=\"padding:4px 8px\">{course}</td>\
             <td>2026-03-{:02}</td><td style=\"color:#b00\">overdue</td></tr>",
            1 + row % 28
        );
        let _ = writeln!(
            text,
            "- {learner}: {course}, due 2026-03-{:02}",
            1 + row % 28
        );
        let _ = write!(
            csv,
            "{},{learner},{course},2026-03-{:02},overdue\r\n",
            100_000 + team * 1000 + row,
            1 + row % 28
        );
        row += 1;
    }
    html.push_str("</table></body></html>");
    Email {
        from: "Training Reports <training@example.com>".into(),
        to: vec![format!("Manager {team} <manager.{team}@example.com>")],
        cc: vec![format!("leads.{team}@example.com")],
        bcc: vec!["audit@example.com".into()],
        subject: format!("Overdue training, team {team}: {row}"),
        text,
        html,
        attachment: team
            .is_multiple_of(4)
            .then(|| ("assignments.csv".to_string(), csv.into_bytes())),
        message_id: Some(format!("<bench-run.team-{team}@trainwatch.example.com>")),
        inline: Vec::new(),
    }
}

async fn run(label: &str, tls: Security, emails: &[Email]) {
    let server = TestSmtp::start(Script {
        tls,
        keep_data: false,
        ..Script::default()
    })
    .await;
    let host = if tls == Security::Plain {
        "127.0.0.1"
    } else {
        "localhost"
    };
    let sender = SmtpSender::new(&server.config(host), server.ca_pem()).expect("sender");

    let started = Instant::now();
    for email in emails {
        sender.send(email).await.expect("delivered");
    }
    sender.close().await;
    let wall = started.elapsed();

    let received = server.messages().len();
    assert_eq!(received, emails.len(), "every email arrived");
    assert_eq!(server.connections(), 1, "over one connection");
    assert_eq!(sender.sessions_opened(), 1);
    println!(
        "  {label:<9} {:>8.0} messages/s   total {:>6.2} s   connections {}",
        emails.len() as f64 / wall.as_secs_f64(),
        wall.as_secs_f64(),
        server.connections()
    );
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("TRAINWATCH_BENCH_EMAILS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let emails: Vec<Email> = (0..count).map(team_email).collect();
    let bytes: usize = emails
        .iter()
        .map(|e| e.to_eml().expect("a valid email").len())
        .sum();
    let attachments = emails.iter().filter(|e| e.attachment.is_some()).count();
    println!(
        "smtp_send: {count} emails, {attachments} with a CSV, {:.1} MB on the wire ({:.1} KB average)",
        bytes as f64 / 1e6,
        bytes as f64 / count as f64 / 1e3
    );
    run("plain", Security::Plain, &emails).await;
    run("STARTTLS", Security::StartTls, &emails).await;
    run("TLS", Security::Implicit, &emails).await;
}
