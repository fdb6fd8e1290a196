//! `trainwatch init`: from an API token to a first configuration that
//! validates, with the token's scopes checked on the way.
//!
//! Each endpoint trainwatch reads is requested once; a 401/403 names the
//! scope the token lacks. The organisation's tags and driver counts are
//! listed so the user can choose teams. The configuration written needs
//! only `SAMSARA_API_TOKEN`: its one job archives the overdue report to a
//! folder, and email and Slack are there as comments to fill in.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use url::Url;

use crate::samsara::{ApiError, Client, ClientSettings, Endpoint};

/// The environment variable the token is read from (and the config names).
pub const TOKEN_VAR: &str = "SAMSARA_API_TOKEN";

/// How `init` ended, for `cli` to turn into an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The configuration was written.
    Written,
    /// Nothing to do as asked: no token, or the file exists.
    Usage,
    /// The API could not be reached, or the token cannot read assignments.
    Failed,
}

/// How many tags `init` lists before "…and N more".
const TAGS_SHOWN: usize = 30;

/// Checks the token against `base_url`, lists tags and drivers, and writes a
/// first configuration to `out` (never over an existing file).
pub async fn run(out: &Path, base_url: Url, now: DateTime<Utc>) -> anyhow::Result<Outcome> {
    let Some(token) = std::env::var(TOKEN_VAR)
        .ok()
        .filter(|t| !t.trim().is_empty())
    else {
        eprintln!(
            "error: {TOKEN_VAR} is not set.\n\
             Create an API token in the Samsara dashboard (Settings → Organization → API Tokens) \
             with the scopes {}, then:\n  export {TOKEN_VAR}=…\n  trainwatch init",
            scopes().join(", ")
        );
        return Ok(Outcome::Usage);
    };
    if out.exists() {
        eprintln!(
            "error: {} already exists; trainwatch init never overwrites a file: pass --out another path",
            out.display()
        );
        return Ok(Outcome::Usage);
    }
    let client = Client::new(ClientSettings::new(
        base_url.clone(),
        SecretString::from(token),
    ))
    .context("creating the HTTP client")?;

    println!("Checking the token against {base_url}");
    let mut missing = Vec::new();
    for endpoint in [
        Endpoint::TrainingAssignments,
        Endpoint::TrainingCourses,
        Endpoint::Drivers,
        Endpoint::Tags,
    ] {
        match client.check_access(endpoint, now).await {
            Ok(()) => println!("  ok       {:<28} {endpoint}", endpoint.scope()),
            Err(ApiError::Unauthorized { status, .. }) => {
                println!(
                    "  MISSING  {:<28} {endpoint}: HTTP {status}, {}",
                    endpoint.scope(),
                    consequence(endpoint)
                );
                missing.push(endpoint);
            }
            Err(e) => {
                // Not a scope: the address, the network, the service.
                eprintln!("error: {e}");
                eprintln!(
                    "hint: is {base_url} your organisation's API? EU organisations use https://api.eu.samsara.com (--base-url)."
                );
                return Ok(Outcome::Failed);
            }
        }
    }
    if missing.contains(&Endpoint::TrainingAssignments) {
        eprintln!(
            "error: the token cannot read training assignments, so no report can be made. \
             Add the scope \"{}\" to the token (or make a new token), then run trainwatch init again.",
            Endpoint::TrainingAssignments.scope()
        );
        return Ok(Outcome::Failed);
    }

    let mut team_hint = String::new();
    if !missing.contains(&Endpoint::Drivers) {
        let drivers = client.drivers().await.context("listing the drivers")?;
        let active = drivers
            .iter()
            .filter(|d| d.driver_activation_status.as_deref() != Some("deactivated"))
            .count();
        println!(
            "\n{} drivers ({active} active, {} deactivated).",
            drivers.len(),
            drivers.len() - active
        );
        let some: Vec<String> = drivers
            .iter()
            .take(3)
            .map(|d| format!("\"driver-{}\"", d.id))
            .collect();
        if !some.is_empty() {
            team_hint = format!("learners = [{}]", some.join(", "));
        }
    }
    if !missing.contains(&Endpoint::Tags) {
        let mut tags = client.tags().await.context("listing the tags")?;
        tags.sort_by(|a, b| a.name.cmp(&b.name));
        println!(
            "{} tags{}",
            tags.len(),
            if tags.is_empty() {
                "."
            } else {
                " (a team per yard, depot or region is a good start):"
            }
        );
        for tag in tags.iter().take(TAGS_SHOWN) {
            println!("  {} (id {})", tag.name, tag.id);
        }
        if tags.len() > TAGS_SHOWN {
            println!("  …and {} more", tags.len() - TAGS_SHOWN);
        }
    }

    let text = config_text(&base_url, &team_hint);
    write_new(out, &text)?;
    println!("\nWrote {}.", out.display());
    println!("Next:");
    println!(
        "  trainwatch --config {} validate",
        shell_word(&out.display().to_string())
    );
    println!(
        "  trainwatch --config {} preview weekly-overdue",
        shell_word(&out.display().to_string())
    );
    println!(
        "then add [teams.NAME] (their drivers' ids) and an email or Slack delivery: the file says how."
    );
    Ok(Outcome::Written)
}

