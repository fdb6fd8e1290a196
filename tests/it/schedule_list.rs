//! `trainwatch list` (the real binary) shows the same instants as `next_fires`.

use assert_cmd::Command;
use chrono::DateTime;
use chrono_tz::Tz;
use trainwatch::schedule::{next_fires, parse};

const JOBS: [(&str, &str, &str); 5] = [
    ("weekly-overdue", "0 8 * * Mon", "America/Chicago"),
    ("nightly-berlin", "30 2 * * *", "Europe/Berlin"),
    ("friday-or-13th", "0 9 13 * FRI", "America/Chicago"),
    ("hourly-chicago", "0 * * * *", "America/Chicago"),
    ("with-seconds", "30 15 10 * * *", "Asia/Kolkata"),
];

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let mut cfg = String::from(
        r#"
timezone = "America/Chicago"

[samsara]
token = "not-used-by-list"

[webhooks.safety]
kind = "slack"
url = "https://hooks.slack.invalid/T000/B000/XXXX"
"#,
    );
    for (name, schedule, tz) in JOBS.iter().chain([&("never", "0 0 30 2 *", "UTC")]) {
        cfg.push_str(&format!(
            r#"
[[jobs]]
name = "{name}"
schedule = "{schedule}"
timezone = "{tz}"
window = {{ last = "7d" }}
deliver = [{{ webhook = "safety", template = "digest" }}]
"#
        ));
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

/// The last two columns of a row: the local time and the UTC instant.
fn fire_cells(line: &str) -> (&str, &str) {
    let (rest, utc) = line.rsplit_once(' ').unwrap();
    let rest = rest.trim_end();
    // The local column is `date weekday time zone`: its last four words.
    let start = rest
        .match_indices(' ')
        .map(|(i, _)| i + 1)
        .rev()
        .nth(3)
        .unwrap_or(0);
    (&rest[start..], utc)
}

fn list(at: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path());
    let out = Command::cargo_bin("trainwatch")
        .unwrap()
        .args(["--config", path.to_str().unwrap(), "list", "--at", at])
        .env_remove("TRAINWATCH_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn list_prints_each_jobs_next_three_fires_in_its_timezone_and_in_utc() {
    // Saturday before Berlin's spring change; Chicago already on CDT.
    let at = "2026-03-28T12:00:00Z";
    let stdout = list(at);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("JOB"), "header first:\n{stdout}");
    for (name, expr, tz_name) in JOBS {
        let tz: Tz = tz_name.parse().unwrap();
        let expected = next_fires(
            &parse(expr).unwrap(),
            tz,
            DateTime::parse_from_rfc3339(at).unwrap().to_utc(),
            3,
        );
        assert_eq!(expected.len(), 3);
        let first = lines
            .iter()
            .position(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{stdout}"));
        assert!(
            lines[first].contains(&format!("  {expr}  "))
                && lines[first].contains(&format!("  {tz_name}  ")),
            "{name}'s schedule and timezone on its first row:\n{stdout}"
        );
        for (i, t) in expected.iter().enumerate() {
            let line = lines[first + i];
            let local = t
                .with_timezone(&tz)
                .format("%Y-%m-%d %a %H:%M:%S %Z")
                .to_string();
            let utc = t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            assert_eq!(
                fire_cells(line),
                (local.as_str(), utc.as_str()),
                "{name} fire {i}\n{stdout}"
            );
        }
    }
    // The instants themselves, for the DST cases: Berlin's 02:30 on the
    // spring-forward day is 03:00 CEST.
    let berlin = lines
        .iter()
        .position(|l| l.starts_with("nightly-berlin "))
        .unwrap();
    assert_eq!(
        fire_cells(lines[berlin]),
        ("2026-03-29 Sun 03:00:00 CEST", "2026-03-29T01:00:00Z")
    );
    assert_eq!(
        fire_cells(lines[berlin + 1]),
        ("2026-03-30 Mon 02:30:00 CEST", "2026-03-30T00:30:00Z")
    );
    let never = lines.iter().find(|l| l.starts_with("never ")).unwrap();
    assert!(
        never.split_whitespace().rev().take(2).eq(["-", "never"]),
        "a schedule that never fires says so: {never:?}"
    );
}

#[test]
fn list_across_fall_back_shows_both_one_oclocks_of_an_hourly_job() {
    let stdout = list("2026-11-01T05:30:00Z"); // 00:30 CDT
    let hourly = stdout
        .lines()
        .skip_while(|l| !l.starts_with("hourly-chicago "))
        .take(3)
        .collect::<Vec<_>>();
    let utc: Vec<&str> = hourly
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(
        utc,
        [
            "2026-11-01T06:00:00Z",
            "2026-11-01T07:00:00Z",
            "2026-11-01T08:00:00Z"
        ],
        "{stdout}"
    );
    assert!(
        hourly[0].contains("01:00:00 CDT") && hourly[1].contains("01:00:00 CST"),
        "{stdout}"
    );
}
