//! Fire times in the job's own timezone, across DST changes.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use trainwatch::config::Schedule;
use trainwatch::schedule::{latest_fire, next_fire, next_fires, parse};

const CHICAGO: Tz = chrono_tz::America::Chicago;
const BERLIN: Tz = chrono_tz::Europe::Berlin;

fn schedule(expr: &str) -> Schedule {
    parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// Every fire in `[from, to)`.
fn fires_between(
    s: &Schedule,
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = from - Duration::seconds(1);
    while let Some(next) = next_fire(s, tz, t) {
        if next >= to {
            break;
        }
        out.push(next);
        t = next;
    }
    out
}

fn shown(ts: &[DateTime<Utc>]) -> Vec<String> {
    ts.iter()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect()
}

#[test]
fn mondays_at_eight_in_chicago_stay_at_eight_local_across_both_changes() {
    let s = schedule("0 8 * * Mon");
    let fires = fires_between(
        &s,
        CHICAGO,
        utc("2026-02-01T00:00:00Z"),
        utc("2026-12-01T00:00:00Z"),
    );
    let spring = utc("2026-03-08T08:00:00Z"); // 02:00 CST
    let fall = utc("2026-11-01T07:00:00Z"); // 02:00 CDT
    let mondays = (0..)
        .map(|d| NaiveDate::from_ymd_opt(2026, 2, 1).unwrap() + Duration::days(d))
        .take_while(|d| *d < NaiveDate::from_ymd_opt(2026, 12, 1).unwrap())
        .filter(|d| d.weekday() == Weekday::Mon)
        .count();
    assert_eq!(fires.len(), mondays, "one fire per Monday");
    for t in &fires {
        let local = t.with_timezone(&CHICAGO);
        assert_eq!(local.weekday(), Weekday::Mon, "{t} is a Monday in Chicago");
        assert_eq!(
            (local.hour(), local.minute(), local.second()),
            (8, 0, 0),
            "{t} is 08:00 local"
        );
        let summer = *t > spring && *t < fall;
        assert_eq!(
            t.hour(),
            if summer { 13 } else { 14 },
            "{t}: 13:00Z in CDT, 14:00Z in CST"
        );
    }
    // The Mondays on both sides of each change, exactly.
    let around = |from: &str| shown(&next_fires(&s, CHICAGO, utc(from), 2));
    assert_eq!(
        around("2026-03-01T00:00:00Z"),
        ["2026-03-02T14:00:00Z", "2026-03-09T13:00:00Z"]
    );
    assert_eq!(
        around("2026-10-25T00:00:00Z"),
        ["2026-10-26T13:00:00Z", "2026-11-02T14:00:00Z"]
    );
}

#[test]
fn daily_0230_in_berlin_fires_once_at_the_end_of_the_spring_gap() {
    let s = schedule("30 2 * * *");
    let fires = fires_between(
        &s,
        BERLIN,
        utc("2026-03-27T00:00:00Z"),
        utc("2026-04-01T00:00:00Z"),
    );
    assert_eq!(
        shown(&fires),
        [
            "2026-03-27T01:30:00Z", // 02:30 CET
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z", // 02:30 does not exist: 03:00 CEST, the first instant after the gap
            "2026-03-30T00:30:00Z", // 02:30 CEST
            "2026-03-31T00:30:00Z",
        ]
    );
    let gap_fire = fires[2].with_timezone(&BERLIN);
    assert_eq!(gap_fire.format("%H:%M %Z").to_string(), "03:00 CEST");
}

#[test]
fn two_times_in_one_gap_fire_once_there() {
    let s = schedule("0,30 2 * * *");
    let fires = fires_between(
        &s,
        BERLIN,
        utc("2026-03-28T00:00:00Z"),
        utc("2026-03-30T12:00:00Z"),
    );
    assert_eq!(
        shown(&fires),
        [
            "2026-03-28T01:00:00Z",
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z", // both 02:00 and 02:30 fall in the gap
            "2026-03-30T00:00:00Z",
            "2026-03-30T00:30:00Z",
        ]
    );
}

#[test]
fn daily_0230_in_berlin_fires_once_at_the_first_of_the_two_0230s_in_autumn() {
    let s = schedule("30 2 * * *");
    let fires = fires_between(
        &s,
        BERLIN,
        utc("2026-10-23T00:00:00Z"),
        utc("2026-10-28T00:00:00Z"),
    );
    assert_eq!(
        shown(&fires),
        [
            "2026-10-23T00:30:00Z", // 02:30 CEST
            "2026-10-24T00:30:00Z",
            "2026-10-25T00:30:00Z", // the first 02:30 (CEST); not again at 01:30Z (CET)
            "2026-10-26T01:30:00Z", // 02:30 CET
            "2026-10-27T01:30:00Z",
        ]
    );
    // From inside the repeated hour (between the two 02:30s, and after the
    // second one) the next fire is the next day's, never the past first one.
    for after in [
        "2026-10-25T00:30:00Z",
        "2026-10-25T01:00:00Z",
        "2026-10-25T01:30:00Z",
        "2026-10-25T01:45:00Z",
    ] {
        assert_eq!(
            next_fire(&s, BERLIN, utc(after)),
            Some(utc("2026-10-26T01:30:00Z")),
            "after {after}"
        );
    }
}

#[test]
fn day_of_month_or_day_of_week_when_both_are_restricted() {
    let s = schedule("0 9 13 * FRI");
    let (from, to) = (utc("2026-01-01T00:00:00Z"), utc("2026-09-01T00:00:00Z"));
    let fires = fires_between(&s, CHICAGO, from, to);
    // Brute force: every day that is a 13th or a Friday, at 09:00 Chicago time.
    let expected: Vec<DateTime<Utc>> = (0..)
        .map(|d| NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + Duration::days(d))
        .take_while(|d| *d < NaiveDate::from_ymd_opt(2026, 9, 1).unwrap())
        .filter(|d| d.day() == 13 || d.weekday() == Weekday::Fri)
        .map(|d| {
            CHICAGO
                .from_local_datetime(&d.and_hms_opt(9, 0, 0).unwrap())
                .unwrap()
                .to_utc()
        })
        .collect();
    assert_eq!(shown(&fires), shown(&expected));
    let local = |t: &DateTime<Utc>| t.with_timezone(&CHICAGO).date_naive();
    assert!(
        fires
            .iter()
            .any(|t| local(t).day() == 13 && local(t).weekday() != Weekday::Fri),
        "a 13th that is not a Friday fires"
    );
    assert!(
        fires
            .iter()
            .any(|t| local(t).day() != 13 && local(t).weekday() == Weekday::Fri),
        "a Friday that is not the 13th fires"
    );
    // 2026-02-13 and 2026-03-13 are Fridays: one fire each, not two.
    let on = |d: NaiveDate| fires.iter().filter(|t| local(t) == d).count();
    assert_eq!(on(NaiveDate::from_ymd_opt(2026, 2, 13).unwrap()), 1);
    assert_eq!(on(NaiveDate::from_ymd_opt(2026, 3, 13).unwrap()), 1);
}

#[test]
fn five_fields_fire_at_second_zero_and_six_fields_have_seconds_first() {
    let five = schedule("15 10 * * *");
    assert_eq!(
        next_fire(&five, CHICAGO, utc("2026-05-01T00:00:00Z")),
        Some(utc("2026-05-01T15:15:00Z")) // 10:15:00 CDT
    );
    let six = schedule("30 15 10 * * *");
    assert_eq!(
        next_fire(&six, CHICAGO, utc("2026-05-01T00:00:00Z")),
        Some(utc("2026-05-01T15:15:30Z")) // 10:15:30 CDT
    );
    let every_20s = schedule("*/20 * * * * *");
    assert_eq!(
        shown(&next_fires(
            &every_20s,
            BERLIN,
            utc("2026-05-01T12:00:05.5Z"),
            4
        )),
        [
            "2026-05-01T12:00:20Z",
            "2026-05-01T12:00:40Z",
            "2026-05-01T12:01:00Z",
            "2026-05-01T12:01:20Z"
        ]
    );
}

#[test]
fn next_fire_is_strictly_after_and_latest_fire_is_at_or_before() {
    let s = schedule("0 8 * * Mon");
    let fire = utc("2026-03-09T13:00:00Z");
    let previous = utc("2026-03-02T14:00:00Z");
    let second = Duration::seconds(1);
    assert_eq!(latest_fire(&s, CHICAGO, fire), Some(fire), "at a fire");
    assert_eq!(
        latest_fire(&s, CHICAGO, fire + second),
        Some(fire),
        "just after a fire"
    );
    assert_eq!(
        latest_fire(&s, CHICAGO, fire + Duration::nanoseconds(1)),
        Some(fire),
        "a nanosecond after"
    );
    assert_eq!(
        latest_fire(&s, CHICAGO, fire - second),
        Some(previous),
        "just before a fire"
    );
    assert_eq!(
        latest_fire(&s, CHICAGO, fire - Duration::nanoseconds(1)),
        Some(previous),
        "a nanosecond before"
    );
    assert_eq!(next_fire(&s, CHICAGO, fire - second), Some(fire));
    assert_eq!(
        next_fire(&s, CHICAGO, fire),
        Some(utc("2026-03-16T13:00:00Z"))
    );
}

#[test]
fn latest_fire_finds_the_gap_and_overlap_fires() {
    let s = schedule("30 2 * * *");
    // After the gap's one fire (03:00 CEST), before the next day's.
    assert_eq!(
        latest_fire(&s, BERLIN, utc("2026-03-29T01:30:00Z")),
        Some(utc("2026-03-29T01:00:00Z"))
    );
    assert_eq!(
        latest_fire(&s, BERLIN, utc("2026-03-29T00:59:59Z")),
        Some(utc("2026-03-28T01:30:00Z"))
    );
    // In the second pass of the repeated hour, after the second 02:30: the
    // fire was the first one.
    assert_eq!(
        latest_fire(&s, BERLIN, utc("2026-10-25T01:45:00Z")),
        Some(utc("2026-10-25T00:30:00Z"))
    );
    // In the second pass but before the repeated time: its first pass,
    // still later on the wall clock than now, is the latest fire.
    let s = schedule("50 1 * * *");
    assert_eq!(
        latest_fire(&s, CHICAGO, utc("2026-11-01T07:40:00Z")), // 01:40 CST
        Some(utc("2026-11-01T06:50:00Z"))                      // 01:50 CDT
    );
}

#[test]
fn hourly_fires_once_every_real_hour_across_fall_back() {
    let s = schedule("0 * * * *");
    // 2026-11-01 in Chicago runs from 05:00Z to 06:00Z the next day: 25 hours.
    let fires = fires_between(
        &s,
        CHICAGO,
        utc("2026-11-01T05:00:00Z"),
        utc("2026-11-02T06:00:00Z"),
    );
    assert_eq!(fires.len(), 25);
    for pair in fires.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            Duration::hours(1),
            "{} → {}",
            pair[0],
            pair[1]
        );
    }
    let local: Vec<String> = fires[..4]
        .iter()
        .map(|t| t.with_timezone(&CHICAGO).format("%H:%M %Z").to_string())
        .collect();
    assert_eq!(local, ["00:00 CDT", "01:00 CDT", "01:00 CST", "02:00 CST"]);
    // From inside the first 01:xx, the second 01:00 is next; from inside the
    // second, the last fire was the second 01:00.
    assert_eq!(
        next_fire(&s, CHICAGO, utc("2026-11-01T06:40:00Z")),
        Some(utc("2026-11-01T07:00:00Z"))
    );
    assert_eq!(
        latest_fire(&s, CHICAGO, utc("2026-11-01T07:30:00Z")),
        Some(utc("2026-11-01T07:00:00Z"))
    );
    assert_eq!(
        latest_fire(&s, CHICAGO, utc("2026-11-01T06:59:59Z")),
        Some(utc("2026-11-01T06:00:00Z"))
    );
}

