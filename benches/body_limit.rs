//! A 1 GiB response body against the client's body cap: how long until the
//! fetch fails, how much the server had produced by then, and the peak
//! resident memory (VmHWM) of the process before and after.
//!
//! `cargo bench --bench body_limit`. The server streams the body lazily on
//! 127.0.0.1, chunked (no Content-Length), so nothing but the client's cap
//! stops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::StreamExt;
use secrecy::SecretString;
use trainwatch::samsara::{AssignmentQuery, Client, ClientSettings, RateLimits};

const GIB: u64 = 1024 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let produced = Arc::new(AtomicU64::new(0));
    let counter = produced.clone();
    let app = axum::Router::new().route(
        "/training-assignments/stream",
        axum::routing::get(move || {
            let counter = counter.clone();
            async move {
                let stream = futures::stream::iter(0..GIB / CHUNK as u64).map(move |_| {
                    counter.fetch_add(CHUNK as u64, Ordering::Relaxed);
                    Ok::<_, std::io::Error>(axum::body::Bytes::from_static(&[b' '; CHUNK]))
                });
                axum::body::Body::from_stream(stream)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let settings = ClientSettings::new(
        format!("http://{addr}").parse().unwrap(),
        SecretString::from("bench"),
    );
    let client = Client::with_limits(settings, Arc::new(RateLimits::default())).unwrap();
    let query = AssignmentQuery::new(
        "2026-03-02T00:00:00Z".parse().unwrap(),
        "2026-03-09T00:00:00Z".parse().unwrap(),
    );

    let before = peak_rss_kib();
    let started = Instant::now();
    let err = client.fetch_assignments(&query).await.unwrap_err();
    let took = started.elapsed();
    let after = peak_rss_kib();

    println!("error: {err}");
    println!(
        "body cap {} MiB; server produced {} MiB of a 1024 MiB body before the client stopped; {:.2} s",
        trainwatch::defaults::MAX_BODY_BYTES / (1024 * 1024),
        produced.load(Ordering::Relaxed) / (1024 * 1024),
        took.as_secs_f64()
    );
    println!(
        "peak RSS: {} MiB before the fetch, {} MiB after",
        before / 1024,
        after / 1024
    );
}
