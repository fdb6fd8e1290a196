//! Sample data served as the Samsara API on loopback.
//!
//! With `samsara.sample_data` set, trainwatch starts a [`SampleServer`] on
//! `127.0.0.1:0` that serves a folder of API responses (like the bundled
//! `sample/api`, written by `sample/generate.py`) with the API's semantics,
//! and points the client at it. The client then talks to it exactly as to
//! Samsara: real HTTP, cursors, parsing and deduplication. No token and no
//! network are needed.
//!
//! The folder holds bodies in the wire format:
//! - `stream-page-*.json`: `/training-assignments/stream` pages
//!   (`{"data": [...], "pagination": {...}}`), read in file-name order;
//!   together they are the unfiltered stream, duplicates included;
//! - `courses.json`: a `/training-courses` page (required);
//! - `drivers-active.json`, `drivers-deactivated.json`: `/fleet/drivers` pages;
//! - `tags.json`: a `/tags` page (optional).
//!
//! What is served, as the API does:
//! - `GET /training-assignments/stream`: `startTime` and `endTime` required
//!   (RFC 3339); a record is in the window when its `createdAtTime` or its
//!   `updatedAtTime` is in `[startTime, endTime)`; `learnerIds`
//!   (`driver-<id>`), `courseIds`, `categoryIds` (through the course's
//!   category), `status` and `isOverdue` filter; at most 100 ids per list;
//!   sorted by `updatedAtTime`; [`STREAM_PAGE_SIZE`] per page.
//! - `GET /training-courses`: `courseIds`, `categoryIds`, `status`;
//!   [`COURSES_PAGE_SIZE`] per page.
//! - `GET /fleet/drivers`: `driverActivationStatus` (`active` by default or
//!   `deactivated`), `limit` 1–512 (default 512), `tagIds` (drivers with
//!   any of these tags) and `parentTagIds` (with any of these tags or a
//!   descendant; here the parent's own drivers are in too), at most 100 each.
//! - `GET /tags`: `limit` 1–512 (default 512).
//!
//! Tests and benchmarks can also serve data held in memory
//! ([`SampleServer::start_with`]), set the server's "now" (versions modified
//! at or after it are not served yet: [`SampleServer::set_now`]), and make
//! the stream fail from a given page on ([`SampleServer::fail_stream_from_page`]).
//!
//! Pages end with `hasNextPage: false` and an empty `endCursor`; cursors are
//! opaque and passed back as `after`. Every request needs an
//! `Authorization: Bearer …` header (any token) or gets 401. Errors are JSON
//! `{"message", "requestId"}`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::oneshot;
use url::Url;

use crate::config::SamsaraConfig;
use crate::samsara::ClientSettings;

mod api;
mod data;

use api::router;
use data::Data;

/// Records per page of `/training-assignments/stream`.
pub const STREAM_PAGE_SIZE: usize = 25;
/// Courses per page of `/training-courses` (small, so pagination is exercised).
pub const COURSES_PAGE_SIZE: usize = 5;
/// The largest and default `limit` of `/fleet/drivers`.
pub const DRIVERS_MAX_LIMIT: usize = 512;
/// The sample data served on `127.0.0.1`, until dropped.
pub struct SampleServer {
    /// `http://127.0.0.1:PORT/`.
    pub base_url: Url,
    /// The folder served.
    pub dir: PathBuf,
    data: Arc<Data>,
    /// Dropping it tells the server to stop.
    _shutdown: oneshot::Sender<()>,
}

impl SampleServer {
    /// Loads the folder `dir` and serves it on `127.0.0.1` on a free port.
    /// A missing or malformed file fails here, naming the file.
    pub async fn start(dir: &Path) -> anyhow::Result<SampleServer> {
        let owned = dir.to_path_buf();
        let data = tokio::task::spawn_blocking(move || Data::load(&owned))
            .await
            .context("loading the sample data")??;
        Self::serve(data, dir).await
    }

