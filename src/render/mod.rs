//! Rendering: the report data through Tera templates into email bodies,
//! Slack and Teams payloads, JSON webhook bodies and the archive's HTML.
//!
//! The only module that knows Tera. Built-in templates (`templates/` in the
//! repository) are embedded in the binary; files in `templates_dir` override
//! them by file name. Every template is compiled when the [`Renderer`] is
//! built, so a broken one is found by `trainwatch validate`, not at 08:00 on
//! Monday.
//!
//! # Names are data, never markup
//! Each output kind has its own Tera instance whose escape function suits
//! that kind, and every `{{ … }}` is escaped, so a template author cannot
//! forget to:
//!
//! | files | escaping of `{{ … }}` |
//! | --- | --- |
//! | `*.html` | HTML (`&`, `<`, `>`, `"`, `'`) |
//! | `*.txt`, `*.subject`, subjects and addresses | none (plain text) |
//! | `*.slack.json` | Slack mrkdwn (`&amp;`, `&lt;`, `&gt;`), then JSON string |
//! | `*.msteams.json`, `*.json` | JSON string |
//!
//! JSON templates write the quotes themselves: `"text": "{{ team.name }}"`.
//! Numbers are inserted as they are; `{{ value | json }}` inserts any value
//! as JSON.
//!
//! # Template files
//! For a template name `NAME` (e.g. `overdue`): `NAME.html` and `NAME.txt`
//! (email parts), `NAME.subject` (default email subject),
//! `NAME.slack.json`, `NAME.msteams.json`, `NAME.json` (JSON webhook body;
//! without one the body is the report data itself), and `audit.report.html`
//! for the archive. Files starting with `_` are partials (`_email.html` is
//! the email layout the built-in HTML templates extend).

mod archive;
mod builtin;
pub mod chart;
mod error;
pub mod filters;
mod limited;
mod rows;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use tera::{Context, Tera};

use crate::report::{JobInfo, Report, WindowInfo};
use crate::sink::WebhookKind;

pub use builtin::{ARCHIVE_TEMPLATE, BUILTIN, DEFAULT_SUBJECT, FAILURE_TEMPLATE};
pub use error::RenderError;
use error::{compile_error, line_col};
use rows::{reads_details, reads_rows, reads_rows_through, reads_through, template_refs};

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// One line, no markup.
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// The context of `on_failure` templates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureContext {
    pub job: JobInfo,
    /// The window of the failed run, when it got as far as computing one.
    pub window: Option<WindowInfo>,
    /// When the failure was reported (RFC 3339, job's timezone).
    pub generated_at: String,
    /// The error and its causes, one per line.
    pub error: String,
}

/// The output kinds, each with its own Tera instance and escaping: HTML,
/// plain text, and each webhook kind's JSON ([`crate::sink`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Html,
    Text,
    Webhook(WebhookKind),
}

impl Kind {
    fn all() -> impl Iterator<Item = Kind> {
        [Kind::Html, Kind::Text]
            .into_iter()
            .chain(WebhookKind::all().map(Kind::Webhook))
    }

    /// The kind of a template file, by its name; `None` for files that are
    /// not templates (a README in templates_dir, say).
    fn of(file: &str) -> Option<Kind> {
        if let Some(kind) = crate::sink::of_template(file) {
            Some(Kind::Webhook(kind))
        } else if file.ends_with(".html") || file.ends_with(".htm") {
            Some(Kind::Html)
        } else if file.ends_with(".txt") || file.ends_with(".subject") {
            Some(Kind::Text)
        } else {
            None
        }
    }

    fn tera(self) -> Tera {
        let mut tera = Tera::new();
        match self {
            Kind::Text => tera.autoescape_on(Vec::<&str>::new()),
            // Every template of the instance, partials included, whatever its name.
            _ => tera.autoescape_on([""]),
        }
        if let Kind::Webhook(kind) = self {
            tera.set_escape_fn(kind.escape());
        }
        filters::register(&mut tera, matches!(self, Kind::Webhook(_)));
        tera
    }
}

