//! A report's rows read again from the job's state instead of held: the
//! archive's files and an email's CSV are written from here when the report
//! keeps only its first rows (`Report::rows_count`). The same rows, in the
//! same order, as [`super::build_keeping`] would have kept: the state's
//! order, the report's team as of the fire, its narrowing, the window rule.

use std::borrow::Cow;

use rustc_hash::FxHashSet;

use super::model::Report;
use super::rows::Row;
use crate::data::JobData;
use crate::learner::LearnerId;

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

    /// The rows, one at a time, built as they are read.
    pub fn rows(&self) -> impl Iterator<Item = Cow<'a, Row>> + '_ {
        let data = self.data;
        let end = data.window.end;
        data.assignments
            .iter()
            .filter(move |a| {
                self.members.as_ref().is_none_or(|m| m.contains(&a.learner))
                    && super::narrowed(a, end, self.narrowing)
                    && super::included(a, &data.window, self.include_deleted)
            })
            .map(move |a| Cow::Owned(Row::new(a, &data.names, end)))
    }
}
