//! The store's tests, run on SQLite and (when `TRAINWATCH_TEST_PG_URL`
//! is set) on Postgres; what only replicas sharing Postgres do is in
//! `replicas.rs`.

use rusqlite::Connection;

use super::sqlite::schema_version;
use super::*;

mod replicas;

/// Where a parameterised test keeps its store: a SQLite folder, or a
/// fresh Postgres database (when `TRAINWATCH_TEST_PG_URL` is set).
enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(secrecy::SecretString),
}

impl Place {
    /// Opens the store there (again: another process, or another replica).
    fn open(&self) -> Result<Store, StoreError> {
        match self {
            Self::Sqlite(dir) => Store::open(dir.path()),
            Self::Postgres(url) => {
                postgres::PgStore::open(url, crate::defaults::LEASE, replica_id(None))
                    .map(Store::Postgres)
            }
        }
    }
}

/// Every backend the test runs on: SQLite always, Postgres when configured.
fn places(test: &str) -> Vec<Place> {
    let mut out = vec![Place::Sqlite(tempfile::tempdir().unwrap())];
    out.extend(postgres::test_database(test).map(Place::Postgres));
    out
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn ok(attempts: u32, parts_done: u32) -> Attempt<'static> {
    Attempt {
        attempts,
        parts_done,
        error: None,
        transient: false,
    }
}

fn delivery<'a>(key: &'a str) -> NewDelivery<'a> {
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
fn a_delivered_key_is_never_claimed_for_sending_again_even_after_reopening() {
    for place in places("a_delivered_key_is_never_claimed_for_sending_again_even_after_reopening") {
        let now = t("2026-03-09T14:00:00Z");
        {
            let store = place.open().unwrap();
            let run = store.begin_run("weekly", now, now).unwrap();
            assert_eq!(
                store.claim(run, &delivery("k1"), now).unwrap(),
                Claim::Send {
                    attempts_before: 0,
                    parts_done: 0
                }
            );
            store.record("k1", run, &ok(2, 1), now).unwrap();
        }
        let store = place.open().unwrap();
        let run = store.begin_run("weekly", now, now).unwrap();
        assert_eq!(
            store.claim(run, &delivery("k1"), now).unwrap(),
            Claim::AlreadyDelivered { sent_at: Some(now) }
        );
        assert_eq!(store.deliveries("weekly").unwrap()[0].attempts, 2);
    }
}

#[test]
fn a_failed_delivery_is_tried_again_and_a_claimed_one_is_pending_until_recorded() {
    for place in
        places("a_failed_delivery_is_tried_again_and_a_claimed_one_is_pending_until_recorded")
    {
        let store = place.open().unwrap();
        let now = t("2026-03-09T14:00:00Z");
        let run = store.begin_run("weekly", now, now).unwrap();
        store.claim(run, &delivery("k1"), now).unwrap();
        store.claim(run, &delivery("k2"), now).unwrap();
        store
            .record(
                "k1",
                run,
                &Attempt {
                    attempts: 3,
                    parts_done: 2,
                    error: Some("part 3 of 4: 400 invalid_blocks"),
                    transient: false,
                },
                now,
            )
            .unwrap();
        assert_eq!(
            store
                .pending("weekly")
                .unwrap()
                .iter()
                .map(|d| d.key.as_str())
                .collect::<Vec<_>>(),
            ["k2"]
        );
        let again = store.begin_run("weekly", now, now).unwrap();
        assert_eq!(
            store.claim(again, &delivery("k1"), now).unwrap(),
            Claim::Send {
                attempts_before: 3,
                parts_done: 2
            },
            "a retry starts after the parts already confirmed"
        );
    }
}

#[test]
fn runs_are_listed_newest_first_with_their_delivery_counts_and_last_success() {
    for place in places("runs_are_listed_newest_first_with_their_delivery_counts_and_last_success")
    {
        let store = place.open().unwrap();
        let (a, b) = (t("2026-03-02T14:00:00Z"), t("2026-03-09T14:00:00Z"));
        let r1 = store.begin_run("weekly", a, a).unwrap();
        store.set_window(r1, (a, b), 12).unwrap();
        store.claim(r1, &delivery("k1"), a).unwrap();
        store.record("k1", r1, &ok(1, 1), a).unwrap();
        store.finish_run(r1, Outcome::Succeeded, None, a).unwrap();
        let r2 = store.begin_run("weekly", b, b).unwrap();
        store
            .finish_run(r2, Outcome::Failed, Some("fetch failed"), b)
            .unwrap();
        let runs = store.runs(Some("weekly"), 10).unwrap();
        assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [r2, r1]);
        assert_eq!(runs[1].deliveries, (1, 0, 0));
        assert_eq!(runs[1].records, Some(12));
        assert_eq!(runs[0].error.as_deref(), Some("fetch failed"));
        assert_eq!(store.last_success("weekly").unwrap().unwrap().id, r1);
        assert!(store.has_run("weekly", a).unwrap());
        assert!(
            !store
                .has_run("weekly", a + chrono::TimeDelta::seconds(1))
                .unwrap()
        );
        assert!(store.last_success("other").unwrap().is_none());
    }
}

