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
/// `assignments` other than as a field of something else (`totals.assignments`
/// is a count). Errs on the side of yes: the word in prose counts too, and a
/// yes only costs memory, a wrong no would hide rows from a template.
pub(super) fn reads_rows(source: &str) -> bool {
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
