//! What a valid config resolves to: defaults, windows, filters, deliveries.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use trainwatch::check::load_str;
use trainwatch::config::{
    Config, Delivery, EmailDelivery, SmtpSecurity, WebhookDelivery, WebhookKind, WhenEmpty,
};
use trainwatch::learner::LearnerId;
use trainwatch::samsara::Status;
use trainwatch::window::{Period, WindowSpec};

use crate::common;

use common::secrets::{HOOK, PASSWORD, TOKEN, env};

fn load(source: &str) -> Config {
    load_str(source, Path::new("/etc/trainwatch/config.toml"), &env)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A minimal config with one job whose `key = value` lines are `job`.
fn with_job(job: &str) -> Config {
    load(&format!("{MINIMAL}{job}\n"))
}

const MINIMAL: &str = r#"
[samsara]
token = "${SAMSARA_API_TOKEN}"

[teams.b-team]
learners = ["1"]

[teams.a-team]
learners = ["user-2"]

[[jobs]]
name = "j"
schedule = "0 8 * * Mon"
deliver = [{ archive = { dir = "out" } }]
"#;

fn window_of(line: &str) -> WindowSpec {
    with_job(line).jobs[0].window.clone()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn a_minimal_config_gets_every_default() {
    let config = with_job("window = { last = \"7d\" }");
    assert_eq!(config.timezone, chrono_tz::UTC);
    assert_eq!(config.state_dir, PathBuf::from("/etc/trainwatch/state"));
    assert_eq!(config.templates_dir, None);
    assert_eq!(config.catch_up, Duration::from_secs(6 * 3600));
    assert!(config.server.is_none());
    assert!(config.smtp.is_none());

    let s = &config.samsara;
    assert_eq!(s.base_url.as_str(), "https://api.samsara.com/");
    assert_eq!(s.token.expose_secret(), TOKEN);
    assert_eq!(s.requests_per_second, 5);
    assert_eq!(s.timeout, Duration::from_secs(60));
    assert_eq!(s.api_version, None);
    assert_eq!(s.max_attempts, 6);
    assert_eq!(s.max_retry_time, Duration::from_secs(120));

    let job = &config.jobs[0];
    assert_eq!(job.timezone, chrono_tz::UTC);
    assert_eq!(job.filters, Default::default());
    assert!(!job.filters.include_deleted);
    assert!(!job.per_team);
    assert_eq!(job.when_empty, WhenEmpty::Skip);
    assert!(job.on_failure.is_empty());
    assert_eq!(
        job.deliver,
        [Delivery::Archive(trainwatch::config::ArchiveDelivery {
            dir: PathBuf::from("/etc/trainwatch/out")
        })]
    );
}

#[test]
fn smtp_defaults_follow_security() {
    let smtp = |extra: &str| {
        load(&format!(
            "[samsara]\ntoken = \"t\"\n[smtp]\nhost = \"mail\"\nfrom = \"a@example.com\"\n{extra}\n[[jobs]]\nname = \"j\"\nschedule = \"0 8 * * Mon\"\nwindow = {{ last = \"7d\" }}\ndeliver = [{{ email = {{ to = [\"b@example.com\"] }} }}]\non_failure = [{{ email = {{ to = [\"c@example.com\"] }} }}]\n"
        ))
    };
    let config = smtp("");
    let s = config.smtp.as_ref().unwrap();
    assert_eq!((s.security, s.port), (SmtpSecurity::StartTls, 587));
    assert_eq!(s.timeout, Duration::from_secs(30));
    assert_eq!((s.username.as_deref(), s.password.is_none()), (None, true));
    let job = &config.jobs[0];
    assert_eq!(
        job.deliver,
        [Delivery::Email(EmailDelivery {
            to: vec!["b@example.com".into()],
            cc: vec![],
            bcc: vec![],
            subject: None,
            template: "digest".into(),
            attach_csv: false,
            csv_excel: false,
        })]
    );
    let Delivery::Email(failure) = &job.on_failure[0] else {
        panic!()
    };
    assert_eq!(failure.template, "failure");

    let tls = smtp("security = \"tls\"");
    assert_eq!(tls.smtp.as_ref().unwrap().port, 465);
    let plain = smtp("security = \"none\"");
    assert_eq!(plain.smtp.as_ref().unwrap().security, SmtpSecurity::None);
    assert_eq!(plain.smtp.as_ref().unwrap().port, 25);
    let explicit = smtp("security = \"tls\"\nport = 2465");
    assert_eq!(explicit.smtp.as_ref().unwrap().port, 2465);
}

#[test]
fn webhook_deliveries_default_to_the_digest_without_assignments() {
    let config = load(
        r#"
[samsara]
token = "t"
[webhooks.chan]
kind = "msteams"
url = "${SLACK_WEBHOOK_URL}"
[[jobs]]
name = "j"
schedule = "0 8 * * Mon"
window = { last = "7d" }
deliver = [{ webhook = "chan" }]
"#,
    );
    assert_eq!(
        config.jobs[0].deliver,
        [Delivery::Webhook(WebhookDelivery {
            webhook: "chan".into(),
            template: "digest".into(),
            include_assignments: false,
        })]
    );
    let hook = &config.webhooks["chan"];
    assert_eq!(hook.kind, WebhookKind::MsTeams);
    assert_eq!(hook.url.expose_secret(), HOOK);
}

#[test]
fn a_last_window_is_a_duration() {
    assert_eq!(
        window_of("window = { last = \"7d\" }"),
        WindowSpec::Last(Duration::from_secs(7 * 86_400))
    );
}

#[test]
fn a_previous_window_is_a_calendar_period() {
    assert_eq!(
        window_of("window = { previous = \"quarter\" }"),
        WindowSpec::Previous(Period::Quarter)
    );
}

#[test]
fn a_since_last_run_window_reaches_back_30_days_by_default() {
    assert_eq!(
        window_of("window = { since_last_run = true }"),
        WindowSpec::SinceLastRun {
            max: Duration::from_secs(30 * 86_400)
        }
    );
    assert_eq!(
        window_of("window = { since_last_run = true, max = \"2w\" }"),
        WindowSpec::SinceLastRun {
            max: Duration::from_secs(14 * 86_400)
        }
    );
}

#[test]
fn a_fixed_window_takes_toml_datetimes_and_rfc3339_strings() {
    assert_eq!(
        window_of("window = { start = 2026-01-01T00:00:00-06:00, end = \"2026-04-01T00:00:00Z\" }"),
        WindowSpec::Fixed {
            start: utc("2026-01-01T06:00:00Z"),
            end: utc("2026-04-01T00:00:00Z")
        }
    );
    // A standard [jobs.window] table works as well as an inline one.
    assert_eq!(
        window_of("[jobs.window]\nstart = 2026-01-01T00:00:00Z\nend = 2026-01-02T00:00:00Z"),
        WindowSpec::Fixed {
            start: utc("2026-01-01T00:00:00Z"),
            end: utc("2026-01-02T00:00:00Z")
        }
    );
}

#[test]
fn per_team_without_a_team_filter_means_every_team_sorted() {
    let job = &with_job("window = { last = \"7d\" }\nper_team = true").jobs[0];
    assert!(job.per_team);
    assert_eq!(job.filters.teams, ["a-team", "b-team"]);
}

#[test]
fn per_team_with_a_team_filter_keeps_the_filter() {
    let job =
        &with_job("window = { last = \"7d\" }\nper_team = true\nfilters = { team = \"b-team\" }")
            .jobs[0];
    assert_eq!(job.filters.teams, ["b-team"]);
}

#[test]
fn team_and_teams_filters_are_merged() {
    let job = &with_job(
        "window = { last = \"7d\" }\nfilters = { team = \"b-team\", teams = [\"a-team\", \"b-team\"], status = [\"completed\", \"notStarted\"], learners = [\"42\", \"user-7\"], overdue = false, include_deleted = true }",
    )
    .jobs[0];
    assert_eq!(job.filters.teams, ["b-team", "a-team"]);
    assert_eq!(job.filters.status, [Status::Completed, Status::NotStarted]);
    assert_eq!(
        job.filters.learners,
        [
            LearnerId::parse("driver-42").unwrap(),
            LearnerId::parse("user-7").unwrap()
        ]
    );
    assert_eq!(job.filters.overdue, Some(false));
    assert!(job.filters.include_deleted);
}

#[test]
fn five_and_six_field_schedules_fire_on_whole_seconds_and_day_names_ignore_case() {
    use chrono::TimeZone;
    let after = Utc.with_ymd_and_hms(2026, 3, 4, 12, 0, 0).unwrap(); // a Wednesday
    for (expr, expected) in [
        ("0 8 * * Mon", "2026-03-09T08:00:00Z"),
        ("0 8 * * mon", "2026-03-09T08:00:00Z"),
        ("0 8 * * MON-fri", "2026-03-05T08:00:00Z"),
        ("30 0 8 * * Mon", "2026-03-09T08:00:30Z"),
    ] {
        let config = with_job(&format!(
            "window = {{ last = \"7d\" }}\n[[jobs]]\nname = \"k\"\nschedule = \"{expr}\"\nwindow = {{ last = \"1d\" }}\ndeliver = [{{ archive = {{ dir = \"x\" }} }}]"
        ));
        let schedule = &config.jobs[1].schedule;
        assert_eq!(schedule.expr, expr);
        let next = schedule.cron.find_next_occurrence(&after, false).unwrap();
        assert_eq!(next, utc(expected), "{expr}");
    }
}

#[test]
fn a_job_timezone_overrides_the_top_level_one() {
    let config = load(
        "timezone = \"Europe/Berlin\"\n[samsara]\ntoken = \"t\"\n[[jobs]]\nname = \"a\"\nschedule = \"0 8 * * *\"\nwindow = { last = \"1d\" }\ndeliver = [{ archive = { dir = \"x\" } }]\n[[jobs]]\nname = \"b\"\ntimezone = \"America/Chicago\"\nschedule = \"0 8 * * *\"\nwindow = { last = \"1d\" }\ndeliver = [{ archive = { dir = \"x\" } }]\n",
    );
    assert_eq!(config.jobs[0].timezone, chrono_tz::Europe::Berlin);
    assert_eq!(config.jobs[1].timezone, chrono_tz::America::Chicago);
}

#[test]
fn a_base_url_with_a_path_keeps_it_when_endpoints_are_joined() {
    let config = load(
        "[samsara]\ntoken = \"t\"\nbase_url = \"http://127.0.0.1:8080/mock\"\n[[jobs]]\nname = \"a\"\nschedule = \"0 8 * * *\"\nwindow = { last = \"1d\" }\ndeliver = [{ archive = { dir = \"x\" } }]\n",
    );
    let url = config
        .samsara
        .base_url
        .join("training-assignments/stream")
        .unwrap();
    assert_eq!(
        url.as_str(),
        "http://127.0.0.1:8080/mock/training-assignments/stream"
    );
}

#[test]
fn debug_output_of_a_config_redacts_every_secret() {
    let config = load(
        r#"
[samsara]
token = "${SAMSARA_API_TOKEN}"
[smtp]
host = "mail"
from = "a@example.com"
username = "u"
password = "${SMTP_PASSWORD}"
[webhooks.chan]
kind = "json"
url = "${SLACK_WEBHOOK_URL}"
secret = "${SMTP_PASSWORD}"
[[jobs]]
name = "j"
schedule = "0 8 * * Mon"
window = { last = "7d" }
deliver = [{ webhook = "chan" }]
"#,
    );
    let debug = format!("{config:?}");
    for secret in [TOKEN, PASSWORD, HOOK] {
        assert!(!debug.contains(secret), "{secret} leaked into {debug}");
    }
    assert!(debug.contains("REDACTED"), "{debug}");
}

#[test]
fn a_template_file_in_templates_dir_can_be_named_by_a_delivery() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tpl")).unwrap();
    std::fs::write(dir.path().join("tpl/weekly-ops.html.tera"), "").unwrap();
    let source = r#"
templates_dir = "tpl"
[samsara]
token = "t"
[webhooks.w]
kind = "json"
url = "https://example.com/x"
[[jobs]]
name = "j"
schedule = "0 8 * * Mon"
window = { last = "7d" }
deliver = [{ webhook = "w", template = "weekly-ops" }, { webhook = "w", template = "audit" }]
"#;
    let config =
        load_str(source, &dir.path().join("config.toml"), &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.templates_dir, Some(dir.path().join("tpl")));
    let Delivery::Webhook(first) = &config.jobs[0].deliver[0] else {
        panic!()
    };
    assert_eq!(first.template, "weekly-ops");

    let err = load_str(source, &dir.path().join("elsewhere/config.toml"), &env).unwrap_err();
    assert!(
        err.to_string().contains("2:17: cannot read templates_dir"),
        "{err}"
    );
}

#[test]
fn paths_resolve_the_same_however_the_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let source = r#"state_dir = "../state/./db"
[samsara]
token = "t"
[[jobs]]
name = "j"
schedule = "0 8 * * *"
window = { last = "1d" }
deliver = [{ archive = { dir = "audit/../snapshots" } }]
"#;
    std::fs::write(dir.path().join("sub/config.toml"), source).unwrap();
    let plain = dir.path().join("sub/config.toml");
    let winding = dir.path().join("sub/./../sub/config.toml");

    let a = trainwatch::check::load(&plain).unwrap();
    let b = trainwatch::check::load(&winding).unwrap();

    let real = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(a.state_dir, real.join("state/db"));
    assert_eq!(a.state_dir, b.state_dir);
    let archive = |c: &trainwatch::config::Config| match &c.jobs[0].deliver[0] {
        trainwatch::config::Delivery::Archive(x) => x.dir.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(archive(&a), real.join("sub/snapshots"));
    assert_eq!(archive(&a), archive(&b));
}
