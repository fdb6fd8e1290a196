//! Every mistake in a config file is reported at once, at its line and column.

use std::path::Path;

use trainwatch::check::load_str;
use trainwatch::config::ConfigErrors;

use crate::common;

use common::secrets::{HOOK, PASSWORD, TOKEN, env};

fn errors(source: &str) -> ConfigErrors {
    load_str(source, Path::new("trainwatch.toml"), &env).expect_err("the config should be rejected")
}

fn assert_no_secret_in(text: &str) {
    for secret in [TOKEN, PASSWORD, HOOK, "SECRET"] {
        assert!(!text.contains(secret), "a secret leaked into: {text}");
    }
}

const VALID_JOB: &str = r#"
[[jobs]]
name = "j"
schedule = "0 8 * * Mon"
window = { last = "7d" }
deliver = [{ archive = { dir = "out" } }]
"#;

#[test]
fn five_mistakes_in_five_places_are_all_reported_with_their_positions() {
    let source = include_str!("../fixtures/config/five_mistakes.toml");
    // The missing variable is SLACK_WEBHOOK_URL: leave it out of this environment.
    let env = |name: &str| (name == "SAMSARA_API_TOKEN").then(|| TOKEN.to_string());
    let err = load_str(source, Path::new("five_mistakes.toml"), &env).unwrap_err();
    insta::assert_snapshot!(err.to_string(), @r"
    five_mistakes.toml:1:12: unknown timezone `America/Chicgo`: use an IANA name like `America/Chicago` or `UTC`; did you mean `America/Chicago`?
    five_mistakes.toml:8:7: environment variable SLACK_WEBHOOK_URL is not set (used by webhooks.safety-channel.url)
    five_mistakes.toml:12:1: unknown key `shedule` in [[jobs]] (expected one of: name, schedule, timezone, window, filters, per_team, when_empty, deliver, on_failure, source, due_soon, trend); did you mean `schedule`?
    five_mistakes.toml:14:24: no webhook `safety-chanel` in [webhooks] (defined: safety-channel); did you mean `safety-channel`?
    five_mistakes.toml:18:12: schedule `0 8 * * Mnday`: the WEEKDAY field `Mnday` is not valid: it takes 0-7 or Sun-Sat (0 and 7 are Sunday), `*`, lists `1,3`, ranges `1-5` and steps `*/2` (fields: MIN HOUR DAY MONTH WEEKDAY)
    ");
    assert_eq!(err.problems.len(), 5);
}

#[test]
fn two_unknown_keys_in_one_table_are_both_reported() {
    let source = format!(
        "[samsara]\ntoken = \"${{SAMSARA_API_TOKEN}}\"\ntimout = \"30s\"\nrate = 5\n{VALID_JOB}"
    );
    let err = errors(&source);
    let lines: Vec<String> = err
        .problems
        .iter()
        .map(|p| format!("{}:{} {}", p.line, p.col, p.message))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].starts_with("3:1 unknown key `timout` in [samsara]"),
        "{lines:#?}"
    );
    assert!(lines[0].ends_with("did you mean `timeout`?"), "{lines:#?}");
    assert!(
        lines[1].starts_with("4:1 unknown key `rate` in [samsara]"),
        "{lines:#?}"
    );
}

#[test]
fn unknown_keys_in_inline_tables_and_arrays_are_reported_where_they_are() {
    let source = r#"
[samsara]
token = "${SAMSARA_API_TOKEN}"

[[jobs]]
name = "j"
schedule = "0 8 * * Mon"
window = { last = "7d", lats = "1d" }
deliver = [{ archive = { dir = "out", folder = "x" } }]
"#;
    let err = errors(source);
    let text = err.to_string();
    assert!(
        text.contains("trainwatch.toml:8:25: unknown key `lats` in `jobs.window`"),
        "{text}"
    );
    assert!(
        text.contains("trainwatch.toml:9:39: unknown key `folder` in `jobs.deliver.archive`"),
        "{text}"
    );
    assert_eq!(err.problems.len(), 2, "{text}");
}

