//! Counters of runs, deliveries and API requests, rendered in the Prometheus
//! text exposition format (0.0.4) for `GET /metrics`.
//!
//! Five families are few enough to write the format by hand: no registry
//! crate, no global state, and the output order is ours to keep stable
//! (families in a fixed order, series sorted by their labels).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::job::DeliveryOutcome;
use crate::samsara::{Endpoint, Observer};

/// Upper bounds (seconds) of the run-duration histogram buckets; `+Inf` is implied.
pub const DURATION_BUCKETS: [f64; 8] = [1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// How a run ended, as the `outcome` label and in `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded,
    Failed,
}

impl RunOutcome {
    /// The label value: `succeeded` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// Failed when the run or any delivery failed ([`crate::job::RunSummary::failed`]).
    pub fn of(summary: &crate::job::RunSummary) -> Self {
        if summary.failed() {
            Self::Failed
        } else {
            Self::Succeeded
        }
    }
}

/// The `outcome` label of a delivery: `delivered`, `already_delivered`,
/// `already_archived` or `failed`.
pub fn delivery_outcome_label(outcome: &DeliveryOutcome) -> &'static str {
    outcome.label()
}

/// The process's metrics. Thread-safe; share it as `Arc<Metrics>`. It is also
/// the Samsara client's [`Observer`] for `trainwatch_api_requests_total`.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// (job, outcome) → runs.
    runs: BTreeMap<(String, String), u64>,
    /// job → durations.
    durations: BTreeMap<String, Histogram>,
    /// job → Unix seconds of the last successful run's end.
    last_success: BTreeMap<String, f64>,
    /// (kind, outcome) → deliveries.
    deliveries: BTreeMap<(String, String), u64>,
    /// (endpoint path, status) → responses.
    api: BTreeMap<(String, String), u64>,
    /// The mirror's syncs; `None` until the first one ends.
    syncs: Option<SyncTotals>,
    /// On a shared store: job → (replica, outcome, Unix seconds of the fire)
    /// of its last run there, whichever replica ran it.
    store_last_run: BTreeMap<String, (String, String, f64)>,
}

/// What the mirror's syncs did, summed.
#[derive(Debug, Default, Clone)]
struct SyncTotals {
    /// outcome (`succeeded`, `failed`) → syncs.
    by_outcome: BTreeMap<String, u64>,
    versions: u64,
    new_versions: u64,
    requests: u64,
    seconds: f64,
    last_success: Option<f64>,
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Non-cumulative counts per bucket of [`DURATION_BUCKETS`]; the last slot is `+Inf`.
    counts: [u64; DURATION_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, value: f64) {
        let slot = DURATION_BUCKETS
            .iter()
            .position(|&le| value <= le)
            .unwrap_or(DURATION_BUCKETS.len());
        self.counts[slot] += 1;
        self.sum += value;
        self.count += 1;
    }
}

impl Metrics {
    /// Empty metrics: series appear as they are first recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Metrics whose run series of these jobs start at zero, so a job that has
    /// not run yet is visible (and `rate()` sees its first increment).
    pub fn for_jobs<I, S>(jobs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let metrics = Self::new();
        {
            let mut inner = metrics.lock();
            for job in jobs {
                let job = job.into();
                for outcome in [RunOutcome::Succeeded, RunOutcome::Failed] {
                    inner
                        .runs
                        .entry((job.clone(), outcome.as_str().to_string()))
                        .or_default();
                }
                inner.durations.entry(job).or_default();
            }
        }
        metrics
    }

    /// A run of `job` finished: counts it, observes its duration and, on
    /// success, sets the job's last-success timestamp to `finished_at`.
    pub fn run_finished(
        &self,
        job: &str,
        outcome: RunOutcome,
        duration: Duration,
        finished_at: DateTime<Utc>,
    ) {
        let mut inner = self.lock();
        *inner
            .runs
            .entry((job.to_string(), outcome.as_str().to_string()))
            .or_default() += 1;
        inner
            .durations
            .entry(job.to_string())
            .or_default()
            .observe(duration.as_secs_f64());
        if outcome == RunOutcome::Succeeded {
            let seconds = finished_at.timestamp_millis() as f64 / 1000.0;
            inner.last_success.insert(job.to_string(), seconds);
        }
    }

