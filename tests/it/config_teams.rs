//! `validate` on team sources: a team takes its members from exactly one of
//! `learners`, `tag`, `tag_id`, and `[teams_from_tags]` is checked as far as
//! the file can say (the organisation's tags are known only at run time).

use std::path::Path;

use trainwatch::check::load_str;
use trainwatch::config::Members;

const JOB: &str = r#"
[samsara]
token = "t"
[[jobs]]
name = "weekly"
schedule = "0 8 * * Mon"
window = { last = "7d" }
per_team = true
deliver = [{ archive = { dir = "out" } }]
"#;

/// Every problem `validate` prints for `teams` (appended to a valid job),
/// as `file:line:col: message`.
fn validate(teams: &str) -> String {
    let source = format!("{JOB}{teams}");
    load_str(&source, Path::new("trainwatch.toml"), &|_| None)
        .expect_err("the config should be rejected")
        .to_string()
}

#[test]
fn a_team_with_two_sources_is_told_to_keep_one() {
    let out = validate(
        r#"
[teams.north]
learners = ["driver-1"]
tag = "North Yard"
"#,
    );
    assert_eq!(
        out,
        "trainwatch.toml:13:7: [teams.north] has `learners` and `tag`: a team takes its members from exactly one of them"
    );
}

#[test]
fn a_team_with_all_three_sources_is_reported_once() {
    let out =
        validate("\n[teams.north]\nlearners = [\"1\"]\ntag = \"North Yard\"\ntag_id = \"4815\"\n");
    assert_eq!(
        out,
        "trainwatch.toml:13:7: [teams.north] has `learners` and `tag` and `tag_id`: a team takes its members from exactly one of them"
    );
}

#[test]
fn a_team_without_members_names_the_three_ways_to_give_them() {
    let out = validate("\n[teams.north]\nmanager = \"Dana <dana@example.com>\"\n");
    assert_eq!(
        out,
        "trainwatch.toml:11:1: [teams.north] needs its members: `learners = [...]`, `tag = \"Tag name\"` or `tag_id = \"1234\"`"
    );
}

#[test]
fn an_empty_tag_name_is_an_error_at_the_value() {
    let out = validate("\n[teams.north]\ntag = \"\"\n");
    assert_eq!(
        out,
        "trainwatch.toml:12:7: tag is empty: write the tag's name as Samsara shows it, like `North Yard`"
    );
}

#[test]
fn a_tag_id_that_is_a_name_is_pointed_at_tag() {
    let out = validate("\n[teams.north]\ntag_id = \"North Yard\"\n");
    assert_eq!(
        out,
        "trainwatch.toml:12:10: `tag_id` `North Yard` is not a tag id: ids are digits, like `4815` (for a tag's name use `tag`)"
    );
}

#[test]
fn a_manager_map_keyed_by_tag_id_or_padded_name_is_told_to_use_the_exact_name() {
    let out = validate(
        r#"
[teams_from_tags]
parent = "Regions"
managers = { "4815" = "Dana <dana@example.com>", " North Yard" = "Lee <lee@example.com>", "South" = "not a mailbox" }
"#,
    );
    assert_eq!(
        out,
        "trainwatch.toml:13:14: `4815` in `teams_from_tags.managers` looks like a tag id: managers are keyed by the tag's name, like `\"North Yard\" = \"Dana Ortiz <dana@example.com>\"`\n\
         trainwatch.toml:13:50: the tag ` North Yard` has a space at its start or end: tags are matched by their exact name\n\
         trainwatch.toml:13:101: manager `not a mailbox` is not a mailbox: write `Name <address@example.com>` or `address@example.com`"
    );
}

#[test]
fn teams_from_tags_needs_a_parent_that_is_a_name() {
    let out = validate("\n[teams_from_tags]\nmanagers = {}\n");
    assert_eq!(
        out,
        "trainwatch.toml:11:1: missing required key `parent` in [teams_from_tags]"
    );
    let out = validate("\n[teams_from_tags]\nparent = \" \"\n");
    assert_eq!(
        out,
        "trainwatch.toml:12:10: `parent` is empty: write the tag's name as Samsara shows it, like `North Yard`"
    );
}

#[test]
fn tag_teams_and_teams_from_tags_load_and_fan_out_to_every_team() {
    let source = format!(
        "{JOB}{}",
        r#"
[teams.north]
tag = "North Yard"
manager = "Dana <dana@example.com>"
[teams.nights]
tag_id = "201"
[teams_from_tags]
parent = "Regions"
managers = { "North Yard" = "Dana <dana@example.com>" }
escalation = "Safety <safety@example.com>"
"#
    );
    let config =
        load_str(&source, Path::new("t.toml"), &|_| None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.teams["north"].members,
        Members::Tag("North Yard".into())
    );
    assert_eq!(config.teams["nights"].members, Members::TagId("201".into()));
    let from = config.teams_from_tags.as_ref().unwrap();
    assert_eq!(from.parent, "Regions");
    assert_eq!(from.managers["North Yard"], "Dana <dana@example.com>");
    assert_eq!(
        from.escalation.as_deref(),
        Some("Safety <safety@example.com>")
    );
    assert!(config.jobs[0].filters.every_team);
}

#[test]
fn per_team_needs_only_teams_from_tags_and_a_filter_may_name_a_team_made_from_a_tag() {
    let source = format!(
        "{JOB}{}",
        r#"
[[jobs]]
name = "south"
schedule = "0 8 * * Mon"
window = { last = "7d" }
filters = { team = "South" }
deliver = [{ archive = { dir = "out" } }]
[teams_from_tags]
parent = "Regions"
"#
    );
    let config =
        load_str(&source, Path::new("t.toml"), &|_| None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.job("south").unwrap().filters.teams, ["South"]);
    assert!(config.job("weekly").unwrap().filters.every_team);
}

#[test]
fn without_teams_from_tags_an_unknown_team_is_still_an_error() {
    let source = format!(
        "{JOB}{}",
        r#"
[[jobs]]
name = "south"
schedule = "0 8 * * Mon"
window = { last = "7d" }
filters = { team = "South" }
deliver = [{ archive = { dir = "out" } }]
[teams.north]
tag = "North"
"#
    );
    let out = load_str(&source, Path::new("t.toml"), &|_| None)
        .unwrap_err()
        .to_string();
    assert!(out.contains("no team `South` in [teams]"), "{out}");
}
