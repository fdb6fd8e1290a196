//! The `retention` key: how long delivered payloads stay in the ledger.

use std::path::Path;
use std::time::Duration;

use trainwatch::check::load_str;

const JOB: &str = r#"
[samsara]
token = "t"

[webhooks.hook]
kind = "json"
url = "https://example.com/hook"

[[jobs]]
name = "weekly"
schedule = "0 8 * * Mon"
window = { last = "7d" }
deliver = [{ webhook = "hook" }]
"#;

fn load(top: &str) -> Result<trainwatch::config::Config, String> {
    load_str(
        &format!("{top}\n{JOB}"),
        Path::new("/etc/trainwatch/config.toml"),
        &|_| None,
    )
    .map_err(|e| e.to_string())
}

#[test]
fn retention_defaults_to_ninety_days() {
    assert_eq!(load("").unwrap().retention, Duration::from_secs(90 * 86400));
}

#[test]
fn retention_takes_a_duration_and_zero() {
    assert_eq!(
        load(r#"retention = "2w""#).unwrap().retention,
        Duration::from_secs(14 * 86400)
    );
    assert_eq!(
        load(r#"retention = "0""#).unwrap().retention,
        Duration::ZERO
    );
}

#[test]
fn a_retention_that_is_not_a_duration_is_a_config_error_at_its_place() {
    let err = load(r#"retention = "forever""#).unwrap_err();
    assert!(err.contains("config.toml:1:"), "{err}");
}