/// Every template, compiled; renders reports into each output.
pub struct Renderer {
    html: Tera,
    text: Tera,
    /// One instance per webhook kind, in [`crate::sink::SINKS`]' order.
    webhooks: Vec<(WebhookKind, Tera)>,
    /// Template names (file names up to the first dot), partials excluded.
    names: BTreeSet<String>,
    /// The template files that may read `assignments`, themselves or through
    /// a template they include, extend or import: only their contexts carry
    /// the rows (see [`reads_rows`]).
    row_readers: BTreeSet<String>,
    /// Whether `report.html` is the built-in template, written in pieces
    /// (see `archive`).
    archive_in_pieces: bool,
    /// Built-in templates that read only their first rows, and how many
    /// (see `limited`).
    row_limits: BTreeMap<String, usize>,
    /// The template files that may read the report's other lists of
    /// assignments ([`crate::report::DETAIL_FIELDS`]): only their contexts
    /// carry them.
    detail_readers: BTreeSet<String>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl Renderer {
    /// The built-in templates, overridden by file name by those in
    /// `templates_dir`; every template is compiled now. Files whose name is
    /// not a template kind (see the module docs) or starts with `.` are
    /// ignored.
    pub fn new(templates_dir: Option<&Path>) -> Result<Self, RenderError> {
        // file name → (source, where it came from)
        let mut files: BTreeMap<String, (String, String)> = BUILTIN
            .iter()
            .chain(WebhookKind::all().flat_map(|k| k.builtin_templates()))
            .map(|(name, source)| {
                (
                    name.to_string(),
                    (source.to_string(), format!("built-in {name}")),
                )
            })
            .collect();
        if let Some(dir) = templates_dir {
            let read = |source| RenderError::Read {
                path: dir.to_path_buf(),
                source,
            };
            for entry in std::fs::read_dir(dir).map_err(read)? {
                let entry = entry.map_err(read)?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                if name.starts_with('.') || Kind::of(&name).is_none() || !path.is_file() {
                    continue;
                }
                let source =
                    std::fs::read_to_string(&path).map_err(|source| RenderError::Read {
                        path: path.clone(),
                        source,
                    })?;
                files.insert(name, (source, path.display().to_string()));
            }
        }

        let mut instances: Vec<(Kind, Tera)> = Vec::new();
        for kind in Kind::all() {
            let mut tera = kind.tera();
            let batch = files
                .iter()
                .filter(|(name, _)| Kind::of(name) == Some(kind))
                .map(|(name, (source, _))| (name.as_str(), source.as_str()));
            tera.add_raw_templates(batch)
                .map_err(|err| compile_error(err, &files))?;
            instances.push((kind, tera));
        }
        let names = files
            .keys()
            .filter(|f| !f.starts_with('_'))
            .filter_map(|f| f.split('.').next())
            .map(str::to_string)
            .collect();
        let sources: BTreeMap<&str, &str> = files
            .iter()
            .map(|(name, (source, _))| (name.as_str(), source.as_str()))
            .collect();
        let row_readers = sources
            .iter()
            .filter(|(_, source)| reads_rows_through(source, &sources, &mut BTreeSet::new()))
            .map(|(name, _)| name.to_string())
            .collect();
        let detail_readers = sources
            .iter()
            .filter(|(_, source)| {
                reads_through(source, &sources, &mut BTreeSet::new(), reads_details)
            })
            .map(|(name, _)| name.to_string())
            .collect();
        let mut row_limits = BTreeMap::new();
        for (file, (source, _)) in &files {
            let (Some(kind), Some((limited, n))) = (Kind::of(file), limited::limited(file, source))
            else {
                continue;
            };
            let (_, tera) = instances
                .iter_mut()
                .find(|(k, _)| *k == kind)
                .expect("one instance per kind");
            tera.add_raw_template(file, &limited)
                .map_err(|err| compile_error(err, &files))?;
            row_limits.insert(file.clone(), n);
        }
        let mut html = Tera::new();
        let mut text = Tera::new();
        let mut webhooks = Vec::new();
        for (kind, tera) in instances {
            match kind {
                Kind::Html => html = tera,
                Kind::Text => text = tera,
                Kind::Webhook(kind) => webhooks.push((kind, tera)),
            }
        }
        let archive_in_pieces = match files.get(ARCHIVE_TEMPLATE) {
            Some((source, _)) => archive::add_pieces(&mut html, source)?,
            None => false,
        };
        Ok(Self {
            html,
            text,
            webhooks,
            names,
            row_readers,
            archive_in_pieces,
            row_limits,
            detail_readers,
        })
    }

    /// Whether any output of template `name` exists (`overdue`, `digest`, …).
    pub fn has_template(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// The email of template `name`: `NAME.html`, `NAME.txt`, and `subject`
    /// (a Tera string, rendered without escaping) or else `NAME.subject`
    /// or else [`DEFAULT_SUBJECT`].
    pub fn email(
        &self,
        name: &str,
        report: &Report,
        subject: Option<&str>,
    ) -> Result<RenderedEmail, RenderError> {
        let readers: Vec<String> = [".html", ".txt", ".subject"]
            .iter()
            .map(|ext| format!("{name}{ext}"))
            .filter(|file| self.row_readers.contains(file))
            .collect();
        let inline_reads = subject.is_some_and(|s| self.inline_reads_rows(s));
        // Built-in parts that show only their first rows: those rows and the count.
        let limit = readers
            .iter()
            .map(|file| self.row_limits.get(file).copied())
            .try_fold(0, |most, n| Some(most.max(n?)));
        let details = [".html", ".txt", ".subject"]
            .iter()
            .any(|ext| self.detail_readers.contains(&format!("{name}{ext}")))
            || subject.is_some_and(|s| self.inline_reads_details(s));
        let ctx = with_details(details, || {
            match (readers.is_empty() && !inline_reads, limit) {
                (true, _) => report_context(report),
                (false, Some(n)) if !inline_reads => self.limited_context(report, n),
                (false, _) => context(report),
            }
        })?;
        self.email_of(name, &ctx, subject)
    }

    /// The `on_failure` email ([`FAILURE_TEMPLATE`]).
    pub fn failure_email(
        &self,
        failure: &FailureContext,
        subject: Option<&str>,
    ) -> Result<RenderedEmail, RenderError> {
        self.email_of(FAILURE_TEMPLATE, &context(failure)?, subject)
    }

    fn email_of(
        &self,
        name: &str,
        ctx: &Context,
        subject: Option<&str>,
    ) -> Result<RenderedEmail, RenderError> {
        let html = render(&self.html, name, &format!("{name}.html"), ctx)?;
        let text = render(&self.text, name, &format!("{name}.txt"), ctx)?;
        let subject_file = format!("{name}.subject");
        let subject = match subject {
            Some(source) => render_inline(&self.text, source, ctx)?,
            None if self.text.contains_template(&subject_file) => {
                render(&self.text, name, &subject_file, ctx)?
            }
            None => render_inline(&self.text, DEFAULT_SUBJECT, ctx)?,
        };
        Ok(RenderedEmail {
            subject: one_line(&subject),
            html,
            text,
        })
    }

    /// A one-off Tera string over the report, unescaped: recipients such as
    /// `{{ team.manager }}` and subjects.
    pub fn render_str(&self, tera_source: &str, report: &Report) -> Result<String, RenderError> {
        let ctx = with_details(self.inline_reads_details(tera_source), || {
            if self.inline_reads_rows(tera_source) {
                context(report)
            } else {
                report_context(report)
            }
        })?;
        render_inline(&self.text, tera_source, &ctx)
    }

    /// Compiles `tera_source` (with trainwatch's filters) without rendering
    /// it: for `trainwatch validate` to check subjects and recipients.
    pub fn check_str(tera_source: &str) -> Result<(), RenderError> {
        let mut tera = Kind::Text.tera();
        tera.add_raw_template("inline", tera_source)
            .map_err(|source| {
                let (line, column) = line_col(&source.to_string(), "inline");
                RenderError::Compile {
                    file: format!("template `{tera_source}`"),
                    line,
                    column,
                    source: Box::new(source),
                }
            })
    }

    /// The parts a webhook of `kind` sends for template `name`
    /// (`NAME<suffix>`, [`crate::sink::Sink::template_suffix`]), shaped to
    /// the receiver's limits ([`crate::sink::Sink::shape`]). For a kind whose
    /// body is the report data without a template, `include_assignments`
    /// says whether the data has the rows.
    pub fn webhook(
        &self,
        kind: WebhookKind,
        name: &str,
        report: &Report,
        include_assignments: bool,
    ) -> Result<Vec<serde_json::Value>, RenderError> {
        let file = format!("{name}{}", kind.template_suffix());
        let tera = self
            .webhooks
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, tera)| tera)
            .expect("one instance per webhook kind");
        let body = if kind.data_without_template() {
            data_body(tera, name, &file, report, include_assignments)?
        } else {
            render_json(tera, name, &file, &self.context(&file, report)?)?
        };
        kind.shape(body).map_err(|message| RenderError::Payload {
            template: file,
            message,
        })
    }

