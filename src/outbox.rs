//! The outbox: every delivery of a run, rendered and addressed, built once.
//! `preview` writes it to files, `run-once --dry-run` prints it, and the
//! senders deliver it. Rendering happens here, before anything is sent, so a
//! template or address error fails the run before a single message leaves.

use std::path::PathBuf;

use anyhow::Context as _;
use secrecy::SecretString;
use serde_json::Value;

use crate::config::{Config, Delivery, Job, WebhookKind, WhenEmpty};
use crate::data::{JobData, build_query, query_for};
use crate::deliver::email::Email;
use crate::render::Renderer;
use crate::render::filters::count;
use crate::report::Report;
use crate::report::rows::{Format, write_rows};
use crate::window::Window;

/// The largest CSV attached to an email: 10 MiB, about 13.4 MiB once
/// base64-encoded, under the 20–25 MB most mail servers accept for a whole
/// message. A larger report is refused (the run fails before anything is
/// sent) with a pointer to the archive, which holds any number of rows.
pub const MAX_CSV_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;

/// The refusal of a CSV attachment of `bytes` bytes and `rows` rows, or `Ok`
/// when it fits [`MAX_CSV_ATTACHMENT_BYTES`].
pub fn check_csv_attachment(bytes: usize, rows: usize) -> anyhow::Result<()> {
    const MIB: f64 = 1024.0 * 1024.0;
    anyhow::ensure!(
        bytes <= MAX_CSV_ATTACHMENT_BYTES,
        "the CSV attachment would be {:.1} MiB ({}), over the {} MiB an email may carry: \
         set attach_csv = false and read the rows in the job's archive snapshot \
         (an `archive` delivery writes assignments.csv of any size)",
        bytes as f64 / MIB,
        count(rows, "assignment"),
        MAX_CSV_ATTACHMENT_BYTES / (1024 * 1024),
    );
    Ok(())
}

/// File names of an archive snapshot (the manifest is written with them).
pub const ARCHIVE_FILES: [&str; 3] = ["assignments.csv", "assignments.json", "report.html"];

/// What one delivery will send. Serializable so the ledger can keep it (it
/// holds no secret: URLs and keys stay in the config).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "lowercase")]
pub enum Payload {
    Email(Box<Email>),
    /// Block Kit messages, in order, each within Slack's limits.
    Slack(Vec<Value>),
    /// A Teams Workflows message with one Adaptive Card.
    MsTeams(Value),
    /// The report data (or a `NAME.json` template's output).
    Json(Value),
    /// A snapshot folder: `(file name, bytes)` of its files, and the
    /// manifest's fields (the writer adds each file's size and SHA-256).
    Archive {
        folder: PathBuf,
        files: Vec<(String, Vec<u8>)>,
        manifest: Value,
    },
}

/// What a delivery is sent by: the kinds a delivery (and the ledger) knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryKind {
    Email,
    Slack,
    MsTeams,
    Json,
    Archive,
}

impl DeliveryKind {
    /// Every kind, in the order they are listed to people.
    pub const ALL: [DeliveryKind; 5] = [
        DeliveryKind::Email,
        DeliveryKind::Slack,
        DeliveryKind::MsTeams,
        DeliveryKind::Json,
        DeliveryKind::Archive,
    ];

    /// Its name in the ledger, metrics and output: `email`, `slack`,
    /// `msteams`, `json` or `archive`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Email => "email",
            DeliveryKind::Slack => "slack",
            DeliveryKind::MsTeams => "msteams",
            DeliveryKind::Json => "json",
            DeliveryKind::Archive => "archive",
        }
    }

    /// The kind named `name` ([`DeliveryKind::as_str`]); `None` for any other name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for DeliveryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message (or snapshot) for one recipient.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Index of the delivery in the job's `deliver` list.
    pub delivery: usize,
    /// What sends it.
    pub kind: DeliveryKind,
    /// Which target, stably across runs: `email overdue`, `webhook NAME`,
    /// `archive DIR`. Part of the idempotency key.
    pub target: String,
    /// The `[webhooks]` name of a webhook delivery (to find its URL again).
    pub webhook: Option<String>,
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
                e.text.len()
                    + e.html.len()
                    + e.attachment.as_ref().map_or(0, |a| a.1.len())
                    + e.inline.iter().map(|i| i.bytes.len()).sum::<usize>()
            }
            Payload::Slack(messages) => messages.iter().map(|m| m.to_string().len()).sum(),
            Payload::MsTeams(v) | Payload::Json(v) => v.to_string().len(),
            Payload::Archive { files, .. } => files.iter().map(|f| f.1.len()).sum(),
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

