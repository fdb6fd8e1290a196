//! `trainwatch store migrate`: the SQLite store in `state_dir` copied into
//! Postgres with the real binary. What was delivered is never sent again
//! from Postgres, what was pending is still due there, history is the same,
//! and a second copy into the same database is refused.

use assert_cmd::cargo::CommandCargoExt;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret as _;
use trainwatch::store::{Attempt, Claim, NewDelivery, Store, postgres::PgStore};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn delivery(key: &str) -> NewDelivery<'_> {
    NewDelivery {
        key,
        job: "weekly",
        window: (t("2026-03-02T06:00:00Z"), t("2026-03-09T05:00:00Z")),
        target: "email overdue",
        recipient: "dana@example.com",
        payload: "{}",
    }
}

#[test]
fn a_sqlite_store_copied_into_postgres_never_sends_a_delivered_key_again() {
    let Some(url) = crate::support::postgres("store_migrate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let now = t("2026-03-09T14:00:00Z");
    let sqlite = Store::open(&state).unwrap();
    let run = sqlite.begin_run("weekly", now, now).unwrap();
    sqlite.set_window(run, delivery("a").window, 7).unwrap();
    sqlite
        .enqueue(run, &[delivery("sent"), delivery("unsent")], now)
        .unwrap();
    let ok = Attempt {
        attempts: 1,
        parts_done: 1,
        error: None,
        transient: false,
    };
    sqlite.record("sent", run, &ok, now).unwrap();
    let before = sqlite.runs(None, 10).unwrap();
    drop(sqlite);

    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "{}"
[store]
url = "{}"
[samsara]
token = "t"
[webhooks.w]
kind = "json"
url = "http://127.0.0.1:9/hook"
[[jobs]]
name = "weekly"
schedule = "0 8 * * Mon"
window = {{ last = "7d" }}
deliver = [{{ webhook = "w" }}]
"#,
            state.display(),
            url.expose_secret()
        ),
    )
    .unwrap();
    let migrate = || {
        std::process::Command::cargo_bin("trainwatch")
            .unwrap()
            .arg("--config")
            .arg(&config)
            .args(["store", "migrate"])
            .output()
            .unwrap()
    };
    let out = migrate();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("copied 1 run and 2 deliveries"), "{stdout}");
    assert!(stdout.contains("1 delivery pending"), "{stdout}");

    let pg = Store::Postgres(
        PgStore::open(&url, std::time::Duration::from_secs(60), "r".into()).unwrap(),
    );
    let after = pg.runs(None, 10).unwrap();
    assert_eq!(after.len(), before.len());
    assert_eq!(
        (
            after[0].id,
            after[0].deliveries,
            after[0].records,
            after[0].window
        ),
        (
            before[0].id,
            before[0].deliveries,
            before[0].records,
            before[0].window
        )
    );
    let again = pg.begin_run("weekly", now, now).unwrap();
    assert!(again > run, "new ids continue after the copied ones");
    assert!(matches!(
        pg.claim(again, &delivery("sent"), now).unwrap(),
        Claim::AlreadyDelivered { .. }
    ));
    let due: Vec<String> = pg
        .due("weekly", now)
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(due, ["unsent"]);

    let out = migrate();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already holds"), "{stderr}");
}
