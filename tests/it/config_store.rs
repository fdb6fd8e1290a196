//! `[store]`: a Postgres URL is a secret (never quoted in a problem), must
//! be a postgres:// URL, and the lease cannot be zero; `url = ""` is SQLite.

use std::path::Path;

use secrecy::ExposeSecret as _;
use trainwatch::config::{Config, ConfigErrors};

fn load(store: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    let source = format!(
        r#"
[store]
{store}

[samsara]
token = "t"

[webhooks.w]
kind = "json"
url = "http://127.0.0.1:9/hook"

[[jobs]]
name = "daily"
schedule = "0 8 * * *"
window = {{ last = "1d" }}
deliver = [{{ webhook = "w" }}]
"#
    );
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    trainwatch::check::load_str(&source, Path::new("/tmp/t.toml"), &move |name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
}

#[test]
fn a_postgres_url_reads_its_password_from_the_environment_and_keeps_it_secret() {
    let config = load(
        r#"url = "postgres://trainwatch:${PGPASSWORD}@db.internal/trainwatch?sslmode=require"
lease = "30s""#,
        &[("PGPASSWORD", "s3cret-pw")],
    )
    .unwrap();
    let url = config.store.url.as_ref().expect("a Postgres store");
    assert!(url.expose_secret().contains("s3cret-pw"));
    assert!(
        !format!("{config:?}").contains("s3cret-pw"),
        "redacted in Debug"
    );
    assert_eq!(config.store.lease, std::time::Duration::from_secs(30));
}

#[test]
fn no_url_or_an_empty_one_keeps_sqlite_with_a_two_minute_lease() {
    for store in ["", r#"url = """#] {
        let config = load(store, &[]).unwrap();
        assert!(config.store.url.is_none());
        assert_eq!(config.store.lease, std::time::Duration::from_secs(120));
    }
}

#[test]
fn a_url_that_is_not_postgres_and_a_lease_under_a_second_are_problems_that_never_show_the_url() {
    let err = load(
        r#"url = "mysql://root:${PGPASSWORD}@db/x"
lease = "0s""#,
        &[("PGPASSWORD", "s3cret-pw")],
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`url` must be a postgres:// or postgresql:// URL"),
        "{text}"
    );
    assert!(text.contains("longer than 0"), "{text}");
    assert!(!text.contains("s3cret-pw"), "{text}");
}
