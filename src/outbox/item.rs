//! One delivery of one report, rendered and addressed; and where an
//! archive snapshot goes.

use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::Value;

use super::email::{check_csv_attachment, checked_email, excel_csv, inline_images};
use super::{Outgoing, Payload, kind_of};
use crate::config::{Config, Delivery, Job, WebhookKind};
use crate::render::Renderer;
use crate::render::filters::count;
use crate::report::Report;

/// File names of an archive snapshot (the manifest is written with them).
pub const ARCHIVE_FILES: [&str; 3] = ["assignments.csv", "assignments.json", "report.html"];

/// The folder of a snapshot: `<dir>/<job>/<window start>_<window end>/`,
/// the instants in UTC with `:` left out so that every file system takes
/// them (`<dir>/<job>/asof_<end>/` for a `current` window); a per-team
/// report's is the team's folder inside that, `<dir>/<job>/<window>/<team>/`,
/// so every team gets its own snapshot and manifest. (Team names are
/// checked as path-safe by the config.)
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
    let window = dir.join(&report.job.name).join(format!(
        "{}_{}",
        report.window.start.as_deref().map_or("asof".into(), stamp),
        stamp(&report.window.end)
    ));
    match &report.team {
        Some(team) => window.join(&team.name),
        None => window,
    }
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
pub(super) fn outgoing(
    config: &Config,
    job: &Job,
    report: &Report,
    renderer: &Renderer,
    delivery: &Delivery,
    index: usize,
    team: &Option<String>,
    csv: &[u8],
    query: &serde_json::Map<String, Value>,
) -> anyhow::Result<Option<Outgoing>> {
    let kind = kind_of(config, delivery);
    let target = match delivery {
        Delivery::Email(e) => format!("email {}", e.template),
        Delivery::Webhook(w) => format!("webhook {}", w.webhook),
        Delivery::Archive(a) => format!("archive {}", a.dir.display()),
    };
    let base = |recipient: String, summary: String, payload: Payload| Outgoing {
        delivery: index,
        kind,
        target: target.clone(),
        webhook: None,
        team: team.clone(),
        recipient,
        summary,
        payload,
        url: None,
        secret: None,
    };
    let lacks = |field: &str| {
        report.team.as_ref().is_some_and(|t| match field {
            "manager" => t.manager.is_none(),
            _ => t.escalation.is_none(),
        })
    };
    Ok(Some(match delivery {
        Delivery::Email(e) => {
            let smtp = config
                .smtp
                .as_ref()
                .context("an email delivery needs [smtp] (the config check should have said so)")?;
            let addresses = |list: &[String], field: &str| -> anyhow::Result<Vec<String>> {
                let mut out = Vec::new();
                for source in list {
                    let rendered = renderer
                        .render_str(source, report)
                        .with_context(|| format!("rendering {field} address `{source}`"))?;
                    let rendered = rendered.trim();
                    // The manager of a team that has none: left out (and the
                    // delivery skipped when no `to` is left).
                    if rendered.is_empty()
                        && ["manager", "escalation"]
                            .into_iter()
                            .any(|field| lacks(field) && source.contains(&format!("team.{field}")))
                    {
                        continue;
                    }
                    anyhow::ensure!(
                        !rendered.is_empty(),
                        "{field} address `{source}` renders empty{}",
                        team.as_ref()
                            .map(|t| format!(" for team {t}"))
                            .unwrap_or_default()
                    );
                    out.push(rendered.to_string());
                }
                Ok(out)
            };
            let to = addresses(&e.to, "to")?;
            if to.is_empty() {
                return Ok(None);
            }
            if e.attach_csv {
                check_csv_attachment(csv.len(), report.assignments.len())?;
            }
            let rendered = renderer.email(&e.template, report, e.subject.as_deref())?;
            let inline = inline_images(&rendered.html, report)?;
            let mut email = checked_email(
                smtp.from.as_str(),
                [to, addresses(&e.cc, "cc")?, addresses(&e.bcc, "bcc")?],
                rendered,
                match (e.attach_csv, e.csv_excel) {
                    (false, _) => None,
                    (true, false) => Some(("assignments.csv".to_string(), csv.to_vec())),
                    (true, true) => Some(("assignments.csv".to_string(), excel_csv(csv)?)),
                },
            )?;
            email.inline = inline;
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
                webhook: Some(hook.name.clone()),
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
            let manifest = serde_json::json!({
                "job": report.job,
                "window": report.window,
                "team": report.team,
                "query": query,
                "include_deleted": job.filters.include_deleted,
                "counts": {
                    "assignments": report.totals.assignments,
                    "deleted": report.totals.deleted,
                    "overdue": report.totals.overdue,
                    "completed": report.totals.completed,
                    "statuses": report.statuses,
                },
                "generated_at": report.generated_at,
                "tool": {"name": "trainwatch", "version": env!("CARGO_PKG_VERSION")},
            });
            base(
                folder.display().to_string(),
                format!(
                    "snapshot of {}",
                    count(report.assignments.len(), "assignment")
                ),
                Payload::Archive {
                    folder,
                    files,
                    manifest,
                },
            )
        }
    }))
}