/// `csv` (RFC 4180 as [`csv_bytes`] writes it) the way Excel opens it
/// right: a UTF-8 byte order mark first (without it, Excel on Windows reads
/// "Zoë Ångström" as "ZoÃ« Ã…ngstrÃ¶m") and CRLF between records. Read back
/// and rewritten record by record, so line breaks inside a quoted value are
/// kept as they were.
pub fn excel_csv(csv: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(csv);
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .flexible(true)
        .from_writer(&mut out);
    for record in reader.byte_records() {
        writer.write_byte_record(&record.context("re-reading the CSV for Excel")?)?;
    }
    writer.flush()?;
    drop(writer);
    Ok(out)
}

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

/// Renders every delivery of `job` for each of its `reports` (which cover
/// `window`), for a job whose teams are all `learners` lists (an archive's
/// manifest names their learners); see [`build_with_teams`].
pub fn build(
    config: &Config,
    job: &Job,
    window: Window,
    reports: &[Report],
    renderer: &Renderer,
) -> anyhow::Result<Outbox> {
    let query = params(&build_query(config, &job.filters, window));
    build_query_given(config, job, reports, renderer, &query)
}

/// [`build`], the archive manifests' query naming the members of the job's
/// teams as resolved for the fire instant (`teams`: teams that follow tags).
pub fn build_with_teams(
    config: &Config,
    job: &Job,
    window: Window,
    reports: &[Report],
    teams: &crate::teams::Teams,
    renderer: &Renderer,
) -> anyhow::Result<Outbox> {
    build_with_query(
        config,
        job,
        window,
        reports,
        query_for(&job.filters, teams, window).as_ref(),
        renderer,
    )
}

/// The outbox of a run's `reports` of `data`: the archive manifests name
/// the stream query the fetch asked ([`JobData::query`]).
pub fn build_for(
    config: &Config,
    job: &Job,
    data: &JobData,
    reports: &[Report],
    renderer: &Renderer,
) -> anyhow::Result<Outbox> {
    build_with_query(
        config,
        job,
        data.window,
        reports,
        data.query.as_ref(),
        renderer,
    )
}

/// [`build`] with the manifests' `query` given (`None`: nobody was asked about).
fn build_with_query(
    config: &Config,
    job: &Job,
    window: Window,
    reports: &[Report],
    query: Option<&crate::samsara::AssignmentQuery>,
    renderer: &Renderer,
) -> anyhow::Result<Outbox> {
    let query = match query {
        Some(q) => params(q),
        // Nobody in the job's teams: no query was sent, and the manifest says so.
        None => {
            let mut q = params(&crate::samsara::AssignmentQuery::new(
                window.start,
                window.end,
            ));
            q.insert("learnerIds".into(), Value::Array(Vec::new()));
            q
        }
    };
    build_query_given(config, job, reports, renderer, &query)
}

/// A query's parameters as a JSON object, for a manifest.
fn params(query: &crate::samsara::AssignmentQuery) -> serde_json::Map<String, Value> {
    query
        .params()
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect()
}

