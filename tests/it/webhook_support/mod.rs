//! A webhook receiver for the `webhook_*` tests: a real HTTP server on
//! `127.0.0.1:0`, spawned on the test's own runtime, so that it stamps each
//! arrival with tokio's (paused) clock and answers from a script.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use tokio::time::Instant;
use trainwatch::deliver::webhook::WebhookSender;
use trainwatch::retry::RetryPolicy;
use trainwatch::samsara::RateLimits;

/// The secret part of every test webhook URL (Slack URLs carry one).
pub const URL_SECRET: &str = "SECRET-c0ffee";

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// What the receiver answers to the next request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A status, headers and a body.
    Answer(u16, Vec<(&'static str, &'static str)>, String),
    /// A status and the request's path as the body, as a careless receiver might.
    EchoPath(u16),
    /// Never answers.
    Hang,
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
}

/// The receiver; it stops with the test's runtime.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Listens on a free port of 127.0.0.1; answers 200 `ok` unless scripted.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(receive).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, shared }
    }

    /// The URL of hook `name` on this receiver, with a secret in its path.
    pub fn url(&self, name: &str) -> SecretString {
        SecretString::from(format!("http://{}/services/{name}/{URL_SECRET}", self.addr))
    }

    /// Queues the answers to the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap().extend(replies);
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }
}

/// A plain answer.
pub fn answer(status: u16, body: &str) -> Reply {
    Reply::Answer(status, Vec::new(), body.to_string())
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.received.lock().unwrap().push(Received {
        method,
        path: uri.path().to_string(),
        headers,
        body,
        at: Instant::now(),
    });
    let reply = shared.script.lock().unwrap().pop_front();
    match reply.unwrap_or_else(|| answer(200, "ok")) {
        Reply::Answer(status, headers, body) => {
            let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        Reply::EchoPath(status) => (
            StatusCode::from_u16(status).unwrap(),
            format!("no webhook at {}", uri.path()),
        )
            .into_response(),
        Reply::Hang => std::future::pending().await,
    }
}

/// Fast retries, generous budget; `Retry-After` honoured up to 5 s.
pub fn policy() -> RetryPolicy {
    crate::support::fast_retry(4)
}

/// A sender with no timers in its HTTP client (see
/// `WebhookSender::with_settings`) and its own pacing registry.
pub fn sender() -> WebhookSender {
    WebhookSender::with_settings(None, Arc::new(RateLimits::default())).unwrap()
}
