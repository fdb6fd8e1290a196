//! The real binary as a service: `trainwatch run` fires a job every 10
//! seconds against local servers, delivers two runs, stops on SIGTERM with
//! exit 0, and `history` shows both runs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test(flavor = "multi_thread")]
async fn run_delivers_on_schedule_and_stops_cleanly_on_sigterm() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A free port for [server] (released just before the service binds it).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"timezone = "America/Chicago"
state_dir = "{state}"
catch_up = "0"

[server]
listen = "127.0.0.1:{port}"

[samsara]
sample_data = "{api}"
requests_per_second = 100

[webhooks.receiver]
kind = "json"
url = "{hook}/hook"

[[jobs]]
name = "every-10s"
schedule = "*/10 * * * * *"
window = {{ last = "365d" }}
when_empty = "send"
deliver = [{{ webhook = "receiver" }}]
"#,
            state = dir.path().join("state").display(),
            api = root.join("sample/api").display(),
            hook = receiver.uri(),
        ),
    )
    .unwrap();

    let daemon = Command::cargo_bin("trainwatch")
        .unwrap()
        .arg("--config")
        .arg(&config)
        .args(["--log-format", "json", "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while receiver.received_requests().await.unwrap().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "two runs did not deliver in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give the second run a moment to record its outcome.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Health and metrics while it runs.
    let http = reqwest::Client::new();
    let health = http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["jobs"]["every-10s"]["last_outcome"], "succeeded");
    let metrics = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
    };
    assert!(value(r#"trainwatch_runs_total{job="every-10s",outcome="succeeded"}"#) >= 2.0);
    assert!(value(r#"trainwatch_deliveries_total{kind="json",outcome="delivered"}"#) >= 2.0);
    assert!(
        value(
            r#"trainwatch_api_requests_total{endpoint="/training-assignments/stream",status="200"}"#
        ) >= 2.0
    );

    // Stop it as systemd would.
    let status = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = daemon.wait_with_output().unwrap();

    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let logs = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect();
    let runs: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "run finished")
        .collect();
    assert!(runs.len() >= 2, "{logs}");
    for run in &runs[..2] {
        assert_eq!(run["fields"]["job"], "every-10s");
        assert_eq!(run["fields"]["outcome"], "succeeded");
        assert_eq!(run["fields"]["delivered"], 1);
    }
    assert!(
        lines.iter().any(|l| l["fields"]["message"] == "stopped"),
        "{logs}"
    );

    let history = Command::cargo_bin("trainwatch")
        .unwrap()
        .arg("--config")
        .arg(&config)
        .args(["history", "every-10s"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&history.stdout);
    let succeeded = table.lines().filter(|l| l.ends_with("succeeded")).count();
    assert!(succeeded >= 2, "{table}");
    assert!(
        table
            .lines()
            .filter(|l| l.contains("1 sent, 0 failed, 0 pending"))
            .count()
            >= 2,
        "{table}"
    );
}