fn build_query_given(
    config: &Config,
    job: &Job,
    reports: &[Report],
    renderer: &Renderer,
    query: &serde_json::Map<String, Value>,
) -> anyhow::Result<Outbox> {
    let mut outbox = Outbox::default();
    for report in reports {
        let team = report.team.as_ref().map(|t| t.name.clone());
        let context = || match &team {
            Some(t) => format!("job {}, team {t}", job.name),
            None => format!("job {}", job.name),
        };
        // A report narrowed by `min_days_overdue` goes only to the deliveries
        // that ask for that narrowing, and the plain report to the others.
        let mine: Vec<(usize, &Delivery)> = job
            .deliver
            .iter()
            .enumerate()
            .filter(|(index, _)| job.narrowing(*index) == report.min_days_overdue)
            .collect();
        if mine.is_empty() {
            continue;
        }
        if report.totals.assignments == 0 && job.when_empty == WhenEmpty::Skip {
            let reason = match report.min_days_overdue {
                None => "nothing to report (when_empty = \"skip\")".to_string(),
                Some(n) => format!(
                    "nothing overdue {} or more (min_days_overdue = {n}, when_empty = \"skip\")",
                    count(n as usize, "day")
                ),
            };
            outbox.skipped.push(Skipped { team, reason });
            continue;
        }
        let csv = csv_bytes(report).with_context(context)?;
        for (index, delivery) in mine {
            let item = outgoing(
                config, job, report, renderer, delivery, index, &team, &csv, query,
            )
            .with_context(|| {
                format!(
                    "{}: rendering delivery {} ({})",
                    context(),
                    index + 1,
                    kind_of(config, delivery)
                )
            })?;
            match item {
                Some(item) => outbox.items.push(item),
                None => {
                    // `validate` rejects this for teams in the config; a team
                    // may still come without a manager or escalation (from
                    // tags, or an edited config read by a running service).
                    // That mail cannot go anywhere: the other teams' still does.
                    let field = missing_contact(report, delivery).unwrap_or("manager");
                    let reason = format!(
                        "delivery {} (email) not sent: the team has no {field} for its `{{{{ team.{field} }}}}` recipient",
                        index + 1
                    );
                    tracing::warn!(job = %job.name, team = team.as_deref().unwrap_or("-"), "{reason}");
                    outbox.skipped.push(Skipped {
                        team: team.clone(),
                        reason,
                    });
                }
            }
        }
    }
    Ok(outbox)
}

/// `manager` or `escalation`: the team contact an email delivery addresses
/// that `report`'s team does not have, if any.
fn missing_contact(report: &Report, delivery: &Delivery) -> Option<&'static str> {
    let (Some(team), Delivery::Email(e)) = (&report.team, delivery) else {
        return None;
    };
    let addressed = |field: &str| e.to.iter().any(|t| t.contains(&format!("team.{field}")));
    [
        ("manager", team.manager.is_none()),
        ("escalation", team.escalation.is_none()),
    ]
    .into_iter()
    .find(|(field, missing)| *missing && addressed(field))
    .map(|(field, _)| field)
}

