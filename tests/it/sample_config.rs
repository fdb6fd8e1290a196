//! `sample/config.toml` and `samsara.sample_data`: the sample config loads
//! with no environment, and its jobs fetch through the sample server.

use crate::sample_support;

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use trainwatch::check::{load, load_str};
use trainwatch::config::Config;
use trainwatch::defaults::SAMPLE_TOKEN;
use trainwatch::export::{self, Format};
use trainwatch::sample::client_settings;
use trainwatch::samsara::{Client, RateLimits};

use sample_support::*;

fn sample_config() -> Config {
    let path = sample_root().join("config.toml");
    let source = std::fs::read_to_string(&path).unwrap();
    load_str(&source, &path, &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_sample_config_validates_without_environment_variables() {
    let config = sample_config();
    let jobs: Vec<&str> = config.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        jobs,
        ["weekly-overdue", "daily-slack-digest", "monthly-audit"]
    );
    assert_eq!(config.timezone, chrono_tz::America::Chicago);
    assert_eq!(config.teams.len(), 4);
    let sample = config.samsara.sample_data.as_deref().unwrap();
    assert_eq!(
        sample.canonicalize().unwrap(),
        sample_dir().canonicalize().unwrap()
    );
    // Output stays out of the committed tree: under the ignored /out.
    let state = normalize(&config.state_dir);
    assert!(!state.starts_with(sample_root()), "{}", state.display());
    assert!(state.starts_with(sample_root().parent().unwrap().join("out")));
    // The same through `load`, with the process environment (the file reads none).
    let loaded = load(&sample_root().join("config.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.jobs.len(), 3);
}

/// `a/b/../c` → `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

#[test]
fn the_sample_teams_are_the_sample_drivers() {
    let config = sample_config();
    let drivers: BTreeSet<String> = ["drivers-active.json", "drivers-deactivated.json"]
        .iter()
        .flat_map(|f| page_data(&sample_dir().join(f)))
        .map(|d| format!("driver-{}", d["id"].as_str().unwrap()))
        .collect();
    let mut members = BTreeSet::new();
    for team in config.teams.values() {
        assert!(team.manager.is_some(), "{}", team.name);
        assert!(
            team.learners().unwrap_or_default().len() >= 8,
            "{}",
            team.name
        );
        members.extend(
            team.learners()
                .unwrap_or_default()
                .iter()
                .map(|l| l.to_string()),
        );
    }
    let strangers: Vec<&String> = members.difference(&drivers).collect();
    assert_eq!(strangers, ["driver-999001"], "one learner is not a driver");
}

/// `[samsara]` with `body`, in a folder that has `sample/api`-like contents.
fn load_samsara(dir: &Path, body: &str) -> Result<Config, trainwatch::config::ConfigErrors> {
    let source = format!("[samsara]\n{body}\n");
    load_str(&source, &dir.join("config.toml"), &|_| None)
}

#[test]
fn sample_data_must_be_a_folder_with_courses_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    std::fs::create_dir(dir.path().join("api")).unwrap();
    std::fs::write(dir.path().join("api/courses.json"), "{}").unwrap();

    for (value, mentions) in [("nowhere", "is not a folder"), ("empty", "no courses.json")] {
        let err = load_samsara(dir.path(), &format!("sample_data = \"{value}\"")).unwrap_err();
        assert_eq!(
            err.problems.len(),
            1,
            "{err}: no missing-token problem on top"
        );
        let p = &err.problems[0];
        assert_eq!((p.line, p.col), (2, 15), "{err}: at the value");
        assert!(p.message.contains(mentions), "{err}");
        assert!(p.message.contains(&format!("`{value}`")), "{err}");
    }
    let config = load_samsara(dir.path(), "sample_data = \"api\"").unwrap();
    assert_eq!(config.samsara.sample_data, Some(dir.path().join("api")));
    assert_eq!(config.samsara.token.expose_secret(), SAMPLE_TOKEN);
}

#[test]
fn without_sample_data_the_token_is_still_required() {
    let dir = tempfile::tempdir().unwrap();
    for body in ["", "sample_data = \"\"", "sample_data = \"  \""] {
        let err = load_samsara(
            dir.path(),
            &format!("{body}\nbase_url = \"https://x.example\""),
        )
        .unwrap_err();
        assert!(
            err.problems
                .iter()
                .any(|p| p.message.contains("missing required key `token`")),
            "{body:?}: {err}"
        );
    }
    let config = load_samsara(dir.path(), "sample_data = \"\"\ntoken = \"t\"").unwrap();
    assert_eq!(config.samsara.sample_data, None);
}

#[tokio::test]
async fn client_settings_point_at_the_sample_server_whatever_base_url_says() {
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("api");
    std::fs::create_dir(&api).unwrap();
    for entry in std::fs::read_dir(sample_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), api.join(entry.file_name())).unwrap();
    }
    let config = load_samsara(
        dir.path(),
        "sample_data = \"api\"\nbase_url = \"https://api.eu.samsara.com\"\ntoken = \"real-token\"",
    )
    .unwrap();
    let (settings, server) = client_settings(&config.samsara).await.unwrap();
    let server = server.expect("a sample server");
    assert_eq!(settings.base_url, server.base_url);
    assert_eq!(settings.base_url.host_str(), Some("127.0.0.1"));
    assert_eq!(
        settings.token.expose_secret(),
        SAMPLE_TOKEN,
        "the real token stays home"
    );
    let client = Client::with_limits(settings, Default::default()).unwrap();
    let drivers = client.drivers().await.unwrap();
    assert_eq!(drivers.len(), 40);

    // Without sample_data: the configured API and no server.
    let config = load_samsara(dir.path(), "token = \"t\"").unwrap();
    let (settings, server) = client_settings(&config.samsara).await.unwrap();
    assert!(server.is_none());
    assert_eq!(settings.base_url.as_str(), "https://api.samsara.com/");
}

