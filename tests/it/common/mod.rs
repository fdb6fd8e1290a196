//! Shared helpers for the integration tests: wire-format records and a
//! client pointed at a local server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use trainwatch::samsara::{Client, ClientSettings, Endpoint, Observer, RateLimits};

/// One assignment as the stream endpoint sends it.
pub fn assignment(id: &str, learner: &str, course: &str, status: &str, updated: &str) -> Value {
    json!({
        "id": id,
        "course": {"id": course, "revisionId": "rev-1"},
        "learner": {"id": learner, "type": "driver"},
        "status": status,
        "createdAtTime": "2026-01-01T00:00:00Z",
        "createdById": "user-1",
        "updatedAtTime": updated,
        "updatedById": "user-1",
        "durationMinutes": 5,
    })
}

/// A held state: `assignments` over `window`, the job's teams resolved
/// from the config alone, no names.
pub fn held_data(
    config: &trainwatch::config::Config,
    job: &trainwatch::config::Job,
    window: trainwatch::window::Window,
    assignments: Vec<trainwatch::samsara::Assignment>,
) -> trainwatch::job::JobData {
    trainwatch::job::JobData {
        window,
        assignments: assignments.into(),
        names: Default::default(),
        stats: Default::default(),
        teams: trainwatch::teams::resolve(
            config,
            trainwatch::teams::Wanted::For(&job.filters),
            &[],
            &[],
        )
        .unwrap(),
        query: None,
        history: None,
        streamed: None,
    }
}

/// A page body.
pub fn page(data: Vec<Value>, cursor: &str, more: bool) -> Value {
    json!({"data": data, "pagination": {"endCursor": cursor, "hasNextPage": more}})
}

/// Settings for a local server: fast retries; no request timeout, so tests
/// can run under tokio's paused clock (see `ClientSettings::timeout`).
pub fn settings(uri: &str) -> ClientSettings {
    let mut s = ClientSettings::new(uri.parse().unwrap(), SecretString::from("test-token"));
    s.timeout = None;
    s.requests_per_second = 1000;
    s.retry = crate::support::fast_retry(6);
    s
}

pub fn client(uri: &str) -> Client {
    Client::with_limits(settings(uri), Arc::new(RateLimits::default())).unwrap()
}

/// Records when each request left, on tokio's clock.
#[derive(Default)]
pub struct Sends {
    pub at: Mutex<Vec<(Endpoint, tokio::time::Instant)>>,
    pub statuses: Mutex<Vec<String>>,
}

impl Observer for Sends {
    fn on_send(&self, endpoint: Endpoint) {
        self.at
            .lock()
            .unwrap()
            .push((endpoint, tokio::time::Instant::now()));
    }
    fn on_response(&self, _endpoint: Endpoint, status: &str) {
        self.statuses.lock().unwrap().push(status.to_string());
    }
}

/// The largest number of `times` inside any half-open window of `width`.
pub fn max_in_any_window(times: &[tokio::time::Instant], width: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    (0..sorted.len())
        .map(|i| {
            sorted[i..]
                .iter()
                .take_while(|t| **t - sorted[i] < width)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Secret values the config tests feed through `${VAR}`, so they can check
/// that none of them ever appears in a message or a `Debug` dump.
pub mod secrets {
    pub const TOKEN: &str = "tok-SECRET-4b1d";
    pub const PASSWORD: &str = "pw-SECRET-77aa";
    pub const HOOK: &str = "https://hooks.slack.com/services/T000/B000/SECRET-c0ffee";

    /// The environment of the config tests.
    pub fn env(name: &str) -> Option<String> {
        match name {
            "SAMSARA_API_TOKEN" => Some(TOKEN.into()),
            "SMTP_PASSWORD" => Some(PASSWORD.into()),
            "SLACK_WEBHOOK_URL" => Some(HOOK.into()),
            _ => None,
        }
    }
}
