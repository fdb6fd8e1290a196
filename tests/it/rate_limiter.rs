//! The limiter on its own, under tokio's paused clock.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::max_in_any_window;
use tokio::time::Instant;
use trainwatch::samsara::Limiter;

#[tokio::test(start_paused = true)]
async fn never_more_than_rate_in_any_second_even_with_many_waiters() {
    let limiter = Arc::new(Limiter::new(5));
    let times = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (limiter, times) = (limiter.clone(), times.clone());
            tokio::spawn(async move {
                for _ in 0..10 {
                    limiter.acquire().await;
                    times.lock().unwrap().push(Instant::now());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let times = times.lock().unwrap();
    assert_eq!(times.len(), 80);
    assert_eq!(max_in_any_window(&times, Duration::from_secs(1)), 5);
    // And it is not slower than it must be: 79 gaps of ~202 ms.
    let span = *times.iter().max().unwrap() - *times.iter().min().unwrap();
    assert!(span >= Duration::from_millis(79 * 200), "{span:?}");
    assert!(span <= Duration::from_millis(79 * 205), "{span:?}");
}
