//! Escalation in the outbox: a `min_days_overdue` delivery is addressed and
//! rendered from its own narrowed report, `when_empty` applies to that
//! report, and a `{{ team.escalation }}` delivery for a team without one is
//! skipped with a reason while the other teams are sent.

use chrono::{DateTime, Duration, Utc};
use trainwatch::config;
use trainwatch::job;
use trainwatch::outbox::{self, Payload};
use trainwatch::render::Renderer;
use trainwatch::samsara::Assignment;
use trainwatch::window::Window;

const CONFIG: &str = r#"
timezone = "America/Chicago"
state_dir = "state"
[samsara]
base_url = "http://127.0.0.1:9"
token = "t"
[mirror]
enabled = false
[smtp]
host = "127.0.0.1"
security = "none"
from = "Reports <reports@example.com>"
[teams.north]
learners = ["1", "2"]
manager = "North Manager <north@example.com>"
escalation = "Safety Director <safety@example.com>"
[teams.south]
learners = ["3"]
manager = "South Manager <south@example.com>"
escalation = "Safety Director <safety@example.com>"
[teams.east]
learners = ["4"]
manager = "East Manager <east@example.com>"
escalation = "Safety Director <safety@example.com>"
[[jobs]]
name = "weekly"
schedule = "0 8 * * Mon"
window = { last = "365d" }
filters = { overdue = true }
per_team = true
deliver = [
  { email = { to = ["{{ team.manager }}"], template = "overdue" } },
  { email = { to = ["{{ team.escalation }}"], template = "escalation" }, min_days_overdue = 30 },
]
"#;

fn fire() -> DateTime<Utc> {
    "2026-11-23T14:00:00Z".parse().unwrap()
}

fn overdue(id: &str, learner: &str, days: i64) -> Assignment {
    let t = |d: DateTime<Utc>| d.to_rfc3339();
    serde_json::from_value(serde_json::json!({
        "id": id,
        "course": {"id": "c"},
        "learner": {"id": learner, "type": "driver"},
        "status": "notStarted",
        "createdAtTime": t(fire() - Duration::days(100)),
        "updatedAtTime": t(fire() - Duration::days(1)),
        "durationMinutes": 0,
        "dueAtTime": t(fire() - Duration::days(days) - Duration::hours(1)),
        "isOverdue": true,
    }))
    .unwrap()
}

#[test]
fn the_escalation_goes_only_where_something_is_overdue_long_enough_and_a_contact_exists() {
    let mut config = config::load_str(CONFIG, "t.toml".as_ref(), &|_| None).unwrap();
    // A team without an escalation contact (as teams from tags may come).
    config.teams.get_mut("south").unwrap().escalation = None;
    let job = config.job("weekly").unwrap().clone();
    let window = Window {
        start: fire() - Duration::days(365),
        end: fire(),
    };
    let data = crate::common::held_data(
        &config,
        &job,
        window,
        vec![
            overdue("n-45", "1", 45),
            overdue("n-5", "2", 5),
            overdue("s-60", "3", 60),
            overdue("e-10", "4", 10),
        ],
    );
    let renderer = Renderer::new(None).unwrap();

    let reports = job::reports(&config, &job, &data, fire());
    let built = outbox::build(&config, &job, data.window, &reports, &renderer).unwrap();

    let sent: Vec<(String, String, String)> = built
        .items
        .iter()
        .map(|i| {
            (
                i.team.clone().unwrap(),
                i.target.clone(),
                i.recipient.clone(),
            )
        })
        .collect();
    assert_eq!(
        sent,
        [
            (
                "east".into(),
                "email overdue".into(),
                "East Manager <east@example.com>".into()
            ),
            (
                "north".into(),
                "email overdue".into(),
                "North Manager <north@example.com>".into()
            ),
            (
                "north".into(),
                "email escalation".into(),
                "Safety Director <safety@example.com>".into()
            ),
            (
                "south".into(),
                "email overdue".into(),
                "South Manager <south@example.com>".into()
            ),
        ]
    );
    // The north escalation lists only the 45-day one; the manager sees both.
    let email = |target: &str| {
        built
            .items
            .iter()
            .find(|i| i.team.as_deref() == Some("north") && i.target == target)
            .map(|i| match &i.payload {
                Payload::Email(e) => e.text.clone(),
                _ => panic!("an email"),
            })
            .unwrap()
    };
    assert!(email("email escalation").contains("45 days overdue"));
    assert!(!email("email escalation").contains(", 5 days overdue"));
    assert!(email("email overdue").contains(", 5 days overdue"));
    let skipped: Vec<(String, String)> = built
        .skipped
        .iter()
        .map(|s| (s.team.clone().unwrap(), s.reason.clone()))
        .collect();
    assert_eq!(
        skipped,
        [
            (
                "east".into(),
                "nothing overdue 30 days or more (min_days_overdue = 30, when_empty = \"skip\")"
                    .into()
            ),
            (
                "south".into(),
                "delivery 2 (email) not sent: the team has no escalation for its `{{ team.escalation }}` recipient"
                    .into()
            ),
        ]
    );
}

#[test]
fn validate_refuses_an_escalation_delivery_for_a_team_without_a_contact() {
    let source = CONFIG.replace(
        "manager = \"South Manager <south@example.com>\"\nescalation = \"Safety Director <safety@example.com>\"\n",
        "manager = \"South Manager <south@example.com>\"\n",
    );
    let errors = trainwatch::check::load_str(&source, "t.toml".as_ref(), &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("is empty for team south, which has no `escalation`"),
        "{errors}"
    );
}