#[test]
fn a_job_cannot_be_locked_twice_until_the_first_lock_is_dropped() {
    for place in places("a_job_cannot_be_locked_twice_until_the_first_lock_is_dropped") {
        let store = place.open().unwrap();
        let other = place.open().unwrap();
        let held = store.lock_job("weekly").unwrap();
        let err = other.lock_job("weekly").unwrap_err().to_string();
        assert!(
            err.contains("job weekly is running in another trainwatch process"),
            "{err}"
        );
        assert!(other.lock_job("daily").is_ok(), "other jobs are free");
        drop(held);
        assert!(other.lock_job("weekly").is_ok());
    }
}

#[test]
fn the_database_is_in_wal_mode_at_the_latest_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let conn = store.conn.lock().unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(version as usize, MIGRATIONS.len());
}

#[test]
fn a_database_from_a_newer_trainwatch_is_refused_not_damaged() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let conn = Connection::open(dir.path().join("trainwatch.db")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        std::error::Error::source(&err).is_none(),
        "one sentence, no cause under it"
    );
    let err = err.to_string();
    assert_eq!(
        err,
        format!(
            "state store {} was written by a newer trainwatch (schema version 99; this one knows versions up to {}): upgrade trainwatch, or point state_dir at another folder",
            dir.path().join("trainwatch.db").display(),
            MIGRATIONS.len()
        )
    );
    assert!(!err.contains("Invalid parameter name"), "{err}");
}

fn failed(error: &str, transient: bool) -> Attempt<'_> {
    Attempt {
        attempts: 6,
        parts_done: 0,
        error: Some(error),
        transient,
    }
}

fn keys(records: &[DeliveryRecord]) -> Vec<&str> {
    records.iter().map(|d| d.key.as_str()).collect()
}

#[test]
fn the_outbox_records_every_delivery_pending_before_any_is_sent() {
    for place in places("the_outbox_records_every_delivery_pending_before_any_is_sent") {
        let store = place.open().unwrap();
        let now = t("2026-03-09T14:00:00Z");
        let run = store.begin_run("weekly", now, now).unwrap();
        let claims = store
            .enqueue(run, &[delivery("k1"), delivery("k2"), delivery("k3")], now)
            .unwrap();
        assert!(claims.iter().all(|c| matches!(c, Claim::Send { .. })));
        assert_eq!(keys(&store.pending("weekly").unwrap()), ["k1", "k2", "k3"]);
        assert_eq!(store.runs(None, 1).unwrap()[0].deliveries, (0, 0, 3));
        assert!(
            store.has_run("weekly", now).unwrap(),
            "a run that recorded its outbox has dealt with its fire"
        );
    }
}

#[test]
fn a_run_killed_before_its_outbox_does_not_count_as_having_run_its_fire() {
    for place in places("a_run_killed_before_its_outbox_does_not_count_as_having_run_its_fire") {
        let store = place.open().unwrap();
        let fire = t("2026-03-09T14:00:00Z");
        store.begin_run("weekly", fire, fire).unwrap();
        store
            .record_skipped("weekly", fire, "skipped: still going", fire)
            .unwrap();
        let stopped = store.begin_run("weekly", fire, fire).unwrap();
        store
            .finish_run(stopped, Outcome::Interrupted, Some("stopped waiting"), fire)
            .unwrap();
        assert!(!store.has_run("weekly", fire).unwrap());
        let failed = store.begin_run("weekly", fire, fire).unwrap();
        store
            .finish_run(failed, Outcome::Failed, Some("fetch failed"), fire)
            .unwrap();
        assert!(store.has_run("weekly", fire).unwrap());
    }
}