/// The scopes trainwatch uses, as Samsara names them.
fn scopes() -> Vec<&'static str> {
    [
        Endpoint::TrainingAssignments,
        Endpoint::TrainingCourses,
        Endpoint::Drivers,
        Endpoint::Tags,
    ]
    .iter()
    .map(|e| e.scope())
    .collect()
}

/// What a missing scope costs.
fn consequence(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::TrainingAssignments => "add this scope: trainwatch cannot work without it",
        Endpoint::TrainingCourses => "add this scope, or reports show course ids instead of titles",
        Endpoint::Drivers => "add this scope, or reports show driver ids instead of names",
        Endpoint::Tags => "optional: only used here, to list tags",
    }
}

/// Writes `text` to a new file `path` (fails if it appeared meanwhile).
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut file = std::io::BufWriter::new(file);
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .with_context(|| format!("writing {}", path.display()))
}

/// `path` quoted for a POSIX shell when it needs it.
fn shell_word(path: &str) -> String {
    if path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        path.to_string()
    } else {
        format!("'{}'", path.replace('\'', r"'\''"))
    }
}

/// The first configuration: valid with only the token set.
fn config_text(base_url: &Url, team_hint: &str) -> String {
    let base = base_url.as_str().trim_end_matches('/');
    let team_hint = if team_hint.is_empty() {
        "learners = [\"driver-123\"]".to_string()
    } else {
        team_hint.to_string()
    };
    format!(
        r#"# trainwatch configuration, written by `trainwatch init`.
# Needs one environment variable: SAMSARA_API_TOKEN. `trainwatch validate`
# checks this file; the README lists every key, and the config.toml in the
# trainwatch repository shows each one.

timezone = "UTC"                  # your managers' timezone, e.g. "America/Chicago"
state_dir = "state"               # run history and delivery ledger

[samsara]
base_url = "{base}"
token = "${{SAMSARA_API_TOKEN}}"

# Teams: one per yard, depot or region, with their drivers' ids (see the
# tags and drivers `trainwatch init` listed). Then set `per_team = true` below.
# [teams.north-yard]
# display_name = "North Yard"
# manager = "Dana Ortiz <dana.ortiz@example.com>"
# {team_hint}

# Email needs a mail server:
# [smtp]
# host = "smtp.example.com"
# username = "${{SMTP_USERNAME}}"
# password = "${{SMTP_PASSWORD}}"
# from = "Training Reports <training@example.com>"

# Slack needs an incoming webhook (see docs/webhooks.md):
# [webhooks.safety-channel]
# kind = "slack"
# url = "${{SLACK_WEBHOOK_URL}}"

# Monday 08:00: what is overdue. Until email or Slack is set up, the report
# is archived to reports/ (CSV, JSON, HTML); `trainwatch preview
# weekly-overdue` shows it without writing any state.
[[jobs]]
name = "weekly-overdue"
schedule = "0 8 * * Mon"
window = {{ last = "365d" }}
filters = {{ overdue = true, status = ["notStarted", "inProgress"] }}
# per_team = true
deliver = [
  {{ archive = {{ dir = "reports" }} }},
  # {{ email = {{ to = ["{{{{ team.manager }}}}"], template = "overdue" }} }},
  # {{ webhook = "safety-channel", template = "overdue" }},
]
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_config_validates_with_only_the_token_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let text = config_text(
            &"https://api.eu.samsara.com".parse().unwrap(),
            "learners = [\"driver-1\"]",
        );
        std::fs::write(&path, &text).unwrap();

        let env = |name: &str| (name == TOKEN_VAR).then(|| "t".to_string());
        let loaded = crate::check::load_str(&text, &path, &env);

        let config = loaded.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.samsara.base_url.as_str(),
            "https://api.eu.samsara.com/"
        );
        assert_eq!(config.jobs[0].name, "weekly-overdue");
    }

    #[test]
    fn paths_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(shell_word("config.toml"), "config.toml");
        assert_eq!(shell_word("my config.toml"), "'my config.toml'");
    }
}
