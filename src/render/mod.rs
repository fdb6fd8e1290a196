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

pub mod chart;
pub mod filters;
pub mod msteams;
pub mod slack;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tera::{Context, Tera};

use crate::report::{JobInfo, Report, WindowInfo};

/// The built-in templates: (file name, source).
pub const BUILTIN: &[(&str, &str)] = &[
    ("_email.html", include_str!("../../templates/_email.html")),
    (
        "_overdue_body.html",
        include_str!("../../templates/_overdue_body.html"),
    ),
    (
        "_overdue_body.txt",
        include_str!("../../templates/_overdue_body.txt"),
    ),
    ("overdue.html", include_str!("../../templates/overdue.html")),
    ("overdue.txt", include_str!("../../templates/overdue.txt")),
    (
        "overdue.subject",
        include_str!("../../templates/overdue.subject"),
    ),
    (
        "overdue.slack.json",
        include_str!("../../templates/overdue.slack.json"),
    ),
    (
        "overdue.msteams.json",
        include_str!("../../templates/overdue.msteams.json"),
    ),
    (
        "escalation.html",
        include_str!("../../templates/escalation.html"),
    ),
    (
        "escalation.txt",
        include_str!("../../templates/escalation.txt"),
    ),
    (
        "escalation.subject",
        include_str!("../../templates/escalation.subject"),
    ),
    (
        "escalation.slack.json",
        include_str!("../../templates/escalation.slack.json"),
    ),
    (
        "escalation.msteams.json",
        include_str!("../../templates/escalation.msteams.json"),
    ),
    ("digest.html", include_str!("../../templates/digest.html")),
    ("digest.txt", include_str!("../../templates/digest.txt")),
    (
        "digest.subject",
        include_str!("../../templates/digest.subject"),
    ),
    (
        "digest.slack.json",
        include_str!("../../templates/digest.slack.json"),
    ),
    (
        "digest.msteams.json",
        include_str!("../../templates/digest.msteams.json"),
    ),
    ("audit.html", include_str!("../../templates/audit.html")),
    ("audit.txt", include_str!("../../templates/audit.txt")),
    (
        "audit.subject",
        include_str!("../../templates/audit.subject"),
    ),
    (
        "audit.slack.json",
        include_str!("../../templates/audit.slack.json"),
    ),
    (
        "audit.msteams.json",
        include_str!("../../templates/audit.msteams.json"),
    ),
    (
        "audit.report.html",
        include_str!("../../templates/audit.report.html"),
    ),
    ("failure.html", include_str!("../../templates/failure.html")),
    ("failure.txt", include_str!("../../templates/failure.txt")),
    (
        "failure.subject",
        include_str!("../../templates/failure.subject"),
    ),
];

/// The subject of an email whose template has no `NAME.subject` and whose
/// delivery sets none.
pub const DEFAULT_SUBJECT: &str = "{{ job.name }}: training report";

/// The template the archive's `report.html` is rendered from.
pub const ARCHIVE_TEMPLATE: &str = "audit.report.html";

/// The template of `on_failure` emails.
pub const FAILURE_TEMPLATE: &str = "failure";

/// Something that went wrong building or rendering a template.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template file could not be read.
    #[error("cannot read template {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A template does not compile; `file` is its path (or `built-in NAME`).
    #[error("{}: template does not compile", location(file, *line, *column))]
    Compile {
        file: String,
        line: Option<usize>,
        column: Option<usize>,
        #[source]
        source: Box<tera::Error>,
    },
    /// Rendering failed (an undefined variable, a filter error, …).
    #[error("template {template} failed to render")]
    Render {
        template: String,
        #[source]
        source: Box<tera::Error>,
    },
    /// The template exists, but not for this output.
    #[error("template `{template}` has no {file}: add one to templates_dir")]
    Missing { template: String, file: String },
    /// A JSON template rendered something that is not JSON.
    #[error("template {template} did not render valid JSON")]
    Json {
        template: String,
        #[source]
        source: serde_json::Error,
    },
    /// The rendered payload is not what the target accepts.
    #[error("template {template}: {message}")]
    Payload { template: String, message: String },
    /// The data could not be made into a template context.
    #[error("cannot build the template context")]
    Context(#[source] Box<tera::Error>),
}

fn location(file: &str, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
        (Some(l), None) => format!("{file}:{l}"),
        _ => file.to_string(),
    }
}

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

