//! `GET /healthz`, unknown paths, binding and shutdown of the real server on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use trainwatch::metrics::{Metrics, RunOutcome};
use trainwatch::server::{Health, serve};

/// How long a stopping server may take before the test calls it stuck.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const STALE_AFTER: Duration = Duration::from_secs(120);

struct Served {
    addr: SocketAddr,
    health: Arc<Health>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(jobs: &[&str]) -> Served {
    let health = Arc::new(Health::new(jobs.iter().copied(), STALE_AFTER));
    let (stop, stopped) = oneshot::channel::<()>();
    let (addr, task) = serve(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(Metrics::new()),
        health.clone(),
        async {
            let _ = stopped.await;
        },
    )
    .await
    .unwrap();
    Served {
        addr,
        health,
        stop: Some(stop),
        task: Some(task),
    }
}

async fn healthz(served: &Served) -> (u16, Value) {
    let response = reqwest::get(format!("http://{}/healthz", served.addr))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn never_ran() -> Value {
    json!({"last_fire": null, "last_run": null, "last_outcome": null, "last_success": null, "running": false})
}

#[tokio::test]
async fn healthz_is_ok_with_a_fresh_heartbeat_and_lists_every_configured_job() {
    let served = start(&["weekly-overdue", "daily-slack-digest", "monthly-audit"]).await;
    let beat = Utc::now();
    served.health.heartbeat(beat);
    served.health.job_ran(
        "weekly-overdue",
        at("2026-03-02T14:00:00Z"),
        RunOutcome::Succeeded,
        at("2026-03-02T14:00:12Z"),
    );
    served.health.job_ran(
        "weekly-overdue",
        at("2026-03-09T13:00:00Z"),
        RunOutcome::Failed,
        at("2026-03-09T13:00:03Z"),
    );

    let (status, body) = healthz(&served).await;

    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "status": "ok",
            "heartbeat": beat.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "stale_after_seconds": 120,
            "jobs": {
                "weekly-overdue": {
                    "last_fire": "2026-03-09T13:00:00Z",
                    "last_run": "2026-03-09T13:00:03Z",
                    "last_outcome": "failed",
                    "last_success": "2026-03-02T14:00:12Z",
                    "running": false,
                },
                "daily-slack-digest": never_ran(),
                "monthly-audit": never_ran(),
            }
        })
    );
}

#[tokio::test]
async fn healthz_is_503_stale_when_the_heartbeat_is_older_than_the_threshold() {
    let served = start(&["weekly-overdue"]).await;
    let old = Utc::now() - chrono::Duration::seconds(121);
    served.health.heartbeat(old);

    let (status, body) = healthz(&served).await;

    assert_eq!(status, 503);
    assert_eq!(body["status"], "stale");
    assert_eq!(
        body["heartbeat"],
        old.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    assert_eq!(body["jobs"]["weekly-overdue"], never_ran());
}

#[tokio::test]
async fn healthz_is_503_before_the_first_heartbeat() {
    let served = start(&["weekly-overdue"]).await;
    let (status, body) = healthz(&served).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "stale");
    assert_eq!(body["heartbeat"], Value::Null);
}

#[tokio::test]
async fn a_job_shows_running_from_start_until_it_ran() {
    let served = start(&["weekly-overdue", "monthly-audit"]).await;
    served.health.heartbeat(Utc::now());

    served.health.run_started("weekly-overdue");
    let (_, during) = healthz(&served).await;
    assert_eq!(during["jobs"]["weekly-overdue"]["running"], true);
    assert_eq!(during["jobs"]["monthly-audit"]["running"], false);

    served.health.job_ran(
        "weekly-overdue",
        at("2026-03-02T14:00:00Z"),
        RunOutcome::Succeeded,
        at("2026-03-02T14:00:12Z"),
    );
    let (_, after) = healthz(&served).await;
    assert_eq!(after["jobs"]["weekly-overdue"]["running"], false);
    assert_eq!(after["jobs"]["weekly-overdue"]["last_outcome"], "succeeded");

    // A run that ends without a result (cancelled) is no longer running either.
    served.health.run_started("monthly-audit");
    served.health.run_finished("monthly-audit");
    let (_, cancelled) = healthz(&served).await;
    assert_eq!(cancelled["jobs"]["monthly-audit"], never_ran());
}

#[tokio::test]
async fn an_unknown_path_is_404() {
    let served = start(&[]).await;
    for path in ["/", "/health", "/metrics/extra", "/healthz/"] {
        let response = reqwest::get(format!("http://{}{path}", served.addr))
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn port_zero_binds_a_free_port_and_returns_it() {
    let served = start(&[]).await;
    assert!(served.addr.ip().is_loopback());
    assert_ne!(served.addr.port(), 0);
}

#[tokio::test]
async fn the_server_stops_when_shutdown_resolves() {
    let mut served = start(&["weekly-overdue"]).await;
    // A client with a pooled keep-alive connection must not hold the server up.
    let client = reqwest::Client::new();
    let url = format!("http://{}/metrics", served.addr);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);

    served.stop.take().unwrap().send(()).unwrap();
    let task = served.task.take().unwrap();
    tokio::time::timeout(STOP_TIMEOUT, task)
        .await
        .expect("the server stops")
        .expect("the server task does not panic");

    let fresh = reqwest::Client::new();
    assert!(
        fresh.get(&url).send().await.is_err(),
        "nothing answers after shutdown"
    );
}

#[tokio::test]
async fn an_address_in_use_is_an_error_naming_it() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();

    let err = serve(
        addr,
        Arc::new(Metrics::new()),
        Arc::new(Health::new(["weekly-overdue"], STALE_AFTER)),
        std::future::pending(),
    )
    .await
    .expect_err("the address is taken");

    let message = format!("{err:#}");
    assert!(message.contains(&addr.to_string()), "{message}");
    assert!(message.contains("[server] listen"), "{message}");
}
