//! Postgres for the tests: a fresh database per test on the server
//! `TRAINWATCH_TEST_PG_URL` names.

use std::sync::atomic::Ordering;

use chrono::Utc;
use secrecy::SecretString;

use super::chain;

/// The variable that points the tests at a Postgres server (`.ci/postgres.sh` sets it).
pub const TEST_URL_VAR: &str = "TRAINWATCH_TEST_PG_URL";

/// For tests: a new, empty database on the server `TRAINWATCH_TEST_PG_URL`
/// names, and its URL. Without that variable it says loudly how to enable
/// the Postgres tests and returns `None`, and under CI (`CI=true`) it
/// panics, so that CI never passes them silently.
pub fn test_database(test: &str) -> Option<SecretString> {
    let Ok(base) = std::env::var(TEST_URL_VAR) else {
        let message = format!(
            "{test}: SKIPPED on Postgres: {TEST_URL_VAR} is not set. Start a throwaway server with \
             `eval \"$(bash .ci/postgres.sh)\"` (installs Debian's postgresql when missing) and run the tests again"
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message} (CI=true: the Postgres tests must run in CI)");
        }
        // Straight to stderr, past the test harness's capture: a skipped
        // backend must be seen, not found later in a passing log.
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "\n!!!!! {message}\n");
        return None;
    };
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = format!(
        "tw_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst),
        Utc::now().timestamp_micros()
    );
    let create = {
        let (base, name) = (base.clone(), name.clone());
        // A thread of its own: the caller may be inside a runtime.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| chain(&e))?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .map_err(|e| chain(&e))
            })
        })
        .join()
        .expect("creating a test database")
    };
    if let Err(e) = create {
        panic!("{TEST_URL_VAR} is set, but creating a test database there failed: {e}");
    }
    let mut url = url::Url::parse(&base).expect("TRAINWATCH_TEST_PG_URL is a URL");
    url.set_path(&format!("/{name}"));
    Some(SecretString::from(url.to_string()))
}