#[test]
fn hourly_fires_once_every_real_hour_across_spring_forward() {
    // 2026-03-29 in Berlin runs from 23:00Z the day before to 22:00Z: 23 hours.
    let s = schedule("30 * * * *");
    let fires = fires_between(
        &s,
        BERLIN,
        utc("2026-03-28T23:00:00Z"),
        utc("2026-03-29T22:00:00Z"),
    );
    assert_eq!(fires.len(), 23);
    for pair in fires.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            Duration::hours(1),
            "{} → {}",
            pair[0],
            pair[1]
        );
    }
    assert_eq!(
        shown(&fires[..3]),
        [
            "2026-03-28T23:30:00Z",
            "2026-03-29T00:30:00Z",
            "2026-03-29T01:30:00Z"
        ],
        "01:30 CET, then 03:30 CEST: 02:30 does not exist and is not made up"
    );
}

/// `next_fire` and `latest_fire` describe the same set of instants: between
/// two consecutive fires `a < b`, the next fire is `b` and the latest is `a`.
#[test]
fn next_and_latest_agree_across_dst_changes() {
    let cases = [
        ("0 8 * * Mon", CHICAGO, "2026-03-01T00:00:00Z", 6),
        ("30 2 * * *", BERLIN, "2026-03-27T00:00:00Z", 6),
        ("30 2 * * *", BERLIN, "2026-10-23T00:00:00Z", 6),
        ("0,30 2 * * *", BERLIN, "2026-03-28T00:00:00Z", 6),
        ("0 * * * *", CHICAGO, "2026-11-01T04:00:00Z", 8),
        ("*/20 * * * *", BERLIN, "2026-10-24T23:30:00Z", 12),
        ("*/20 * * * *", BERLIN, "2026-03-29T00:00:00Z", 8),
        ("*/15 1 * * *", CHICAGO, "2026-11-01T05:00:00Z", 6),
        ("50 * * * *", CHICAGO, "2026-11-01T04:00:00Z", 6),
        ("50 1 * * *", CHICAGO, "2026-10-30T00:00:00Z", 4),
        ("0 9 13 * FRI", CHICAGO, "2026-01-01T00:00:00Z", 10),
    ];
    let second = Duration::seconds(1);
    for (expr, tz, from, n) in cases {
        let s = schedule(expr);
        let fires = next_fires(&s, tz, utc(from), n);
        assert_eq!(fires.len(), n, "{expr}");
        for pair in fires.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(a < b, "{expr}: {a} < {b}");
            // Both ends, and every few minutes in between (into both passes
            // of a repeated hour).
            let stride = ((b - a) / 200).max(Duration::minutes(7));
            let between = (1..).map(|k| a + stride * k).take_while(|x| *x < b);
            for x in [a, a + second, b - second].into_iter().chain(between) {
                assert_eq!(next_fire(&s, tz, x), Some(b), "{expr} {tz}: next after {x}");
                assert_eq!(
                    latest_fire(&s, tz, x),
                    Some(a),
                    "{expr} {tz}: latest at {x}"
                );
            }
            assert_eq!(
                latest_fire(&s, tz, b),
                Some(b),
                "{expr} {tz}: latest at {b}"
            );
        }
    }
}

#[test]
fn a_schedule_that_never_matches_has_no_fires() {
    let s = schedule("0 0 30 2 *");
    assert_eq!(next_fire(&s, CHICAGO, utc("2026-01-01T00:00:00Z")), None);
    assert!(next_fires(&s, CHICAGO, utc("2026-01-01T00:00:00Z"), 3).is_empty());
}
