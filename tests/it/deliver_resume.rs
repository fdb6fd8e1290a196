//! Exactly once, with the real binary: a run killed part-way is finished by
//! the next one with no delivered message sent twice and nothing lost, and a
//! third run for the same window sends nothing and says so.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::support::TestRun;

const FIRE: &str = "2026-11-23T08:00:00-06:00";

/// Acknowledges every request at once, except the third, which it never answers.
struct HangsOnThird {
    seen: AtomicUsize,
    keys: Arc<Mutex<Vec<String>>>,
}

impl Respond for HangsOnThird {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let key = req
            .headers
            .get("idempotency-key")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        self.keys.lock().unwrap().push(key);
        match self.seen.fetch_add(1, Ordering::SeqCst) {
            2 => ResponseTemplate::new(200).set_delay(Duration::from_secs(600)),
            _ => ResponseTemplate::new(200),
        }
    }
}

/// A config on the bundled sample: the weekly report per team (4 teams) to a json webhook.
fn write_config(dir: &Path, hook: &str) -> std::path::PathBuf {
    let root = crate::support::root();
    let sample = trainwatch::config::load(&crate::support::sample_config_path()).unwrap();
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
[[jobs]]
name = "weekly"
schedule = "0 8 * * Mon"
window = {{ last = "365d" }}
filters = {{ overdue = true }}
per_team = true
deliver = [{{ webhook = "receiver" }}]
"#,
        state = dir.join("state").display(),
        api = root.join("sample/api").display(),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn run_once(config: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::cargo_bin("trainwatch").unwrap();
    cmd.arg("--config")
        .arg(config)
        .args(["run-once", "weekly", "--at", FIRE]);
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_part_way_is_finished_by_the_next_with_no_duplicate_and_nothing_lost() {
    let app = TestRun::sample().wiremock().start().await;
    let server = app.wiremock();
    let keys = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(HangsOnThird {
            seen: AtomicUsize::new(0),
            keys: keys.clone(),
        })
        .mount(server)
        .await;
    let dir = &app.dir;
    let config = write_config(dir.path(), &format!("{}/hook", server.uri()));

    // 1. Start a run; kill it while the third team's report is in flight.
    let mut child = run_once(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while keys.lock().unwrap().len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never reached its third delivery"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first: Vec<String> = keys.lock().unwrap().clone();
    assert_eq!(first.len(), 3);

    // 2. The next run sends what was not confirmed, and nothing that was.
    let second = run_once(&config).output().unwrap();
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        second.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let all: Vec<String> = keys.lock().unwrap().clone();
    assert_eq!(
        all.len(),
        5,
        "the unconfirmed third again, and the fourth: {all:?}"
    );
    let count = |k: &String| all.iter().filter(|x| *x == k).count();
    assert_eq!(count(&first[0]), 1, "confirmed: never sent again");
    assert_eq!(count(&first[1]), 1, "confirmed: never sent again");
    assert_eq!(
        count(&first[2]),
        2,
        "unconfirmed: sent again, with the same Idempotency-Key"
    );
    let distinct: std::collections::BTreeSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), 4, "every team's report arrived");
    assert!(stdout.contains("(resumed)"), "{stdout}");
    assert_eq!(stdout.matches("already delivered").count(), 2, "{stdout}");

    // 3. A third run for the same window sends nothing and says so.
    let third = run_once(&config).output().unwrap();
    let stdout = String::from_utf8_lossy(&third.stdout);
    assert!(third.status.success(), "{stdout}");
    assert_eq!(keys.lock().unwrap().len(), 5, "nothing sent");
    assert_eq!(stdout.matches("already delivered").count(), 4, "{stdout}");

    // 4. History tells the story, newest first.
    let history = std::process::Command::cargo_bin("trainwatch")
        .unwrap()
        .arg("--config")
        .arg(&config)
        .args(["history", "weekly"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&history.stdout);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(
        rows[0].starts_with("3 ") && rows[0].ends_with("succeeded"),
        "{table}"
    );
    // Counts belong to the run that created the deliveries (its outbox held
    // all four), not to the run that finished two of them.
    assert!(
        rows[1].contains("0 sent, 0 failed, 0 pending; finished 2 of earlier runs")
            && rows[1].ends_with("succeeded"),
        "{table}"
    );
    assert!(
        rows[2].contains("4 sent, 0 failed, 0 pending"),
        "the killed run's outbox held all four: {table}"
    );
    assert!(
        rows[2].ends_with("succeeded (2 finished later, by run 2)"),
        "the killed run, finished later: {table}"
    );
}
