//! A sync: brings the mirror up to an instant `T`.
//!
//! The unfiltered stream over `[previous end − overlap, T)` (the first time,
//! `[since, T)`), then courses, drivers and tags. Pages are staged as they
//! arrive and moved in by one transaction at the end, which also records the
//! new reach: a sync that fails or is killed part-way leaves the mirror as it
//! was. One sync at a time per store: a lock in the process (jobs of one
//! service share a sync) and a lock file across processes; whoever waited
//! re-reads the reach and skips when the sync it waited for already got there.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use super::{Lists, MirrorStore, Reach, SyncStats};
use crate::config::MirrorConfig;
use crate::samsara::{ApiError, Client, Endpoint, Observer};

/// Progress of a sync, for a terminal.
pub trait SyncProgress: Send + Sync {
    /// A page was stored: totals so far, and how far through the range the
    /// stream is (0..1, from the last version's `updatedAtTime`).
    fn page(&self, pages: u64, versions: u64, fraction: f64);
}

/// How a sync ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncOutcome {
    /// The mirror already reached the instant: nothing was read.
    Skipped,
    /// Completed: the mirror now reaches the instant.
    Synced,
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncReport {
    /// Synced or skipped.
    pub outcome: SyncOutcome,
    /// The stream range read (`None` when skipped).
    pub range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The mirror's reach afterwards.
    pub reach: Reach,
    /// What it read and stored.
    pub stats: SyncStats,
    /// Wall time, lock waits included.
    pub seconds: f64,
    /// Lists it could not read (token scopes).
    pub warnings: Vec<String>,
}

/// Counts requests of the sync, passing every event on to the client's own observer.
struct Counting {
    requests: AtomicU64,
    inner: Option<Arc<dyn Observer>>,
}

impl Observer for Counting {
    fn on_send(&self, endpoint: Endpoint) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(o) = &self.inner {
            o.on_send(endpoint);
        }
    }
    fn on_response(&self, endpoint: Endpoint, status: &str) {
        if let Some(o) = &self.inner {
            o.on_response(endpoint, status);
        }
    }
    fn on_page(&self, endpoint: Endpoint, records: usize) {
        if let Some(o) = &self.inner {
            o.on_page(endpoint, records);
        }
    }
}

/// Told of every sync that ends in this process (the service's metrics).
pub type SyncListener = dyn Fn(&str, &SyncStats, std::time::Duration) + Send + Sync;

fn listener() -> &'static std::sync::RwLock<Option<Arc<SyncListener>>> {
    static LISTENER: OnceLock<std::sync::RwLock<Option<Arc<SyncListener>>>> = OnceLock::new();
    LISTENER.get_or_init(Default::default)
}

/// Calls `f` with the outcome (`succeeded`, `failed`), counts and duration of
/// every sync that ends in this process from now on (skipped ones are not syncs).
pub fn on_sync_end(f: Arc<SyncListener>) {
    *listener().write().unwrap_or_else(|e| e.into_inner()) = Some(f);
}

fn tell(outcome: &str, stats: &SyncStats, took: std::time::Duration) {
    let f = listener().read().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(f) = f {
        f(outcome, stats, took);
    }
}

/// The in-process lock of each store location.
fn process_lock(location: &std::path::Path) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut map = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    map.entry(location.to_path_buf()).or_default().clone()
}

/// Takes the cross-process lock file beside the store (blocking until free).
async fn file_lock(location: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let dir = location
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("locks");
    let path = dir.join("mirror-sync.lock");
    tokio::task::spawn_blocking(move || -> anyhow::Result<std::fs::File> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(file)
    })
    .await
    .context("waiting for the sync lock")?
}