#[test]
fn a_wrong_type_is_reported_once_not_again_as_missing() {
    let source = format!("[samsara]\ntoken = 42\n{VALID_JOB}");
    let err = errors(&source);
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(
        err.to_string(),
        "trainwatch.toml:2:9: `samsara.token`: invalid type: integer `42`, expected a string"
    );
}

#[test]
fn a_missing_required_key_is_reported_at_its_table() {
    let source = "[samsara]\ntoken = \"${SAMSARA_API_TOKEN}\"\n\n[[jobs]]\nname = \"j\"\nwindow = { last = \"7d\" }\n";
    let text = errors(source).to_string();
    assert!(
        text.contains("trainwatch.toml:4:1: missing required key `schedule` in [[jobs]]"),
        "{text}"
    );
    assert!(
        text.contains("trainwatch.toml:4:1: missing required key `deliver` in [[jobs]]"),
        "{text}"
    );
}

#[test]
fn syntax_errors_are_reported_with_positions() {
    let err = errors("[samsara]\ntoken = \"abc\nmax_attempts = 3 3\n");
    let text = err.to_string();
    assert!(
        text.contains("trainwatch.toml:2:13: invalid basic string"),
        "{text}"
    );
    assert!(
        text.contains("trainwatch.toml:3:16: string values must be quoted"),
        "{text}"
    );
}

#[test]
fn an_unreadable_file_names_the_file_and_the_reason() {
    let err = trainwatch::check::load(Path::new("/no/such/dir/trainwatch.toml")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("/no/such/dir/trainwatch.toml:1:1: cannot read"),
        "{text}"
    );
    assert!(
        text.contains("/no/such/dir/trainwatch.toml: No such file"),
        "{text}"
    );
}

#[test]
fn secrets_never_appear_in_messages() {
    let source = r#"
timezone = "${SAMSARA_API_TOKEN}"

[samsara]
token = "${SAMSARA_API_TOKEN}"
base_url = "${SLACK_WEBHOOK_URL}?q=1"
requests_per_second = "${SAMSARA_API_TOKEN}"

[smtp]
host = "smtp.example.com"
from = "${SMTP_PASSWORD}"
password = "${SMTP_PASSWORD}"

[webhooks.a]
kind = "json"
url = "ftp://${SAMSARA_API_TOKEN}@example.com"

[webhooks.b]
kind = "${SMTP_PASSWORD}"
url = "not a url ${SLACK_WEBHOOK_URL}"

[[jobs]]
name = "${SMTP_PASSWORD}"
schedule = "${SMTP_PASSWORD}"
window = { previous = "${SMTP_PASSWORD}" }
deliver = [{ webhook = "${SMTP_PASSWORD}" }, { email = { to = ["${SMTP_PASSWORD}"] } }]
"#;
    let err = errors(source);
    let text = err.to_string();
    assert!(err.problems.len() >= 10, "{text}");
    assert_no_secret_in(&text);
    assert_no_secret_in(&format!("{err:?}"));
    assert!(
        text.contains("7:23: `samsara.requests_per_second`: invalid type: string \"${SAMSARA_API_TOKEN}\", expected an integer"),
        "{text}"
    );
}

#[test]
fn a_webhook_secret_is_only_for_json_webhooks() {
    let source = format!(
        "[samsara]\ntoken = \"t\"\n[webhooks.s]\nkind = \"slack\"\nurl = \"https://example.com/h\"\nsecret = \"k\"\n{VALID_JOB}"
    );
    let text = errors(&source).to_string();
    assert!(
        text.contains("trainwatch.toml:6:10: `secret` is only used by json webhooks"),
        "{text}"
    );
}

#[test]
fn email_deliveries_need_smtp() {
    let source = r#"
[samsara]
token = "t"
[[jobs]]
name = "j"
schedule = "0 8 * * Mon"
window = { last = "7d" }
deliver = [{ email = { to = ["ops@example.com"] } }]
"#;
    let text = errors(source).to_string();
    assert!(
        text.contains("trainwatch.toml:8:12: email deliveries need an [smtp] table"),
        "{text}"
    );
}

