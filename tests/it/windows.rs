//! Windows across DST changes, month ends, quarters and a leap day.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::America::Chicago;
use chrono_tz::Europe::Berlin;
use chrono_tz::Tz;
use trainwatch::window::{Period, Window, WindowSpec, compute};

fn at(tz: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    tz.with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

fn previous(period: Period, fire: DateTime<Utc>, tz: Tz) -> Window {
    compute(&WindowSpec::Previous(period), fire, tz, None).unwrap()
}

fn hours(w: Window) -> i64 {
    (w.end - w.start).num_hours()
}

#[test]
fn previous_day_in_chicago_is_23_hours_on_spring_forward_and_25_on_fall_back() {
    // 2026-03-08 02:00 → 03:00; 2026-11-01 02:00 → 01:00.
    let spring = previous(Period::Day, at(Chicago, 2026, 3, 9, 9, 0), Chicago);
    assert_eq!(
        (spring.start, spring.end),
        (at(Chicago, 2026, 3, 8, 0, 0), at(Chicago, 2026, 3, 9, 0, 0))
    );
    assert_eq!(hours(spring), 23);
    let fall = previous(Period::Day, at(Chicago, 2026, 11, 2, 9, 0), Chicago);
    assert_eq!(
        (fall.start, fall.end),
        (
            at(Chicago, 2026, 11, 1, 0, 0),
            at(Chicago, 2026, 11, 2, 0, 0)
        )
    );
    assert_eq!(hours(fall), 25);
    // The day after is 24 hours again, with the new offset.
    let after = previous(Period::Day, at(Chicago, 2026, 11, 3, 9, 0), Chicago);
    assert_eq!(
        after.start,
        DateTime::parse_from_rfc3339("2026-11-02T06:00:00Z").unwrap()
    );
    assert_eq!(hours(after), 24);
}

#[test]
fn previous_day_in_berlin_across_both_changes() {
    // 2026-03-29 02:00 → 03:00; 2026-10-25 03:00 → 02:00.
    let spring = previous(Period::Day, at(Berlin, 2026, 3, 30, 8, 0), Berlin);
    assert_eq!(
        spring.start,
        DateTime::parse_from_rfc3339("2026-03-28T23:00:00Z").unwrap()
    );
    assert_eq!(
        spring.end,
        DateTime::parse_from_rfc3339("2026-03-29T22:00:00Z").unwrap()
    );
    assert_eq!(hours(spring), 23);
    let fall = previous(Period::Day, at(Berlin, 2026, 10, 26, 8, 0), Berlin);
    assert_eq!(
        fall.start,
        DateTime::parse_from_rfc3339("2026-10-24T22:00:00Z").unwrap()
    );
    assert_eq!(
        fall.end,
        DateTime::parse_from_rfc3339("2026-10-25T23:00:00Z").unwrap()
    );
    assert_eq!(hours(fall), 25);
}

#[test]
fn previous_week_starts_monday_and_spans_a_dst_change() {
    // Fired Monday 2026-03-09 08:00 Chicago: the week Mon 03-02 .. Mon 03-09.
    let w = previous(Period::Week, at(Chicago, 2026, 3, 9, 8, 0), Chicago);
    assert_eq!(
        (w.start, w.end),
        (at(Chicago, 2026, 3, 2, 0, 0), at(Chicago, 2026, 3, 9, 0, 0))
    );
    assert_eq!(hours(w), 7 * 24 - 1);
    // Fired on a Sunday, the previous week is still the last complete one.
    let w = previous(Period::Week, at(Chicago, 2026, 3, 15, 23, 59), Chicago);
    assert_eq!(w.start, at(Chicago, 2026, 3, 2, 0, 0));
    // Fall back inside the week in Berlin: 169 hours.
    let w = previous(Period::Week, at(Berlin, 2026, 10, 26, 8, 0), Berlin);
    assert_eq!(
        (w.start, w.end),
        (
            at(Berlin, 2026, 10, 19, 0, 0),
            at(Berlin, 2026, 10, 26, 0, 0)
        )
    );
    assert_eq!(hours(w), 7 * 24 + 1);
}

#[test]
fn a_fire_just_after_local_midnight_takes_the_day_that_just_ended() {
    // At 23:59 local it is already the next day in UTC (04:59Z): the local
    // date decides which day "previous" means, not the UTC one.
    let w = previous(Period::Day, at(Chicago, 2026, 7, 1, 0, 5), Chicago);
    assert_eq!(w.start, at(Chicago, 2026, 6, 30, 0, 0));
    let w = previous(Period::Day, at(Chicago, 2026, 7, 1, 23, 59), Chicago);
    assert_eq!(w.start, at(Chicago, 2026, 6, 30, 0, 0));
}

#[test]
fn previous_month_handles_month_ends_and_dst() {
    // The monthly audit fires at 00:05 on the 1st.
    let oct = previous(Period::Month, at(Chicago, 2026, 11, 1, 0, 5), Chicago);
    assert_eq!(
        (oct.start, oct.end),
        (
            at(Chicago, 2026, 10, 1, 0, 0),
            at(Chicago, 2026, 11, 1, 0, 0)
        )
    );
    assert_eq!(
        oct.start,
        DateTime::parse_from_rfc3339("2026-10-01T05:00:00Z").unwrap()
    );
    let nov = previous(Period::Month, at(Chicago, 2026, 12, 1, 0, 5), Chicago);
    assert_eq!(hours(nov), 30 * 24 + 1, "November holds the fall-back hour");
    let mar = previous(Period::Month, at(Chicago, 2026, 4, 15, 12, 0), Chicago);
    assert_eq!(
        hours(mar),
        31 * 24 - 1,
        "March loses the spring-forward hour"
    );
    let jan = previous(Period::Month, at(Chicago, 2026, 2, 1, 0, 5), Chicago);
    assert_eq!(
        jan.start,
        at(Chicago, 2026, 1, 1, 0, 0),
        "from a 31-day month"
    );
    let dec = previous(Period::Month, at(Chicago, 2027, 1, 1, 0, 5), Chicago);
    assert_eq!(
        (dec.start, dec.end),
        (
            at(Chicago, 2026, 12, 1, 0, 0),
            at(Chicago, 2027, 1, 1, 0, 0)
        ),
        "across the year"
    );
}

#[test]
fn february_of_a_leap_year_has_29_days() {
    let feb = previous(Period::Month, at(Berlin, 2028, 3, 1, 0, 5), Berlin);
    assert_eq!(
        (feb.start, feb.end),
        (at(Berlin, 2028, 2, 1, 0, 0), at(Berlin, 2028, 3, 1, 0, 0))
    );
    assert_eq!(hours(feb), 29 * 24);
    let leap_day = previous(Period::Day, at(Berlin, 2028, 3, 1, 8, 0), Berlin);
    assert_eq!(leap_day.start, at(Berlin, 2028, 2, 29, 0, 0));
    assert_eq!(
        hours(previous(
            Period::Month,
            at(Berlin, 2027, 3, 1, 0, 5),
            Berlin
        )),
        28 * 24
    );
}

#[test]
fn previous_quarter_and_year() {
    let q = previous(Period::Quarter, at(Chicago, 2026, 4, 1, 0, 5), Chicago);
    assert_eq!(
        (q.start, q.end),
        (at(Chicago, 2026, 1, 1, 0, 0), at(Chicago, 2026, 4, 1, 0, 0))
    );
    let q = previous(Period::Quarter, at(Chicago, 2026, 6, 30, 23, 0), Chicago);
    assert_eq!(
        q.start,
        at(Chicago, 2026, 1, 1, 0, 0),
        "mid-quarter: the last complete one"
    );
    let q4 = previous(Period::Quarter, at(Chicago, 2027, 1, 2, 8, 0), Chicago);
    assert_eq!(
        (q4.start, q4.end),
        (
            at(Chicago, 2026, 10, 1, 0, 0),
            at(Chicago, 2027, 1, 1, 0, 0)
        )
    );
    let y = previous(Period::Year, at(Berlin, 2029, 1, 1, 0, 5), Berlin);
    assert_eq!(
        (y.start, y.end),
        (at(Berlin, 2028, 1, 1, 0, 0), at(Berlin, 2029, 1, 1, 0, 0))
    );
    assert_eq!(hours(y), 366 * 24, "2028 is a leap year");
}

#[test]
fn last_is_exact_elapsed_time_across_dst() {
    let fire = at(Chicago, 2026, 3, 9, 8, 0);
    let w = compute(
        &WindowSpec::Last(Duration::from_secs(7 * 86400)),
        fire,
        Chicago,
        None,
    )
    .unwrap();
    assert_eq!(w.end, fire);
    assert_eq!(
        hours(w),
        7 * 24,
        "`last` counts elapsed hours, not calendar days"
    );
}

#[test]
fn a_zone_whose_midnight_does_not_exist_starts_the_day_at_the_first_valid_instant() {
    // America/Havana springs forward at 00:00 → 01:00 (2026-03-08).
    let havana: Tz = "America/Havana".parse().unwrap();
    let w = previous(Period::Day, at(havana, 2026, 3, 9, 8, 0), havana);
    assert_eq!(w.start, at(havana, 2026, 3, 8, 1, 0));
    assert_eq!(hours(w), 23);
}
