//! Many processes on one `state_dir`: 12 jobs `run-once` at the same
//! moment, three rounds, the first on a fresh `state_dir` (so the 12 race
//! to create and migrate the database). No process fails ("database is
//! locked", "table runs already exists"), and the receiver gets every
//! delivery exactly once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use assert_cmd::cargo::CommandCargoExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const JOBS: usize = 12;
/// Teams in the sample, so deliveries per job (`per_team`).
const TEAMS: usize = 4;

/// Counts each `Idempotency-Key` the receiver sees.
#[derive(Clone, Default)]
struct Keys(Arc<Mutex<BTreeMap<String, usize>>>);

impl Respond for Keys {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let key = req
            .headers
            .get("idempotency-key")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        *self.0.lock().unwrap().entry(key).or_default() += 1;
        ResponseTemplate::new(200)
    }
}

/// Twelve per-team jobs on the sample data, each to the json webhook.
fn write_config(dir: &Path, hook: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sample = trainwatch::config::load(&root.join("sample/config.toml")).unwrap();
    let mut teams = String::new();
    for (name, team) in &sample.teams {
        let learners: Vec<String> = team
            .learners()
            .unwrap_or_default()
            .iter()
            .map(|l| format!("\"{l}\""))
            .collect();
        teams.push_str(&format!(
            "[teams.{name}]\nlearners = [{}]\n",
            learners.join(", ")
        ));
    }
    assert_eq!(sample.teams.len(), TEAMS);
    let mut jobs = String::new();
    for i in 1..=JOBS {
        jobs.push_str(&format!(
            r#"
[[jobs]]
name = "job-{i:02}"
schedule = "0 8 * * Mon"
window = {{ last = "365d" }}
per_team = true
when_empty = "send"
deliver = [{{ webhook = "receiver" }}]
"#
        ));
    }
    let config = format!(
        r#"timezone = "America/Chicago"
state_dir = "{state}"

[samsara]
sample_data = "{api}"
requests_per_second = 100

[webhooks.receiver]
kind = "json"
url = "{hook}"

{teams}
{jobs}"#,
        state = dir.join("state").display(),
        api = root.join("sample/api").display(),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// Starts the 12 jobs' `run-once` together and waits for all of them.
fn round(config: &Path, at: &str) -> Vec<std::process::Output> {
    let children: Vec<_> = (1..=JOBS)
        .map(|i| {
            std::process::Command::cargo_bin("trainwatch")
                .unwrap()
                .arg("--config")
                .arg(config)
                .args(["run-once", &format!("job-{i:02}"), "--at", at])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn twelve_jobs_run_at_once_on_one_state_dir_all_succeed_and_deliver_each_once() {
    let server = MockServer::start().await;
    let keys = Keys::default();
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(keys.clone())
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &format!("{}/hook", server.uri()));
    assert!(!dir.path().join("state").exists(), "round 1 starts fresh");

    // Round 3 repeats round 1's window: everything is already delivered.
    let rounds = [
        ("2026-11-23T08:00:00-06:00", "delivered"),
        ("2026-11-30T08:00:00-06:00", "delivered"),
        ("2026-11-23T08:00:00-06:00", "already delivered"),
    ];
    for (n, (at, outcome)) in rounds.iter().enumerate() {
        for out in round(&config, at) {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "round {}: {stdout}\n{stderr}", n + 1);
            assert!(stdout.contains("succeeded"), "round {}: {stdout}", n + 1);
            assert_eq!(
                stdout.matches(outcome).count(),
                TEAMS,
                "round {}: every team's delivery {outcome}: {stdout}",
                n + 1
            );
        }
    }

    let keys = keys.0.lock().unwrap().clone();
    assert_eq!(
        keys.len(),
        2 * JOBS * TEAMS,
        "two windows × 12 jobs × 4 teams"
    );
    assert!(
        keys.values().all(|n| *n == 1),
        "each delivery exactly once: {keys:?}"
    );

    let store = trainwatch::store::Store::open(&dir.path().join("state")).unwrap();
    let runs = store.runs(None, 100).unwrap();
    assert_eq!(runs.len(), 3 * JOBS);
    assert!(
        runs.iter()
            .all(|r| r.outcome == trainwatch::store::Outcome::Succeeded),
        "{runs:#?}"
    );
}
