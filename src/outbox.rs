//! The outbox: every delivery of a run, rendered and addressed, built once.
//! `preview` writes it to files, `run-once --dry-run` prints it, and the
//! senders deliver it. Rendering happens here, before anything is sent, so a
//! template or address error fails the run before a single message leaves.

use std::path::PathBuf;

use anyhow::Context as _;
use secrecy::SecretString;
use serde_json::Value;

use crate::config::{Config, Delivery, Job, WebhookKind, WhenEmpty};
use crate::deliver::email::Email;
use crate::export::{Format, write_rows};
use crate::render::Renderer;
use crate::report::Report;

/// File names of an archive snapshot (the manifest is written with them).
pub const ARCHIVE_FILES: [&str; 3] = ["assignments.csv", "assignments.json", "report.html"];

/// What one delivery will send.
#[derive(Debug, Clone)]
pub enum Payload {
    Email(Box<Email>),
    /// Block Kit messages, in order, each within Slack's limits.
    Slack(Vec<Value>),
    /// A Teams Workflows message with one Adaptive Card.
    MsTeams(Value),
    /// The report data (or a `NAME.json` template's output).
    Json(Value),
    /// `(file name, bytes)` of a snapshot folder, manifest excluded.
    Archive(Vec<(String, Vec<u8>)>),
}

/// One message (or snapshot) for one recipient.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Index of the delivery in the job's `deliver` list.
    pub delivery: usize,
    /// `email`, `slack`, `msteams`, `json` or `archive`.
    pub kind: &'static str,
    /// The team the report is about, when fanning out.
    pub team: Option<String>,
    /// Who receives it: the `to` mailboxes, the webhook's name (never its
    /// URL), or the snapshot folder.
    pub recipient: String,
    /// A subject or a one-line description.
    pub summary: String,
    pub payload: Payload,
    /// Where a webhook payload goes (secret: never printed).
    pub url: Option<SecretString>,
    /// The HMAC key of a json webhook.
    pub secret: Option<SecretString>,
}

impl Outgoing {
    /// Bytes that will go over the wire (for `--dry-run`).
    pub fn size(&self) -> usize {
        match &self.payload {
            Payload::Email(e) => {
                e.text.len() + e.html.len() + e.attachment.as_ref().map_or(0, |a| a.1.len())
            }
            Payload::Slack(messages) => messages.iter().map(|m| m.to_string().len()).sum(),
            Payload::MsTeams(v) | Payload::Json(v) => v.to_string().len(),
            Payload::Archive(files) => files.iter().map(|f| f.1.len()).sum(),
        }
    }
}

/// A report that sends nothing, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub team: Option<String>,
    pub reason: String,
}

/// Everything a run would send.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    pub items: Vec<Outgoing>,
    pub skipped: Vec<Skipped>,
}

/// The CSV of a report's assignments (RFC 4180, header always present).
pub fn csv_bytes(report: &Report) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    write_rows(&report.assignments, Format::Csv, &mut out)?;
    Ok(out)
}

/// The folder of a snapshot: `<dir>/<job>/<window start>_<window end>/`,
/// the instants in UTC with `:` left out so that every file system takes them.
pub fn archive_folder(dir: &std::path::Path, report: &Report) -> PathBuf {
    let stamp = |rfc3339: &str| {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .map(|t| {
                t.with_timezone(&chrono::Utc)
                    .format("%Y%m%dT%H%M%SZ")
                    .to_string()
            })
            .unwrap_or_else(|_| rfc3339.replace(':', ""))
    };
    dir.join(&report.job.name).join(format!(
        "{}_{}",
        stamp(&report.window.start),
        stamp(&report.window.end)
    ))
}

/// Renders every delivery of `job` for each of its `reports`.
pub fn build(
    config: &Config,
    job: &Job,
    reports: &[Report],
    renderer: &Renderer,
) -> anyhow::Result<Outbox> {
    let mut outbox = Outbox::default();
    for report in reports {
        let team = report.team.as_ref().map(|t| t.name.clone());
        let context = || match &team {
            Some(t) => format!("job {}, team {t}", job.name),
            None => format!("job {}", job.name),
        };
        if report.totals.assignments == 0 && job.when_empty == WhenEmpty::Skip {
            outbox.skipped.push(Skipped {
                team,
                reason: "nothing to report (when_empty = \"skip\")".into(),
            });
            continue;
        }
        let csv = csv_bytes(report).with_context(context)?;
        for (index, delivery) in job.deliver.iter().enumerate() {
            let item = outgoing(config, report, renderer, delivery, index, &team, &csv)
                .with_context(|| {
                    format!(
                        "{}: rendering delivery {} ({})",
                        context(),
                        index + 1,
                        kind_of(config, delivery)
                    )
                })?;
            outbox.items.push(item);
        }
    }
    Ok(outbox)
}

