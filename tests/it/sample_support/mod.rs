//! Shared by the `sample_*` tests: the bundled sample read straight from its
//! files, and what the API should answer, recomputed here in Rust (not taken
//! from the generator's summary).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::Value;
use trainwatch::samsara::{Client, ClientSettings, RateLimits};

/// The sample fire time: Monday 2026-11-23 08:00 America/Chicago.
pub const FIRE: &str = "2026-11-23T08:00:00-06:00";

pub fn fire() -> DateTime<Utc> {
    time(FIRE)
}

pub fn time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn sample_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample")
}

pub fn sample_dir() -> PathBuf {
    sample_root().join("api")
}

/// The `data` of a page file.
pub fn page_data(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    body["data"].as_array().unwrap().clone()
}

/// The stream page files, in name order.
pub fn stream_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(sample_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with("stream-page-") && name.ends_with(".json")
        })
        .collect();
    files.sort();
    files
}

/// Every record of the stream files, duplicates included, in file order.
pub fn stream_records() -> Vec<Value> {
    stream_files().iter().flat_map(|p| page_data(p)).collect()
}

pub fn field_time(r: &Value, key: &str) -> DateTime<Utc> {
    time(r[key].as_str().unwrap())
}

/// `driver-<id>`, the filter form of a record's learner.
pub fn learner(r: &Value) -> String {
    format!("driver-{}", r["learner"]["id"].as_str().unwrap())
}

/// The records in `[start, end)` (created or updated) that pass `keep`,
/// deduplicated by id: the latest `updatedAtTime` wins, a tie the later one.
pub fn expected(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    keep: impl Fn(&Value) -> bool,
) -> BTreeMap<String, Value> {
    let within = |t: DateTime<Utc>| start <= t && t < end;
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    for r in stream_records() {
        if !(within(field_time(&r, "createdAtTime")) || within(field_time(&r, "updatedAtTime")))
            || !keep(&r)
        {
            continue;
        }
        let id = r["id"].as_str().unwrap().to_string();
        let newer = out.get(&id).is_none_or(|kept| {
            field_time(kept, "updatedAtTime") <= field_time(&r, "updatedAtTime")
        });
        if newer {
            out.insert(id, r);
        }
    }
    out
}

/// A client for `base`: fast, with its own limiters.
pub fn client(base: &url::Url) -> Client {
    let mut s = ClientSettings::new(base.clone(), SecretString::from("any-token"));
    s.requests_per_second = 1000;
    s.timeout = Some(Duration::from_secs(20));
    Client::with_limits(s, Arc::new(RateLimits::default())).unwrap()
}