/// The output kinds, each with its own Tera instance and escaping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Html,
    Text,
    Slack,
    MsTeams,
    Json,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Html,
        Kind::Text,
        Kind::Slack,
        Kind::MsTeams,
        Kind::Json,
    ];

    /// The kind of a template file, by its name; `None` for files that are
    /// not templates (a README in templates_dir, say).
    fn of(file: &str) -> Option<Kind> {
        if file.ends_with(".slack.json") {
            Some(Kind::Slack)
        } else if file.ends_with(".msteams.json") {
            Some(Kind::MsTeams)
        } else if file.ends_with(".json") {
            Some(Kind::Json)
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
        match self {
            Kind::Html | Kind::Text => {}
            Kind::Slack => tera.set_escape_fn(filters::escape_slack),
            Kind::MsTeams | Kind::Json => tera.set_escape_fn(filters::escape_json_string),
        }
        filters::register(
            &mut tera,
            matches!(self, Kind::Slack | Kind::MsTeams | Kind::Json),
        );
        tera
    }
}

/// Every template, compiled; renders reports into each output.
pub struct Renderer {
    html: Tera,
    text: Tera,
    slack: Tera,
    msteams: Tera,
    json: Tera,
    /// Template names (file names up to the first dot), partials excluded.
    names: BTreeSet<String>,
    /// The template files that may read `assignments`, themselves or through
    /// a template they include, extend or import: only their contexts carry
    /// the rows (see [`reads_rows`]).
    row_readers: BTreeSet<String>,
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

