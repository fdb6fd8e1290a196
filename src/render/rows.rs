//! Which templates read the report's rows (`assignments`): only those get
//! them in their context, since a million rows as Tera values cost gigabytes.

use std::collections::{BTreeMap, BTreeSet};

/// Whether `source` may read the rows, itself or through the templates
/// it names (`visiting` guards against include cycles).
pub(super) fn reads_rows_through<'a>(
    source: &'a str,
    sources: &BTreeMap<&'a str, &'a str>,
    visiting: &mut BTreeSet<&'a str>,
) -> bool {
    reads_through(source, sources, visiting, reads_rows)
}

/// Whether `source` may read what `reads` looks for, itself or through the
/// templates it names (`visiting` guards against include cycles).
pub(super) fn reads_through<'a>(
    source: &'a str,
    sources: &BTreeMap<&'a str, &'a str>,
    visiting: &mut BTreeSet<&'a str>,
    reads: fn(&str) -> bool,
) -> bool {
    reads(source)
        || template_refs(source).any(|r| match r {
            // A name that is not a literal: it could be any template.
            None => true,
            Some(file) => match sources.get_key_value(file) {
                Some((&name, &inner)) => {
                    visiting.insert(name) && reads_through(inner, sources, visiting, reads)
                }
                None => false,
            },
        })
}

