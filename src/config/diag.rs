//! Problems collected while loading, kept as byte spans until the end.

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;

use super::Problem;

/// A string value whose text came (partly) from the environment.
struct Substitution {
    span: Range<usize>,
    /// The substituted text, to be kept out of every message.
    value: String,
}

/// The problems found so far, and what is needed to word them safely.
pub(crate) struct Diag<'s> {
    source: &'s str,
    problems: Vec<(Range<usize>, String)>,
    substitutions: Vec<Substitution>,
    /// `(start of the table's span, key)` of entries pruned after a serde
    /// error: already reported, so not reported again as missing.
    pruned: HashSet<(usize, String)>,
    /// Spans of values already reported as broken (an unset variable):
    /// further checks of them would only repeat the problem.
    broken: Vec<Range<usize>>,
    /// Problems not kept because [`MAX_PROBLEMS`] were already recorded.
    dropped: usize,
}

/// The most problems one load records; the rest are counted.
const MAX_PROBLEMS: usize = 100;

impl<'s> Diag<'s> {
    pub(crate) fn new(source: &'s str) -> Self {
        Self {
            source,
            problems: Vec::new(),
            substitutions: Vec::new(),
            pruned: HashSet::new(),
            broken: Vec::new(),
            dropped: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// Records a problem at `span`. Should the message quote a value that
    /// came from the environment, that value is replaced by its `${VAR}`.
    pub(crate) fn push(&mut self, span: Range<usize>, message: impl Into<String>) {
        if self.broken.contains(&span) {
            return;
        }
        if self.problems.len() >= MAX_PROBLEMS {
            // A file that is not a config at all gives a problem per line:
            // the first ones say enough, and memory stays bounded.
            self.dropped += 1;
            return;
        }
        let mut message = message.into();
        for sub in &self.substitutions {
            let overlaps =
                sub.span.start < span.end.max(span.start + 1) && span.start < sub.span.end;
            if overlaps && !sub.value.is_empty() && message.contains(&sub.value) {
                // The written text (`"${VAR}"`) carries its own quotes.
                let written = self.source.get(sub.span.clone()).unwrap_or("the variable");
                let quoted = format!("\"{}\"", sub.value);
                message = message
                    .replace(&quoted, written)
                    .replace(&sub.value, written);
            }
        }
        self.problems.push((span, message));
    }

    /// Marks the value at `span` as reported: later problems there are dropped.
    pub(crate) fn broken(&mut self, span: Range<usize>) {
        self.broken.push(span);
    }

    /// Notes that the string at `span` holds `value` taken from the environment.
    pub(crate) fn substituted(&mut self, span: Range<usize>, value: String) {
        self.substitutions.push(Substitution { span, value });
    }

    /// True when the value at `span` came (partly) from the environment.
    pub(crate) fn is_substituted(&self, span: &Range<usize>) -> bool {
        self.substitutions.iter().any(|s| s.span == *span)
    }

    /// How a message should quote the string `value` found at `span`:
    /// `` `value` ``, or the text as written (`"${VAR}"`) when it came from
    /// the environment.
    pub(crate) fn quote(&self, span: &Range<usize>, value: &str) -> String {
        if self.is_substituted(span) {
            let written = self.source.get(span.clone()).unwrap_or("the value");
            format!("{written} (from the environment)")
        } else {
            // A value with a line break must not break its message in two.
            format!("`{}`", crate::names::one_line(value))
        }
    }

    /// The 1-based line of byte `offset`.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        line_col(self.source, offset).0
    }

    pub(crate) fn pruned(&mut self, table_start: usize, key: String) {
        self.pruned.insert((table_start, key));
    }

    pub(crate) fn was_pruned(&self, table_start: usize, key: &str) -> bool {
        self.pruned.contains(&(table_start, key.to_string()))
    }

    /// The problems with line and column, sorted by position, duplicates dropped.
    pub(crate) fn into_problems(self, path: &Path) -> Vec<Problem> {
        let lines = Lines::new(self.source);
        let mut problems: Vec<Problem> = self
            .problems
            .into_iter()
            .map(|(span, message)| {
                let (line, col) = lines.line_col(span.start);
                Problem {
                    path: path.to_path_buf(),
                    line,
                    col,
                    message,
                }
            })
            .collect();
        problems.sort_by_key(|p| (p.line, p.col));
        problems.dedup();
        if self.dropped > 0 {
            let (line, col) = problems.last().map_or((1, 1), |p| (p.line, p.col));
            problems.push(Problem {
                path: path.to_path_buf(),
                line,
                col,
                message: format!(
                    "…and {} more problems not shown: is this the right file?",
                    self.dropped
                ),
            });
        }
        problems
    }
}

/// Where each line starts, so that many positions cost one pass over the source.
struct Lines<'s> {
    source: &'s str,
    starts: Vec<usize>,
}

impl<'s> Lines<'s> {
    fn new(source: &'s str) -> Self {
        let starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { source, starts }
    }

    /// The same as [`line_col`], in logarithmic time.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.source.len());
        while !self.source.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&start| start <= offset);
        let line_start = self.starts[line - 1];
        let col = self.source[line_start..offset].chars().count() + 1;
        (line, col)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `source`.
pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters_not_bytes() {
        let source = "a = 1\nname = \"é\" x";
        let x = source.find('x').unwrap();
        assert_eq!(line_col(source, x), (2, 12));
        assert_eq!(line_col(source, 0), (1, 1));
        assert_eq!(line_col(source, source.len() + 10), (2, 13));
    }

    #[test]
    fn the_line_index_agrees_with_the_simple_scan_everywhere() {
        let source = "a = 1\nname = \"é\" x\n\n[t]\nb = \"ü\"";
        let lines = Lines::new(source);
        for offset in 0..source.len() + 3 {
            assert_eq!(lines.line_col(offset), line_col(source, offset), "{offset}");
        }
    }
}