    /// One delivery ended: `kind` is `email`, `archive` or a webhook kind's
    /// name (`crate::sink::SINKS`); `outcome` as [`delivery_outcome_label`] gives it.
    pub fn delivery(&self, kind: &str, outcome: &str) {
        *self
            .lock()
            .deliveries
            .entry((kind.to_string(), outcome.to_string()))
            .or_default() += 1;
    }

    /// One Samsara API response (or failure such as `timeout`) on `endpoint`.
    pub fn api_response(&self, endpoint: Endpoint, status: &str) {
        *self
            .lock()
            .api
            .entry((endpoint.path().to_string(), status.to_string()))
            .or_default() += 1;
    }

    /// A sync of the mirror ended (`succeeded` or `failed`), with its counts.
    pub fn sync_finished(
        &self,
        outcome: &str,
        stats: &crate::mirror::SyncStats,
        duration: Duration,
        finished_at: DateTime<Utc>,
    ) {
        let mut inner = self.lock();
        let t = inner.syncs.get_or_insert_with(SyncTotals::default);
        *t.by_outcome.entry(outcome.to_string()).or_default() += 1;
        t.versions += stats.versions;
        t.new_versions += stats.new_versions;
        t.requests += stats.requests;
        t.seconds += duration.as_secs_f64();
        if outcome == "succeeded" {
            t.last_success = Some(finished_at.timestamp_millis() as f64 / 1000.0);
        }
    }

    /// On a shared store: `job`'s last run there was fired at `fire` and
    /// ran on `replica` with `outcome`.
    pub fn store_saw(&self, job: &str, replica: &str, outcome: &str, fire: DateTime<Utc>) {
        self.lock().store_last_run.insert(
            job.to_string(),
            (
                replica.to_string(),
                outcome.to_string(),
                fire.timestamp_millis() as f64 / 1000.0,
            ),
        );
    }

    /// Everything, in the Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();

        family(
            &mut out,
            "trainwatch_runs_total",
            "counter",
            "Runs finished, by job and outcome (succeeded or failed).",
        );
        for ((job, outcome), n) in &inner.runs {
            sample(
                &mut out,
                "trainwatch_runs_total",
                &[("job", job), ("outcome", outcome)],
                &n.to_string(),
            );
        }

        family(
            &mut out,
            "trainwatch_run_duration_seconds",
            "histogram",
            "How long runs took, from start to the last delivery.",
        );
        for (job, h) in &inner.durations {
            let mut cumulative = 0;
            let bounds = DURATION_BUCKETS
                .iter()
                .map(|le| le.to_string())
                .chain(["+Inf".to_string()]);
            for (le, count) in bounds.zip(h.counts) {
                cumulative += count;
                sample(
                    &mut out,
                    "trainwatch_run_duration_seconds_bucket",
                    &[("job", job), ("le", &le)],
                    &cumulative.to_string(),
                );
            }
            let labels = [("job", job.as_str())];
            sample(
                &mut out,
                "trainwatch_run_duration_seconds_sum",
                &labels,
                &h.sum.to_string(),
            );
            sample(
                &mut out,
                "trainwatch_run_duration_seconds_count",
                &labels,
                &h.count.to_string(),
            );
        }

        family(
            &mut out,
            "trainwatch_last_success_timestamp_seconds",
            "gauge",
            "Unix time at which the job's last successful run finished.",
        );
        for (job, seconds) in &inner.last_success {
            sample(
                &mut out,
                "trainwatch_last_success_timestamp_seconds",
                &[("job", job)],
                &seconds.to_string(),
            );
        }

