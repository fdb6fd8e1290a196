//! The audit snapshot of a 1,000,000-assignment organisation from the
//! mirror (issue #14): `trainwatch run-once audit`, the real binary, for a
//! `current` window with `include_deleted = true`, delivering an archive
//! snapshot and an email with the CSV to a loopback SMTP server. Prints the
//! run's wall time, its peak resident memory (the child's `ru_maxrss`, i.e.
//! VmHWM of the process doing the run) and what `sha256sum -c SHA256SUMS`
//! says in the snapshot folder. Then `trainwatch export` of the same job
//! as CSV, measured alike, and whether it is the archive's
//! `assignments.csv` byte for byte.
//!
//! `cargo bench --bench audit_million`
//! (`TRAINWATCH_BENCH_ASSIGNMENTS=100000` for a shorter run;
//! `TRAINWATCH_BIN=path/to/trainwatch` to measure another build, e.g. main's.)
//!
//! The organisation is `trend_million`'s: every assignment has one version,
//! half of them a second one (started, completed or deleted), over two
//! years. Building the mirror is not timed.

#[path = "support/million.rs"]
mod million;
#[path = "../tests/it/smtp_support/mod.rs"]
mod smtp_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use smtp_support::{Script, TestSmtp};

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

/// Runs `command` to its end: its exit status, wall seconds and peak RSS in KiB.
///
/// The measuring is done by a fresh copy of this binary ([`MEASURE`]), not
/// by the bench itself: a child started from a process holds that process's
/// memory until it `exec`s (Rust spawns with `vfork`, which shares it, and
/// `fork` maps it), and the child's `ru_maxrss` counts it. From the bench,
/// which holds the mirror it built, that floor was 141 MiB; from a fresh
/// copy it is a few MiB, below any run's own peak.
fn run_measured(command: &Command) -> (std::process::ExitStatus, f64, u64) {
    let result = tempfile::NamedTempFile::new().unwrap();
    let mut measurer = Command::new(std::env::current_exe().unwrap());
    measurer
        .arg(MEASURE)
        .arg(result.path())
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(v) => measurer.env(key, v),
            None => measurer.env_remove(key),
        };
    }
    let status = measurer
        .status()
        .expect("the measuring copy of the bench starts");
    let text = std::fs::read_to_string(result.path()).unwrap();
    let mut fields = text.split_whitespace();
    let wall: f64 = fields
        .next()
        .and_then(|v| v.parse().ok())
        .expect("wall seconds");
    let peak: u64 = fields
        .next()
        .and_then(|v| v.parse().ok())
        .expect("peak KiB");
    (status, wall, peak)
}

/// The first argument of the measuring copy: `MEASURE RESULT_FILE PROGRAM ARGS…`.
const MEASURE: &str = "--measure-child";

/// In the measuring copy: runs the program, writes "wall_seconds peak_kib"
/// to the result file, and exits as the program did.
#[allow(clippy::zombie_processes)] // reaped by wait4, which also reports its peak RSS
fn measure(args: &[String]) -> ! {
    let [result, program, rest @ ..] = args else {
        panic!("{MEASURE} RESULT_FILE PROGRAM ARGS…");
    };
    let started = Instant::now();
    let child = Command::new(program)
        .args(rest)
        .spawn()
        .expect("the trainwatch binary starts");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `status` and `usage` are valid out-pointers.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    let wall = started.elapsed().as_secs_f64();
    std::fs::write(result, format!("{wall} {}", usage.ru_maxrss)).unwrap();
    use std::os::unix::process::ExitStatusExt;
    let status = std::process::ExitStatus::from_raw(status);
    std::process::exit(status.code().unwrap_or(1));
}

/// The snapshot folders under `dir` (those holding a `SHA256SUMS`).
fn snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.join("SHA256SUMS").is_file() {
            out.push(path);
        } else if path.is_dir() {
            out.extend(snapshots(&path));
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(MEASURE) {
        measure(&args[2..]);
    }
    tokio::runtime::Runtime::new().unwrap().block_on(bench());
}

