//! Every mistake in a config file is reported at once, at its line and column.

use std::path::Path;

use trainwatch::config::{ConfigErrors, load_str};

const TOKEN: &str = "tok-SECRET-4b1d";
const PASSWORD: &str = "pw-SECRET-77aa";
const HOOK: &str = "https://hooks.slack.com/services/T000/B000/SECRET-c0ffee";

fn env(name: &str) -> Option<String> {
    match name {
        "SAMSARA_API_TOKEN" => Some(TOKEN.into()),
        "SMTP_PASSWORD" => Some(PASSWORD.into()),
        "SLACK_WEBHOOK_URL" => Some(HOOK.into()),
        _ => None,
    }
}

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
    let source = include_str!("fixtures/config/five_mistakes.toml");
    // The missing variable is SLACK_WEBHOOK_URL: leave it out of this environment.
    let env = |name: &str| (name == "SAMSARA_API_TOKEN").then(|| TOKEN.to_string());
    let err = load_str(source, Path::new("five_mistakes.toml"), &env).unwrap_err();
    insta::assert_snapshot!(err.to_string(), @r"
    five_mistakes.toml:1:12: unknown timezone `America/Chicgo`: use an IANA name like `America/Chicago` or `UTC`; did you mean `America/Chicago`?
    five_mistakes.toml:8:7: environment variable SLACK_WEBHOOK_URL is not set (used by webhooks.safety-channel.url)
    five_mistakes.toml:12:1: unknown key `shedule` in [[jobs]] (expected one of: name, schedule, timezone, window, filters, per_team, when_empty, deliver, on_failure); did you mean `schedule`?
    five_mistakes.toml:14:24: no webhook `safety-chanel` in [webhooks] (defined: safety-channel); did you mean `safety-channel`?
    five_mistakes.toml:18:12: schedule `0 8 * * Mnday` is not a valid cron expression: it contains illegal character 'M' in part 'MNDAY'; expected 5 fields `MIN HOUR DAY MONTH WEEKDAY` (like `0 8 * * Mon`) or 6 with seconds first `SEC MIN HOUR DAY MONTH WEEKDAY` (like `30 0 8 * * Mon`)
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
    let err = trainwatch::config::load(Path::new("/no/such/dir/trainwatch.toml")).unwrap_err();
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