    /// The Slack messages of template `name` (`NAME.slack.json`), in order,
    /// each within Slack's limits (see [`crate::sink::slack`]): numbered
    /// "part i/n" when the report needs more than one.
    pub fn slack(
        &self,
        name: &str,
        report: &Report,
    ) -> Result<Vec<serde_json::Value>, RenderError> {
        self.webhook(WebhookKind::Slack, name, report, false)
    }

    /// The Microsoft Teams Workflows payload of template `name`
    /// (`NAME.msteams.json`), cut to fit Teams' size limit (see
    /// [`crate::sink::msteams`]).
    pub fn msteams(&self, name: &str, report: &Report) -> Result<serde_json::Value, RenderError> {
        one_part(self.webhook(WebhookKind::MsTeams, name, report, false)?)
    }

    /// The body of a `json` webhook: `NAME.json` rendered when templates_dir
    /// has one, else the report data itself. Unless `include_assignments`,
    /// the data has no `assignments` (and a template sees an empty list).
    pub fn json_body(
        &self,
        name: &str,
        report: &Report,
        include_assignments: bool,
    ) -> Result<serde_json::Value, RenderError> {
        one_part(self.webhook(WebhookKind::Json, name, report, include_assignments)?)
    }

    /// The archive's `report.html` ([`ARCHIVE_TEMPLATE`]).
    pub fn archive_html(&self, report: &Report) -> Result<String, RenderError> {
        render(
            &self.html,
            "audit",
            ARCHIVE_TEMPLATE,
            &self.context(ARCHIVE_TEMPLATE, report)?,
        )
    }