    async fn serve(data: Data, dir: &Path) -> anyhow::Result<SampleServer> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .context("binding the sample server to 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let data = Arc::new(data);
        let app = router(data.clone());
        tokio::spawn(async move {
            let signal = async {
                // Resolves when the sender is dropped.
                let _ = stopped.await;
            };
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::warn!("sample server: {err}");
            }
        });
        let base_url = Url::parse(&format!("http://{addr}/"))?;
        // Debug: every command on the sample would otherwise open with it.
        tracing::debug!(dir = %dir.display(), url = %base_url, "serving sample data");
        Ok(SampleServer {
            base_url,
            dir: dir.to_path_buf(),
            data,
            _shutdown: shutdown,
        })
    }

    /// Requests answered so far by the API endpoints (errors included).
    pub fn requests(&self) -> u64 {
        self.data.requests.load(Ordering::Relaxed)
    }

    /// Serves data held in memory, as [`Self::start`] serves a folder:
    /// stream records (every version, in any order), courses, active and
    /// deactivated drivers, tags (all in wire format), `page_size` records
    /// per stream page.
    pub async fn start_with(content: SampleContent) -> anyhow::Result<SampleServer> {
        let data = Data::from_content(content)?;
        Self::serve(data, Path::new("(memory)")).await
    }

    /// The server's clock: versions whose `updatedAtTime` is at or after
    /// `now` are not served (they have not happened yet); `None`: all are.
    pub fn set_now(&self, now: Option<DateTime<Utc>>) {
        let n = now.map_or(i64::MAX, |t| t.timestamp_nanos_opt().unwrap_or(i64::MAX));
        self.data.now.store(n, Ordering::SeqCst);
    }

    /// Replaces the drivers served from now on (active, deactivated; wire
    /// format): a driver moved to another tag between two syncs.
    pub fn set_drivers(&self, active: Vec<Value>, deactivated: Vec<Value>) {
        *self.data.drivers.write().unwrap_or_else(|e| e.into_inner()) = (active, deactivated);
    }

    /// From the `page`-th stream page of any query on (1-based), answer
    /// HTTP 500 with a plain-text body, as the API's 5xx are; 0 turns it off.
    pub fn fail_stream_from_page(&self, page: u64) {
        self.data.fail_from_page.store(page, Ordering::SeqCst);
    }
}

/// Data for [`SampleServer::start_with`], every item in wire format.
#[derive(Debug, Clone, Default)]
pub struct SampleContent {
    /// `/training-assignments/stream` records: every version, any order.
    pub stream: Vec<Value>,
    /// `/training-courses` items.
    pub courses: Vec<Value>,
    /// `/fleet/drivers?driverActivationStatus=active` items.
    pub active: Vec<Value>,
    /// `/fleet/drivers?driverActivationStatus=deactivated` items.
    pub deactivated: Vec<Value>,
    /// `/tags` items.
    pub tags: Vec<Value>,
    /// Records per stream page; 0 means [`STREAM_PAGE_SIZE`].
    pub page_size: usize,
}

impl std::fmt::Debug for SampleServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleServer")
            .field("base_url", &self.base_url.as_str())
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Client settings from `[samsara]`; with `sample_data` set, a started
/// [`SampleServer`] too, the settings pointing at it (whatever `base_url`
/// says) with a placeholder token. Keep the server alive while the client
/// is used.
pub async fn client_settings(
    config: &SamsaraConfig,
) -> anyhow::Result<(ClientSettings, Option<SampleServer>)> {
    let mut settings = ClientSettings::from_config(config);
    let Some(dir) = &config.sample_data else {
        return Ok((settings, None));
    };
    let server = SampleServer::start(dir)
        .await
        .with_context(|| format!("serving the sample data in {}", dir.display()))?;
    settings.base_url = server.base_url.clone();
    settings.token = SecretString::from(crate::defaults::SAMPLE_TOKEN);
    Ok((settings, Some(server)))
}