/// The templates a source includes, extends or imports: `Some(name)` for a
/// quoted name, `None` for a tag whose target is not a literal.
pub(super) fn template_refs(source: &str) -> impl Iterator<Item = Option<&str>> {
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

/// Whether a template source may read one of the report's
/// [`crate::report::DETAIL_FIELDS`]: it names one inside a tag other than
/// as a field of something else (`totals.overdue` is a count). Prose is
/// not read: `overdue` is a common word in a template's text.
pub(super) fn reads_details(source: &str) -> bool {
    if source.contains("__tera_context") {
        return true;
    }
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let tags = source.split("{{").skip(1).chain(source.split("{%").skip(1));
    tags.map(|t| t.split(['}', '%']).next().unwrap_or(""))
        .any(|tag| {
            crate::report::DETAIL_FIELDS.iter().any(|word| {
                tag.match_indices(word).any(|(at, _)| {
                    let before = tag[..at].chars().next_back();
                    let after = tag[at + word.len()..].chars().next();
                    !before.is_some_and(|c| ident(c) || c == '.') && !after.is_some_and(ident)
                })
            })
        })
}

/// Whether a template source may read the report's rows: it names
/// `assignments` inside a `{{ }}` or `{% %}` tag other than as a field of
/// something else (`totals.assignments` is a count). Prose is not read (the
/// digest says "assignments" under its count); inside tags it errs on the
/// side of yes (a string literal counts too): a yes only costs memory, a
/// wrong no would hide rows from a template.
pub(super) fn reads_rows(source: &str) -> bool {
    // Tera's whole-context variable shows every field without naming any.
    if source.contains("__tera_context") {
        return true;
    }
    let word = "assignments";
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    super::limited::tags(source).any(|tag| {
        tag.match_indices(word).any(|(at, _)| {
            let before = tag[..at].chars().next_back();
            let after = tag[at + word.len()..].chars().next();
            !before.is_some_and(|c| ident(c) || c == '.') && !after.is_some_and(ident)
        })
    })
}

impl super::Renderer {
    /// What of a report the deliveries of `job` read (`deliver`; the
    /// `on_failure` emails have no report): the rows and the detail lists
    /// are built only when one of them may read them. Errs on the side of
    /// yes, as the template checks above do: a yes costs memory, a wrong no
    /// would leave a list empty that a delivery shows.
    pub fn keeps(&self, config: &crate::config::Config, job: &crate::config::Job) -> Keep {
        use crate::config::Delivery;
        let file_reads = |file: &str| Keep {
            rows: self.row_readers.contains(file),
            details: self.detail_readers.contains(file),
        };
        let inline_reads = |source: &str| Keep {
            rows: self.inline_reads_rows(source),
            details: self.inline_reads_details(source),
        };
        let mut keep = Keep {
            rows: false,
            details: false,
        };
        let mut add = |k: Keep| {
            keep.rows |= k.rows;
            keep.details |= k.details;
        };
        for delivery in &job.deliver {
            match delivery {
                Delivery::Email(e) => {
                    for ext in [".html", ".txt", ".subject"] {
                        add(file_reads(&format!("{}{ext}", e.template)));
                    }
                    let inline = e.subject.iter().chain(&e.to).chain(&e.cc).chain(&e.bcc);
                    for source in inline {
                        add(inline_reads(source));
                    }
                    add(Keep {
                        rows: e.attach_csv,
                        details: false,
                    });
                }
                Delivery::Webhook(w) => match config.webhooks.get(&w.webhook).map(|h| h.kind) {
                    // The body is the report data itself, details and all
                    // (rows only when asked for), templated or not.
                    Some(kind) if kind.data_without_template() => add(Keep {
                        rows: w.include_assignments,
                        details: true,
                    }),
                    Some(kind) => add(file_reads(&format!(
                        "{}{}",
                        w.template,
                        kind.template_suffix()
                    ))),
                    None => add(Keep::ALL),
                },
                // The archive's files are the rows; its page may read details.
                Delivery::Archive(_) => add(Keep {
                    rows: true,
                    details: self
                        .detail_readers
                        .contains(super::builtin::ARCHIVE_TEMPLATE),
                }),
            }
        }
        keep
    }
}

impl super::Renderer {
    /// How many of a report's rows the deliveries of `job` read in memory:
    /// `None` every row (a template that reads `assignments`, a `json` body
    /// with `include_assignments`, a custom archive page), `Some(n)` only
    /// the first `n` (the built-in audit email lists 100 and counts the
    /// rest; `Some(0)` none). The archive's files and an email's CSV do not
    /// count: they are written row by row from the job's state
    /// ([`crate::report::RowSource`]). Errs on the side of every row, as
    /// [`super::Renderer::keeps`] does.
    pub fn rows_held(
        &self,
        config: &crate::config::Config,
        job: &crate::config::Job,
    ) -> Option<usize> {
        use crate::config::Delivery;
        let mut most = 0;
        // `None` when `file` reads every row it is given.
        let file_holds = |file: &str| match self.row_limits.get(file) {
            Some(&n) => Some(n),
            None if self.row_readers.contains(file) => None,
            None => Some(0),
        };
        for delivery in &job.deliver {
            let n = match delivery {
                Delivery::Email(e) => {
                    let inline = e.subject.iter().chain(&e.to).chain(&e.cc).chain(&e.bcc);
                    let mut n = Some(0);
                    for source in inline {
                        if self.inline_reads_rows(source) {
                            n = None;
                        }
                    }
                    for ext in [".html", ".txt", ".subject"] {
                        n = n
                            .zip(file_holds(&format!("{}{ext}", e.template)))
                            .map(|(a, b)| a.max(b));
                    }
                    n
                }
                Delivery::Webhook(w) => match config.webhooks.get(&w.webhook).map(|h| h.kind) {
                    Some(kind) if kind.data_without_template() => {
                        (!w.include_assignments).then_some(0)
                    }
                    Some(kind) => file_holds(&format!("{}{}", w.template, kind.template_suffix())),
                    None => None,
                },
                Delivery::Archive(_) => self.archive_in_pieces.then_some(0),
            };
            most = most.max(n?);
        }
        Some(most)
    }
}

use crate::report::Keep;

#[cfg(test)]
mod tests {
    use super::super::Renderer;
    use crate::report::Keep;

    fn keeps(deliver: &str) -> Keep {
        let source = format!(
            r#"
timezone = "America/Chicago"
[samsara]
base_url = "http://127.0.0.1:9"
token = "t"
[smtp]
host = "127.0.0.1"
port = 2525
security = "none"
from = "Training <training@example.com>"
[webhooks.j]
kind = "json"
url = "http://127.0.0.1:9/hook"
[webhooks.s]
kind = "slack"
url = "http://127.0.0.1:9/slack"
[[jobs]]
name = "job"
schedule = "0 6 1 * *"
window = {{ last = "7d" }}
deliver = [{deliver}]
"#
        );
        let config = crate::config::load_str(&source, "t.toml".as_ref(), &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        let renderer = Renderer::new(None).unwrap();
        renderer.keeps(&config, config.job("job").unwrap())
    }

    const fn keep(rows: bool, details: bool) -> Keep {
        Keep { rows, details }
    }

    #[test]
    fn the_word_assignments_in_prose_does_not_read_the_rows() {
        use super::reads_rows;
        // The digest's tile says "assignments" under its count.
        let tile = "<div>{{ totals.assignments }}</div><div>assignments</div>";
        assert!(!reads_rows(tile));
        assert!(reads_rows("<p>rows</p>{{ assignments | length }}"));
        assert!(reads_rows(
            "{%- for a in assignments %}{{ a.status }}{% endfor %}"
        ));
        let r = Renderer::new(None).unwrap();
        for file in ["digest.html", "digest.txt", "digest.slack.json"] {
            assert!(!r.row_readers.contains(file), "{file}");
        }
        assert!(r.row_readers.contains("audit.html"));
        let digest = r#"{ email = { to = ["a@example.com"], template = "digest" } }"#;
        assert!(!keeps(digest).rows, "the digest email holds no row");
    }

    #[test]
    fn a_report_keeps_the_lists_its_deliveries_read_and_no_other() {
        let mail = |t: &str, extra: &str| {
            format!(r#"{{ email = {{ to = ["a@example.com"], template = "{t}"{extra} }} }}"#)
        };
        // The audit email lists rows (its first ones) and counts the rest.
        assert_eq!(keeps(&mail("audit", "")), keep(true, false));
        // The overdue email lists the details and no row.
        assert_eq!(keeps(&mail("overdue", "")), keep(false, true));
        // A CSV attachment is the rows; a subject may ask for a list.
        assert_eq!(
            keeps(&mail("overdue", ", attach_csv = true")),
            keep(true, true)
        );
        assert_eq!(
            keeps(&mail(
                "audit",
                r#", subject = "{{ outstanding | length }} open""#
            )),
            keep(true, true)
        );
        // The digest shows `changes`.
        assert!(keeps(&mail("digest", "")).details);
        // An archive is the rows; a json body is the whole report data.
        assert_eq!(
            keeps(r#"{ archive = { dir = "/tmp/a" } }"#),
            keep(true, false)
        );
        assert_eq!(keeps(r#"{ webhook = "j" }"#), keep(false, true));
        assert_eq!(
            keeps(r#"{ webhook = "j", include_assignments = true }"#),
            keep(true, true)
        );
        // Several deliveries: what any of them reads.
        assert_eq!(
            keeps(&format!(
                r#"{{ archive = {{ dir = "/tmp/a" }} }}, {}"#,
                mail("overdue", "")
            )),
            keep(true, true)
        );
    }
}