/// The lock that lets one process sync at a time: the store's own (a
/// lease on Postgres, across hosts), waited for; else the lock file.
async fn across_processes(
    mirror: &dyn MirrorStore,
    location: &std::path::Path,
) -> anyhow::Result<Box<dyn Send>> {
    /// How often a replica waiting for another's sync tries again.
    const POLL: std::time::Duration = std::time::Duration::from_millis(200);
    let mut said = false;
    loop {
        match mirror.try_lock_sync()? {
            super::SyncLock::None => return Ok(Box::new(file_lock(location).await?)),
            super::SyncLock::Held(guard) => return Ok(guard),
            super::SyncLock::Busy => {
                if !said {
                    tracing::info!("another replica is syncing the mirror; waiting for it");
                    said = true;
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

/// Brings `mirror` up to `to`, unless it already reaches it.
pub async fn sync(
    mirror: &dyn MirrorStore,
    client: &Client,
    settings: &MirrorConfig,
    to: DateTime<Utc>,
    progress: Option<&dyn SyncProgress>,
) -> anyhow::Result<SyncReport> {
    run(mirror, client, settings, to, progress, false).await
}

/// Reads everything again from `mirror.since` up to `to` and replaces the
/// mirror's contents with it, in the commit's one transaction: a rebuild
/// that fails leaves the old mirror as it was.
pub async fn rebuild(
    mirror: &dyn MirrorStore,
    client: &Client,
    settings: &MirrorConfig,
    to: DateTime<Utc>,
    progress: Option<&dyn SyncProgress>,
) -> anyhow::Result<SyncReport> {
    run(mirror, client, settings, to, progress, true).await
}

async fn run(
    mirror: &dyn MirrorStore,
    client: &Client,
    settings: &MirrorConfig,
    to: DateTime<Utc>,
    progress: Option<&dyn SyncProgress>,
    replace: bool,
) -> anyhow::Result<SyncReport> {
    // Never past the real clock: a reach in the future would make the next
    // syncs start after changes that have not happened yet, and miss them.
    // A preview `--at` a future instant reads the mirror as of now.
    let to = to.min(Utc::now());
    let location = mirror.location();
    let lock = process_lock(&location);
    let _in_process = lock.lock().await;
    let _across_processes = across_processes(mirror, &location).await?;
    let started = Instant::now();

    let reach = if replace { None } else { mirror.reach()? };
    if let Some(r) = reach
        && r.end >= to
        && r.since <= settings.since
    {
        return Ok(SyncReport {
            outcome: SyncOutcome::Skipped,
            range: None,
            reach: r,
            stats: SyncStats::default(),
            seconds: started.elapsed().as_secs_f64(),
            warnings: Vec::new(),
        });
    }
    // A `since` moved earlier than the mirror's reach means reading again from it.
    let start = match reach {
        Some(r) if r.since <= settings.since => {
            let overlap = chrono::TimeDelta::from_std(settings.overlap).unwrap_or_default();
            (r.end - overlap).max(r.since)
        }
        _ => settings.since,
    };
    if start >= to {
        anyhow::bail!(
            "cannot sync the mirror to {to}: it is not after the mirror's start {start} (mirror.since)"
        );
    }
    let new_reach = Reach {
        since: reach.map_or(settings.since, |r| r.since.min(settings.since)),
        end: to,
    };
    let sync_id = mirror.begin_sync(start, to, Utc::now())?;
    let counter = Arc::new(Counting {
        requests: AtomicU64::new(0),
        inner: client.observer(),
    });
    let counted = client.clone().observed(counter.clone());
    let mut stats = SyncStats::default();
    let result = read_all(mirror, &counted, sync_id, start, to, progress, &mut stats).await;
    stats.requests = counter.requests.load(Ordering::Relaxed);
    let lists = match result {
        Ok(lists) => lists,
        Err(e) => {
            let error = format!("{e:#}");
            if let Err(record) = mirror.fail(sync_id, &error, &stats, Utc::now()) {
                tracing::error!("cannot record the failed sync: {record:#}");
            }
            tell("failed", &stats, started.elapsed());
            tracing::warn!(error = %error, "mirror sync failed; its reach is unchanged");
            return Err(e.context(format!("syncing the mirror over [{start}, {to})")));
        }
    };
    stats.new_versions =
        blocking(|| mirror.commit(sync_id, new_reach, &lists, &stats, replace, Utc::now()))?;
    tell("succeeded", &stats, started.elapsed());
    tracing::info!(
        start = %start,
        end = %to,
        versions = stats.versions,
        new = stats.new_versions,
        requests = stats.requests,
        seconds = started.elapsed().as_secs_f64(),
        "mirror synced"
    );
    Ok(SyncReport {
        outcome: SyncOutcome::Synced,
        range: Some((start, to)),
        reach: new_reach,
        stats,
        seconds: started.elapsed().as_secs_f64(),
        warnings: lists.warnings,
    })
}

/// Pages the reader may have read ahead of staging (besides the one being
/// read): at the stream's 100 versions a page, more than a batch
/// ([`Staging::BATCH`]), so the reader is not held up while a batch is
/// staged; memory stays bounded to that many pages besides the batch.
const READ_AHEAD: usize = 64;

/// Reads every page of the range and the lists; stages the pages.
///
/// The pages are read by a task of their own, a bounded channel ahead of
/// this one, which stages them in the order received: requests and
/// parsing overlap staging rather than wait for it. A staging failure (or
/// the sync dropped) drops the channel and aborts the reader.
async fn read_all(
    mirror: &dyn MirrorStore,
    client: &Client,
    sync_id: i64,
    start: DateTime<Utc>,
    to: DateTime<Utc>,
    progress: Option<&dyn SyncProgress>,
    stats: &mut SyncStats,
) -> anyhow::Result<Lists> {
    let span = (to - start).num_milliseconds().max(1) as f64;
    let (mut pages, mut versions) = (0u64, 0u64);
    let mut staging = Staging::new(mirror, sync_id);
    let (sender, mut received) =
        tokio::sync::mpsc::channel::<Vec<crate::samsara::Assignment>>(READ_AHEAD);
    let reader = {
        let client = client.clone();
        Reader(tokio::spawn(async move {
            client.stream_pages_to(start, to, sender).await
        }))
    };
    let mut staged = Ok(());
    while let Some(page) = received.recv().await {
        pages += 1;
        versions += page.len() as u64;
        let fraction = page
            .last()
            .map(|a| ((a.updated_at_time - start).num_milliseconds() as f64 / span).clamp(0.0, 1.0))
            .unwrap_or(0.0);
        staged = staging.add(page);
        if staged.is_err() {
            break;
        }
        if let Some(p) = progress {
            p.page(pages, versions, fraction);
        }
    }
    stats.pages = pages;
    stats.versions = versions;
    // The first failure in stream order: a page that would not stage stops
    // the read (the reader aborted with the channel), as an API failure does.
    staged?;
    drop(received);
    match reader.finish().await? {
        Ok(_) => staging.flush()?,
        Err(e) => return Err(e.into()),
    }
    let (courses, drivers, tags) =
        tokio::join!(client.all_courses(), client.drivers(), client.tags());
    let mut lists = Lists::default();
    lists.courses = optional(courses, "course titles", &mut lists.warnings)?;
    lists.drivers = optional(drivers, "learner names and tags", &mut lists.warnings)?;
    lists.tags = optional(tags, "tags", &mut lists.warnings)?;
    Ok(lists)
}

/// The task reading a sync's pages: aborted when dropped, so a sync that
/// fails or is dropped part-way sends no further request.
struct Reader(tokio::task::JoinHandle<Result<u64, ApiError>>);

impl Reader {
    /// How the read ended, once every page was received.
    async fn finish(mut self) -> anyhow::Result<Result<u64, ApiError>> {
        match (&mut self.0).await {
            Ok(read) => Ok(read),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(anyhow::anyhow!("the page reader stopped: {e}")),
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Pages on their way to the store's staging: one transaction (SQLite) or
/// statement (Postgres) per [`Staging::BATCH`] versions rather than per page
/// of 100, which is most of a fast sync's store time; bounded in memory, and
/// flushed at least every [`Staging::EVERY`] so a slow sync's pages are on
/// disk as they arrive.
struct Staging<'a> {
    mirror: &'a dyn MirrorStore,
    sync_id: i64,
    batch: Vec<crate::samsara::Assignment>,
    flushed: Instant,
}

impl<'a> Staging<'a> {
    const BATCH: usize = 5_000;
    const EVERY: std::time::Duration = std::time::Duration::from_secs(1);

    fn new(mirror: &'a dyn MirrorStore, sync_id: i64) -> Self {
        Self {
            mirror,
            sync_id,
            batch: Vec::new(),
            flushed: Instant::now(),
        }
    }

    fn add(&mut self, page: Vec<crate::samsara::Assignment>) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            self.batch = page;
        } else {
            self.batch.extend(page);
        }
        if self.batch.len() >= Self::BATCH || self.flushed.elapsed() >= Self::EVERY {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if !self.batch.is_empty() {
            let (mirror, sync, batch) = (self.mirror, self.sync_id, &self.batch);
            blocking(|| mirror.stage(sync, batch))?;
            self.batch.clear();
        }
        self.flushed = Instant::now();
        Ok(())
    }
}

/// Runs `f`, which blocks (a store's write), where the runtime allows
/// telling it so (a multi-threaded one: its other tasks, the page reader
/// among them, move to another thread meanwhile); else plainly.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A list the token may lack the scope for: kept as before, with a warning.
fn optional<T>(
    result: Result<T, ApiError>,
    what: &str,
    warnings: &mut Vec<String>,
) -> anyhow::Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e @ ApiError::Unauthorized { .. }) => {
            warnings.push(format!("{what} not synced: {e}"));
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}