#[test]
fn counts_stay_with_the_run_that_created_them_and_it_succeeds_once_finished_later() {
    for place in
        places("counts_stay_with_the_run_that_created_them_and_it_succeeds_once_finished_later")
    {
        let store = place.open().unwrap();
        let now = t("2026-03-09T14:00:00Z");
        let first = store.begin_run("weekly", now, now).unwrap();
        store
            .enqueue(
                first,
                &[delivery("k1"), delivery("k2"), delivery("k3")],
                now,
            )
            .unwrap();
        store.record("k1", first, &ok(1, 1), now).unwrap();
        // The process dies here: k2 and k3 stay pending.
        let later = now + chrono::TimeDelta::minutes(1);
        let second = store.begin_run("weekly", later, later).unwrap();
        assert_eq!(keys(&store.due("weekly", later).unwrap()), ["k2", "k3"]);
        store.record("k2", second, &ok(1, 1), later).unwrap();
        let runs = store.runs(None, 10).unwrap();
        assert_eq!(runs[1].outcome, Outcome::Running, "k3 is still pending");
        store.record("k3", second, &ok(1, 1), later).unwrap();
        store
            .finish_run(second, Outcome::Succeeded, None, later)
            .unwrap();

        let runs = store.runs(None, 10).unwrap();
        let (second_rec, first_rec) = (&runs[0], &runs[1]);
        assert_eq!(first_rec.deliveries, (3, 0, 0));
        assert_eq!(first_rec.finished_later, (2, Some(second)));
        assert_eq!(first_rec.outcome, Outcome::Succeeded);
        assert_eq!(first_rec.finished_at, Some(later));
        assert_eq!(second_rec.deliveries, (0, 0, 0));
        assert_eq!(second_rec.finished_for_others, 2);
        let ledger = store.deliveries("weekly").unwrap();
        assert!(ledger.iter().all(|d| d.run_id == first));
        assert_eq!(
            ledger.iter().map(|d| d.finished_by).collect::<Vec<_>>(),
            [None, Some(second), Some(second)]
        );
    }
}

#[test]
fn a_transient_failure_is_due_again_later_and_a_permanent_one_is_not() {
    for place in places("a_transient_failure_is_due_again_later_and_a_permanent_one_is_not") {
        let store = place.open().unwrap();
        let now = t("2026-03-09T14:00:00Z");
        let run = store.begin_run("weekly", now, now).unwrap();
        store
            .enqueue(run, &[delivery("k1"), delivery("k2")], now)
            .unwrap();
        store
            .record("k1", run, &failed("421 try later", true), now)
            .unwrap();
        store
            .record("k2", run, &failed("550 no such user", false), now)
            .unwrap();
        assert!(store.due("weekly", now).unwrap().is_empty());
        assert!(store.jobs_due(now).unwrap().is_empty());
        let retry = now + RETRY_FIRST;
        let due = store.due("weekly", retry).unwrap();
        assert_eq!(keys(&due), ["k1"]);
        assert_eq!(due[0].next_attempt_at, Some(retry));
        assert_eq!(store.jobs_due(retry).unwrap(), ["weekly"]);
        // The second failure waits twice as long.
        store
            .record("k1", run, &failed("421 try later", true), retry)
            .unwrap();
        assert_eq!(
            store.deliveries("weekly").unwrap()[0].next_attempt_at,
            Some(retry + RETRY_FIRST * 2)
        );
    }
}

#[test]
fn retries_back_off_doubling_up_to_an_hour_and_stop_after_a_day() {
    let created = t("2026-03-09T14:00:00Z");
    let gaps: Vec<i64> = (1..=8)
        .map(|n| (next_retry(created, n, created).unwrap() - created).num_minutes())
        .collect();
    assert_eq!(gaps, [2, 4, 8, 16, 32, 60, 60, 60]);
    let late = created + chrono::TimeDelta::hours(23) + chrono::TimeDelta::minutes(30);
    assert_eq!(
        next_retry(created, 30, late),
        None,
        "an hour from now is past the day"
    );
    assert_eq!(
        next_retry(created, u32::MAX, created),
        Some(created + RETRY_MAX_GAP)
    );
}

#[test]
fn delivered_payloads_older_than_the_retention_are_dropped_and_their_keys_still_block_a_resend() {
    for place in places(
        "delivered_payloads_older_than_the_retention_are_dropped_and_their_keys_still_block_a_resend",
    ) {
        let store = place.open().unwrap();
        let old = t("2026-01-01T00:00:00Z");
        let now = t("2026-06-01T00:00:00Z");
        let run = store.begin_run("weekly", old, old).unwrap();
        store
            .enqueue(run, &[delivery("k1"), delivery("k2"), delivery("k3")], old)
            .unwrap();
        store.record("k1", run, &ok(1, 1), old).unwrap();
        store.record("k2", run, &ok(1, 1), now).unwrap();
        let pruned = store
            .prune_payloads(now - chrono::TimeDelta::days(90))
            .unwrap();
        assert_eq!(pruned, 1);
        let payloads: Vec<_> = store
            .deliveries("weekly")
            .unwrap()
            .into_iter()
            .map(|d| d.payload.is_some())
            .collect();
        assert_eq!(
            payloads,
            [false, true, true],
            "the recent one and the pending one keep theirs"
        );
        let again = store.begin_run("weekly", now, now).unwrap();
        assert_eq!(
            store.claim(again, &delivery("k1"), now).unwrap(),
            Claim::AlreadyDelivered { sent_at: Some(old) }
        );
    }
}

