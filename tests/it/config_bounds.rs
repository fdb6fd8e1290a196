//! Config that would validate and then always fail is refused by `validate`:
//! names that cannot name a folder, values that cannot go into a header,
//! durations beyond any calendar, a `state_dir` that is a file, and a file
//! too large to be a config. Every message is checked word for word.

use std::path::Path;

use trainwatch::check::{load, load_str};
use trainwatch::config::ConfigErrors;

use crate::common;

use common::secrets::{PASSWORD, TOKEN};

/// The problems of `source`, one `line:col: message` per line.
fn problems(source: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let err: ConfigErrors =
        load_str(source, Path::new("trainwatch.toml"), env).expect_err("should be rejected");
    err.to_string()
}

fn env(name: &str) -> Option<String> {
    common::secrets::env(name)
}

const SAMSARA: &str = "[samsara]\ntoken = \"${SAMSARA_API_TOKEN}\"\n";

fn job(name: &str, window: &str) -> String {
    format!(
        "[[jobs]]\nname = {name}\nschedule = \"0 8 * * Mon\"\nwindow = {window}\ndeliver = [{{ archive = {{ dir = \"out\" }} }}]\n"
    )
}

#[test]
fn a_five_thousand_character_job_name_is_refused_and_shown_cut_short() {
    let long = "a".repeat(5000);
    let source = format!(
        "{SAMSARA}{}",
        job(&format!("\"{long}\""), "{ last = \"7d\" }")
    );
    assert_eq!(
        problems(&source, &env),
        "trainwatch.toml:4:8: job name `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…` is not allowed: \
         it is 5000 bytes long, and names a folder, so at most 100 bytes fit"
    );
}

#[test]
fn a_job_name_starting_with_a_dot_is_refused() {
    let source = format!("{SAMSARA}{}", job("\".hidden\"", "{ last = \"7d\" }"));
    assert_eq!(
        problems(&source, &env),
        "trainwatch.toml:4:8: job name `.hidden` is not allowed: it names a folder, so it cannot start with `.`"
    );
}

#[test]
fn team_names_that_would_leave_their_folder_are_refused() {
    let source = format!(
        "{SAMSARA}{}\n[teams.\"../../x\"]\nlearners = [\"driver-1\"]\n\n[teams.\"/etc\"]\nlearners = [\"driver-2\"]\n\n[teams.\"a\\r\\nb\"]\nlearners = [\"driver-3\"]\n",
        job("\"j\"", "{ last = \"7d\" }")
    );
    assert_eq!(
        problems(&source, &env),
        "trainwatch.toml:9:1: team name `../../x` is not allowed: it names a folder, so it cannot start with `.`\n\
         trainwatch.toml:12:1: team name `/etc` is not allowed: it contains `/`, and names a folder: leave out / \\ < > : \" | ? *\n\
         trainwatch.toml:15:1: team name `a  b` is not allowed: it contains the control character '\\r', and names a folder"
    );
}

#[test]
fn a_team_name_too_long_for_a_file_name_is_refused() {
    let long = "t".repeat(101);
    let source = format!(
        "{SAMSARA}{}\n[teams.{long}]\nlearners = [\"driver-1\"]\n",
        job("\"j\"", "{ last = \"7d\" }")
    );
    assert_eq!(
        problems(&source, &env),
        "trainwatch.toml:9:1: team name `tttttttttttttttttttttttttttttttttttttttt…` is not allowed: \
         it is 101 bytes long, and names a folder, so at most 100 bytes fit"
    );
}

#[test]
fn a_window_of_99999999_weeks_is_refused_at_its_position() {
    let source = format!("{SAMSARA}{}", job("\"j\"", "{ last = \"99999999w\" }"));
    assert_eq!(
        problems(&source, &env),
        "trainwatch.toml:6:19: `99999999w` is too large for a duration: at most 100 years (`36525d`)"
    );
}

#[test]
fn every_duration_key_has_the_same_bound() {
    let source = format!(
        "catch_up = \"5300w\"\n{SAMSARA}max_fetch_time = \"40000d\"\nmax_retry_time = \"1000000h\"\n{}",
        job(
            "\"j\"",
            "{ since_last_run = true, max = \"99999999999999999999d\" }"
        )
    );
    assert_eq!(
        problems(&source, &env),
        "trainwatch.toml:1:12: `5300w` is too large for a duration: at most 100 years (`36525d`)\n\
         trainwatch.toml:4:18: `40000d` is too large for a duration: at most 100 years (`36525d`)\n\
         trainwatch.toml:5:18: `1000000h` is too large for a duration: at most 100 years (`36525d`)\n\
         trainwatch.toml:9:41: `99999999999999999999d` is too large for a duration: at most 100 years (`36525d`)"
    );
}

