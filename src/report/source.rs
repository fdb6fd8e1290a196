//! A report's rows read again from the job's state instead of held: the
//! archive's files and an email's CSV are written from here when the report
//! keeps only its first rows (`Report::rows_count`). The same rows, in the
//! same order, as [`super::build_keeping`] would have kept: the state's
//! order, the report's team as of the fire, its narrowing, the window rule.
//! A streamed state ([`JobData::streamed`]) is read again from its source
//! by a thread of its own, the rows handed over through a bounded channel.

use std::borrow::Cow;

use rustc_hash::FxHashSet;

use super::model::Report;
use super::rows::Row;
use crate::data::JobData;
use crate::learner::LearnerId;
use crate::samsara::Assignment;

/// Where one report's rows come from: the job's fetched state and the
/// report's team, narrowing and window.
pub struct RowSource<'a> {
    data: &'a JobData,
    /// The team's members as of the fire; `None`: the whole job.
    members: Option<FxHashSet<&'a LearnerId>>,
    narrowing: Option<u32>,
    include_deleted: bool,
}

impl<'a> RowSource<'a> {
    /// The rows of `report`, one of the reports of `data` (built with
    /// `include_deleted` as the job's filters say).
    pub fn of(data: &'a JobData, report: &Report, include_deleted: bool) -> Self {
        let members = report.team.as_ref().map(|t| {
            data.teams
                .get(&t.name)
                .map(|r| r.members.iter().collect())
                .unwrap_or_default()
        });
        Self {
            data,
            members,
            narrowing: report.min_days_overdue,
            include_deleted,
        }
    }

    /// Whether `a` is one of the report's rows.
    fn wants(&self, a: &Assignment) -> bool {
        let window = &self.data.window;
        self.members.as_ref().is_none_or(|m| m.contains(&a.learner))
            && super::narrowed(a, window.end, self.narrowing)
            && super::included(a, window, self.include_deleted)
    }

    /// Hands `write` the rows, one at a time, built as they are read, and
    /// returns how many it took. Of a streamed state, a read that fails
    /// part-way fails here (after `write` saw only some rows), as does
    /// `write`'s own error.
    pub fn with_rows(
        &self,
        write: &mut dyn FnMut(&mut Rows<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<usize> {
        let data = self.data;
        let end = data.window.end;
        let mut seen = 0;
        let Some(source) = &data.streamed else {
            let mut rows = data
                .assignments
                .iter()
                .filter(|a| self.wants(a))
                .map(|a| Cow::Owned(Row::new(a, &data.names, end)))
                .inspect(|_| seen += 1);
            write(&mut rows)?;
            return Ok(seen);
        };
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Row>(ROWS_IN_FLIGHT);
            let reader = scope.spawn(move || {
                source.each(&mut |a| {
                    if self.wants(&a) {
                        tx.send(Row::new(&a, &data.names, end))
                            .map_err(|_| anyhow::anyhow!("the rows' writer stopped"))?;
                    }
                    Ok(())
                })
            });
            let written = {
                let mut rows = rx.into_iter().map(Cow::Owned).inspect(|_| seen += 1);
                write(&mut rows)
                // The receiver is dropped here: the reader stops at its next
                // row if the writer stopped early.
            };
            let read = reader
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("reading the rows again panicked")));
            match (written, read) {
                (Err(e), _) => Err(e),
                (Ok(()), Err(e)) => Err(e.context("reading the report's rows again")),
                (Ok(()), Ok(())) => Ok(seen),
            }
        })
    }
}

/// A report's rows, one at a time: held (borrowed) or built as read (owned).
pub type Rows<'r> = dyn Iterator<Item = Cow<'r, Row>> + 'r;

/// Rows read ahead of the writer, at most: a bound on the memory of a pass.
const ROWS_IN_FLIGHT: usize = 1_024;
