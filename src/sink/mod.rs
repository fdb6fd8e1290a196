//! Webhook kinds ("sinks"): what differs from one kind of webhook to
//! another, each kind in one module, all of them in one list ([`SINKS`]).
//!
//! A sink says what `kind = "..."` names it, which template files it reads
//! and how `{{ … }}` is escaped in them, how a rendered body is shaped into
//! the parts it sends (Slack's limits, Teams' size), what its `on_failure`
//! message is, and how its request and answer look on the wire (headers,
//! signature, pacing, which status is success). Everything here is pure:
//! `render` renders through it, `outbox` builds and stores its payloads,
//! `deliver` posts them and `config` checks names against [`SINKS`]; none of
//! them matches on a kind.
//!
//! Adding a kind: a module here (declared below) with a unit struct that
//! implements [`Sink`], its line in [`SINKS`], and its built-in templates
//! in `templates/` (listed by [`Sink::builtin_templates`]). ARCHITECTURE.md
//! ("Adding a delivery kind") walks through it.

/// `(file name, source)` of each named file in `templates/`, each name
/// written once.
macro_rules! templates {
    ($($file:literal),* $(,)?) => {
        &[$(($file, include_str!(concat!("../../templates/", $file)))),*]
    };
}

pub mod json;
pub mod msteams;
pub mod slack;

use std::io;

use secrecy::SecretString;
use serde_json::Value;

/// Every webhook kind, in the order they are listed to people.
pub static SINKS: &[&dyn Sink] = &[
    &slack::Slack,
    &msteams::MsTeams,
    &json::Json,
    // A new kind: its module above, its line here.
];

/// A Tera escape function (`tera::Tera::set_escape_fn`).
pub type EscapeFn = fn(&str, &mut dyn io::Write) -> io::Result<()>;

/// The `(file name, source)` of built-in templates, `include_str!`ed from
/// `templates/`.
pub type Templates = &'static [(&'static str, &'static str)];

/// One kind of webhook. Only [`name`](Sink::name),
/// [`template_suffix`](Sink::template_suffix),
/// [`summary`](Sink::summary) and [`failure`](Sink::failure) have no
/// default: a kind that posts one JSON body and takes any 2xx needs no
/// more.
pub trait Sink: Sync {
    /// `kind = "NAME"` in `[webhooks.NAME]`, and the kind in the ledger,
    /// metrics and output. Stored in ledgers: never renamed.
    fn name(&self) -> &'static str;

    /// The ending of its template files: `NAME<suffix>` (`.slack.json`).
    fn template_suffix(&self) -> &'static str;

    /// Its built-in templates (`overdue<suffix>`, …), compiled into the binary.
    fn builtin_templates(&self) -> Templates {
        &[]
    }

    /// How `{{ … }}` is escaped in its templates (a JSON string by default).
    fn escape(&self) -> EscapeFn {
        escape_json_string
    }

    /// Whether, without a `NAME<suffix>` template, the body is the report
    /// data itself (instead of an error naming the missing file).
    fn data_without_template(&self) -> bool {
        false
    }

    /// The rendered body made into the parts it sends, in order, each within
    /// the receiver's limits; the message says why it cannot be.
    fn shape(&self, body: Value) -> Result<Vec<Value>, String> {
        Ok(vec![body])
    }

    /// Whether it sends several parts, stored as one JSON array (Slack);
    /// otherwise its one part is stored as it is.
    fn multi_part(&self) -> bool {
        false
    }

    /// A one-line description of what is sent (`2 Slack messages`).
    fn summary(&self, parts: usize, include_assignments: bool) -> String;

    /// The `on_failure` message: `headline` (`trainwatch: job X failed`),
    /// `error` (the causes, one per line), and `context`, the failure's
    /// data as JSON (job, window, time, error).
    fn failure(&self, headline: &str, error: &str, context: Value) -> Value;

