//! The real binary as a service: the config of a per-team email job of
//! `teams` managers mailing a local SMTP server, `trainwatch run` started
//! with its log in a file, signals, and what each manager received.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use assert_cmd::cargo::CommandCargoExt;

use crate::smtp_support::TestSmtp;

/// The job's name in [`write_per_team_config`]'s config.
pub const JOB: &str = "per-team";

/// Writes `dir/config.toml`: state in `dir/state`, the bundled sample's
/// data, mail to `smtp`, teams `team-01`… each managed by `mNN@example.com`,
/// and job [`JOB`] mailing every team's manager on `schedule`. `catch_up`
/// is the top-level key's value; `extra` is added as is (tables such as
/// `[store]` or `[server]`).
pub fn write_per_team_config(
    dir: &Path,
    smtp: &TestSmtp,
    teams: usize,
    schedule: &str,
    catch_up: &str,
    extra: &str,
) -> PathBuf {
    let mut team_tables = String::new();
    for i in 1..=teams {
        team_tables.push_str(&format!(
            "[teams.team-{i:02}]\nmanager = \"Manager {i:02} <m{i:02}@example.com>\"\nlearners = [\"driver-281474\"]\n\n"
        ));
    }
    let config = format!(
        r#"timezone = "UTC"
state_dir = "{state}"
catch_up = "{catch_up}"
{extra}
[samsara]
sample_data = "{api}"
requests_per_second = 100

[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
from = "Training Reports <training@example.com>"

{team_tables}
[[jobs]]
name = "{JOB}"
schedule = "{schedule}"
window = {{ last = "365d" }}
per_team = true
when_empty = "send"
deliver = [{{ email = {{ to = ["{{{{ team.manager }}}}"], template = "overdue" }} }}]
"#,
        state = dir.join("state").display(),
        api = super::root().join("sample/api").display(),
        port = smtp.addr.port(),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// `trainwatch --config <config>`.
pub fn trainwatch(config: &Path) -> Command {
    let mut cmd = Command::cargo_bin("trainwatch").unwrap();
    cmd.arg("--config").arg(config);
    cmd
}

/// A `trainwatch run` process.
pub struct Service {
    /// Its replica id (`--replica-id`), or "service".
    pub id: String,
    pub child: Child,
    /// Its standard error (the log, at info level).
    pub log: PathBuf,
}

impl Service {
    /// Starts `trainwatch run` on `config`, logging to `log`, as replica
    /// `replica` when given.
    pub fn start(config: &Path, log: &Path, replica: Option<&str>) -> Self {
        let mut cmd = trainwatch(config);
        if let Some(id) = replica {
            cmd.args(["--replica-id", id]);
        }
        let child = cmd
            .arg("run")
            .env("TRAINWATCH_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Self {
            id: replica.unwrap_or("service").to_string(),
            child,
            log: log.to_path_buf(),
        }
    }

    /// Sends `sig` (`-TERM`, `-KILL`, `-STOP`…) with kill(1).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig} {}", self.id);
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Recipient → the Message-IDs of the messages it received.
pub fn received_by_manager(smtp: &TestSmtp) -> BTreeMap<String, Vec<String>> {
    let mut by = BTreeMap::<String, Vec<String>>::new();
    for m in smtp.messages() {
        let id = m.parsed().message_id().unwrap_or_default().to_string();
        for r in &m.recipients {
            by.entry(r.clone()).or_default().push(id.clone());
        }
    }
    by
}