async fn bench() {
    let total: usize = std::env::var("TRAINWATCH_BENCH_ASSIGNMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let bin = std::env::var("TRAINWATCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_trainwatch").to_string());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let start = Utc.with_ymd_and_hms(2024, 12, 1, 0, 0, 0).unwrap();
    let fire = Utc.with_ymd_and_hms(2026, 11, 23, 14, 0, 0).unwrap();
    let end = fire + Duration::days(1);

    let built = Instant::now();
    let span = (end - Duration::days(1) - start).num_seconds();
    let versions = million::fill(&state, total, start, span, start, end);
    println!(
        "audit_million: mirror of {total} assignments, {versions} versions, built in {:.1} s (not timed)",
        built.elapsed().as_secs_f64()
    );

    let smtp = TestSmtp::start(Script {
        keep_data: false,
        ..Script::default()
    })
    .await;
    let smtp_port = smtp.config("127.0.0.1").port;
    let archive = dir.path().join("audit");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
timezone = "America/Chicago"
state_dir = "{state}"
[samsara]
base_url = "http://127.0.0.1:9"
token = "t"
[mirror]
since = "{since}"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from = "Training Reports <training@example.com>"
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
            since = rfc(start),
            archive = archive.display(),
        ),
    )
    .unwrap();

    let mut command = Command::new(&bin);
    command
        .arg("--config")
        .arg(&config)
        .args(["run-once", "audit", "--at", &rfc(fire)])
        .env("RUST_LOG", "warn");
    // The binary blocks this thread while the SMTP server answers on its own threads.
    let (status, wall, peak_kib) = tokio::task::spawn_blocking(move || run_measured(&command))
        .await
        .unwrap();
    println!(
        "run-once audit ({bin}): {status}, wall {wall:.1} s, peak RSS {:.0} MiB (VmHWM {peak_kib} KiB)",
        peak_kib as f64 / 1024.0
    );
    println!(
        "emails received by the loopback SMTP server: {}",
        smtp.messages().len()
    );
    let folders = snapshots(&archive);
    if folders.is_empty() {
        println!("no snapshot folder was written");
    }
    for folder in &folders {
        let check = Command::new("sha256sum")
            .args(["-c", "SHA256SUMS"])
            .current_dir(folder)
            .output()
            .expect("sha256sum is installed");
        let size: u64 = std::fs::read_dir(folder)
            .unwrap()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        println!(
            "snapshot {} ({:.0} MiB): sha256sum -c SHA256SUMS: {}\n{}",
            folder.display(),
            size as f64 / (1024.0 * 1024.0),
            if check.status.success() {
                "passed"
            } else {
                "FAILED"
            },
            String::from_utf8_lossy(&check.stdout).trim_end()
        );
    }
    let staged = std::fs::read_dir(state.join("staging"))
        .map(|d| d.count())
        .unwrap_or(0);
    println!("staging folders left: {staged}");

    // `export` of the same job as CSV: the same rows, in the same order,
    // written row by row from the mirror, so the archive's CSV byte for byte.
    let exported = dir.path().join("export.csv");
    let mut command = Command::new(&bin);
    command
        .arg("--config")
        .arg(&config)
        .args([
            "export",
            "audit",
            "--at",
            &rfc(fire),
            "--format",
            "csv",
            "--out",
        ])
        .arg(&exported)
        .env("RUST_LOG", "warn");
    let (status, wall, peak_kib) = tokio::task::spawn_blocking(move || run_measured(&command))
        .await
        .unwrap();
    let same = folders.first().is_some_and(|f| {
        std::fs::read(f.join("assignments.csv")).ok() == std::fs::read(&exported).ok()
    });
    println!(
        "export audit --format csv ({bin}): {status}, wall {wall:.1} s, peak RSS {:.0} MiB (VmHWM {peak_kib} KiB); the archive's assignments.csv byte for byte: {}",
        peak_kib as f64 / 1024.0,
        if same { "yes" } else { "NO" }
    );
}
