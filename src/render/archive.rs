//! The archive's `report.html`, written in pieces: the built-in template's
//! head and summary through Tera with the report's context (no rows), its
//! row table through Tera a chunk of rows at a time, and its end. A
//! million rows as one Tera context cost gigabytes; a chunk costs little.
//! The output is byte for byte what rendering the whole template gives.

use std::io::Write;

use serde::Serialize;

use tera::{Context, Tera};

use super::builtin::{ARCHIVE_TEMPLATE, BUILTIN};
use super::{RenderError, Renderer, render, report_context, with_details};
use crate::report::Report;

/// Rows rendered per Tera call.
const CHUNK: usize = 1000;

const HEAD: &str = "__archive.head.html";
const ROWS: &str = "__archive.rows.html";
const TAIL: &str = "__archive.tail.html";

/// The loop over the rows, as the built-in template writes it.
const LOOP_START: &str = "{%- for a in assignments %}";
const LOOP_END: &str = "{%- endfor %}";

/// The built-in archive template cut into head, row loop and tail (the
/// head counting the rows from `assignments_count`), when `source` is it.
fn pieces(source: &str) -> Option<[String; 3]> {
    let builtin = BUILTIN.iter().find(|(f, _)| *f == ARCHIVE_TEMPLATE)?.1;
    if source != builtin {
        return None;
    }
    let start = source.find(LOOP_START)?;
    let end = start + source[start..].find(LOOP_END)? + LOOP_END.len();
    // `{%-` trims the whitespace before the loop: so does the cut.
    let head = source[..start]
        .trim_end()
        .replace("{{ assignments | length }}", "{{ assignments_count }}");
    Some([
        head,
        source[start..end].to_string(),
        source[end..].to_string(),
    ])
}

/// Adds the pieces of the archive template to the HTML instance when it
/// is the built-in one; whether it did.
pub(super) fn add_pieces(html: &mut Tera, source: &str) -> Result<bool, RenderError> {
    let Some([head, rows, tail]) = pieces(source) else {
        return Ok(false);
    };
    html.add_raw_templates([(HEAD, head), (ROWS, rows), (TAIL, tail)])
        .map_err(|e| RenderError::Context(Box::new(e)))?;
    Ok(true)
}

impl Renderer {
    /// Writes the archive's `report.html` of `report` to `out`: in pieces
    /// for the built-in template, whole (the rows in one context) for a
    /// custom `audit.report.html`.
    pub fn write_archive_html(&self, report: &Report, out: &mut dyn Write) -> anyhow::Result<()> {
        self.write_archive_html_of(report, report.assignments.iter(), out)
    }

    /// [`Renderer::write_archive_html`] with the rows from `rows` (every
    /// row of `report`, held or read again from the job's state), a chunk
    /// of them in memory at a time. A custom template reads the report's
    /// own rows, which the report then holds whole ([`Renderer::rows_held`]).
    pub fn write_archive_html_of<R: Serialize>(
        &self,
        report: &Report,
        rows: impl IntoIterator<Item = R>,
        out: &mut dyn Write,
    ) -> anyhow::Result<()> {
        if !self.archive_in_pieces {
            out.write_all(self.archive_html(report)?.as_bytes())?;
            return Ok(());
        }
        let details = self.detail_readers.contains(ARCHIVE_TEMPLATE);
        let mut head = with_details(details, || report_context(report))?;
        head.insert("assignments_count", &report.row_count());
        out.write_all(render(&self.html, "audit", HEAD, &head)?.as_bytes())?;
        let mut rows = rows.into_iter();
        let mut chunk: Vec<R> = Vec::with_capacity(CHUNK);
        loop {
            chunk.clear();
            chunk.extend(rows.by_ref().take(CHUNK));
            if chunk.is_empty() {
                break;
            }
            let mut ctx = Context::new();
            // The date filters read the job's timezone from the context.
            ctx.insert("job", &report.job);
            ctx.insert("assignments", &chunk);
            out.write_all(render(&self.html, "audit", ROWS, &ctx)?.as_bytes())?;
        }
        out.write_all(render(&self.html, "audit", TAIL, &head)?.as_bytes())?;
        Ok(())
    }
}
