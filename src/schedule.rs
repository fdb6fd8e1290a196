//! When a job fires: every fire instant, computed in the job's own timezone.
//!
//! Pure: nothing here reads the clock; callers pass the instant to search from.
//!
//! # What a schedule means
//! - **5 fields** (`MIN HOUR DAY MONTH WEEKDAY`) are standard cron: they fire
//!   at second 0. **6 fields** put seconds first (`SEC MIN HOUR DAY MONTH WEEKDAY`).
//! - **Day of month OR day of week.** When both fields are restricted (neither
//!   is `*`), a day matches if *either* matches, as in Vixie cron:
//!   `0 9 13 * FRI` fires at 09:00 on every 13th *and* on every Friday.
//! - Times are **local times in the job's timezone** (`Job::timezone`), so
//!   `0 8 * * Mon` in America/Chicago is 08:00 on the wall clock all year:
//!   13:00 UTC in summer (CDT), 14:00 UTC in winter (CST).
//!
//! # Daylight-saving changes
//! Matching is done on local (naive) wall-clock times; each matching local
//! time is then turned into an instant:
//! - **A local time that does not exist** (spring forward, e.g. 02:30 in
//!   Europe/Berlin on 2026-03-29) fires **once, at the first valid instant
//!   after the gap** (03:00 CEST = 01:00 UTC). Several matching times in one
//!   gap (`0,30 2 * * *`) still fire only once there.
//! - **A local time that happens twice** (fall back, e.g. 02:30 in
//!   Europe/Berlin on 2026-10-25) fires **once, at its first (earlier)
//!   occurrence** (00:30 UTC, not also 01:30 UTC).
//! - **Hourly and more frequent schedules**, those whose hour field matches
//!   every hour (`0 * * * *`, `*/15 * * * *`, `30 * * * * *`), keep their
//!   rhythm in *real* time instead, as cronie does for wildcard jobs: in a
//!   repeated hour they fire at both occurrences (`0 * * * *` fires at 06:00
//!   and 07:00 UTC on 2026-11-01 in America/Chicago, both "01:00"), and
//!   minutes that do not exist are skipped (`30 * * * *` in Berlin on
//!   2026-03-29 fires at 00:30 and 01:30 UTC, no extra fire at 03:00 CEST).
//!   So an hourly job fires exactly once in every real hour, on the 23-hour
//!   and on the 25-hour day alike.
//!
//! # Why not the scheduler's or croner's own next-time search
//! tokio-cron-scheduler's cron jobs keep the UTC offset of the moment the job
//! was created and fire an hour off after a DST change (its issues #87 and
//! #107), so trainwatch never uses it to decide *when*: the daemon sleeps
//! until the instant [`next_fire`] returns.
//!
//! croner 3's timezone-aware search was checked (`tests/it/schedule_croner.rs`)
//! and is not trusted with DST: searching forward from the second pass of a
//! repeated hour it returns the *first* pass, an instant before the start;
//! hourly schedules lose the repeated hour; `0,30 2 * * *` skips the spring-
//! forward day entirely; and searching backward across a gap returns the
//! last second before it (00:59:59 UTC), which is no fire at all. So croner is
//! used only for what it does well, finding matching wall-clock times in a
//! zone without DST (naive local times read as UTC), and this module maps
//! those to instants with the rules above.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};

/// A job's schedule: the expression as written and its parsed form.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// As written in the config.
    pub expr: String,
    /// Parsed; 5-field expressions fire at second 0.
    pub cron: Cron,
}

/// Upper bound on matching local times examined in one search; far above
/// what any real schedule needs (a per-second schedule across a repeated
/// hour examines a few thousand).
const MAX_STEPS: usize = 1_000_000;

/// Parses a cron expression as the configuration does: 5 fields (seconds 0)
/// or 6 with seconds first; no year field; day of month OR day of week.
pub fn parse(expr: &str) -> Result<Schedule, CronError> {
    let cron = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expr.trim())?;
    Ok(Schedule {
        expr: expr.to_string(),
        cron,
    })
}

/// The first fire strictly after `after`, or `None` if the schedule never
/// fires again (e.g. `0 0 30 2 *`).
pub fn next_fire(schedule: &Schedule, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let hourly = is_hourly(&schedule.cron);
    let local = after.with_timezone(&tz);
    let naive = whole_seconds(local.naive_local());
    // In the first pass of a repeated hour, the second pass (whose wall-clock
    // times are earlier than now's) is still ahead: start the walk a whole
    // overlap earlier so an hourly schedule finds those fires too.
    let start = match tz.from_local_datetime(&naive) {
        LocalResult::Ambiguous(first, second) if same_offset(&local, &first) => {
            naive - offset_gap(&first, &second)
        }
        _ => naive,
    };
    let mut best: Option<DateTime<Utc>> = None;
    let mut cursor = start;
    let mut inclusive = true;
    for _ in 0..MAX_STEPS {
        let wall = step(&schedule.cron, cursor, inclusive, Direction::Forward)?;
        cursor = wall;
        inclusive = false;
        let fires = instants(wall, tz, hourly);
        for &t in &fires {
            if t > after && best.is_none_or(|b| t < b) {
                best = Some(t);
            }
        }
        // The earliest instant of each matching local time never decreases
        // as local time goes on: once it is past `after`, nothing later can
        // beat what was found.
        if fires.first().is_some_and(|&t| t > after) {
            return best;
        }
    }
    None
}

