//! Progress on a terminal: the mirror sync's bar and the fetch's spinner.

use super::*;

/// A sync's versions, pages and rate on a terminal (with an ETA for a first
/// sync, from how far through its range the stream is); nothing in a pipe.
pub(super) struct SyncBar {
    bar: ProgressBar,
    first: bool,
    started: Instant,
}

impl SyncBar {
    pub(super) fn start(first: bool) -> Option<Self> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message("syncing…");
        Some(Self {
            bar,
            first,
            started: Instant::now(),
        })
    }
}

impl Drop for SyncBar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
        let _ = std::io::stderr().flush();
    }
}

impl crate::mirror::SyncProgress for SyncBar {
    fn page(&self, pages: u64, versions: u64, fraction: f64) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let eta = if self.first && fraction > 0.0 {
            let left = secs * (1.0 - fraction) / fraction;
            format!(" · {:.0}% · ETA {}", fraction * 100.0, human_duration(left))
        } else {
            String::new()
        };
        self.bar.set_message(format!(
            "{pages} pages · {versions} versions ({:.0}/s){eta}",
            versions as f64 / secs
        ));
    }
}

pub(super) fn human_duration(secs: f64) -> String {
    let secs = secs.max(0.0) as u64;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// Pages, records and request rate on a terminal; nothing in a pipe or log.
pub(super) struct Progress {
    bar: ProgressBar,
    pages: AtomicU64,
    records: AtomicU64,
    requests: AtomicU64,
    started: Instant,
}

impl Progress {
    pub(super) fn start() -> Option<Arc<Self>> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message("fetching…");
        Some(Arc::new(Self {
            bar,
            pages: AtomicU64::new(0),
            records: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            started: Instant::now(),
        }))
    }

    fn update(&self) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let requests = self.requests.load(Ordering::Relaxed);
        self.bar.set_message(format!(
            "{} pages · {} records · {} requests ({:.1}/s)",
            self.pages.load(Ordering::Relaxed),
            self.records.load(Ordering::Relaxed),
            requests,
            requests as f64 / secs,
        ));
    }
}

impl Drop for Progress {
    /// The spinner goes when the client that reports to it goes.
    fn drop(&mut self) {
        self.bar.finish_and_clear();
        let _ = std::io::stderr().flush();
    }
}

impl Observer for Progress {
    fn on_send(&self, _endpoint: Endpoint) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.update();
    }

    fn on_page(&self, endpoint: Endpoint, records: usize) {
        if endpoint == Endpoint::TrainingAssignments {
            self.pages.fetch_add(1, Ordering::Relaxed);
            self.records.fetch_add(records as u64, Ordering::Relaxed);
            self.update();
        }
    }
}
