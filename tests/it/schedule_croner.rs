//! What croner 3's own timezone-aware search does across DST changes, and
//! why `trainwatch::schedule` does not use it for fire times (see its module
//! docs). trainwatch does not depend on any of this: if croner changes and
//! these fail, re-read the reasoning in `src/schedule.rs`, then update them.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use trainwatch::schedule::{latest_fire, next_fire, parse};

const CHICAGO: Tz = chrono_tz::America::Chicago;
const BERLIN: Tz = chrono_tz::Europe::Berlin;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn croner_next(expr: &str, tz: Tz, after: &str) -> DateTime<Utc> {
    let s = parse(expr).unwrap();
    s.cron
        .find_next_occurrence(&utc(after).with_timezone(&tz), false)
        .unwrap()
        .to_utc()
}

fn croner_previous(expr: &str, tz: Tz, at: &str) -> DateTime<Utc> {
    let s = parse(expr).unwrap();
    s.cron
        .find_previous_occurrence(&utc(at).with_timezone(&tz), true)
        .unwrap()
        .to_utc()
}

#[test]
fn croner_gets_a_single_fixed_time_right_going_forward() {
    // Spring gap → first instant after it; autumn → first occurrence only.
    assert_eq!(
        croner_next("30 2 * * *", BERLIN, "2026-03-28T12:00:00Z"),
        utc("2026-03-29T01:00:00Z")
    );
    assert_eq!(
        croner_next("30 2 * * *", BERLIN, "2026-10-24T12:00:00Z"),
        utc("2026-10-25T00:30:00Z")
    );
}

#[test]
fn croner_returns_an_instant_before_the_start_from_the_second_pass_of_a_repeated_hour() {
    let after = "2026-10-25T01:00:00Z"; // 02:00 CET, the second 02:00
    assert_eq!(
        croner_next("30 2 * * *", BERLIN, after),
        utc("2026-10-25T00:30:00Z")
    );
    assert_eq!(
        next_fire(&parse("30 2 * * *").unwrap(), BERLIN, utc(after)),
        Some(utc("2026-10-26T01:30:00Z"))
    );
}

#[test]
fn croner_skips_the_repeated_hour_of_an_hourly_schedule() {
    // After 01:00 CDT, croner goes to 02:00 CST: the real hour 07:00Z-08:00Z has no fire.
    assert_eq!(
        croner_next("0 * * * *", CHICAGO, "2026-11-01T06:00:00Z"),
        utc("2026-11-01T08:00:00Z")
    );
    assert_eq!(
        next_fire(
            &parse("0 * * * *").unwrap(),
            CHICAGO,
            utc("2026-11-01T06:00:00Z")
        ),
        Some(utc("2026-11-01T07:00:00Z"))
    );
}

#[test]
fn croner_skips_the_spring_forward_day_of_two_fixed_times_in_the_gap() {
    // `0,30 2 * * *` is not a "fixed time" job to croner: 2026-03-29 gets no fire.
    assert_eq!(
        croner_next("0,30 2 * * *", BERLIN, "2026-03-28T01:30:00Z"),
        utc("2026-03-30T00:00:00Z")
    );
    assert_eq!(
        next_fire(
            &parse("0,30 2 * * *").unwrap(),
            BERLIN,
            utc("2026-03-28T01:30:00Z")
        ),
        Some(utc("2026-03-29T01:00:00Z"))
    );
}

#[test]
fn croner_searching_back_across_a_gap_returns_a_time_that_is_no_fire() {
    // 00:59:59Z is 01:59:59 CET, the last second before the gap.
    assert_eq!(
        croner_previous("30 2 * * *", BERLIN, "2026-03-29T01:30:00Z"),
        utc("2026-03-29T00:59:59Z")
    );
    assert_eq!(
        latest_fire(
            &parse("30 2 * * *").unwrap(),
            BERLIN,
            utc("2026-03-29T01:30:00Z")
        ),
        Some(utc("2026-03-29T01:00:00Z"))
    );
}
