//! One delivery of one report, rendered and addressed; and where an
//! archive snapshot goes.

use std::borrow::Cow;
use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::Value;

use super::email::{
    EmailCsv, check_csv_attachment, checked_email, csv_left_out, excel_csv, inline_images,
};
use super::staged::Staging;
use super::{Outgoing, Payload, kind_of};
use crate::config::{Config, Delivery, Job};
use crate::data::JobData;
use crate::render::Renderer;
use crate::render::filters::count;
use crate::report::rows::{CsvRows, Row};
use crate::report::{Report, RowSource};

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
    csv: Option<&EmailCsv>,
    query: &serde_json::Map<String, Value>,
    state: Option<&JobData>,
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
            let mut rendered = renderer.email(&e.template, report, e.subject.as_deref())?;
            let mut left_out = None;
            let attachment = match csv.filter(|_| e.attach_csv) {
                None => None,
                Some(EmailCsv::Fits(csv)) => Some((
                    "assignments.csv".to_string(),
                    if e.csv_excel {
                        excel_csv(csv)?
                    } else {
                        csv.clone()
                    },
                )),
                // Too large to attach: the archive has it, and the email says where.
                Some(&EmailCsv::Over { bytes, rows }) => {
                    let Some(archive) = job.deliver.iter().find_map(|d| match d {
                        Delivery::Archive(a) => Some(archive_folder(&a.dir, report)),
                        _ => None,
                    }) else {
                        check_csv_attachment(bytes as usize, rows)?;
                        unreachable!("a CSV over the limit is refused");
                    };
                    let note = csv_left_out(bytes, rows, &archive);
                    rendered.text = format!("{}\n\n{note}\n", rendered.text.trim_end());
                    let html_note = format!(
                        "<p>{}</p>",
                        note.replace('&', "&amp;")
                            .replace('<', "&lt;")
                            .replace('>', "&gt;")
                    );
                    match rendered.html.rfind("</body>") {
                        Some(at) => rendered.html.insert_str(at, &html_note),
                        None => rendered.html.push_str(&html_note),
                    }
                    tracing::warn!(job = %job.name, team = team.as_deref().unwrap_or("-"), "{note}");
                    left_out = Some(note);
                    None
                }
            };
            let inline = inline_images(&rendered.html, report)?;
            let mut email = checked_email(
                smtp.from.as_str(),
                [to, addresses(&e.cc, "cc")?, addresses(&e.bcc, "bcc")?],
                rendered,
                attachment,
            )?;
            email.inline = inline;
            let summary = match left_out {
                Some(_) => format!(
                    "{} (CSV not attached: over the limit; see the archive)",
                    email.subject
                ),
                None => email.subject.clone(),
            };
            base(
                email.to.join(", "),
                summary,
                Payload::Email(Box::new(email)),
            )
        }
        Delivery::Webhook(w) => {
            let hook = config.webhook(&w.webhook)?;
            let parts = renderer.webhook(hook.kind, &w.template, report, w.include_assignments)?;
            let summary = hook.kind.summary(parts.len(), w.include_assignments);
            let payload = Payload::Webhook {
                kind: hook.kind,
                parts,
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
            let files = stage_archive(config, job, report, renderer, state)?;
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
                format!("snapshot of {}", count(report.row_count(), "assignment")),
                Payload::Archive {
                    folder,
                    files,
                    manifest,
                },
            )
        }
    }))
}

