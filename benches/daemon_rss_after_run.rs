//! The service's memory around one big run: `trainwatch run` (the release
//! binary) on a mirror of 1,000,000 assignments, with one job whose schedule
//! fires about a minute after the start. Prints the idle RSS before the fire,
//! the peak during the run, and the RSS after it (5 s and 30 s after the run
//! finished), each with its anonymous/file-backed split. The target: the RSS
//! after a run within twice the idle RSS.
//!
//! `cargo bench --bench daemon_rss_after_run`
//! (`TRAINWATCH_BENCH_ASSIGNMENTS=100000` for a smaller organisation.)
//!
//! No credentials: the mirror is filled here, as a sync would stage it (the
//! generator of `trend_million`: one version per assignment, half of them a
//! second one later), and its reach ends now; the Samsara API is the bundled
//! sample server (`samsara.sample_data`), which the run's own sync asks for
//! the last minutes. The job posts the overdue assignments' Slack digest to a
//! receiver here on loopback. (A report that lists every row, such as the
//! archive's, is over SQLite's 1 GB limit for the outbox's payload at this
//! size until reports stream: the run then fails after its peak.)

#[path = "support/million.rs"]
mod million;

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Timelike, Utc};

/// `mirror.since` of the config, and of the filled mirror's reach.
const SINCE: &str = "2020-01-01T00:00:00Z";

/// One process's memory, in KiB: RSS, its anonymous part, the part that
/// is pages of the executable file, the peak RSS.
#[derive(Clone, Copy, Default)]
struct Rss {
    rss: u64,
    anon: u64,
    exe: u64,
    peak: u64,
}

fn field(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn rss(pid: u32) -> Rss {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    // Each mapping's header names its file; its Rss and Anonymous lines follow.
    let (mut of_exe, mut exe_file) = (false, 0);
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            of_exe = fields.nth(4) == Some(&*exe.to_string_lossy());
        } else if of_exe && first == "Rss:" {
            exe_file += fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        } else if of_exe && first == "Anonymous:" {
            exe_file -= fields
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Rss {
        rss: field(&status, "VmRSS:"),
        anon: field(&rollup, "Anonymous:"),
        exe: exe_file,
        peak: field(&status, "VmHWM:"),
    }
}

fn show(what: &str, m: Rss) -> String {
    format!(
        "{what:<22} {:>4} MiB ({} KiB: anonymous {} KiB, file-backed {} KiB of which the binary {} KiB)",
        m.rss / 1024,
        m.rss,
        m.anon,
        m.rss - m.anon,
        m.exe
    )
}

/// Fills the mirror in `state` with `total` assignments created over the
/// two years before `now`; returns the versions staged.
fn fill_mirror(state: &Path, total: usize, now: DateTime<Utc>) -> u64 {
    let since: DateTime<Utc> = SINCE.parse().unwrap();
    let start = now - Duration::days(730);
    let span = (now - Duration::days(60) - start).num_seconds();
    million::fill(state, total, start, span, since, now)
}

/// A webhook receiver on loopback that answers `200 ok` to every request;
/// returns its port.
fn receiver() -> u16 {
    use std::io::{BufRead as _, BufReader, Read as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if reader.get_mut().write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Stops the service with SIGTERM (it drains and exits 0) when dropped.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: kill only sends a signal to our own child's pid.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

fn main() {
    let total: usize = std::env::var("TRAINWATCH_BENCH_ASSIGNMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let built = Instant::now();
    let versions = fill_mirror(&state, total, Utc::now());
    println!(
        "mirror: {total} assignments, {versions} versions, built in {:.1} s",
        built.elapsed().as_secs_f64()
    );

    // The fire: a whole second about a minute from now, so the service is
    // idle (start, first sync and their release over) well before it.
    let fire = (Utc::now() + Duration::seconds(60))
        .with_nanosecond(0)
        .unwrap();
    let config = dir.path().join("config.toml");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/api");
    let mut f = std::fs::File::create(&config).unwrap();
    write!(
        f,
        r#"
timezone = "UTC"
state_dir = "{state}"
catch_up = "0"
[samsara]
sample_data = "{sample}"
[mirror]
since = "{SINCE}"
[[jobs]]
name = "overdue"
schedule = "{s} {m} {h} * * *"
window = {{ current = true }}
filters = {{ overdue = true, status = ["notStarted", "inProgress"] }}
when_empty = "send"
deliver = [{{ webhook = "digest", template = "digest" }}]
[webhooks.digest]
kind = "slack"
url = "http://127.0.0.1:{port}/hook"
"#,
        state = state.display(),
        sample = sample.display(),
        s = fire.second(),
        m = fire.minute(),
        h = fire.hour(),
        port = receiver(),
    )
    .unwrap();
    drop(f);

    let log_path = dir.path().join("log");
    let child = Command::new(env!("CARGO_BIN_EXE_trainwatch"))
        .args(["--config"])
        .arg(&config)
        .args(["--log-format", "json", "run"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let service = Service(child);
    let pid = service.0.id();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    println!("service: pid {pid}, one job firing at {fire}");

    // Idle: 3 s before the fire.
    let idle_at = fire - Duration::seconds(3);
    while Utc::now() < idle_at {
        std::thread::sleep(StdDuration::from_millis(200));
    }
    let idle = rss(pid);
    let threads = field(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default(),
        "Threads:",
    );
    println!("{}, {threads} threads", show("idle before the fire", idle));
    // From here, the peak is the run's (not the start's).
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");

    let deadline = Instant::now() + StdDuration::from_secs(900);
    let mut finished = None;
    while Instant::now() < deadline {
        std::thread::sleep(StdDuration::from_millis(200));
        if let Some(line) = log().lines().find(|l| l.contains("\"run finished\"")) {
            finished = Some(line.to_string());
            break;
        }
    }
    let Some(finished) = finished else {
        eprintln!("no run finished within 15 min; log:\n{}", log());
        std::process::exit(1);
    };
    let ran = Utc::now() - fire;
    std::thread::sleep(StdDuration::from_secs(5));
    let after = rss(pid);
    println!(
        "{:<22} {:>4} MiB ({} KiB)",
        "peak during the run",
        after.peak / 1024,
        after.peak
    );
    println!("{}", show("5 s after the run", after));
    std::thread::sleep(StdDuration::from_secs(25));
    let later = rss(pid);
    println!("{}", show("30 s after the run", later));
    println!(
        "after/idle: {:.2}× (5 s), {:.2}× (30 s); the run took about {} s",
        after.rss as f64 / idle.rss as f64,
        later.rss as f64 / idle.rss as f64,
        ran.num_seconds()
    );
    let outcome = finished
        .split("\"outcome\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or("?");
    let records = finished
        .split("\"records\":")
        .nth(1)
        .and_then(|s| s.split([',', '}']).next())
        .unwrap_or("?");
    println!("run: outcome {outcome}, {records} records");
    if outcome != "succeeded" {
        println!("run finished: {finished}");
    }
    drop(service);
}