    /// The base of the preview's file names (`slack` → `slack.json`,
    /// `slack-2.json`).
    fn preview_name(&self) -> &'static str {
        self.name()
    }

    /// Whether it takes a `secret` (to sign its bodies).
    fn signs(&self) -> bool {
        false
    }

    /// Headers besides `Content-Type: application/json`, for a part whose
    /// bytes are `body`, sent under the delivery's idempotency `key`; the
    /// message (why not) fails the delivery before any attempt.
    fn headers(
        &self,
        body: &[u8],
        secret: Option<&SecretString>,
        key: &str,
    ) -> Result<Vec<(&'static str, String)>, String> {
        let _ = (body, secret, key);
        Ok(Vec::new())
    }

    /// Messages per second per URL, when the receiver limits it.
    fn per_second(&self) -> Option<u32> {
        None
    }

    /// Whether an HTTP status is success (any 2xx by default). Every other
    /// answer is transient when 408, 429 or 5xx, permanent otherwise.
    fn success(&self, status: u16) -> bool {
        (200..300).contains(&status)
    }
}

/// The kind of a `[webhooks.NAME]`: one of [`SINKS`].
#[derive(Clone, Copy)]
pub struct WebhookKind(&'static dyn Sink);

#[allow(non_upper_case_globals)] // named as the variants of the enum it replaced
impl WebhookKind {
    /// `slack`.
    pub const Slack: WebhookKind = WebhookKind(&slack::Slack);
    /// `msteams`.
    pub const MsTeams: WebhookKind = WebhookKind(&msteams::MsTeams);
    /// `json`.
    pub const Json: WebhookKind = WebhookKind(&json::Json);
}

impl WebhookKind {
    /// The kind named `name` ([`Sink::name`]); `None` for any other name.
    pub fn parse(name: &str) -> Option<Self> {
        SINKS.iter().find(|s| s.name() == name).map(|s| Self(*s))
    }

    /// Every kind, in [`SINKS`]' order.
    pub fn all() -> impl Iterator<Item = Self> {
        SINKS.iter().map(|s| Self(*s))
    }

    /// Every kind's name, for messages: `slack, msteams or json`.
    pub fn names() -> String {
        let names: Vec<&str> = SINKS.iter().map(|s| s.name()).collect();
        or_list(&names)
    }

    /// Its name ([`Sink::name`]).
    pub fn as_str(self) -> &'static str {
        self.0.name()
    }
}

impl std::ops::Deref for WebhookKind {
    type Target = dyn Sink;
    fn deref(&self) -> &Self::Target {
        self.0
    }
}

impl PartialEq for WebhookKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for WebhookKind {}

impl std::hash::Hash for WebhookKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl std::fmt::Debug for WebhookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for WebhookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The template file ending and sink of a template file: the longest
/// suffix that matches (`x.slack.json` is Slack's, `x.json` the json
/// kind's).
pub fn of_template(file: &str) -> Option<WebhookKind> {
    WebhookKind::all()
        .filter(|k| file.ends_with(k.template_suffix()))
        .max_by_key(|k| k.template_suffix().len())
}

/// Escape for text inside a JSON string literal (the quotes are the
/// template's): `"`, `\` and control characters.
pub fn escape_json_string(input: &str, out: &mut dyn io::Write) -> io::Result<()> {
    let quoted = serde_json::to_string(input).map_err(io::Error::other)?;
    out.write_all(&quoted.as_bytes()[1..quoted.len() - 1])
}

/// `a, b or c`.
fn or_list(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// `n one` or `n ones`.
fn counted(n: usize, one: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        n => format!("{n} {one}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        for kind in WebhookKind::all() {
            assert_eq!(WebhookKind::parse(kind.as_str()), Some(kind));
        }
        let mut names: Vec<&str> = SINKS.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SINKS.len(), "two sinks share a name");
        assert_eq!(WebhookKind::parse("email"), None);
        assert!(WebhookKind::names().starts_with("slack, msteams"));
        assert_eq!(or_list(&["a", "b", "c"]), "a, b or c");
        assert_eq!(or_list(&["a"]), "a");
    }

    #[test]
    fn a_template_file_belongs_to_the_longest_suffix() {
        assert_eq!(of_template("digest.slack.json"), Some(WebhookKind::Slack));
        assert_eq!(
            of_template("digest.msteams.json"),
            Some(WebhookKind::MsTeams)
        );
        assert_eq!(of_template("digest.json"), Some(WebhookKind::Json));
        assert_eq!(of_template("digest.html"), None);
    }

    #[test]
    fn built_in_templates_end_with_their_suffix() {
        for kind in WebhookKind::all() {
            for (file, _) in kind.builtin_templates() {
                assert_eq!(of_template(file), Some(kind), "{file}");
            }
        }
    }
}