#[test]
fn max_fetch_time_must_be_longer_than_zero() {
    let source = format!(
        "{SAMSARA}max_fetch_time = \"0\"\n{}",
        job("\"j\"", "{ last = \"7d\" }")
    );
    assert_eq!(
        problems(&source, &env),
        "trainwatch.toml:3:18: this duration must be longer than 0"
    );
}

#[test]
fn a_token_with_a_newline_is_refused_without_being_quoted() {
    let env = |name: &str| (name == "SAMSARA_API_TOKEN").then(|| format!("{TOKEN}\n"));
    let source = format!("{SAMSARA}{}", job("\"j\"", "{ last = \"7d\" }"));
    let text = problems(&source, &env);
    assert_eq!(
        text,
        "trainwatch.toml:2:9: `samsara.token` contains a line break: it goes into a protocol header, \
         which cannot hold one (check its environment variable for a trailing newline)"
    );
    assert!(!text.contains(TOKEN));
}

#[test]
fn smtp_values_and_subjects_with_control_characters_are_refused() {
    let env = |name: &str| match name {
        "SAMSARA_API_TOKEN" => Some(TOKEN.to_string()),
        "SMTP_PASSWORD" => Some(format!("{PASSWORD}\r\n")),
        _ => None,
    };
    let source = format!(
        "{SAMSARA}[smtp]\nhost = \"mail\\r\\nRCPT\"\nfrom = \"a@example.com\"\nusername = \"u\\tv\"\npassword = \"${{SMTP_PASSWORD}}\"\n\
         [[jobs]]\nname = \"j\"\nschedule = \"0 8 * * Mon\"\nwindow = {{ last = \"7d\" }}\n\
         deliver = [{{ email = {{ to = [\"a@example.com\"], subject = \"Hi\\nBcc: x@example.com\" }} }}]\n"
    );
    let text = problems(&source, &env);
    assert_eq!(
        text,
        "trainwatch.toml:4:8: `smtp.host` `mail  RCPT` contains a line break: it goes into a protocol header, which cannot hold one\n\
         trainwatch.toml:6:12: `smtp.username` `u v` contains the control character '\\t': it goes into a protocol header, which cannot hold one\n\
         trainwatch.toml:7:12: `smtp.password` contains a line break: it goes into a protocol header, which cannot hold one (check its environment variable for a trailing newline)\n\
         trainwatch.toml:12:58: `subject` `Hi Bcc: x@example.com` contains a line break: it goes into a protocol header, which cannot hold one"
    );
    assert!(!text.contains(PASSWORD));
}

#[test]
fn a_state_dir_that_is_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.db"), "not a folder").unwrap();
    let path = dir.path().join("trainwatch.toml");
    let source = format!(
        "state_dir = \"state.db\"\n{SAMSARA}{}",
        job("\"j\"", "{ last = \"7d\" }")
    );
    let err = load_str(&source, &path, &env).unwrap_err();
    let real = std::fs::canonicalize(dir.path()).unwrap().join("state.db");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:1:13: state_dir `state.db` ({}) exists and is not a folder: runs keep their database there, so point state_dir at a folder",
            path.display(),
            real.display()
        )
    );
}

#[test]
fn a_config_file_larger_than_the_cap_is_refused_before_it_is_read_whole() {
    let err = load(Path::new("/dev/zero")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/dev/zero:1:1: the configuration file /dev/zero is larger than 1 MiB: is it the right file?"
    );
}

#[test]
fn a_file_that_is_not_toml_at_all_gives_a_hundred_problems_and_a_count() {
    let source = "x\n".repeat(5000);
    let err = load_str(&source, Path::new("log.txt"), &env).unwrap_err();
    assert_eq!(err.problems.len(), 101);
    assert_eq!(
        err.problems[100].to_string(),
        "log.txt:100:2: …and 4900 more problems not shown: is this the right file?"
    );
}

#[test]
fn a_value_with_a_line_break_is_quoted_on_one_line() {
    let source = format!(
        "{SAMSARA}[teams.a]\nmanager = \"Dana <d@example.com>\\nBcc: y@example.com\"\nlearners = [\"driver-1\"]\n{}",
        job("\"j\"", "{ last = \"7d\" }")
    );
    assert_eq!(
        problems(&source, &env),
        "trainwatch.toml:4:11: manager `Dana <d@example.com> Bcc: y@example.com` is not a mailbox: \
         write `Name <address@example.com>` or `address@example.com`"
    );
}

#[test]
fn a_webhook_name_with_a_line_break_is_refused() {
    let source = format!(
        "{SAMSARA}[webhooks.\"ops\\nchannel\"]\nkind = \"slack\"\nurl = \"https://hooks.example.com/x\"\n{}",
        job("\"j\"", "{ last = \"7d\" }")
    );
    assert_eq!(
        problems(&source, &env),
        "trainwatch.toml:3:1: webhook name `ops channel` is not allowed: it contains the control character '\\n'"
    );
}