/// The messages for `source`, as `line:col message`.
fn messages(source: &str) -> Vec<String> {
    errors(source)
        .problems
        .iter()
        .map(|p| format!("{}:{} {}", p.line, p.col, p.message))
        .collect()
}

/// A config whose only job has `job` as its extra lines.
fn job_with(job: &str) -> String {
    format!(
        "[samsara]\ntoken = \"t\"\n[teams.north]\nlearners = [\"1\"]\n[[jobs]]\nname = \"j\"\nschedule = \"0 8 * * Mon\"\n{job}\n"
    )
}

fn assert_one(source: &str, expected_start: &str) {
    let found = messages(source);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].starts_with(expected_start), "{found:#?}");
}

#[test]
fn a_duplicate_job_name_is_reported_at_the_second_one() {
    let source = format!("[samsara]\ntoken = \"t\"\n{VALID_JOB}{VALID_JOB}");
    assert_one(
        &source,
        "11:8 job name `j` is already used by the job at line 5",
    );
}

#[test]
fn a_job_name_must_be_usable_as_a_folder_name() {
    for bad in ["a/b", "..", "", "week ly"] {
        let source = format!(
            "[samsara]\ntoken = \"t\"\n[[jobs]]\nname = \"{bad}\"\nschedule = \"0 8 * * Mon\"\nwindow = {{ last = \"7d\" }}\ndeliver = [{{ archive = {{ dir = \"x\" }} }}]\n"
        );
        assert_one(&source, "4:8 job name");
    }
}

#[test]
fn each_bad_learner_id_is_reported_at_its_own_element() {
    let source = "[samsara]\ntoken = \"t\"\n[teams.north]\nlearners = [\"driver-1\", \"bob\", \"2\", \"truck-9\"]\n";
    let found = messages(source);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with("4:25 `bob` is not a learner id"),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with("4:37 `truck-9` is not a learner id"),
        "{found:#?}"
    );
}

#[test]
fn a_window_must_take_exactly_one_valid_form() {
    let deliver = "deliver = [{ archive = { dir = \"x\" } }]";
    for (window, expected) in [
        ("window = {}", "8:10 the window names no form"),
        (
            "window = { last = \"7d\", previous = \"day\" }",
            "8:10 a window takes one form, found `last` and `previous`",
        ),
        (
            "window = { last = \"0\" }",
            "8:19 `last` must be longer than 0",
        ),
        (
            "window = { last = \"7 days\" }",
            "8:19 `days` in `7 days` is not a unit",
        ),
        (
            "window = { previous = \"fortnight\" }",
            "8:23 unknown period `fortnight`",
        ),
        (
            "window = { since_last_run = false }",
            "8:29 `since_last_run = false` is not a window",
        ),
        ("window = { max = \"3d\" }", "8:10 the window names no form"),
        (
            "window = { start = 2026-01-01T00:00:00 , end = 2026-02-01T00:00:00Z }",
            "8:20 `start` has no offset",
        ),
        (
            "window = { start = \"2026-01-01\", end = 2026-02-01T00:00:00Z }",
            "8:20 `start` is not an RFC 3339 datetime",
        ),
        (
            "window = { start = 2026-01-01, end = 2026-02-01T00:00:00Z }",
            "8:20 `start` needs a date and a time",
        ),
        (
            "window = { start = 2026-02-01T00:00:00Z, end = 2026-01-01T00:00:00Z }",
            "8:10 the window's start (2026-02-01T00:00:00+00:00) must be before its end",
        ),
        (
            "window = { start = 2026-02-01T00:00:00Z }",
            "8:10 missing required key `end` in the fixed window",
        ),
    ] {
        let found = messages(&job_with(&format!("{window}\n{deliver}")));
        assert!(
            found.iter().any(|m| m.starts_with(expected)),
            "{window}: expected {expected:?} in {found:#?}"
        );
    }
}

