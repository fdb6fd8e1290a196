//! What replicas sharing a Postgres store do: leases, fencing, fire claims,
//! migrating together. Each test returns early (saying SKIPPED) without
//! `TRAINWATCH_TEST_PG_URL`.

use super::*;

/// A Postgres store on `url` as replica `replica`, with a lease of `lease_ms`.
fn pg(url: &secrecy::SecretString, replica: &str, lease_ms: u64) -> Store {
    Store::Postgres(
        postgres::PgStore::open(
            url,
            std::time::Duration::from_millis(lease_ms),
            replica.to_string(),
        )
        .unwrap(),
    )
}

#[test]
fn a_replica_stalled_past_its_lease_is_fenced_and_another_takes_the_job_over() {
    let Some(url) = postgres::test_database("lease_fencing") else {
        return;
    };
    let (a, b) = (pg(&url, "replica-a", 1000), pg(&url, "replica-b", 1000));
    let now = t("2026-03-09T14:00:00Z");
    let lock_a = a.lock_job("weekly").unwrap();
    assert!(b.try_lock_job("weekly").unwrap().is_none(), "a holds it");
    let err = b.lock_job("weekly").unwrap_err().to_string();
    assert!(err.contains("replica-a holds the job's lease"), "{err}");
    let run = a.begin_run("weekly", now, now).unwrap();
    a.enqueue(run, &[delivery("k1"), delivery("k2")], now)
        .unwrap();
    assert!(matches!(
        a.claim_send(run, "weekly", "k1").unwrap(),
        Claim::Send { .. }
    ));
    a.record("k1", run, &ok(1, 1), now).unwrap();

    // a stalls: its renewals stop (as under SIGSTOP), the lease runs out.
    if let Store::Postgres(p) = &a {
        p.execute_for_tests(
            "UPDATE leases SET expires_at = clock_timestamp() - INTERVAL '1 second'",
        )
        .unwrap();
    }
    let lock_b = b
        .try_lock_job("weekly")
        .unwrap()
        .expect("the expired lease");
    let err = a.claim_send(run, "weekly", "k2").unwrap_err();
    assert!(
        matches!(err, StoreError::LostLease { ref job, .. } if job == "weekly"),
        "{err}"
    );
    assert!(
        a.claim(run, &delivery("k2"), now).is_err(),
        "no claim of any kind"
    );
    // b finishes a's run under its own lease; a's run then succeeded.
    let by_b = b.begin_run("weekly", now, now).unwrap();
    assert_eq!(keys(&b.due("weekly", now).unwrap()), ["k2"]);
    assert!(matches!(
        b.claim(by_b, &delivery("k2"), now).unwrap(),
        Claim::Send { .. }
    ));
    b.record("k2", by_b, &ok(1, 1), now).unwrap();
    let runs = b.runs(Some("weekly"), 10).unwrap();
    assert_eq!(runs[1].id, run);
    assert_eq!(runs[1].outcome, Outcome::Succeeded);
    assert_eq!(runs[1].replica.as_deref(), Some("replica-a"));
    assert_eq!(runs[0].replica.as_deref(), Some("replica-b"));
    assert_eq!(runs[0].finished_for_others, 1);
    drop(lock_b);
    // a's late release does not free b's later generation.
    drop(lock_a);
    assert!(a.try_lock_job("weekly").unwrap().is_some(), "released by b");
}

#[test]
fn a_held_lease_is_renewed_and_not_lost_while_its_holder_is_alive() {
    let Some(url) = postgres::test_database("lease_renewal") else {
        return;
    };
    let (a, b) = (pg(&url, "replica-a", 1000), pg(&url, "replica-b", 1000));
    let lock = a.lock_job("weekly").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(lock.held());
    assert!(
        b.try_lock_job("weekly").unwrap().is_none(),
        "renewed past two lease lengths"
    );
}

#[test]
fn replicas_racing_for_one_fire_let_exactly_one_run_it() {
    let Some(url) = postgres::test_database("fire_race") else {
        return;
    };
    let fire = t("2026-03-09T14:00:00Z");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
    let won: Vec<bool> = (0..6)
        .map(|i| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                let store = pg(&url, &format!("replica-{i}"), 60_000);
                barrier.wait();
                // As the service does: the job's lease, then the claim.
                let _lock = loop {
                    match store.try_lock_job("weekly").unwrap() {
                        Some(lock) => break lock,
                        None => std::thread::sleep(std::time::Duration::from_millis(5)),
                    }
                };
                let won = store.claim_fire("weekly", fire).unwrap();
                if won {
                    let run = store.begin_run("weekly", fire, fire).unwrap();
                    store.enqueue(run, &[delivery("k1")], fire).unwrap();
                }
                won
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let store = pg(&url, "reader", 60_000);
    assert!(!store.claim_fire("weekly", fire).unwrap());
    let winner = won.iter().position(|w| *w).unwrap();
    assert_eq!(
        store.fire_claimed_by("weekly", fire).unwrap(),
        Some(format!("replica-{winner}"))
    );
}

#[test]
fn a_fire_whose_run_died_before_its_outbox_can_be_claimed_again() {
    let Some(url) = postgres::test_database("fire_reclaim") else {
        return;
    };
    let fire = t("2026-03-09T14:00:00Z");
    let (a, b) = (pg(&url, "replica-a", 60_000), pg(&url, "replica-b", 60_000));
    assert!(a.claim_fire("weekly", fire).unwrap());
    a.begin_run("weekly", fire, fire).unwrap();
    // a dies here, before its outbox.
    assert!(b.claim_fire("weekly", fire).unwrap());
    let run = b.begin_run("weekly", fire, fire).unwrap();
    b.enqueue(run, &[delivery("k1")], fire).unwrap();
    assert!(!a.claim_fire("weekly", fire).unwrap());
}

#[test]
fn replicas_opening_a_fresh_postgres_database_together_migrate_it_once() {
    let Some(url) = postgres::test_database("migrate_together") else {
        return;
    };
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
    let opened: Vec<_> = (0..6)
        .map(|i| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                postgres::PgStore::open(&url, std::time::Duration::from_secs(60), format!("r{i}"))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    for h in opened {
        assert_eq!(h.join().unwrap(), Ok(()));
    }
    let store =
        postgres::PgStore::open(&url, std::time::Duration::from_secs(60), "r".into()).unwrap();
    assert_eq!(store.schema_version().unwrap(), PG_MIGRATIONS.len());
}

#[test]
fn a_postgres_schema_from_a_newer_trainwatch_is_refused_and_no_password_is_shown() {
    let Some(url) = postgres::test_database("newer_schema") else {
        return;
    };
    let store =
        postgres::PgStore::open(&url, std::time::Duration::from_secs(60), "r".into()).unwrap();
    store
        .execute_for_tests("UPDATE trainwatch_schema SET version = 99")
        .unwrap();
    let err = postgres::PgStore::open(&url, std::time::Duration::from_secs(60), "r".into())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "was written by a newer trainwatch (schema version 99; this one knows versions up to"
        ),
        "{err}"
    );
    // A wrong password: the error names the server, never the password.
    let mut wrong = url::Url::parse(secrecy::ExposeSecret::expose_secret(&url)).unwrap();
    wrong.set_port(Some(1)).unwrap();
    wrong.set_password(Some("hunter2-secret")).unwrap();
    let err = postgres::PgStore::open(
        &secrecy::SecretString::from(wrong.to_string()),
        std::time::Duration::from_secs(60),
        "r".into(),
    )
    .unwrap_err()
    .to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(
        err.contains("***") && err.contains("check that the server is up"),
        "{err}"
    );
}
