//! The outbox: every delivery of a run, rendered and addressed, built once.
//! `preview` writes it to files, `run-once --dry-run` prints it, and the
//! senders deliver it. Rendering happens here, before anything is sent, so a
//! template or address error fails the run before a single message leaves.

mod email;
mod failure;
mod item;
mod kind;
mod payload;
mod preview;
mod staged;

use anyhow::Context as _;
use secrecy::SecretString;
use serde_json::Value;

use crate::config::{Config, Delivery, Job, WebhookKind, WhenEmpty};
use crate::data::{JobData, build_query, query_for};
use crate::render::Renderer;
use crate::render::filters::count;
use crate::report::Report;
use crate::window::Window;

pub use email::{
    AddressError, Addressed, Email, InlineImage, MAX_CSV_ATTACHMENT_BYTES, check_csv_attachment,
    csv_bytes, csv_left_out, excel_csv,
};
pub use failure::failure;
pub use item::{ARCHIVE_FILES, archive_folder, write_json_rows};
pub use kind::DeliveryKind;
pub use payload::Payload;
pub use preview::{PreviewFile, preview_files};
pub use staged::{Hashing, StagedFile, Staging, prune_staging};

use item::outgoing;

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
            Payload::Webhook { parts, .. } => parts.iter().map(|p| p.to_string().len()).sum(),
            Payload::Archive { files, .. } => files.iter().map(|f| f.bytes as usize).sum(),
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

impl Outbox {
    /// Deletes the files staged for deliveries that will not be sent (a
    /// dry run's, a preview's once written).
    pub fn discard_staged(&self) {
        for item in &self.items {
            if let Payload::Archive { files, .. } = &item.payload {
                files.iter().for_each(StagedFile::remove);
            }
        }
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
    build_query_given(config, job, reports, renderer, &query, None)
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
        None,
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
        Some(data),
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
    // The state `reports` were built from: their files' rows when they hold only their first.
    state: Option<&JobData>,
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
    build_query_given(config, job, reports, renderer, &query, state)
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
    state: Option<&JobData>,
) -> anyhow::Result<Outbox> {
    let mut outbox = Outbox::default();
    // The deliveries, added one by one.
    let fill = |outbox: &mut Outbox| -> anyhow::Result<()> {
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
            // The CSV an email attaches, written once per report (the archive
            // writes its own, staged): only its size is kept when it is too
            // large to attach.
            let csv = mine
                .iter()
                .any(|(_, d)| matches!(d, Delivery::Email(e) if e.attach_csv))
                .then(|| {
                    let mut csv = None;
                    item::each_row(job, report, state, &mut |rows| {
                        csv = Some(email::EmailCsv::of_rows(rows, report.row_count())?);
                        Ok(())
                    })
                    .and_then(|()| csv.context("no CSV was written"))
                })
                .transpose()
                .with_context(context)?;
            for (index, delivery) in mine {
                let item = outgoing(
                    config,
                    job,
                    report,
                    renderer,
                    delivery,
                    index,
                    &team,
                    csv.as_ref(),
                    query,
                    state,
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
        Ok(())
    };
    match fill(&mut outbox) {
        Ok(()) => Ok(outbox),
        Err(e) => {
            // Nothing of a run that is not recorded stays in the staging folder.
            outbox.discard_staged();
            Err(e)
        }
    }
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
        // A webhook no longer in the config is named as the generic kind;
        // its delivery fails when sent ("no longer in the config").
        Delivery::Webhook(w) => DeliveryKind::Webhook(
            config
                .webhooks
                .get(&w.webhook)
                .map_or(WebhookKind::Json, |h| h.kind),
        ),
    }
}
