//! Per-delivery overhead of the store, SQLite against Postgres: a run's
//! outbox of 1,000 deliveries recorded in one transaction, then each one
//! claimed right before its send (on Postgres with the lease check, the
//! fencing) and recorded as delivered, as `job::run_controlled` does.
//!
//! `cargo bench --bench store_deliveries`; Postgres is measured when
//! `TRAINWATCH_TEST_PG_URL` names a server (`eval "$(bash .ci/postgres.sh)"`).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use trainwatch::store::{Attempt, Claim, NewDelivery, Store, postgres};

const DELIVERIES: usize = 1_000;

fn measure(name: &str, store: &Store) {
    let now: DateTime<Utc> = "2026-03-09T14:00:00Z".parse().unwrap();
    let window = (now - chrono::TimeDelta::days(7), now);
    let payload = "x".repeat(2_000); // about a rendered, stored email
    let keys: Vec<String> = (0..DELIVERIES).map(|i| format!("key-{i:05}")).collect();
    let recipients: Vec<String> = (0..DELIVERIES)
        .map(|i| format!("m{i}@example.com"))
        .collect();
    let lock = store.lock_job("weekly").unwrap();
    let run = store.begin_run("weekly", now, now).unwrap();
    let items: Vec<NewDelivery<'_>> = keys
        .iter()
        .zip(&recipients)
        .map(|(key, recipient)| NewDelivery {
            key,
            job: "weekly",
            window,
            target: "email overdue",
            recipient,
            payload: &payload,
        })
        .collect();
    let started = Instant::now();
    store.enqueue(run, &items, now).unwrap();
    let outbox = started.elapsed();
    let started = Instant::now();
    for key in &keys {
        let Claim::Send { parts_done, .. } = store.claim_send(run, "weekly", key).unwrap() else {
            panic!("{key} was pending");
        };
        let attempt = Attempt {
            attempts: 1,
            parts_done: parts_done + 1,
            error: None,
            transient: false,
        };
        store.record(key, run, &attempt, now).unwrap();
    }
    let each = started.elapsed();
    drop(lock);
    assert_eq!(
        store.runs(None, 1).unwrap()[0].deliveries.0,
        DELIVERIES as u64
    );
    let per = |d: Duration| d.as_secs_f64() * 1e6 / DELIVERIES as f64;
    println!(
        "{name:>8}: outbox of {DELIVERIES} in {:>7.1} ms ({:>6.1} µs each); claim + record each: {:>7.1} ms ({:>6.1} µs per delivery)",
        outbox.as_secs_f64() * 1e3,
        per(outbox),
        each.as_secs_f64() * 1e3,
        per(each),
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    measure("SQLite", &Store::open(dir.path()).unwrap());
    match std::env::var(postgres::TEST_URL_VAR) {
        Ok(_) => {
            let url = postgres::test_database("store_deliveries bench").unwrap();
            let store =
                postgres::PgStore::open(&url, Duration::from_secs(120), "bench".into()).unwrap();
            measure("Postgres", &Store::Postgres(store));
        }
        Err(_) => println!(
            "Postgres: not measured; set {} (eval \"$(bash .ci/postgres.sh)\")",
            postgres::TEST_URL_VAR
        ),
    }
}
