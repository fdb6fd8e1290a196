//! Durations as the config writes them: `90s`, `30m`, `6h`, `7d`, `2w`, `0`.
//!
//! Deliberately a small grammar (one number, one unit) rather than a general
//! human-time parser: the README documents exactly these forms, and a
//! strict parser gives a precise message for everything else.

use std::time::Duration;

/// The longest duration: 100 years of 365.25 days.
pub const MAX_SECONDS: u64 = crate::defaults::MAX_DURATION_SECONDS;

/// The forms a duration may take, for messages.
const SHAPE: &str = "write a whole number and a unit: `90s`, `30m`, `6h`, `7d` or `2w` (or `0`)";

/// Parses `"365d"`, `"7d"`, `"6h"`, `"30m"`, `"2w"`, `"90s"` or `"0"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err(format!("a duration cannot be empty: {SHAPE}"));
    }
    if text.starts_with('-') {
        return Err(format!("`{text}` is negative: a duration cannot be"));
    }
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!("`{text}` is not a duration: {SHAPE}"));
    }
    let too_large =
        || format!("`{text}` is too large for a duration: at most 100 years (`36525d`)");
    let n: u64 = digits.parse().map_err(|_| too_large())?;
    let unit_seconds: u64 = match unit.trim() {
        "" if n == 0 => 0,
        "" => return Err(format!("`{text}` has no unit: {SHAPE}")),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        other => return Err(format!("`{other}` in `{text}` is not a unit: {SHAPE}")),
    };
    let seconds = n.checked_mul(unit_seconds).ok_or_else(too_large)?;
    // Windows subtract durations from fire times and the daemon compares
    // them with ages: a century is beyond any report, and far inside what
    // date arithmetic can hold, so nothing downstream can overflow.
    if seconds > MAX_SECONDS {
        return Err(too_large());
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> u64 {
        parse_duration(s).unwrap().as_secs()
    }

    #[test]
    fn each_unit_is_understood() {
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("30m"), 1800);
        assert_eq!(secs("6h"), 6 * 3600);
        assert_eq!(secs("7d"), 7 * 86_400);
        assert_eq!(secs("365d"), 365 * 86_400);
        assert_eq!(secs("2w"), 14 * 86_400);
    }

    #[test]
    fn zero_needs_no_unit() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn a_number_without_a_unit_is_rejected() {
        assert!(parse_duration("7").unwrap_err().contains("no unit"));
    }

    #[test]
    fn empty_text_is_rejected() {
        assert!(parse_duration("").unwrap_err().contains("empty"));
        assert!(parse_duration("  ").unwrap_err().contains("empty"));
    }

    #[test]
    fn an_unknown_unit_is_named() {
        let err = parse_duration("7x").unwrap_err();
        assert!(err.contains("`x` in `7x` is not a unit"), "{err}");
        assert!(parse_duration("7 days").is_err());
        assert!(parse_duration("1h30m").is_err());
    }

    #[test]
    fn negative_durations_are_rejected() {
        assert!(parse_duration("-1d").unwrap_err().contains("negative"));
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(
            parse_duration("99999999999999999999d")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            parse_duration("18446744073709551615w")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            parse_duration("9223372036854776s")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn a_century_is_the_longest_duration() {
        assert_eq!(secs("36525d"), MAX_SECONDS);
        assert_eq!(
            parse_duration("36526d").unwrap_err(),
            "`36526d` is too large for a duration: at most 100 years (`36525d`)"
        );
        assert_eq!(
            parse_duration("99999999w").unwrap_err(),
            "`99999999w` is too large for a duration: at most 100 years (`36525d`)"
        );
    }

    #[test]
    fn non_numbers_are_rejected() {
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("1.5h").is_err());
    }
}