    /// Whether an inline Tera string may read the rows, itself or through
    /// a template it includes.
    fn inline_reads_rows(&self, source: &str) -> bool {
        reads_rows(source)
            || template_refs(source).any(|r| r.is_none_or(|f| self.row_readers.contains(f)))
    }

    /// The context of `report` for template `file`: with the rows only when
    /// it may read them.
    fn context(&self, file: &str, report: &Report) -> Result<Context, RenderError> {
        with_details(self.detail_readers.contains(file), || {
            if let Some(&n) = self.row_limits.get(file) {
                self.limited_context(report, n)
            } else if self.row_readers.contains(file) {
                context(report)
            } else {
                report_context(report)
            }
        })
    }

    /// Whether an inline Tera string may read the report's other lists,
    /// itself or through a template it includes.
    fn inline_reads_details(&self, source: &str) -> bool {
        reads_details(source)
            || template_refs(source).any(|r| r.is_none_or(|f| self.detail_readers.contains(f)))
    }
}

impl Renderer {
    /// The context of `report` with its first `n` rows and their count.
    fn limited_context(&self, report: &Report, n: usize) -> Result<Context, RenderError> {
        let mut ctx = report_context(report)?;
        let rows = &report.assignments;
        ctx.insert("assignments", &rows[..n.min(rows.len())]);
        ctx.insert(limited::COUNT, &report.row_count());
        Ok(ctx)
    }
}

/// `f`, with the report's [`crate::report::DETAIL_FIELDS`] left out of
/// what it serializes unless `details`.
fn with_details<R>(details: bool, f: impl FnOnce() -> R) -> R {
    if details {
        f()
    } else {
        crate::report::without_details(f)
    }
}

fn context<T: Serialize>(data: &T) -> Result<Context, RenderError> {
    Context::from_serialize(data).map_err(|e| RenderError::Context(Box::new(e)))
}

/// The context of `report` with `assignments` empty.
fn report_context(report: &Report) -> Result<Context, RenderError> {
    crate::report::without_rows(|| context(report))
}

/// A body that is the report data, or `file` rendered over the data when
/// `tera` has it. Unless `include_assignments`, the data has no
/// `assignments` (and a template sees an empty list).
fn data_body(
    tera: &Tera,
    name: &str,
    file: &str,
    report: &Report,
    include_assignments: bool,
) -> Result<serde_json::Value, RenderError> {
    let to_value = || serde_json::to_value(report);
    // Rows left out are never built as JSON values in the first place.
    let data = if include_assignments {
        to_value()
    } else {
        crate::report::without_rows(to_value)
    };
    let mut data = data.map_err(|source| RenderError::Json {
        template: file.to_string(),
        source,
    })?;
    let templated = tera.contains_template(file);
    if !include_assignments && let Some(map) = data.as_object_mut() {
        if templated {
            // Emptied rather than removed, so `{{ assignments | length }}` still works.
            map.insert("assignments".into(), serde_json::Value::Array(Vec::new()));
        } else {
            map.remove("assignments");
        }
    }
    if !templated {
        return Ok(data);
    }
    let ctx = Context::from_serialize(&data).map_err(|e| RenderError::Context(Box::new(e)))?;
    render_json(tera, name, file, &ctx)
}

/// The one part of a single-part webhook body.
fn one_part(parts: Vec<serde_json::Value>) -> Result<serde_json::Value, RenderError> {
    let mut parts = parts.into_iter();
    match (parts.next(), parts.next()) {
        (Some(part), None) => Ok(part),
        _ => Err(RenderError::Payload {
            template: String::new(),
            message: "internal: a single-part webhook body came in several parts".into(),
        }),
    }
}