#[test]
fn failure_notices_are_kept_apart_from_the_runs_deliveries() {
    for place in places("failure_notices_are_kept_apart_from_the_runs_deliveries") {
        let store = place.open().unwrap();
        let now = t("2026-03-09T14:00:00Z");
        let run = store.begin_run("weekly", now, now).unwrap();
        store.enqueue(run, &[delivery("k1")], now).unwrap();
        store
            .record("k1", run, &failed("550 no such user", false), now)
            .unwrap();
        store.claim_notice(run, &delivery("n1"), now).unwrap();
        store.record("n1", run, &ok(1, 1), now).unwrap();
        assert_eq!(
            store.claim_notice(run, &delivery("n1"), now).unwrap(),
            Claim::AlreadyDelivered { sent_at: Some(now) },
            "a notice is never sent twice for one run"
        );
        let record = &store.runs(None, 1).unwrap()[0];
        assert_eq!(record.deliveries, (0, 1, 0));
        assert_eq!(record.notices, (1, 0));
    }
}

#[test]
fn processes_opening_a_fresh_database_together_migrate_it_once_and_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let opened: Vec<_> = (0..8)
        .map(|_| {
            let (path, barrier) = (dir.path().to_path_buf(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                Store::open(&path).map(|_| ()).map_err(|e| e.to_string())
            })
        })
        .collect();
    for handle in opened {
        assert_eq!(handle.join().unwrap(), Ok(()));
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let conn = store.conn.lock().unwrap();
    assert_eq!(schema_version(&conn).unwrap(), MIGRATIONS.len());
}

#[tokio::test(start_paused = true)]
async fn a_run_waits_for_a_job_locked_by_another_process_and_gives_up_when_told() {
    for place in places("a_run_waits_for_a_job_locked_by_another_process_and_gives_up_when_told") {
        let store = place.open().unwrap();
        let other = place.open().unwrap();
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        let wait = std::time::Duration::from_secs(60);

        let held = other.lock_job("weekly").unwrap();
        let release = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            drop(held);
        });
        let started = tokio::time::Instant::now();
        store
            .lock_job_waiting("weekly", wait, &stopped)
            .await
            .expect("the lock, once the other process let go");
        let waited = started.elapsed();
        assert!(
            waited >= std::time::Duration::from_secs(5)
                && waited < std::time::Duration::from_secs(6),
            "{waited:?}"
        );
        release.await.unwrap();

        let _held = other.lock_job("daily").unwrap();
        let err = store
            .lock_job_waiting("daily", wait, &stopped)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("job daily was running in another trainwatch process")
                && err.contains("for all of the 60s this run waited"),
            "{err}"
        );
    }
}

#[test]
fn an_unknown_stored_word_or_time_is_an_error_never_a_guess() {
    let dir = tempfile::tempdir().unwrap();
    let now = t("2026-03-09T14:00:00Z");
    let store = Store::open(dir.path()).unwrap();
    let run = store.begin_run("weekly", now, now).unwrap();
    store.claim(run, &delivery("k1"), now).unwrap();
    let db = Connection::open(dir.path().join("trainwatch.db")).unwrap();
    // A status from a newer trainwatch: read as pending, it would be sent again.
    db.execute(
        "UPDATE deliveries SET status = 'bounced' WHERE key = 'k1'",
        [],
    )
    .unwrap();
    let err = store.claim(run, &delivery("k1"), now).unwrap_err();
    assert!(
        format!("{err:#}").contains("unknown delivery status \"bounced\""),
        "{err:#}"
    );
    db.execute(
        "UPDATE deliveries SET status = 'pending' WHERE key = 'k1'",
        [],
    )
    .unwrap();
    db.execute("UPDATE runs SET outcome = 'paused'", [])
        .unwrap();
    let err = store.runs(None, 10).unwrap_err();
    assert!(
        format!("{err:#}").contains("unknown run outcome \"paused\""),
        "{err:#}"
    );
    db.execute(
        "UPDATE runs SET outcome = 'running', started_at = 'yesterday'",
        [],
    )
    .unwrap();
    assert!(store.runs(None, 10).is_err());
}
