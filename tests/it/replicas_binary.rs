//! Several replicas, each report once, with the real binary: three
//! `trainwatch run` share one Postgres store and fire a per-team email job
//! every 10 seconds into a slow SMTP server. One replica is `kill -9`ed in
//! the middle of a run, another is paused (SIGSTOP) in the middle of a run
//! for longer than its lease, then resumed. Over at least six fires every
//! manager gets exactly one email per fire, the killed replica's run is
//! finished by another within the lease, and the paused one sends nothing
//! once it has lost its lease.
//!
//! Needs a Postgres server: `eval "$(bash .ci/postgres.sh)"` sets
//! `TRAINWATCH_TEST_PG_URL` (CI does); without it the test says so loudly.

use crate::smtp_support;
use crate::support::service::{JOB, Service, trainwatch, write_per_team_config};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret as _;
use smtp_support::{Script, TestSmtp};
use trainwatch::store::{RunRecord, Store, postgres::PgStore};

const TEAMS: usize = 12;
/// Short, so the test sees takeovers in seconds (the default is 2m).
const LEASE: Duration = Duration::from_secs(3);
/// How long the server thinks before each DATA: a run takes about 12 × this.
const DATA_DELAY: Duration = Duration::from_millis(250);
/// Allowance on top of the lease for the waiting replica's poll (200 ms),
/// its claim and the first send of the takeover.
const TAKEOVER_SLACK: Duration = Duration::from_secs(2);

/// Three replicas' config: a Postgres store at `url` with a short lease, a
/// health server each, and the per-team job every 10 seconds.
fn write_config(dir: &Path, smtp: &TestSmtp, url: &str) -> PathBuf {
    let extra = format!(
        "\n[store]\nurl = \"{url}\"\nlease = \"{}s\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n",
        LEASE.as_secs()
    );
    write_per_team_config(dir, smtp, TEAMS, "*/10 * * * * *", "0", &extra)
}

type Replica = Service;

fn start(config: &Path, id: &str, dir: &Path) -> Replica {
    Service::start(config, &dir.join(format!("{id}.log")), Some(id))
}

fn signal(r: &Replica, sig: &str) {
    r.signal(sig);
}

fn logs(replicas: &[Replica]) -> String {
    replicas
        .iter()
        .map(|r| format!("--- {} ---\n{}", r.id, r.log()))
        .collect()
}

fn runs(store: &Store) -> Vec<RunRecord> {
    store.runs(Some(JOB), 200).unwrap()
}