/// Writes the archive's three files of `report` under `state_dir/staging/`,
/// row by row through a buffer, each fsynced with its size and SHA-256.
/// The rows are the report's own, or, when it holds only its first ones,
/// read again from `state` as each file is written.
fn stage_archive(
    config: &Config,
    job: &Job,
    report: &Report,
    renderer: &Renderer,
    state: Option<&JobData>,
) -> anyhow::Result<Vec<crate::outbox::StagedFile>> {
    let staging = Staging::create(&config.state_dir, &job.name)?;
    let written = (|| {
        // The three files in one pass over the rows, each row built once.
        let (mut json, mut html) = (None, None);
        let csv = staging.write(ARCHIVE_FILES[0], |csv_out| {
            json = Some(staging.write(ARCHIVE_FILES[1], |json_out| {
                html = Some(staging.write(ARCHIVE_FILES[2], |html_out| {
                    each_row(job, report, state, &mut |rows| {
                        write_three(renderer, report, rows, csv_out, json_out, html_out)
                    })
                })?);
                Ok(())
            })?);
            Ok(())
        })?;
        let (Some(json), Some(html)) = (json, html) else {
            anyhow::bail!("the archive's files were not all written");
        };
        staging.sync()?;
        Ok(vec![csv, json, html])
    })();
    if written.is_err() {
        // Part of a file is no file: nothing of it stays staged.
        staging.discard();
    }
    written
}

pub(super) use crate::report::Rows;

/// Hands `write` every row of `report`: those it holds, or when it holds
/// only its first ones, every row read again from the job's state `state`.
/// A count that differs from the report's (a row dropped or read twice)
/// fails, so no file is made of rows the totals beside it do not count.
pub(super) fn each_row(
    job: &Job,
    report: &Report,
    state: Option<&JobData>,
    write: &mut dyn FnMut(&mut Rows<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut seen = 0usize;
    match report.rows_count {
        None => {
            let mut rows = report
                .assignments
                .iter()
                .map(Cow::Borrowed)
                .inspect(|_| seen += 1);
            write(&mut rows)?;
        }
        Some(_) => {
            let state = state.context(
                "the report holds only its first rows and the state its files are written from was not given",
            )?;
            let source = RowSource::of(state, report, job.filters.include_deleted);
            seen = source.with_rows(write)?;
        }
    }
    anyhow::ensure!(
        seen == report.row_count(),
        "{} rows were written where the report counts {}: the files are not made",
        seen,
        report.row_count()
    );
    Ok(())
}

/// Writes `assignments.csv`, `assignments.json` and `report.html` of
/// `report` from one pass over `rows`: as the page takes each chunk of rows,
/// each row goes to the CSV and the JSON too (and those the page does not
/// read, a custom page reading the report's own, after it).
fn write_three(
    renderer: &Renderer,
    report: &Report,
    rows: &mut Rows<'_>,
    csv_out: &mut dyn std::io::Write,
    json_out: &mut dyn std::io::Write,
    html_out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    use serde::ser::{SerializeSeq as _, Serializer as _};
    let mut csv = CsvRows::new(csv_out);
    let mut ser = serde_json::Serializer::pretty(json_out);
    let mut seq = ser.serialize_seq(None)?;
    let mut failed: Option<anyhow::Error> = None;
    {
        let mut teed = rows.inspect(|row| {
            if failed.is_none() {
                let row: &Row = row;
                let written = csv
                    .push(row)
                    .and_then(|()| seq.serialize_element(row).map_err(anyhow::Error::from));
                failed = written.err();
            }
        });
        renderer.write_archive_html_of(report, &mut teed, html_out)?;
        teed.for_each(drop);
    }
    if let Some(e) = failed {
        return Err(e);
    }
    seq.end()?;
    csv.finish()?;
    Ok(())
}

/// `assignments.json`: the rows as one pretty-printed JSON array, written
/// element by element (the same bytes as `to_vec_pretty` of all of them).
pub fn write_json_rows(report: &Report, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    write_json_rows_of(report.assignments.iter(), out)
}

/// [`write_json_rows`] of rows held or read as they come.
fn write_json_rows_of<R: serde::Serialize>(
    rows: impl IntoIterator<Item = R>,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    use serde::Serializer as _;
    let mut ser = serde_json::Serializer::pretty(out);
    ser.collect_seq(rows)?;
    Ok(())
}