#[test]
fn filters_must_name_defined_teams_and_known_statuses() {
    let found = messages(&job_with(
        "window = { last = \"7d\" }\ndeliver = [{ archive = { dir = \"x\" } }]\nfilters = { team = \"nroth\", teams = [\"south\"], status = [\"done\"], courses = [\"\"] }",
    ));
    let joined = found.join("\n");
    assert_eq!(found.len(), 4, "{joined}");
    assert!(
        joined.contains("no team `nroth` in [teams] (defined: north); did you mean `north`?"),
        "{joined}"
    );
    assert!(joined.contains("no team `south` in [teams]"), "{joined}");
    assert!(
        joined.contains("unknown status `done`: use notStarted, inProgress, completed"),
        "{joined}"
    );
    assert!(joined.contains("a course id cannot be empty"), "{joined}");
}

#[test]
fn per_team_without_any_team_is_an_error() {
    let source = format!("[samsara]\ntoken = \"t\"\n{VALID_JOB}per_team = true\n");
    assert_one(&source, "9:12 `per_team = true` needs teams");
}

#[test]
fn deliveries_name_one_target_and_known_templates() {
    let found = messages(&job_with(
        "window = { last = \"7d\" }\ndeliver = [{ archive = { dir = \"x\" }, webhook = \"w\" }, {}, { archive = { dir = \"x\" }, template = \"digest\" }]\non_failure = [{ archive = {} }]",
    ));
    let joined = found.join("\n");
    assert!(
        joined.contains("a delivery takes one target, found `webhook` and `archive`"),
        "{joined}"
    );
    assert!(joined.contains("a delivery needs a target"), "{joined}");
    assert!(
        joined.contains("`template` next to the target belongs to webhook deliveries"),
        "{joined}"
    );
    assert!(
        joined.contains("missing required key `dir` in the archive delivery"),
        "{joined}"
    );
    assert_eq!(found.len(), 4, "{joined}");
}

#[test]
fn an_unknown_template_is_an_error_with_a_hint() {
    let source = format!(
        "[samsara]\ntoken = \"t\"\n[webhooks.w]\nkind = \"slack\"\nurl = \"https://example.com/x\"\n{}",
        VALID_JOB.replace(
            "deliver = [{ archive = { dir = \"out\" } }]",
            "deliver = [{ webhook = \"w\", template = \"digset\" }]"
        )
    );
    let found = messages(&source);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains("unknown template `digset`: use one of overdue, digest, audit, failure"),
        "{found:#?}"
    );
    assert!(found[0].ends_with("did you mean `digest`?"), "{found:#?}");
}

#[test]
fn literal_recipients_are_checked_and_templated_ones_are_left_for_render_time() {
    let source = format!(
        "[samsara]\ntoken = \"t\"\n[smtp]\nhost = \"mail\"\nfrom = \"Reports <reports@example.com>\"\n{}",
        VALID_JOB.replace(
            "deliver = [{ archive = { dir = \"out\" } }]",
            "deliver = [{ email = { to = [\"{{ team.manager }}\", \"ops at example.com\"], cc = [\"ok@example.com\"] } }]"
        )
    );
    let found = messages(&source);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains("recipient `ops at example.com` is not a mailbox"),
        "{found:#?}"
    );
}

#[test]
fn samsara_and_smtp_settings_are_range_checked() {
    let source = format!(
        "[samsara]\ntoken = \"\"\nbase_url = \"ftp://example.com\"\nrequests_per_second = 0\ntimeout = \"90s\"\napi_version = \"May 2024\"\nmax_attempts = 0\n[smtp]\nhost = \"mail\"\nport = 70000\nsecurity = \"ssl\"\nusername = \"u\"\nfrom = \"nobody\"\n{VALID_JOB}"
    );
    let found = messages(&source);
    let joined = found.join("\n");
    for expected in [
        "2:9 `samsara.token` is empty",
        "3:12 `ftp://example.com` must be an http:// or https:// URL with a host",
        "4:23 `requests_per_second` must be from 1 to 100",
        "5:11 `timeout` must be under 90s",
        "6:15 api_version `May 2024` is not a date",
        "7:16 `max_attempts` must be from 1 to 100",
        "10:8 `port` must be from 1 to 65535",
        "11:12 unknown security `ssl`: use starttls, tls or none",
        "12:12 `username` needs a `password`",
        "13:8 from `nobody` is not a mailbox",
    ] {
        assert!(
            found.iter().any(|m| m.starts_with(expected)),
            "missing {expected:?} in\n{joined}"
        );
    }
    assert_eq!(found.len(), 10, "{joined}");
}

