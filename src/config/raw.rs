//! The raw shape of the file: what serde checks (key names and value
//! types), and nothing more. Every field is optional so that serde never
//! stops at a missing key; the resolve step checks what is required.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use super::diag::Diag;

/// A key that may be absent, with its span when present.
pub(crate) type Opt<T> = Option<Spanned<T>>;
/// A list of strings, each with its own span.
pub(crate) type Strings = Opt<Vec<Spanned<String>>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub timezone: Opt<String>,
    pub state_dir: Opt<String>,
    pub templates_dir: Opt<String>,
    pub catch_up: Opt<String>,
    pub retention: Opt<String>,
    pub server: Opt<RawServer>,
    pub store: Opt<RawStore>,
    pub samsara: Opt<RawSamsara>,
    pub smtp: Opt<RawSmtp>,
    pub webhooks: Opt<BTreeMap<String, Spanned<RawWebhook>>>,
    pub teams: Opt<BTreeMap<String, Spanned<RawTeam>>>,
    pub teams_from_tags: Opt<RawTeamsFromTags>,
    pub jobs: Opt<Vec<Spanned<RawJob>>>,
    pub mirror: Opt<RawMirror>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMirror {
    pub enabled: Opt<bool>,
    /// A TOML offset datetime or an RFC 3339 string.
    pub since: Opt<toml::Value>,
    pub overlap: Opt<String>,
    pub refresh: Opt<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: Opt<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub url: Opt<String>,
    pub lease: Opt<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSamsara {
    pub base_url: Opt<String>,
    pub token: Opt<String>,
    pub requests_per_second: Opt<i64>,
    pub timeout: Opt<String>,
    pub api_version: Opt<String>,
    pub max_attempts: Opt<i64>,
    pub max_retry_time: Opt<String>,
    pub max_fetch_time: Opt<String>,
    pub sample_data: Opt<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSmtp {
    pub host: Opt<String>,
    pub port: Opt<i64>,
    pub security: Opt<String>,
    pub username: Opt<String>,
    pub password: Opt<String>,
    pub from: Opt<String>,
    pub timeout: Opt<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    pub kind: Opt<String>,
    pub url: Opt<String>,
    pub secret: Opt<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTeam {
    pub display_name: Opt<String>,
    pub manager: Opt<String>,
    pub learners: Strings,
    /// A tag's name: members are the drivers with it or a descendant tag.
    pub tag: Opt<String>,
    /// A tag's id, as `tag`.
    pub tag_id: Opt<String>,
    pub escalation: Opt<String>,
}

/// `[teams_from_tags]`: one team per child tag of `parent`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTeamsFromTags {
    pub parent: Opt<String>,
    /// Tag name → manager mailbox.
    pub managers: Opt<BTreeMap<Spanned<String>, Spanned<String>>>,
    pub escalation: Opt<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJob {
    pub name: Opt<String>,
    pub schedule: Opt<String>,
    pub timezone: Opt<String>,
    pub window: Opt<RawWindow>,
    pub filters: Opt<RawFilters>,
    pub per_team: Opt<bool>,
    pub when_empty: Opt<String>,
    pub deliver: Opt<Vec<Spanned<RawDelivery>>>,
    pub on_failure: Opt<Vec<Spanned<RawDelivery>>>,
    pub source: Opt<String>,
    pub due_soon: Opt<String>,
    pub trend: Opt<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWindow {
    pub last: Opt<String>,
    pub previous: Opt<String>,
    pub since_last_run: Opt<bool>,
    pub max: Opt<String>,
    /// A TOML offset datetime or an RFC 3339 string.
    pub start: Opt<toml::Value>,
    pub end: Opt<toml::Value>,
    pub current: Opt<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFilters {
    pub learners: Strings,
    pub courses: Strings,
    pub categories: Strings,
    pub team: Opt<String>,
    pub teams: Strings,
    pub status: Strings,
    pub overdue: Opt<bool>,
    pub include_deleted: Opt<bool>,
}

/// One delivery; which of `email`, `webhook`, `archive` is set is checked
/// when resolving, so that the message can say what to do.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDelivery {
    pub email: Opt<RawEmail>,
    pub webhook: Opt<String>,
    pub archive: Opt<RawArchive>,
    /// Template of a webhook delivery.
    pub template: Opt<String>,
    /// Of a webhook delivery.
    pub include_assignments: Opt<bool>,
    /// Of any delivery: only assignments overdue at least this many days.
    pub min_days_overdue: Opt<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEmail {
    pub to: Strings,
    pub cc: Strings,
    pub bcc: Strings,
    pub subject: Opt<String>,
    pub template: Opt<String>,
    pub attach_csv: Opt<bool>,
    pub csv_excel: Opt<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArchive {
    pub dir: Opt<String>,
}

/// Serde errors reported before giving up; a file with more is hopeless.
const MAX_SHAPE_ERRORS: usize = 200;

/// Deserializes `root` into [`RawConfig`], reporting every serde error.
///
/// Serde stops at the first error, so each error is recorded and the entry
/// it concerns is pruned from the tree before trying again. Returns `None`
/// when an error cannot be located in the tree (it is still reported).
pub(crate) fn deserialize(
    mut root: Spanned<DeTable<'_>>,
    diag: &mut Diag<'_>,
) -> Option<RawConfig> {
    for _ in 0..MAX_SHAPE_ERRORS {
        let err = match RawConfig::deserialize(toml::de::Deserializer::from(root.clone())) {
            Ok(raw) => return Some(raw),
            Err(err) => err,
        };
        let Some(span) = err.span() else {
            diag.push(0..0, err.message().to_string());
            return None;
        };
        let Some(hit) = locate(root.get_ref(), &span) else {
            diag.push(span, err.message().to_string());
            return None;
        };
        let (message, suggestion) = describe(err.message(), &hit.path);
        diag.push(span, message);
        if let Some((table_start, key)) = remove(root.get_mut(), &hit.path, 0) {
            diag.pruned(table_start, key);
            // `shedule` already says "did you mean `schedule`?": do not
            // report `schedule` as missing as well.
            if let Some(suggestion) = suggestion {
                diag.pruned(table_start, suggestion.to_string());
            }
        }
    }
    diag.push(
        0..0,
        format!("more than {MAX_SHAPE_ERRORS} problems: stopped looking"),
    );
    None
}

/// One step of the path from the root to an entry.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

struct Hit {
    path: Vec<Seg>,
    exact: bool,
}

/// The entry an error span belongs to: the deepest whose key or value span
/// is exactly the error's, else the deepest whose value span contains it.
///
/// Containment alone is not enough: a `[table]`'s value span is only its
/// header, and an `[[array]]`'s only its first header.
fn locate(root: &DeTable<'_>, span: &Range<usize>) -> Option<Hit> {
    let mut best = None;
    let mut path = Vec::new();
    find_in_table(root, span, &mut path, &mut best);
    best
}

fn find_in_table(
    table: &DeTable<'_>,
    span: &Range<usize>,
    path: &mut Vec<Seg>,
    best: &mut Option<Hit>,
) {
    for (key, value) in table.iter() {
        path.push(Seg::Key(key.get_ref().to_string()));
        let exact = key.span() == *span || value.span() == *span;
        consider(exact, &value.span(), span, path, best);
        find_in_value(value.get_ref(), span, path, best);
        path.pop();
    }
}

fn find_in_value(
    value: &DeValue<'_>,
    span: &Range<usize>,
    path: &mut Vec<Seg>,
    best: &mut Option<Hit>,
) {
    match value {
        DeValue::Table(table) => find_in_table(table, span, path, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                consider(item.span() == *span, &item.span(), span, path, best);
                find_in_value(item.get_ref(), span, path, best);
                path.pop();
            }
        }
        _ => {}
    }
}

fn consider(
    exact: bool,
    value_span: &Range<usize>,
    span: &Range<usize>,
    path: &[Seg],
    best: &mut Option<Hit>,
) {
    let contains = value_span.start <= span.start && span.end <= value_span.end;
    if !(exact || contains) {
        return;
    }
    let better = best
        .as_ref()
        .is_none_or(|b| (exact, path.len()) > (b.exact, b.path.len()));
    if better {
        *best = Some(Hit {
            path: path.to_vec(),
            exact,
        });
    }
}

/// Removes the entry at `path`; returns `(start of its table's span, key)`
/// when it was a table entry. `table_start` is the span start of `table`.
fn remove(table: &mut DeTable<'_>, path: &[Seg], table_start: usize) -> Option<(usize, String)> {
    let (Seg::Key(key), rest) = path.split_first()? else {
        return None;
    };
    if rest.is_empty() {
        table.remove(key.as_str());
        return Some((table_start, key.clone()));
    }
    let (_, value) = table.iter_mut().find(|(k, _)| k.get_ref() == key)?;
    remove_in_value(value, rest)
}

fn remove_in_value(value: &mut Spanned<DeValue<'_>>, path: &[Seg]) -> Option<(usize, String)> {
    let start = value.span().start;
    match (value.get_mut(), path.first()?) {
        (DeValue::Table(table), Seg::Key(_)) => remove(table, path, start),
        (DeValue::Array(items), Seg::Index(i)) => {
            let i = *i;
            if path.len() == 1 {
                let old = std::mem::replace(items, DeArray::new());
                for (j, item) in old.into_iter().enumerate() {
                    if j != i {
                        items.push(item);
                    }
                }
                None
            } else {
                remove_in_value(items.get_mut(i)?, &path[1..])
            }
        }
        _ => None,
    }
}

/// Rewords a serde message for a user who edits TOML, not Rust; for an
/// unknown key, also returns the expected key it is most likely a typo of.
fn describe<'m>(message: &'m str, path: &[Seg]) -> (String, Option<&'m str>) {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let table_path = &path[..path.len().saturating_sub(1)];
        let expected: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let mut out = format!("unknown key `{key}` {}", table_name(table_path));
        if !expected.is_empty() {
            out.push_str(&format!(" (expected one of: {})", expected.join(", ")));
        }
        let suggestion = closest(key, &expected);
        if let Some(close) = suggestion {
            out.push_str(&format!("; did you mean `{close}`?"));
        }
        return (out, suggestion);
    }
    let mut text = message
        .replace("expected i64", "expected an integer")
        .replace("expected a sequence", "expected a list")
        .replace("expected a map", "expected a table");
    if let Some(i) = text.find("expected struct ") {
        text.replace_range(i.., "expected a table");
    }
    let key = dotted(path);
    if key.is_empty() {
        (text, None)
    } else {
        (format!("`{key}`: {text}"), None)
    }
}

/// `[samsara]`, `[[jobs]]`, `[webhooks.slack]`, `jobs.window`, or "at the top level".
fn table_name(path: &[Seg]) -> String {
    match path {
        [] => "at the top level".into(),
        [Seg::Key(a)] => format!("in [{a}]"),
        [Seg::Key(a), Seg::Index(_)] => format!("in [[{a}]]"),
        [Seg::Key(a), Seg::Key(b)] => format!("in [{a}.{b}]"),
        _ => format!("in `{}`", dotted(path)),
    }
}

/// The keys of `path` joined by dots, array positions left out.
fn dotted(path: &[Seg]) -> String {
    let keys: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    keys.join(".")
}

/// The expected key most like `key`, if one is close enough to be a typo.
pub(crate) fn closest<'a>(key: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(key, c), *c))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys `T` accepts, read from serde's own unknown-field message.
    fn keys_of<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
        let err = toml::from_str::<T>("zzz_probe = 1").unwrap_err();
        let message = err.message();
        let expected = message.split_once(", expected").expect(message).1;
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_key_the_parser_accepts_is_documented_in_the_readme() {
        let readme = include_str!("../../README.md");
        let documented: Vec<&str> = readme
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split_once('`'))
            .map(|(key, _)| key)
            .collect();
        let tables = [
            ("", keys_of::<RawConfig>()),
            ("server.", keys_of::<RawServer>()),
            ("mirror.", keys_of::<RawMirror>()),
            ("samsara.", keys_of::<RawSamsara>()),
            ("smtp.", keys_of::<RawSmtp>()),
            ("webhooks.NAME.", keys_of::<RawWebhook>()),
            ("teams.NAME.", keys_of::<RawTeam>()),
            ("teams_from_tags.", keys_of::<RawTeamsFromTags>()),
            ("jobs.", keys_of::<RawJob>()),
            ("jobs.window.", keys_of::<RawWindow>()),
            ("jobs.filters.", keys_of::<RawFilters>()),
            ("jobs.deliver.", keys_of::<RawDelivery>()),
            ("jobs.deliver.email.", keys_of::<RawEmail>()),
            ("jobs.deliver.archive.", keys_of::<RawArchive>()),
        ];
        let mut undocumented = Vec::new();
        for (prefix, keys) in tables {
            assert!(!keys.is_empty(), "no keys read for `{prefix}`");
            for key in keys {
                let path = format!("{prefix}{key}");
                let nested = format!("{path}.");
                // A table is documented through its keys.
                if !documented
                    .iter()
                    .any(|d| *d == path || d.starts_with(&nested))
                {
                    undocumented.push(path);
                }
            }
        }
        assert!(
            undocumented.is_empty(),
            "accepted but not in README.md: {undocumented:?}"
        );
    }

    #[test]
    fn typos_get_a_suggestion_and_strangers_do_not() {
        let keys = ["name", "schedule", "timezone", "window"];
        assert_eq!(closest("shedule", &keys), Some("schedule"));
        assert_eq!(closest("timzone", &keys), Some("timezone"));
        assert_eq!(closest("colour", &keys), None);
    }

    #[test]
    fn unknown_field_messages_name_the_table_and_the_choices() {
        let path = [
            Seg::Key("jobs".into()),
            Seg::Index(0),
            Seg::Key("shedule".into()),
        ];
        let (msg, suggestion) = describe(
            "unknown field `shedule`, expected one of `name`, `schedule`, `window`",
            &path,
        );
        assert_eq!(suggestion, Some("schedule"));
        assert_eq!(
            msg,
            "unknown key `shedule` in [[jobs]] (expected one of: name, schedule, window); did you mean `schedule`?"
        );
    }
}