/// The next `n` fires after `after`, in order.
pub fn next_fires(
    schedule: &Schedule,
    tz: Tz,
    after: DateTime<Utc>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    let mut fires = Vec::with_capacity(n);
    let mut from = after;
    while fires.len() < n {
        let Some(t) = next_fire(schedule, tz, from) else {
            break;
        };
        fires.push(t);
        from = t;
    }
    fires
}

/// The most recent fire at or before `at_or_before`, or `None` if the
/// schedule never fired before it (within croner's search range).
pub fn latest_fire(
    schedule: &Schedule,
    tz: Tz,
    at_or_before: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let hourly = is_hourly(&schedule.cron);
    let local = at_or_before.with_timezone(&tz);
    let naive = whole_seconds(local.naive_local());
    // In the second pass of a repeated hour, the first pass of wall-clock
    // times later than now's is already behind: start a whole overlap later.
    let start = match tz.from_local_datetime(&naive) {
        LocalResult::Ambiguous(first, second)
            if same_offset(&local, &second) && !same_offset(&first, &second) =>
        {
            naive + offset_gap(&first, &second)
        }
        _ => naive,
    };
    let mut best: Option<DateTime<Utc>> = None;
    let mut cursor = start;
    let mut inclusive = true;
    for _ in 0..MAX_STEPS {
        let wall = step(&schedule.cron, cursor, inclusive, Direction::Backward)?;
        cursor = wall;
        inclusive = false;
        let fires = instants(wall, tz, hourly);
        for &t in &fires {
            if t <= at_or_before && best.is_none_or(|b| t > b) {
                best = Some(t);
            }
        }
        // Mirror of `next_fire`: the latest instant of each matching local
        // time never increases going back.
        if fires.last().is_some_and(|&t| t <= at_or_before) {
            return best;
        }
    }
    None
}

/// Whether the hour field matches every hour: such schedules keep their
/// rhythm in real time across DST changes (see the module docs).
fn is_hourly(cron: &Cron) -> bool {
    (0..24).all(|h| cron.pattern.hour_match(h).unwrap_or(false))
}

#[derive(Clone, Copy)]
enum Direction {
    Forward,
    Backward,
}

/// The next (or previous) local wall-clock time matching `cron`, searched in
/// a zone without DST: naive times are handed to croner as UTC.
fn step(
    cron: &Cron,
    from: NaiveDateTime,
    inclusive: bool,
    dir: Direction,
) -> Option<NaiveDateTime> {
    let from = from.and_utc();
    let found = match dir {
        Direction::Forward => cron.find_next_occurrence(&from, inclusive),
        Direction::Backward => cron.find_previous_occurrence(&from, inclusive),
    };
    found.ok().map(|t| t.naive_utc())
}

/// The instants at which the matching local time `wall` fires, ascending:
/// none, one, or (hourly schedules in a repeated hour) two.
fn instants(wall: NaiveDateTime, tz: Tz, hourly: bool) -> Vec<DateTime<Utc>> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => vec![t.to_utc()],
        LocalResult::Ambiguous(first, second) if hourly => vec![first.to_utc(), second.to_utc()],
        LocalResult::Ambiguous(first, _) => vec![first.to_utc()],
        LocalResult::None if hourly => Vec::new(),
        LocalResult::None => gap_end(wall, tz).into_iter().collect(),
    }
}

/// The first valid instant after the DST gap that contains `wall`: the
/// instant of the transition itself (02:30 in Berlin on 2026-03-29 → 01:00 UTC,
/// which reads 03:00 CEST).
fn gap_end(wall: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    // Valid local times on both sides; gaps are an hour or so, a whole day
    // at most (Pacific/Apia skipped 2011-12-30).
    let before = (1..=48).find_map(|h| {
        tz.from_local_datetime(&(wall - Duration::hours(h)))
            .latest()
    })?;
    let after = (1..=48).find_map(|h| {
        tz.from_local_datetime(&(wall + Duration::hours(h)))
            .earliest()
    })?;
    let offset_before = before.offset().fix();
    // Invariant: `lo` has the offset from before the gap, `hi` does not.
    let (mut lo, mut hi) = (before.timestamp(), after.timestamp());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let t = DateTime::from_timestamp(mid, 0)?;
        if tz.offset_from_utc_datetime(&t.naive_utc()).fix() == offset_before {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

fn same_offset(a: &DateTime<Tz>, b: &DateTime<Tz>) -> bool {
    a.offset().fix() == b.offset().fix()
}

/// How much later the first occurrence's offset is than the second's: the
/// length of the repeated stretch of wall-clock time.
fn offset_gap(first: &DateTime<Tz>, second: &DateTime<Tz>) -> Duration {
    Duration::seconds(i64::from(
        first.offset().fix().local_minus_utc() - second.offset().fix().local_minus_utc(),
    ))
}

fn whole_seconds(t: NaiveDateTime) -> NaiveDateTime {
    t.with_nanosecond(0).unwrap_or(t)
}