#[test]
fn templates_that_do_not_compile_are_configuration_errors_at_their_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("weekly.html"), "<p>{{ totals.overdue </p>").unwrap();
    std::fs::write(dir.path().join("weekly.txt"), "ok").unwrap();
    let source = format!(
        r#"templates_dir = "{}"
[samsara]
token = "t"
[smtp]
host = "127.0.0.1"
from = "a@example.com"
[[jobs]]
name = "j"
schedule = "0 8 * * *"
window = {{ last = "1d" }}
deliver = [{{ email = {{ to = ["{{{{ team.manager "], subject = "{{% if x %}}" }} }}]
"#,
        dir.path().display()
    );
    let problems = errors(&source).to_string();
    assert!(
        problems.contains(":1:17: in templates_dir: ") && problems.contains("weekly.html"),
        "{problems}"
    );
    assert!(
        problems.contains(
            ":11:30: this recipient template does not compile: error: Unexpected end of input"
        ),
        "{problems}"
    );
    assert!(
        problems.contains("this subject template does not compile"),
        "{problems}"
    );
    assert_eq!(
        problems.lines().count(),
        3,
        "one line per problem: {problems}"
    );
}

/// A valid per-team email job around `deliver`, with teams `north` (managed)
/// and `south` (no manager), and `extra` TOML appended.
fn per_team_email(deliver: &str, extra: &str) -> String {
    format!(
        r#"[samsara]
token = "${{SAMSARA_API_TOKEN}}"

[smtp]
host = "127.0.0.1"
from = "Training <training@example.com>"

[teams.north]
manager = "Dana Ortiz <dana@example.com>"
learners = ["driver-1"]

[teams.south]
learners = ["driver-2"]

[[jobs]]
name = "weekly-overdue"
schedule = "0 8 * * Mon"
window = {{ last = "7d" }}
per_team = true
deliver = [
  {deliver},
]
{extra}"#
    )
}

#[test]
fn validate_renders_addresses_so_a_typo_in_a_field_name_is_an_error_at_its_place() {
    let source = per_team_email(
        r#"{ email = { to = ["{{ team.manger }}"], template = "overdue" } }"#,
        "",
    )
    .replace(
        "[teams.south]\nlearners",
        "[teams.south]\nmanager = \"s@example.com\"\nlearners",
    );
    insta::assert_snapshot!(errors(&source).to_string(), @"trainwatch.toml:22:21: to address `{{ team.manger }}` does not render: Field `manger` is not defined. Available fields: display_name, escalation, manager, name (for team north)");
}

#[test]
fn validate_reports_a_team_without_a_manager_sent_to_its_manager() {
    let source = per_team_email(
        r#"{ email = { to = ["{{ team.manager }}"], template = "overdue" } }"#,
        "",
    );
    insta::assert_snapshot!(errors(&source).to_string(), @r#"trainwatch.toml:21:21: to address `{{ team.manager }}` is empty for team south, which has no `manager`: add `manager = "Name <address>"` to [teams.south], or leave the team out of this job's `filters.teams`"#);
}

#[test]
fn validate_renders_template_files_and_subjects_against_a_report_with_rows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("weekly.html"),
        "<p>{% for row in overdue %}{{ row.learner.nmae }}{% endfor %}</p>",
    )
    .unwrap();
    std::fs::write(dir.path().join("weekly.txt"), "{{ totals.overdue }}").unwrap();
    let source = per_team_email(
        r#"{ email = { to = ["ops@example.com"], template = "weekly", subject = "{{ totals.overdu }} overdue" } }"#,
        "",
    )
    .replace(
        "[samsara]",
        &format!("templates_dir = {:?}\n[samsara]", dir.path().display().to_string()),
    );
    insta::assert_snapshot!(errors(&source).to_string(), @r"
    trainwatch.toml:22:52: template `weekly` does not render: weekly.html:1:43: Field `nmae` is not defined. Available fields: id, name (for team north)
    trainwatch.toml:22:72: this subject does not render: Field `overdu` is not defined. Available fields: assignments, completed, completed_late, completion_rate, deleted, in_progress, learners, not_started, other, overdue (for team north)
    ");
}