/// Renders `file`, telling a missing file apart from a failing one.
fn render(tera: &Tera, name: &str, file: &str, ctx: &Context) -> Result<String, RenderError> {
    if !tera.contains_template(file) {
        return Err(RenderError::Missing {
            template: name.to_string(),
            file: file.to_string(),
        });
    }
    tera.render(file, ctx)
        .map_err(|source| RenderError::Render {
            template: file.to_string(),
            source: Box::new(source),
        })
}

fn render_json(
    tera: &Tera,
    name: &str,
    file: &str,
    ctx: &Context,
) -> Result<serde_json::Value, RenderError> {
    let out = render(tera, name, file, ctx)?;
    serde_json::from_str(&out).map_err(|source| RenderError::Json {
        template: file.to_string(),
        source,
    })
}

fn render_inline(tera: &Tera, source: &str, ctx: &Context) -> Result<String, RenderError> {
    tera.render_str(source, ctx, false)
        .map_err(|err| RenderError::Render {
            template: format!("`{source}`"),
            source: Box::new(err),
        })
}

/// A subject on one line: header injection is not a feature.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_template_compiles_and_the_renderer_can_be_shared() {
        fn shared<T: Send + Sync>(_: &T) {}
        let renderer = Renderer::new(None).unwrap();
        shared(&renderer);
        for name in crate::config::BUILTIN_TEMPLATES {
            assert!(renderer.has_template(name), "{name}");
        }
        assert!(!renderer.has_template("_email"));
    }

    // The names this test was written with, from when the kinds were fixed.
    #[allow(non_upper_case_globals)]
    impl Kind {
        const Slack: Kind = Kind::Webhook(WebhookKind::Slack);
        const MsTeams: Kind = Kind::Webhook(WebhookKind::MsTeams);
        const Json: Kind = Kind::Webhook(WebhookKind::Json);
    }

    #[test]
    fn each_file_kind_goes_to_its_instance() {
        assert_eq!(Kind::of("digest.slack.json"), Some(Kind::Slack));
        assert_eq!(Kind::of("digest.msteams.json"), Some(Kind::MsTeams));
        assert_eq!(Kind::of("digest.json"), Some(Kind::Json));
        assert_eq!(Kind::of("audit.report.html"), Some(Kind::Html));
        assert_eq!(Kind::of("overdue.subject"), Some(Kind::Text));
        assert_eq!(Kind::of("README.md"), None);
    }

    #[test]
    fn check_str_rejects_bad_syntax_and_unknown_filters() {
        assert!(Renderer::check_str("{{ team.manager }}").is_ok());
        assert!(Renderer::check_str("{{ window.start | date(format='%Y') }}").is_ok());
        assert!(Renderer::check_str("{{ team.manager ").is_err());
        let err = Renderer::check_str("{{ x | nope }}").unwrap_err();
        assert!(
            matches!(err, RenderError::Compile { line: Some(1), .. }),
            "{err:?}"
        );
    }

    #[test]
    fn only_sources_that_name_the_rows_read_them() {
        assert!(reads_rows("{% for a in assignments %}"));
        assert!(reads_rows("{{ assignments | length }}"));
        assert!(reads_rows("{{assignments[:100]}}"));
        assert!(!reads_rows(
            "{{ totals.assignments }} in {{ courses | length }} courses"
        ));
        assert!(!reads_rows("{{ my_assignments_count }}"));
        let r = Renderer::new(None).unwrap();
        // The built-in audit email and archive page list rows; the overdue
        // email (which extends `_email.html`) and the digests do not.
        assert!(r.row_readers.contains("audit.html"));
        assert!(r.row_readers.contains(ARCHIVE_TEMPLATE));
        assert!(!r.row_readers.contains("overdue.html"));
        assert!(!r.row_readers.contains("digest.msteams.json"));
        // The audit counts the other lists; the overdue email lists them.
        for file in ["audit.html", "audit.txt", "audit.subject", ARCHIVE_TEMPLATE] {
            assert!(!r.detail_readers.contains(file), "{file}");
        }
        assert!(r.detail_readers.contains("overdue.html"));
        assert!(r.detail_readers.contains("overdue.txt"));
        assert!(r.inline_reads_rows("{% include \"audit.txt\" %}"));
        assert!(!r.inline_reads_rows("{% include \"overdue.txt\" %}"));
        assert!(r.inline_reads_rows("{% include name %}"));
    }

    #[test]
    fn subjects_are_one_line() {
        assert_eq!(one_line(" a\r\nb\t c "), "a b c");
    }
}