        if !inner.store_last_run.is_empty() {
            family(
                &mut out,
                "trainwatch_store_last_fire_timestamp_seconds",
                "gauge",
                "Shared store: Unix time of the fire of the job's last run, labelled with the replica that ran it and its outcome.",
            );
            for (job, (replica, outcome, seconds)) in &inner.store_last_run {
                sample(
                    &mut out,
                    "trainwatch_store_last_fire_timestamp_seconds",
                    &[("job", job), ("replica", replica), ("outcome", outcome)],
                    &seconds.to_string(),
                );
            }
        }

        family(
            &mut out,
            "trainwatch_deliveries_total",
            "counter",
            "Deliveries, by kind (email, archive or a webhook kind such as slack) and outcome.",
        );
        for ((kind, outcome), n) in &inner.deliveries {
            sample(
                &mut out,
                "trainwatch_deliveries_total",
                &[("kind", kind), ("outcome", outcome)],
                &n.to_string(),
            );
        }

        family(
            &mut out,
            "trainwatch_api_requests_total",
            "counter",
            "Samsara API responses, by endpoint path and HTTP status (or timeout, connection).",
        );
        for ((endpoint, status), n) in &inner.api {
            sample(
                &mut out,
                "trainwatch_api_requests_total",
                &[("endpoint", endpoint), ("status", status)],
                &n.to_string(),
            );
        }

        // The mirror's families appear once a sync has ended.
        if let Some(t) = &inner.syncs {
            family(
                &mut out,
                "trainwatch_mirror_syncs_total",
                "counter",
                "Syncs of the mirror, by outcome (succeeded or failed).",
            );
            for (outcome, n) in &t.by_outcome {
                sample(
                    &mut out,
                    "trainwatch_mirror_syncs_total",
                    &[("outcome", outcome)],
                    &n.to_string(),
                );
            }
            for (name, help, value) in [
                (
                    "trainwatch_mirror_versions_received_total",
                    "Assignment versions the syncs received (overlap and duplicates included).",
                    t.versions as f64,
                ),
                (
                    "trainwatch_mirror_new_versions_total",
                    "Assignment versions the syncs stored that the mirror did not have.",
                    t.new_versions as f64,
                ),
                (
                    "trainwatch_mirror_sync_requests_total",
                    "API requests the syncs sent.",
                    t.requests as f64,
                ),
                (
                    "trainwatch_mirror_sync_seconds_total",
                    "Time spent syncing.",
                    t.seconds,
                ),
            ] {
                family(&mut out, name, "counter", help);
                sample(&mut out, name, &[], &value.to_string());
            }
            if let Some(last) = t.last_success {
                family(
                    &mut out,
                    "trainwatch_mirror_last_success_timestamp_seconds",
                    "gauge",
                    "Unix time at which the last successful sync finished.",
                );
                sample(
                    &mut out,
                    "trainwatch_mirror_last_success_timestamp_seconds",
                    &[],
                    &last.to_string(),
                );
            }
        }

        out
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update is a single map write: a panic elsewhere cannot leave
        // the maps half-changed, so a poisoned lock is still good data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Observer for Metrics {
    fn on_response(&self, endpoint: Endpoint, status: &str) {
        self.api_response(endpoint, status);
    }
}

/// The `# HELP` and `# TYPE` lines of a family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One `name{labels} value` line.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: &str) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, val)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push_str("=\"");
            escape_label_value(out, val);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// Label values escape backslash, double quote and line feed.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_on_a_bucket_bound_counts_in_that_bucket() {
        let mut h = Histogram::default();
        h.observe(1.0);
        h.observe(1.5);
        h.observe(601.0);
        assert_eq!(h.counts, [1, 1, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(h.count, 3);
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        let mut out = String::new();
        escape_label_value(&mut out, "a\\b\"c\nd");
        assert_eq!(out, r#"a\\b\"c\nd"#);
    }
}
