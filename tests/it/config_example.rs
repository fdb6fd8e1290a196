//! The example `config.toml` is a tested artifact: it loads, and it shows
//! every key the README documents (and the README documents every key it shows).

use std::collections::BTreeSet;

use trainwatch::check::load_str;
use trainwatch::config::Delivery;
use trainwatch::window::WindowSpec;

const EXAMPLE: &str = include_str!("../../config.toml");
const README: &str = include_str!("../../README.md");

/// The variables the example reads, with made-up values.
fn env(name: &str) -> Option<String> {
    let value = match name {
        "SAMSARA_API_TOKEN" => "samsara-token",
        "SMTP_USERNAME" => "reports",
        "SMTP_PASSWORD" => "smtp-password",
        "SLACK_WEBHOOK_URL" => "https://hooks.slack.com/services/T0/B0/x",
        "TEAMS_WEBHOOK_URL" => "https://example.webhook.office.com/workflows/x",
        "WAREHOUSE_WEBHOOK_URL" => "https://warehouse.example.com/hooks/trainwatch",
        "WAREHOUSE_WEBHOOK_SECRET" => "hmac-key",
        _ => return None,
    };
    Some(value.to_string())
}

#[test]
fn the_example_config_resolves() {
    // templates_dir must exist; put the example next to one.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    let path = dir.path().join("config.toml");
    let config = load_str(EXAMPLE, &path, &env).unwrap_or_else(|e| panic!("{e}"));

    let names: Vec<&str> = config.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "weekly-overdue",
            "daily-slack-digest",
            "monthly-audit",
            "north-yard-changes",
            "q1-2026-audit"
        ]
    );
    let weekly = config.job("weekly-overdue").unwrap();
    // Every team: those of [teams], and those made from tags at run time.
    assert_eq!(
        weekly.filters.teams,
        ["dock", "night-shift", "north-yard", "south-yard"]
    );
    assert!(weekly.filters.every_team);
    assert_eq!(weekly.window, WindowSpec::Current);
    assert_eq!(weekly.source, trainwatch::config::Source::Mirror);
    assert!(matches!(
        config.job("daily-slack-digest").unwrap().window,
        WindowSpec::Last(_)
    ));
    assert_eq!(
        config.job("q1-2026-audit").unwrap().source,
        trainwatch::config::Source::Api
    );
    let audit = config.job("monthly-audit").unwrap();
    assert!(matches!(&audit.deliver[0], Delivery::Archive(a) if a.dir == dir.path().join("audit")));
    assert_eq!(config.webhooks.len(), 3);
    assert_eq!(config.teams.len(), 4);
    assert_eq!(config.teams_from_tags.as_ref().unwrap().parent, "Regions");
}

#[test]
fn the_example_needs_exactly_the_documented_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    let err = load_str(EXAMPLE, &dir.path().join("config.toml"), &|_| None).unwrap_err();
    let missing: BTreeSet<&str> = err
        .problems
        .iter()
        .filter_map(|p| p.message.strip_prefix("environment variable "))
        .filter_map(|m| m.split(' ').next())
        .collect();
    let supplied: BTreeSet<&str> = [
        "SAMSARA_API_TOKEN",
        "SMTP_USERNAME",
        "SMTP_PASSWORD",
        "SLACK_WEBHOOK_URL",
        "TEAMS_WEBHOOK_URL",
        "WAREHOUSE_WEBHOOK_URL",
        "WAREHOUSE_WEBHOOK_SECRET",
    ]
    .into();
    assert_eq!(missing, supplied);
}

/// First cells of the table under `## Configuration reference`, without backticks.
fn documented_keys() -> BTreeSet<String> {
    let section = README
        .split("## Configuration reference")
        .nth(1)
        .expect("README has a `## Configuration reference` section");
    let section = section.split("\n## ").next().unwrap();
    let keys: BTreeSet<String> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(key, _)| key.to_string())
        .collect();
    assert!(
        keys.len() > 40,
        "the reference table looks truncated: {keys:?}"
    );
    keys
}

/// Every key path the example uses, `(path, is_leaf)`. Names chosen by the
/// user become `NAME`; `on_failure` entries count as `deliver` entries.
fn example_keys() -> BTreeSet<(String, bool)> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut BTreeSet<(String, bool)>) {
        for (key, value) in table {
            let key = if matches!(prefix, "webhooks" | "teams") {
                "NAME"
            } else {
                key
            };
            let path = if prefix.is_empty() {
                key.to_string()
            } else {
                format!("{prefix}.{key}")
            };
            let normalized = path.replace("jobs.on_failure.", "jobs.deliver.");
            match value {
                // A map of the user's names (tag name = mailbox) is one key.
                toml::Value::Table(_) if normalized == "teams_from_tags.managers" => {
                    out.insert((normalized, true));
                }
                toml::Value::Table(inner) => {
                    out.insert((normalized.clone(), false));
                    walk(&normalized, inner, out);
                }
                toml::Value::Array(items)
                    if items.iter().all(toml::Value::is_table) && !items.is_empty() =>
                {
                    out.insert((normalized.clone(), false));
                    for item in items {
                        walk(&normalized, item.as_table().unwrap(), out);
                    }
                }
                _ => {
                    out.insert((normalized, true));
                }
            }
        }
    }
    let table: toml::Table = toml::from_str(EXAMPLE).expect("the example is valid TOML");
    let mut out = BTreeSet::new();
    walk("", &table, &mut out);
    out
}

#[test]
fn every_documented_key_appears_in_the_example() {
    let shown: BTreeSet<String> = example_keys().into_iter().map(|(k, _)| k).collect();
    let missing: Vec<String> = documented_keys()
        .into_iter()
        .filter(|k| !shown.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "documented in README.md but not shown in config.toml: {missing:?}"
    );
}

#[test]
fn every_key_in_the_example_is_documented() {
    let documented = documented_keys();
    let undocumented: Vec<String> = example_keys()
        .into_iter()
        .filter(|(k, leaf)| *leaf && !documented.contains(k))
        .map(|(k, _)| k)
        .collect();
    assert!(
        undocumented.is_empty(),
        "shown in config.toml but not documented in README.md: {undocumented:?}"
    );
}