fn kind_of(config: &Config, delivery: &Delivery) -> DeliveryKind {
    match delivery {
        Delivery::Email(_) => DeliveryKind::Email,
        Delivery::Archive(_) => DeliveryKind::Archive,
        Delivery::Webhook(w) => match config.webhooks.get(&w.webhook).map(|h| h.kind) {
            Some(WebhookKind::Slack) => DeliveryKind::Slack,
            Some(WebhookKind::MsTeams) => DeliveryKind::MsTeams,
            Some(WebhookKind::Json) | None => DeliveryKind::Json,
        },
    }
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn outgoing(
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
                &smtp.from,
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

/// The images an email's HTML shows by `cid:`: the trend chart when the
/// HTML refers to it (the built-in templates do when there are two or more
/// trend points). A reference without a trend is left to the template.
fn inline_images(
    html: &str,
    report: &Report,
) -> anyhow::Result<Vec<crate::deliver::email::InlineImage>> {
    use crate::render::chart;
    if report.trend.is_empty() || !html.contains(&format!("cid:{}", chart::CONTENT_ID)) {
        return Ok(Vec::new());
    }
    Ok(vec![crate::deliver::email::InlineImage {
        content_id: chart::CONTENT_ID.to_string(),
        content_type: "image/png".to_string(),
        bytes: chart::trend_png(&report.trend)?,
    }])
}

/// An email from `rendered`, addressed `[to, cc, bcc]`, every address
/// checked now rather than at send time.
fn checked_email(
    from: &str,
    [to, cc, bcc]: [Vec<String>; 3],
    rendered: crate::render::RenderedEmail,
    attachment: Option<(String, Vec<u8>)>,
) -> anyhow::Result<Email> {
    let email = Email {
        from: from.to_string(),
        to,
        cc,
        bcc,
        subject: rendered.subject,
        text: rendered.text,
        html: rendered.html,
        attachment,
        message_id: None,
        inline: Vec::new(),
    };
    email.to_message()?;
    Ok(email)
}

/// The `on_failure` messages of `job` for a failed run: the `failure` email
/// template, and short, escaped payloads for webhooks. Archives in
/// `on_failure` write nothing (there is no report to archive).
pub fn failure(
    config: &Config,
    job: &Job,
    renderer: &Renderer,
    ctx: &crate::render::FailureContext,
) -> anyhow::Result<Vec<Outgoing>> {
    let mut items = Vec::new();
    let headline = format!("trainwatch: job {} failed", job.name);
    for (index, delivery) in job.on_failure.iter().enumerate() {
        let kind = kind_of(config, delivery);
        let item =
            |target: String, recipient: String, summary: String, payload: Payload| Outgoing {
                delivery: index,
                kind,
                target: format!("on_failure {target}"),
                webhook: None,
                team: None,
                recipient,
                summary,
                payload,
                url: None,
                secret: None,
            };
        match delivery {
            Delivery::Email(e) => {
                let smtp = config
                    .smtp
                    .as_ref()
                    .context("an email delivery needs [smtp]")?;
                let rendered = renderer.failure_email(ctx, e.subject.as_deref())?;
                let email = checked_email(
                    &smtp.from,
                    [e.to.clone(), e.cc.clone(), e.bcc.clone()],
                    rendered,
                    None,
                )?;
                items.push(item(
                    format!("email {}", e.template),
                    email.to.join(", "),
                    email.subject.clone(),
                    Payload::Email(Box::new(email)),
                ));
            }
            Delivery::Webhook(w) => {
                let hook = config
                    .webhooks
                    .get(&w.webhook)
                    .with_context(|| format!("no webhook `{}`", w.webhook))?;
                let payload = match hook.kind {
                    WebhookKind::Slack => Payload::Slack(vec![serde_json::json!({
                        "text": format!("{headline}\n```{}```", crate::render::filters::escape_mrkdwn(&ctx.error)),
                    })]),
                    WebhookKind::MsTeams => Payload::MsTeams(serde_json::json!({
                        "type": "message",
                        "attachments": [{
                            "contentType": crate::render::msteams::CARD_CONTENT_TYPE,
                            "content": {
                                "type": "AdaptiveCard",
                                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                                "version": "1.4",
                                "body": [
                                    {"type": "TextBlock", "text": headline, "weight": "Bolder", "wrap": true},
                                    {"type": "TextBlock", "text": ctx.error, "wrap": true, "fontType": "Monospace"},
                                ],
                            },
                        }],
                    })),
                    WebhookKind::Json => Payload::Json(serde_json::to_value(ctx)?),
                };
                items.push(Outgoing {
                    url: Some(hook.url.clone()),
                    secret: hook.secret.clone(),
                    webhook: Some(hook.name.clone()),
                    ..item(
                        format!("webhook {}", hook.name),
                        format!("webhook {}", hook.name),
                        headline.clone(),
                        payload,
                    )
                });
            }
            Delivery::Archive(_) => {}
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_attachment_over_the_limit_is_refused_pointing_to_the_archive() {
        assert!(check_csv_attachment(MAX_CSV_ATTACHMENT_BYTES, 70_000).is_ok());
        let err = check_csv_attachment(MAX_CSV_ATTACHMENT_BYTES + 1, 70_001)
            .unwrap_err()
            .to_string();
        assert!(err.contains("10.0 MiB (70001 assignments)"), "{err}");
        assert!(err.contains("over the 10 MiB"), "{err}");
        assert!(err.contains("archive"), "{err}");
    }

    #[test]
    fn the_excel_csv_starts_with_a_bom_ends_records_with_crlf_and_keeps_values() {
        let rfc4180 = "learner_name,note\nZoë Ångström,\"two\nlines, quoted\"\n";

        let excel = excel_csv(rfc4180.as_bytes()).unwrap();

        assert_eq!(
            String::from_utf8(excel).unwrap(),
            "\u{feff}learner_name,note\r\nZoë Ångström,\"two\nlines, quoted\"\r\n"
        );
    }
}
