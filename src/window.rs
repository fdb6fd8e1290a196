//! Report windows: a pure function of (fire time, timezone, spec) → `[start, end)`.
//!
//! Nothing here reads the clock; the caller passes the fire time. Calendar
//! periods are computed on local dates in the job's timezone and only then
//! turned into instants, so a "previous day" that contains a DST change is
//! 23 or 25 hours long, as it should be.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// A calendar period for `previous` windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Period {
    /// Parses `day`, `week`, `month`, `quarter` or `year`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "day" => Self::Day,
            "week" => Self::Week,
            "month" => Self::Month,
            "quarter" => Self::Quarter,
            "year" => Self::Year,
            _ => return None,
        })
    }
}

/// How a job's window is derived from its fire time (product.md, "Windows").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowSpec {
    /// `{ last = "7d" }`: the duration ending at the fire time.
    Last(Duration),
    /// `{ previous = "week" }`: the last complete calendar period.
    Previous(Period),
    /// `{ since_last_run = true, max = "30d" }`.
    SinceLastRun { max: Duration },
    /// `{ start = …, end = … }`: fixed instants.
    Fixed {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// `{ current = true }`: the state of every assignment as of the fire
    /// instant (read from the mirror). Its window is the instant itself,
    /// `start == end == fire`: see [`Window::is_instant`].
    Current,
}

impl WindowSpec {
    /// The kind's name in the template context: `last`, `previous`,
    /// `since_last_run`, `fixed` or `current`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Last(_) => "last",
            Self::Previous(_) => "previous",
            Self::SinceLastRun { .. } => "since_last_run",
            Self::Fixed { .. } => "fixed",
            Self::Current => "current",
        }
    }
}

/// A half-open interval `[start, end)` of instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    /// True when `t` lies in `[start, end)`.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }

    /// True for a `current` window: the state as of `end`, not a span.
    pub fn is_instant(&self) -> bool {
        self.start == self.end
    }
}

