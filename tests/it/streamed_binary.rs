//! Nothing lost, nothing twice, for a run that holds nothing of its state:
//! `trainwatch run-once` (the real binary) of a `current` audit from the
//! mirror (archive plus email with the CSV; its state read once for the
//! report and again for the files) is killed with SIGKILL while its archive
//! is being written. Nothing of it was sent. Run again, it sends one email
//! and one snapshot whose files check against their `SHA256SUMS` and whose
//! CSV has every assignment once; a third run sends nothing more.

#[path = "../../benches/support/million.rs"]
mod million;

use crate::smtp_support::{Script, TestSmtp};
use crate::support::service::trainwatch;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use sha2::{Digest, Sha256};

/// Enough assignments that writing the archive takes a while.
const ASSIGNMENTS: usize = 40_000;

/// The snapshot folders under `dir` (those holding a `SHA256SUMS`).
fn snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.join("SHA256SUMS").is_file() {
            out.push(path);
        } else if path.is_dir() {
            out.extend(snapshots(&path));
        }
    }
    out
}

/// Whether a staged file with some bytes in it exists under `staging`.
fn writing(staging: &Path) -> bool {
    std::fs::read_dir(staging)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|run| {
            std::fs::read_dir(run.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .any(|f| f.metadata().is_ok_and(|m| m.len() > 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_audit_killed_while_writing_its_archive_sends_once_when_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let fire = Utc.with_ymd_and_hms(2026, 11, 23, 14, 0, 0).unwrap();
    let end = fire + chrono::Duration::days(1);
    let span = (fire - start).num_seconds();
    million::fill(&state, ASSIGNMENTS, start, span, start, end);

    let smtp = TestSmtp::start(Script::default()).await;
    let archive = dir.path().join("archive");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
timezone = "UTC"
state_dir = "{state}"
[samsara]
base_url = "http://127.0.0.1:9"
token = "t"
[mirror]
since = "{since}"
[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
from = "Training <training@example.com>"
[[jobs]]
name = "audit"
schedule = "0 6 1 * *"
window = {{ current = true }}
filters = {{ include_deleted = true }}
deliver = [
  {{ archive = {{ dir = "{archive}" }} }},
  {{ email = {{ to = ["compliance@example.com"], template = "audit", attach_csv = true }} }},
]
"#,
            state = state.display(),
            since = start.to_rfc3339(),
            port = smtp.config("127.0.0.1").port,
            archive = archive.display(),
        ),
    )
    .unwrap();
    let at = fire.to_rfc3339();
    let run_once = || {
        let mut cmd = trainwatch(&config);
        cmd.args(["run-once", "audit", "--at", &at])
            .env("RUST_LOG", "error");
        cmd
    };

    // Killed while the archive's files are being written.
    let mut child = run_once()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let staging = state.join("staging");
    let started = Instant::now();
    while !writing(&staging) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its archive was being written: make ASSIGNMENTS larger"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no archive after 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(smtp.messages().len(), 0, "the killed run sent no email");
    assert!(snapshots(&archive).is_empty(), "nor published a snapshot");

    // Run again: everything, once.
    let out = run_once().output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(smtp.messages().len(), 1, "one email");
    let folders = snapshots(&archive);
    assert_eq!(folders.len(), 1, "one snapshot: {folders:?}");
    let folder = &folders[0];
    let sums = std::fs::read_to_string(folder.join("SHA256SUMS")).unwrap();
    for line in sums.lines() {
        let (sum, name) = line.split_once("  ").unwrap();
        let bytes = std::fs::read(folder.join(name)).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&bytes)), sum, "{name}");
    }
    let csv = std::fs::read_to_string(folder.join("assignments.csv")).unwrap();
    let ids: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let distinct: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), ASSIGNMENTS, "a row per assignment");
    assert_eq!(distinct.len(), ASSIGNMENTS, "each once");

    // And again: nothing more.
    let out = run_once().output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(smtp.messages().len(), 1, "still one email");
    assert_eq!(snapshots(&archive).len(), 1, "still one snapshot");
}