/// Polls the store until `pick` finds a run, at most `max`.
async fn wait_run(
    store: &Store,
    what: &str,
    max: Duration,
    replicas: &[Replica],
    pick: impl Fn(&RunRecord) -> bool,
) -> RunRecord {
    let started = Instant::now();
    loop {
        if let Some(r) = runs(store).into_iter().find(|r| pick(r)) {
            return r;
        }
        assert!(
            started.elapsed() < max,
            "{what}: not within {max:?}\nruns: {:#?}\n{}",
            runs(store),
            logs(replicas)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fire's run in the middle of its sends: some delivered, some pending.
fn mid_run(r: &RunRecord, on: &[&str]) -> bool {
    let (delivered, _, pending) = r.deliveries;
    r.finished_at.is_none()
        && (3..=TEAMS as u64 - 4).contains(&delivered)
        && pending > 0
        && r.replica.as_deref().is_some_and(|id| on.contains(&id))
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_send_each_fire_once_through_a_kill_and_a_stall_past_the_lease() {
    let Some(url) = crate::support::postgres("replicas_binary") else {
        return;
    };
    let smtp = TestSmtp::start(Script {
        data_delay: DATA_DELAY,
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &smtp, url.expose_secret());
    let mut replicas: Vec<Replica> = ["r1", "r2", "r3"]
        .iter()
        .map(|id| start(&config, id, dir.path()))
        .collect();
    let store = Store::Postgres(PgStore::open(&url, LEASE, "observer".into()).unwrap());

    // 1. kill -9 the replica running a fire, in the middle of its sends.
    let victim_run = wait_run(
        &store,
        "a run in the middle of its sends",
        Duration::from_secs(40),
        &replicas,
        |r| mid_run(r, &["r1", "r2", "r3"]),
    )
    .await;
    let victim = replicas
        .iter()
        .position(|r| Some(r.id.as_str()) == victim_run.replica.as_deref())
        .unwrap();
    signal(&replicas[victim], "-KILL");
    let killed_at = Instant::now();
    let _ = replicas[victim].child.wait();
    let killed = replicas.remove(victim);
    let sent_by_victim = runs(&store)
        .into_iter()
        .find(|r| r.id == victim_run.id)
        .unwrap()
        .deliveries
        .0;
    // Another replica takes the lease once it expires and goes on sending.
    let taken = wait_run(
        &store,
        "the killed replica's run taken over",
        LEASE + TAKEOVER_SLACK + Duration::from_secs(2),
        &replicas,
        |r| r.id == victim_run.id && r.deliveries.0 > sent_by_victim,
    )
    .await;
    let took = killed_at.elapsed();
    assert!(
        took <= LEASE + TAKEOVER_SLACK,
        "another replica resumed the killed run's sends {took:?} after the kill (lease {LEASE:?})"
    );
    assert!(taken.deliveries.0 > sent_by_victim);
    eprintln!(
        "killed {} in run {} after {sent_by_victim} of {TEAMS} sends; another resumed it {took:?} later",
        killed.id, victim_run.id
    );
    let finished = wait_run(
        &store,
        "the killed replica's run finished by another",
        Duration::from_secs(20),
        &replicas,
        |r| r.id == victim_run.id && r.deliveries == (TEAMS as u64, 0, 0),
    )
    .await;
    let finisher = finished.finished_later.1.expect("finished by a later run");
    let finisher = runs(&store).into_iter().find(|r| r.id == finisher).unwrap();
    assert_ne!(finisher.replica, finished.replica, "{finisher:#?}");

    // 2. SIGSTOP the replica running a later fire, past its lease.
    let live: Vec<String> = replicas.iter().map(|r| r.id.clone()).collect();
    let live: Vec<&str> = live.iter().map(String::as_str).collect();
    let paused_run = wait_run(
        &store,
        "a later run in the middle of its sends",
        Duration::from_secs(40),
        &replicas,
        |r| r.fire_time > victim_run.fire_time && mid_run(r, &live),
    )
    .await;
    let paused = replicas
        .iter()
        .position(|r| Some(r.id.as_str()) == paused_run.replica.as_deref())
        .unwrap();
    signal(&replicas[paused], "-STOP");
    // Long enough for the lease to run out and the other replica to send
    // the rest of the run (about 9 × 250 ms).
    tokio::time::sleep(LEASE * 2 + Duration::from_secs(3)).await;
    let run_now = runs(&store)
        .into_iter()
        .find(|r| r.id == paused_run.id)
        .unwrap();
    assert_eq!(
        run_now.deliveries,
        (TEAMS as u64, 0, 0),
        "the other replica finished the paused one's run\n{}",
        logs(&replicas)
    );
    let received_at_resume = smtp.log().messages.len();
    eprintln!(
        "paused {} in run {} after {} sends; the run was finished by run {:?}",
        replicas[paused].id, paused_run.id, paused_run.deliveries.0, run_now.finished_later.1
    );
    signal(&replicas[paused], "-CONT");
    // Time for the resumed replica to send whatever it still would.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 3. At least six fires in all, then a graceful stop.
    let fires = |store: &Store| {
        let mut fires: Vec<_> = runs(store)
            .into_iter()
            .filter(|r| r.window.is_some() && r.deliveries == (TEAMS as u64, 0, 0))
            .map(|r| r.fire_time)
            .collect();
        fires.sort();
        fires.dedup();
        fires
    };
    let started = Instant::now();
    while fires(&store).len() < 6 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "six fires: {:?}\n{}",
            fires(&store),
            logs(&replicas)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Stop between fires, so no run is cut off by the stop.
    while chrono::Utc::now().timestamp() % 10 < 6
        || runs(&store)
            .iter()
            .any(|r| r.finished_at.is_none() && r.window.is_some() && r.deliveries.2 > 0)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each live replica's /healthz names it and shows the job's last run
    // in the store, whichever replica ran it; /metrics labels it so.
    for r in &replicas {
        let log = std::fs::read_to_string(&r.log).unwrap();
        let addr = log
            .lines()
            .filter(|l| l.contains("serving /healthz and /metrics"))
            .find_map(|l| l.split(" addr=").nth(1))
            .and_then(|a| a.split_whitespace().next())
            .unwrap_or_else(|| panic!("{} logs its address: {log}", r.id))
            .to_string();
        let health: serde_json::Value = reqwest::get(format!("http://{addr}/healthz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["replica"], r.id.as_str(), "{health}");
        let last = &health["jobs"]["per-team"]["store_last_run"];
        assert!(
            ["r1", "r2", "r3"].contains(&last["replica"].as_str().unwrap_or("")),
            "{health}"
        );
        let metrics = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains(
                "trainwatch_store_last_fire_timestamp_seconds{job=\"per-team\",replica=\"r"
            ),
            "{metrics}"
        );
    }
    for r in &replicas {
        signal(r, "-TERM");
    }
    for r in &mut replicas {
        let _ = r.child.wait();
    }

    // Every manager: exactly one email per fire, and no Message-ID twice.
    let fires = fires(&store);
    assert!(fires.len() >= 6, "{fires:?}");
    eprintln!(
        "{} fires, {} messages in all",
        fires.len(),
        smtp.log().messages.len()
    );
    let mut by_manager = BTreeMap::<String, Vec<String>>::new();
    let mut ids = BTreeMap::<String, usize>::new();
    for m in smtp.messages() {
        let id = m.parsed().message_id().unwrap_or_default().to_string();
        *ids.entry(id.clone()).or_default() += 1;
        for to in &m.recipients {
            by_manager.entry(to.clone()).or_default().push(id.clone());
        }
    }
    let twice: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "sent twice: {twice:?}\n{}",
        logs(&replicas)
    );
    assert_eq!(by_manager.len(), TEAMS);
    let every_fire = runs(&store)
        .into_iter()
        .filter(|r| r.window.is_some())
        .map(|r| r.fire_time)
        .collect::<std::collections::BTreeSet<_>>();
    for (manager, got) in &by_manager {
        assert_eq!(
            got.len(),
            every_fire.len(),
            "{manager}: one email for each of the {} fires run",
            every_fire.len()
        );
    }
    // The paused replica sent nothing after it lost its lease: the run it
    // was in was complete before it resumed, and no message came twice.
    assert!(smtp.log().messages.len() >= received_at_resume);
    let paused_log = std::fs::read_to_string(&replicas[paused].log).unwrap();
    assert!(
        paused_log.contains("lost its lease") || paused_log.contains("lost the lease"),
        "the paused replica noticed: {paused_log}"
    );
    // history shows every replica's runs, each with the replica that ran it.
    let out = trainwatch(&config)
        .args(["history", JOB, "--limit", "100"])
        .output()
        .unwrap();
    let history = String::from_utf8_lossy(&out.stdout);
    assert!(history.lines().next().unwrap().contains("REPLICA"));
    for id in ["r1", "r2", "r3"] {
        assert!(
            history.contains(id) || id == killed.id,
            "{id} in history:\n{history}"
        );
    }
    assert!(history.contains(&killed.id), "{history}");
}