#[test]
fn a_config_whose_deliveries_all_render_passes_validate() {
    let source = per_team_email(
        r#"{ email = { to = ["{% if team.manager %}{{ team.manager }}{% else %}ops@example.com{% endif %}"], template = "overdue" } }"#,
        "when_empty = \"send\"",
    );
    let loaded = load_str(&source, Path::new("trainwatch.toml"), &env);
    assert!(loaded.is_ok(), "{}", loaded.unwrap_err());
}

#[test]
fn a_cron_field_in_error_is_quoted_as_written_with_the_fix() {
    let with_schedule = |schedule: &str| {
        format!(
            "[samsara]\ntoken = \"t\"\n{}",
            VALID_JOB.replace("0 8 * * Mon", schedule)
        )
    };
    let found: Vec<String> = [
        "0 8 * * Monday",
        "0 8 * * Monday-Friday",
        "0 8 1 September *",
        "0 25 * * *",
        "0 0 8 * * Mnday",
    ]
    .iter()
    .map(|s| messages(&with_schedule(s)).join("\n"))
    .collect();
    insta::assert_snapshot!(found.join("\n"), @r"
    6:12 schedule `0 8 * * Monday`: the WEEKDAY field `Monday` is not valid: use `Mon` (names have three letters), as in `0 8 * * Mon`
    6:12 schedule `0 8 * * Monday-Friday`: the WEEKDAY field `Monday-Friday` is not valid: use `Mon-Fri` (names have three letters), as in `0 8 * * Mon-Fri`
    6:12 schedule `0 8 1 September *`: the MONTH field `September` is not valid: use `Sep` (names have three letters), as in `0 8 1 Sep *`
    6:12 schedule `0 25 * * *`: the HOUR field `25` is not valid: it takes 0-23, `*`, lists `1,3`, ranges `1-5` and steps `*/2` (fields: MIN HOUR DAY MONTH WEEKDAY)
    6:12 schedule `0 0 8 * * Mnday`: the WEEKDAY field `Mnday` is not valid: it takes 0-7 or Sun-Sat (0 and 7 are Sunday), `*`, lists `1,3`, ranges `1-5` and steps `*/2` (fields: SEC MIN HOUR DAY MONTH WEEKDAY)
    ");
}

#[test]
fn csv_excel_without_an_attachment_says_what_is_missing() {
    let source = format!(
        "[samsara]\ntoken = \"t\"\n[smtp]\nhost = \"mail\"\nfrom = \"r@example.com\"\n{}",
        VALID_JOB.replace(
            "deliver = [{ archive = { dir = \"out\" } }]",
            "deliver = [{ email = { to = [\"ops@example.com\"], csv_excel = true } }]"
        )
    );
    insta::assert_snapshot!(messages(&source).join("\n"), @"11:62 `csv_excel` shapes the attached CSV, but this email attaches none: add `attach_csv = true`");
}

#[test]
fn validate_renders_webhook_templates_and_reports_them_at_the_delivery_template() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("weekly.slack.json"),
        r#"{"text": "{{ totals.overdu }} overdue", "blocks": []}"#,
    )
    .unwrap();
    let source = format!(
        r#"templates_dir = {:?}
[samsara]
token = "t"
[webhooks.safety]
kind = "slack"
url = "https://hooks.slack.invalid/T0/B0/X"
[[jobs]]
name = "daily"
schedule = "0 9 * * *"
window = {{ previous = "day" }}
deliver = [{{ webhook = "safety", template = "weekly" }}]
"#,
        dir.path().display().to_string()
    );
    insta::assert_snapshot!(errors(&source).to_string(), @"trainwatch.toml:11:45: template `weekly` does not render for webhook safety: weekly.slack.json:1:21: Field `overdu` is not defined. Available fields: assignments, completed, completed_late, completion_rate, deleted, in_progress, learners, not_started, other, overdue");
}
