//! Built-in templates that show only the first rows: the audit email lists
//! `assignments[:100]` and says how many more there are. Their context
//! carries those rows and the count (`assignments_count`), not every row:
//! an organisation's million rows as Tera values cost gigabytes, and a
//! person reads a hundred. The output is the same; a custom template gets
//! every row.

use super::builtin::BUILTIN;

/// The number of rows, in the context of a template that reads a slice.
pub(super) const COUNT: &str = "assignments_count";

/// The bodies of `source`'s `{{ … }}` and `{% … %}` tags.
pub(super) fn tags(source: &str) -> impl Iterator<Item = &str> {
    source.match_indices(['{']).filter_map(move |(at, _)| {
        let rest = &source[at + 1..];
        let close = match rest.chars().next()? {
            '{' => "}}",
            '%' => "%}",
            _ => return None,
        };
        rest[1..].split(close).next()
    })
}

/// For the built-in `file` whose `source` is unchanged and reads the rows
/// only as `assignments[:N]`, `if assignments` and `assignments | length`:
/// the source reading the count from [`COUNT`], and the largest `N`.
pub(super) fn limited(file: &str, source: &str) -> Option<(String, usize)> {
    let builtin = BUILTIN.iter().find(|(f, _)| *f == file)?.1;
    if source != builtin {
        return None;
    }
    let rewritten = source.replace("assignments | length", COUNT);
    let mut limit = None;
    for tag in tags(&rewritten) {
        for (at, word) in tag.match_indices("assignments") {
            let before = &tag[..at];
            let after = &tag[at + word.len()..];
            let joined = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
            // Another name that ends or starts with the word (`totals.assignments`).
            if before.chars().last().is_some_and(joined)
                || after
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            let slice = after
                .strip_prefix("[:")
                .and_then(|a| a.split_once(']'))
                .and_then(|(n, _)| n.trim().parse::<usize>().ok());
            match slice {
                Some(n) => limit = Some(limit.unwrap_or(0).max(n)),
                None if before.trim_start_matches(['-', '+']).trim() == "if" => {}
                None => return None,
            }
        }
    }
    limit.map(|n| (rewritten, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_email_reads_a_hundred_rows_and_the_count() {
        for file in ["audit.html", "audit.txt"] {
            let source = BUILTIN.iter().find(|(f, _)| *f == file).unwrap().1;
            let (rewritten, n) = limited(file, source).expect(file);
            assert_eq!(n, 100, "{file}");
            assert!(!rewritten.contains("assignments | length"), "{file}");
        }
        // The archive page reads every row; a changed source is not the built-in one.
        let archive = BUILTIN
            .iter()
            .find(|(f, _)| *f == "audit.report.html")
            .unwrap()
            .1;
        assert!(limited("audit.report.html", archive).is_none());
        assert!(limited("audit.txt", "{{ assignments[:3] }}").is_none());
    }
}