fn kind_of(config: &Config, delivery: &Delivery) -> &'static str {
    match delivery {
        Delivery::Email(_) => "email",
        Delivery::Archive(_) => "archive",
        Delivery::Webhook(w) => match config.webhooks.get(&w.webhook).map(|h| h.kind) {
            Some(WebhookKind::Slack) => "slack",
            Some(WebhookKind::MsTeams) => "msteams",
            Some(WebhookKind::Json) | None => "json",
        },
    }
}

fn outgoing(
    config: &Config,
    report: &Report,
    renderer: &Renderer,
    delivery: &Delivery,
    index: usize,
    team: &Option<String>,
    csv: &[u8],
) -> anyhow::Result<Outgoing> {
    let kind = kind_of(config, delivery);
    let base = |recipient: String, summary: String, payload: Payload| Outgoing {
        delivery: index,
        kind,
        team: team.clone(),
        recipient,
        summary,
        payload,
        url: None,
        secret: None,
    };
    Ok(match delivery {
        Delivery::Email(e) => {
            let smtp = config
                .smtp
                .as_ref()
                .context("an email delivery needs [smtp] (the config check should have said so)")?;
            let addresses = |list: &[String], field: &str| -> anyhow::Result<Vec<String>> {
                list.iter()
                    .map(|source| {
                        let rendered = renderer
                            .render_str(source, report)
                            .with_context(|| format!("rendering {field} address `{source}`"))?;
                        anyhow::ensure!(
                            !rendered.trim().is_empty(),
                            "{field} address `{source}` renders empty{}",
                            team.as_ref()
                                .map(|t| format!(" for team {t} (does it have a manager?)"))
                                .unwrap_or_default()
                        );
                        Ok(rendered.trim().to_string())
                    })
                    .collect()
            };
            let rendered = renderer.email(&e.template, report, e.subject.as_deref())?;
            let email = Email {
                from: smtp.from.clone(),
                to: addresses(&e.to, "to")?,
                cc: addresses(&e.cc, "cc")?,
                bcc: addresses(&e.bcc, "bcc")?,
                subject: rendered.subject,
                text: rendered.text,
                html: rendered.html,
                attachment: e
                    .attach_csv
                    .then(|| ("assignments.csv".to_string(), csv.to_vec())),
                message_id: None,
            };
            // Checks every address now, not at send time.
            email.to_message()?;
            base(
                email.to.join(", "),
                email.subject.clone(),
                Payload::Email(Box::new(email)),
            )
        }
        Delivery::Webhook(w) => {
            let hook = config
                .webhooks
                .get(&w.webhook)
                .with_context(|| format!("no webhook `{}`", w.webhook))?;
            let (summary, payload) = match hook.kind {
                WebhookKind::Slack => {
                    let messages = renderer.slack(&w.template, report)?;
                    (
                        count(messages.len(), "Slack message"),
                        Payload::Slack(messages),
                    )
                }
                WebhookKind::MsTeams => (
                    "1 Adaptive Card".into(),
                    Payload::MsTeams(renderer.msteams(&w.template, report)?),
                ),
                WebhookKind::Json => (
                    format!(
                        "report data{}",
                        if w.include_assignments {
                            " with assignments"
                        } else {
                            ""
                        }
                    ),
                    Payload::Json(renderer.json_body(
                        &w.template,
                        report,
                        w.include_assignments,
                    )?),
                ),
            };
            Outgoing {
                url: Some(hook.url.clone()),
                secret: hook.secret.clone(),
                ..base(format!("webhook {}", hook.name), summary, payload)
            }
        }
        Delivery::Archive(a) => {
            let folder = archive_folder(&a.dir, report);
            let json = serde_json::to_vec_pretty(&report.assignments)?;
            let html = renderer.archive_html(report)?;
            let files = vec![
                (ARCHIVE_FILES[0].to_string(), csv.to_vec()),
                (ARCHIVE_FILES[1].to_string(), json),
                (ARCHIVE_FILES[2].to_string(), html.into_bytes()),
            ];
            base(
                folder.display().to_string(),
                format!(
                    "snapshot of {}",
                    count(report.assignments.len(), "assignment")
                ),
                Payload::Archive(files),
            )
        }
    })
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