impl Window {
    /// `[start, end)` in RFC 3339 with the offsets of `tz`, for people.
    pub fn in_zone(&self, tz: Tz) -> String {
        let local = |t: DateTime<Utc>| {
            t.with_timezone(&tz)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        if self.is_instant() {
            return format!("as of {}", local(self.end));
        }
        format!("[{}, {})", local(self.start), local(self.end))
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_instant() {
            return write!(f, "as of {}", self.end.to_rfc3339());
        }
        write!(
            f,
            "[{}, {})",
            self.start.to_rfc3339(),
            self.end.to_rfc3339()
        )
    }
}

/// Why a window could not be computed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WindowError {
    #[error("the window duration {0:?} is too long to compute")]
    TooLong(Duration),
    /// The window reaches outside the dates the calendar can hold.
    #[error("the window of a fire at {fire} reaches beyond the dates trainwatch can compute")]
    OutOfRange { fire: DateTime<Utc> },
    #[error("the window is empty: start {start} is not before end {end}")]
    Empty {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

/// Computes the window for a fire at `fire` in `tz`.
///
/// `last_success_end` is the end of the last successful run's window; it is
/// only read by `since_last_run` and may be `None` on a first run (or where
/// no history is kept, as in `export`).
pub fn compute(
    spec: &WindowSpec,
    fire: DateTime<Utc>,
    tz: Tz,
    last_success_end: Option<DateTime<Utc>>,
) -> Result<Window, WindowError> {
    // Every step is checked: a fire time near the ends of the calendar, or a
    // huge duration, is an error to report, never a panic.
    let out_of_range = || WindowError::OutOfRange { fire };
    let window = match spec {
        WindowSpec::Last(d) => Window {
            start: fire
                .checked_sub_signed(to_delta(*d)?)
                .ok_or_else(out_of_range)?,
            end: fire,
        },
        WindowSpec::Previous(period) => previous(*period, fire, tz).ok_or_else(out_of_range)?,
        WindowSpec::SinceLastRun { max } => {
            let earliest = fire
                .checked_sub_signed(to_delta(*max)?)
                .ok_or_else(out_of_range)?;
            let start = last_success_end.map_or(earliest, |end| end.max(earliest));
            Window { start, end: fire }
        }
        WindowSpec::Fixed { start, end } => Window {
            start: *start,
            end: *end,
        },
        WindowSpec::Current => {
            return Ok(Window {
                start: fire,
                end: fire,
            });
        }
    };
    if window.start >= window.end {
        return Err(WindowError::Empty {
            start: window.start,
            end: window.end,
        });
    }
    Ok(window)
}

fn to_delta(d: Duration) -> Result<chrono::TimeDelta, WindowError> {
    chrono::TimeDelta::from_std(d).map_err(|_| WindowError::TooLong(d))
}

/// The last complete `period` before `fire`, in local dates of `tz`;
/// `None` at the ends of the calendar.
fn previous(period: Period, fire: DateTime<Utc>, tz: Tz) -> Option<Window> {
    // `date_naive` panics where the offset pushes the local time off the
    // calendar; add the offset checked instead.
    let local = fire.with_timezone(&tz);
    let today = fire
        .naive_utc()
        .checked_add_offset(local.offset().fix())?
        .date();
    let current_start = period_start(period, today)?;
    let previous_start = match period {
        Period::Day => current_start.checked_sub_days(Days::new(1)),
        Period::Week => current_start.checked_sub_days(Days::new(7)),
        Period::Month => current_start.checked_sub_months(Months::new(1)),
        Period::Quarter => current_start.checked_sub_months(Months::new(3)),
        Period::Year => current_start.checked_sub_months(Months::new(12)),
    }?;
    Some(Window {
        start: local_midnight(previous_start, tz),
        end: local_midnight(current_start, tz),
    })
}

/// The first day of the period that contains `date`.
fn period_start(period: Period, date: NaiveDate) -> Option<NaiveDate> {
    let first_of = |month: u32| NaiveDate::from_ymd_opt(date.year(), month, 1);
    match period {
        Period::Day => Some(date),
        Period::Week => {
            date.checked_sub_days(Days::new(u64::from(date.weekday().num_days_from_monday())))
        }
        Period::Month => first_of(date.month()),
        Period::Quarter => first_of((date.month0() / 3) * 3 + 1),
        Period::Year => first_of(1),
    }
}

/// The instant a local date begins in `tz`.
///
/// Where midnight does not exist (a DST gap at 00:00, as in some South
/// American zones) the day begins at the first local time that does; where it
/// exists twice, at the earlier one.
pub fn local_midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight: NaiveDateTime = date.and_time(chrono::NaiveTime::MIN);
    let mut local = midnight;
    // DST gaps are at most a few hours; step by minutes until a time exists.
    for _ in 0..(24 * 60) {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        match local.checked_add_signed(chrono::TimeDelta::minutes(1)) {
            Some(next) => local = next,
            None => break,
        }
    }
    // No real zone has a 24-hour gap; fall back to reading midnight as UTC.
    Utc.from_utc_datetime(&midnight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::Chicago;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn last_ends_at_the_fire_time() {
        let fire = utc("2026-03-09T13:00:00Z");
        let w = compute(
            &WindowSpec::Last(Duration::from_secs(7 * 86400)),
            fire,
            Chicago,
            None,
        )
        .unwrap();
        assert_eq!(w.start, utc("2026-03-02T13:00:00Z"));
        assert_eq!(w.end, fire);
    }

    #[test]
    fn previous_day_across_spring_forward_is_23_hours() {
        // 2026-03-08 is the spring-forward day in Chicago.
        let w = compute(
            &WindowSpec::Previous(Period::Day),
            utc("2026-03-09T14:00:00Z"),
            Chicago,
            None,
        )
        .unwrap();
        assert_eq!(w.start, utc("2026-03-08T06:00:00Z"));
        assert_eq!(w.end, utc("2026-03-09T05:00:00Z"));
    }

    #[test]
    fn a_window_beyond_the_calendar_is_an_error_not_a_panic() {
        let fire = utc("2026-03-09T13:00:00Z");
        let century = Duration::from_secs(crate::defaults::MAX_DURATION_SECONDS);
        assert!(compute(&WindowSpec::Last(century), fire, Chicago, None).is_ok());
        let err = compute(
            &WindowSpec::Last(Duration::from_secs(99_999_999 * 7 * 86_400)),
            fire,
            Chicago,
            None,
        )
        .unwrap_err();
        assert!(matches!(err, WindowError::OutOfRange { .. }), "{err}");
        for period in [Period::Day, Period::Week, Period::Month, Period::Year] {
            let err = compute(
                &WindowSpec::Previous(period),
                DateTime::<Utc>::MIN_UTC,
                Chicago,
                None,
            )
            .unwrap_err();
            assert!(matches!(err, WindowError::OutOfRange { .. }), "{err}");
        }
    }

    #[test]
    fn fixed_windows_must_not_be_empty() {
        let t = utc("2026-01-01T00:00:00Z");
        let err = compute(&WindowSpec::Fixed { start: t, end: t }, t, Chicago, None).unwrap_err();
        assert!(matches!(err, WindowError::Empty { .. }));
    }

    #[test]
    fn since_last_run_starts_at_the_previous_end_but_never_before_max() {
        let fire = utc("2026-05-10T00:00:00Z");
        let spec = WindowSpec::SinceLastRun {
            max: Duration::from_secs(30 * 86400),
        };
        let w = compute(&spec, fire, Chicago, Some(utc("2026-05-09T00:00:00Z"))).unwrap();
        assert_eq!(w.start, utc("2026-05-09T00:00:00Z"));
        let w = compute(&spec, fire, Chicago, None).unwrap();
        assert_eq!(w.start, utc("2026-04-10T00:00:00Z"));
        let w = compute(&spec, fire, Chicago, Some(utc("2025-01-01T00:00:00Z"))).unwrap();
        assert_eq!(w.start, utc("2026-04-10T00:00:00Z"));
    }
}