        let mut instances: BTreeMap<Kind, Tera> = BTreeMap::new();
        for kind in Kind::ALL {
            let mut tera = kind.tera();
            let batch = files
                .iter()
                .filter(|(name, _)| Kind::of(name) == Some(kind))
                .map(|(name, (source, _))| (name.as_str(), source.as_str()));
            tera.add_raw_templates(batch)
                .map_err(|err| compile_error(err, &files))?;
            instances.insert(kind, tera);
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
        let mut take = |kind| instances.remove(&kind).expect("one instance per kind");
        Ok(Self {
            html: take(Kind::Html),
            text: take(Kind::Text),
            slack: take(Kind::Slack),
            msteams: take(Kind::MsTeams),
            json: take(Kind::Json),
            names,
            row_readers,
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
        let ctx = if [".html", ".txt", ".subject"]
            .iter()
            .any(|ext| self.row_readers.contains(&format!("{name}{ext}")))
            || subject.is_some_and(|s| self.inline_reads_rows(s))
        {
            context(report)?
        } else {
            report_context(report)?
        };
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
        let ctx = if self.inline_reads_rows(tera_source) {
            context(report)?
        } else {
            report_context(report)?
        };
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

    /// The Slack messages of template `name` (`NAME.slack.json`), in order,
    /// each within Slack's limits (see [`slack`]): numbered "part i/n" when
    /// the report needs more than one.
    pub fn slack(
        &self,
        name: &str,
        report: &Report,
    ) -> Result<Vec<serde_json::Value>, RenderError> {
        let file = format!("{name}.slack.json");
        let payload = render_json(&self.slack, name, &file, &self.context(&file, report)?)?;
        slack::split(payload).map_err(|message| RenderError::Payload {
            template: file,
            message,
        })
    }

    /// The Microsoft Teams Workflows payload of template `name`
    /// (`NAME.msteams.json`), cut to fit Teams' size limit (see [`msteams`]).
    pub fn msteams(&self, name: &str, report: &Report) -> Result<serde_json::Value, RenderError> {
        let file = format!("{name}.msteams.json");
        let payload = render_json(&self.msteams, name, &file, &self.context(&file, report)?)?;
        msteams::fit(payload).map_err(|message| RenderError::Payload {
            template: file,
            message,
        })
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
        let to_value = || serde_json::to_value(report);
        // Rows left out are never built as JSON values in the first place.
        let data = if include_assignments {
            to_value()
        } else {
            crate::report::without_rows(to_value)
        };
        let mut data = data.map_err(|source| RenderError::Json {
            template: format!("{name}.json"),
            source,
        })?;
        let file = format!("{name}.json");
        let templated = self.json.contains_template(&file);
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
        render_json(&self.json, name, &file, &ctx)
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
        if self.row_readers.contains(file) {
            context(report)
        } else {
            report_context(report)
        }
    }
}

fn context<T: Serialize>(data: &T) -> Result<Context, RenderError> {
    Context::from_serialize(data).map_err(|e| RenderError::Context(Box::new(e)))
}

/// The context of `report` with `assignments` empty.
fn report_context(report: &Report) -> Result<Context, RenderError> {
    crate::report::without_rows(|| context(report))
}

/// Whether `source` may read the rows, itself or through the templates
/// it names (`visiting` guards against include cycles).
fn reads_rows_through<'a>(
    source: &'a str,
    sources: &BTreeMap<&'a str, &'a str>,
    visiting: &mut BTreeSet<&'a str>,
) -> bool {
    reads_rows(source)
        || template_refs(source).any(|r| match r {
            // A name that is not a literal: it could be any template.
            None => true,
            Some(file) => match sources.get_key_value(file) {
                Some((&name, &inner)) => {
                    visiting.insert(name) && reads_rows_through(inner, sources, visiting)
                }
                None => false,
            },
        })
}

/// The templates a source includes, extends or imports: `Some(name)` for a
/// quoted name, `None` for a tag whose target is not a literal.
fn template_refs(source: &str) -> impl Iterator<Item = Option<&str>> {
    source.split("{%").skip(1).flat_map(|tag| {
        let tag = tag.split("%}").next().unwrap_or("");
        let body = tag.trim_start_matches(['-', '+']).trim_start();
        let refers = ["include", "extends", "import"]
            .iter()
            .any(|k| body.starts_with(k));
        let names: Vec<Option<&str>> = if !refers {
            Vec::new()
        } else {
            let quoted: Vec<Option<&str>> = body
                .split(['"', '\''])
                .skip(1)
                .step_by(2)
                .map(Some)
                .collect();
            if quoted.is_empty() {
                vec![None]
            } else {
                quoted
            }
        };
        names
    })
}

/// Whether a template source may read the report's rows: it names
/// `assignments` other than as a field of something else (`totals.assignments`
/// is a count). Errs on the side of yes: the word in prose counts too, and a
/// yes only costs memory, a wrong no would hide rows from a template.
fn reads_rows(source: &str) -> bool {
    // Tera's whole-context variable shows every field without naming any.
    if source.contains("__tera_context") {
        return true;
    }
    let word = "assignments";
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    source.match_indices(word).any(|(at, _)| {
        let before = source[..at].chars().next_back();
        let after = source[at + word.len()..].chars().next();
        !before.is_some_and(|c| ident(c) || c == '.') && !after.is_some_and(ident)
    })
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

/// The compile error of a batch, attributed to the file Tera's report
/// points at (`--> NAME:LINE:COL`).
fn compile_error(source: tera::Error, files: &BTreeMap<String, (String, String)>) -> RenderError {
    let report = source.to_string();
    let source = Box::new(source);
    let culprit = files
        .iter()
        .filter_map(|(name, (_, origin))| {
            report
                .find(&format!("--> {name}:"))
                .map(|at| (at, name, origin))
        })
        .min_by_key(|(at, _, _)| *at);
    match culprit {
        Some((_, name, origin)) => {
            let (line, column) = line_col(&report, name);
            RenderError::Compile {
                file: origin.clone(),
                line,
                column,
                source,
            }
        }
        None => RenderError::Compile {
            file: "templates".to_string(),
            line: None,
            column: None,
            source,
        },
    }
}

/// `LINE:COL` after `--> NAME:` in a Tera report.
fn line_col(report: &str, name: &str) -> (Option<usize>, Option<usize>) {
    let marker = format!("--> {name}:");
    let Some(at) = report.find(&marker) else {
        return (None, None);
    };
    let rest = &report[at + marker.len()..];
    let mut numbers = rest
        .split(|c: char| !c.is_ascii_digit())
        .take(2)
        .map(|n| n.parse::<usize>().ok());
    (numbers.next().flatten(), numbers.next().flatten())
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
        assert!(r.inline_reads_rows("{% include \"audit.txt\" %}"));
        assert!(!r.inline_reads_rows("{% include \"overdue.txt\" %}"));
        assert!(r.inline_reads_rows("{% include name %}"));
    }

    #[test]
    fn subjects_are_one_line() {
        assert_eq!(one_line(" a\r\nb\t c "), "a b c");
    }
}