/// The sample jobs, exported as if fired at the sample fire time, give the
/// recomputed records (deleted ones dropped unless the job keeps them), with
/// names.
#[tokio::test]
async fn the_sample_jobs_export_through_the_sample_server() {
    let mut config = sample_config();
    let state = tempfile::tempdir().unwrap();
    config.state_dir = state.path().to_path_buf();
    let (mut settings, _server) = client_settings(&config.samsara).await.unwrap();
    settings.requests_per_second = 1000;
    let client = Client::with_limits(settings, std::sync::Arc::new(RateLimits::default())).unwrap();

    let chicago = |s: &str| time(s);
    let cases = [
        // A current window: the instant itself (the state as of the fire).
        ("weekly-overdue", fire(), fire(), 60),
        (
            "daily-slack-digest",
            chicago("2026-11-22T00:00:00-06:00"),
            chicago("2026-11-23T00:00:00-06:00"),
            25,
        ),
        (
            "monthly-audit",
            chicago("2026-10-01T00:00:00-05:00"),
            chicago("2026-11-01T00:00:00-05:00"),
            100,
        ),
    ];
    for (name, start, end, at_least) in cases {
        let job = config.job(name).unwrap();
        let mut out = Vec::new();
        let summary = export::export(&config, job, &client, fire(), Format::Jsonl, &mut out)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(
            (summary.window.start, summary.window.end),
            (start, end),
            "{name}"
        );
        let keep_deleted = job.filters.include_deleted;
        let overdue_only = job.filters.overdue == Some(true);
        // Jobs with teams (per_team without a team filter means every team)
        // ask for the learners of those teams.
        let team_learners: BTreeSet<String> = job
            .filters
            .teams
            .iter()
            .flat_map(|t| config.teams[t].learners().unwrap_or_default())
            .map(|l| l.to_string())
            .collect();
        let in_team =
            |r: &serde_json::Value| team_learners.is_empty() || team_learners.contains(&learner(r));
        let want = if start == end {
            // As of the fire instant: each assignment's newest version
            // before it, overdue from its due date, whenever it was touched.
            let as_of = expected(DateTime::<Utc>::MIN_UTC, end, |_| true);
            as_of
                .into_iter()
                .filter(|(_, r)| {
                    in_team(r)
                        && (!overdue_only
                            || (matches!(r["status"].as_str(), Some("notStarted" | "inProgress"))
                                && r.get("dueAtTime").is_some()
                                && field_time(r, "dueAtTime") < end))
                })
                .collect()
        } else {
            expected(start, end, |r| {
                in_team(r)
                    && (!overdue_only
                        || (r["isOverdue"] == true
                            && matches!(r["status"].as_str(), Some("notStarted" | "inProgress"))))
            })
        };
        let want: BTreeSet<String> = want
            .into_iter()
            .filter(|(_, r)| keep_deleted || r.get("deletedAtTime").is_none())
            .map(|(id, _)| id)
            .collect();
        let rows: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let got: BTreeSet<String> = rows
            .iter()
            .map(|r| r["assignment_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, want, "{name}");
        assert_eq!(rows.len(), got.len(), "{name}: deduplicated");
        assert!(got.len() >= at_least, "{name}: only {}", got.len());
        // Names resolved, falling back to ids.
        for row in &rows {
            assert!(!row["learner_name"].as_str().unwrap().is_empty());
            assert!(!row["course_title"].as_str().unwrap().is_empty());
        }
        let learner_names: BTreeSet<&str> = rows
            .iter()
            .map(|r| r["learner_name"].as_str().unwrap())
            .collect();
        if name == "weekly-overdue" {
            assert!(learner_names.contains("driver-999001"), "{learner_names:?}");
            assert!(learner_names.contains("O'Brien & <Sons>"));
            assert_eq!(summary.left_out, 1, "the deleted overdue assignment");
        }
        if name == "monthly-audit" {
            assert!(
                rows.iter().any(|r| !r["deleted_at"].is_null()),
                "kept deleted"
            );
            assert!(rows.iter().any(|r| r["status"] == "expired"));
            assert_eq!(summary.fetch.duplicates, 1);
        }
    }
}
