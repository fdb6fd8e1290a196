//! Property tests: random and mutated inputs to every parser of untrusted
//! text, asserting "an error or a value, never a panic", and the invariants
//! the values promise.
//!
//! `cargo test` runs each property with proptest's default number of cases
//! (256, a few seconds in all). For a long run, set `PROPTEST_CASES`:
//! `PROPTEST_CASES=100000 cargo test --release --test properties`.

use std::path::{Component, Path};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use trainwatch::check::load_str;
use trainwatch::config::{MAX_DURATION_SECONDS, parse_duration};
use trainwatch::names::{
    MAX_NAME_BYTES, csv_text, one_line, path_component, path_component_problem,
};
use trainwatch::samsara::{Assignment, Course, Driver, Page};
use trainwatch::window::{Period, WindowSpec, compute};

const EXAMPLE: &str = include_str!("../../config.toml");
const STREAM_PAGE: &str = include_str!("../../sample/api/stream-page-01.json");

/// A fixed environment: the example's variables, set; others unset.
fn env(name: &str) -> Option<String> {
    let value = match name {
        "SLACK_WEBHOOK_URL" | "TEAMS_WEBHOOK_URL" | "WAREHOUSE_WEBHOOK_URL" => {
            "https://hooks.example.com/x"
        }
        "SAMSARA_API_TOKEN" | "SMTP_USERNAME" | "SMTP_PASSWORD" | "WAREHOUSE_WEBHOOK_SECRET" => {
            "value"
        }
        _ => return None,
    };
    Some(value.to_string())
}

/// One edit of a text: delete a range, insert text, or repeat a range.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Repeat(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Inserted text favours the characters TOML and JSON give meaning to.
    let fragment = prop_oneof![
        "[\\[\\]{}=\",:\\.\\\\#\n0-9a-z$ -]{1,12}",
        any::<String>().prop_map(|s| s.chars().take(8).collect()),
        Just("${".to_string()),
        Just("99999999w".to_string()),
        Just("\"\"\"".to_string()),
        Just("null".to_string()),
        Just("-1e999".to_string()),
    ];
    prop_oneof![
        (any::<usize>(), 0usize..64).prop_map(|(at, len)| Edit::Delete(at, len)),
        (any::<usize>(), fragment).prop_map(|(at, s)| Edit::Insert(at, s)),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Edit::Repeat(at, len)),
    ]
}

/// `text` with `edits` applied, every position snapped to a character boundary.
fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut out = text.to_string();
    let snap = |s: &str, at: usize| {
        let mut at = at % (s.len() + 1);
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    for e in edits {
        match e {
            Edit::Delete(at, len) => {
                let start = snap(&out, *at);
                let end = snap(&out, (start + len).min(out.len()));
                out.replace_range(start..end.max(start), "");
            }
            Edit::Insert(at, s) => {
                let at = snap(&out, *at);
                out.insert_str(at, s);
            }
            Edit::Repeat(at, len) => {
                let start = snap(&out, *at);
                let end = snap(&out, (start + len).min(out.len())).max(start);
                let piece = out[start..end].to_string();
                out.insert_str(end, &piece);
            }
        }
    }
    out
}

fn timezone() -> impl Strategy<Value = Tz> {
    (0..chrono_tz::TZ_VARIANTS.len()).prop_map(|i| chrono_tz::TZ_VARIANTS[i])
}

/// Any instant chrono can hold, with a bias towards the years people use.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let min = DateTime::<Utc>::MIN_UTC.timestamp();
    let max = DateTime::<Utc>::MAX_UTC.timestamp();
    prop_oneof![
        3 => (0i64..7_258_118_400).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap()),
        1 => (min..=max).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap()),
        1 => Just(DateTime::<Utc>::MIN_UTC),
        1 => Just(DateTime::<Utc>::MAX_UTC),
    ]
}

fn window_spec() -> impl Strategy<Value = WindowSpec> {
    let duration = prop_oneof![
        (0u64..=MAX_DURATION_SECONDS).prop_map(Duration::from_secs),
        any::<u64>().prop_map(Duration::from_secs),
    ];
    let period = prop_oneof![
        Just(Period::Day),
        Just(Period::Week),
        Just(Period::Month),
        Just(Period::Quarter),
        Just(Period::Year),
    ];
    prop_oneof![
        duration.clone().prop_map(WindowSpec::Last),
        period.prop_map(WindowSpec::Previous),
        duration.prop_map(|max| WindowSpec::SinceLastRun { max }),
        (instant(), instant()).prop_map(|(start, end)| WindowSpec::Fixed { start, end }),
    ]
}

/// Cron-looking text: 4 to 7 fields of the tokens cron knows, and some it does not.
fn cron_text() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("*".to_string()),
        (0u32..70).prop_map(|n| n.to_string()),
        (0u32..70, 1u32..70).prop_map(|(a, b)| format!("{a}-{b}")),
        (0u32..70).prop_map(|n| format!("*/{n}")),
        (0u32..70, 0u32..70).prop_map(|(a, b)| format!("{a},{b}")),
        prop::sample::select(vec![
            "Mon", "FRI", "L", "5L", "1#3", "W", "15W", "?", "JAN", "dec", "-", "/", "#", "",
        ])
        .prop_map(str::to_string),
        "[0-9A-Za-z*/#,?L-]{1,6}",
    ];
    prop::collection::vec(field, 4..=7).prop_map(|fields| fields.join(" "))
}

/// The example config without `templates_dir` (its folder does not exist
/// here), so that it loads unharmed and mutations reach every check.
fn example_without_templates_dir() -> String {
    EXAMPLE
        .lines()
        .filter(|l| !l.starts_with("templates_dir"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn the_unmutated_example_loads_so_mutations_start_from_a_valid_config() {
    let loaded = load_str(
        &example_without_templates_dir(),
        Path::new("/nonexistent/config.toml"),
        &env,
    );
    assert!(loaded.is_ok(), "{}", loaded.unwrap_err());
}

proptest! {
    #[test]
    fn the_config_loader_gives_an_error_or_a_config_for_any_text(text in any::<String>()) {
        let _ = load_str(&text, Path::new("/nonexistent/config.toml"), &env);
    }

    #[test]
    fn the_config_loader_survives_any_mutation_of_the_example(
        edits in prop::collection::vec(edit(), 1..6)
    ) {
        let text = mutate(&example_without_templates_dir(), &edits);
        match load_str(&text, Path::new("/nonexistent/config.toml"), &env) {
            Ok(config) => {
                // A config that loads has jobs whose names are safe folder names.
                for job in &config.jobs {
                    prop_assert_eq!(path_component_problem(&job.name), None);
                }
                for team in config.teams.keys() {
                    prop_assert_eq!(path_component_problem(team), None);
                }
            }
            Err(errors) => {
                prop_assert!(!errors.problems.is_empty());
                prop_assert!(errors.problems.len() <= 101);
            }
        }
    }

    #[test]
    fn durations_parse_to_at_most_a_century_or_fail(text in prop_oneof![
        any::<String>(),
        "[0-9]{1,25}[smhdwx ]{0,2}",
    ]) {
        if let Ok(d) = parse_duration(&text) {
            prop_assert!(d.as_secs() <= MAX_DURATION_SECONDS);
        }
    }

    #[test]
    fn cron_expressions_parse_or_fail_and_parsed_ones_give_ordered_fires(
        text in prop_oneof![cron_text(), any::<String>()],
        tz in timezone(),
        after in (0i64..7_258_118_400).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap()),
    ) {
        if let Ok(schedule) = trainwatch::schedule::parse(&text) {
            let fires = trainwatch::schedule::next_fires(&schedule, tz, after, 2);
            for pair in fires.windows(2) {
                prop_assert!(pair[0] < pair[1]);
            }
            if let Some(first) = fires.first() {
                prop_assert!(*first > after);
            }
        }
    }

    #[test]
    fn a_window_is_an_error_or_a_non_empty_interval(
        spec in window_spec(),
        fire in instant(),
        tz in timezone(),
        last in prop::option::of(instant()),
    ) {
        if let Ok(window) = compute(&spec, fire, tz, last) {
            prop_assert!(window.start < window.end);
            if matches!(spec, WindowSpec::Last(_) | WindowSpec::SinceLastRun { .. }) {
                prop_assert_eq!(window.end, fire);
            }
        }
    }

    #[test]
    fn the_wire_parser_gives_an_error_or_a_page_for_any_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..512)
    ) {
        let _ = serde_json::from_slice::<Page<Assignment>>(&bytes);
        let _ = serde_json::from_slice::<Page<Course>>(&bytes);
        let _ = serde_json::from_slice::<Page<Driver>>(&bytes);
    }

    #[test]
    fn the_wire_parser_survives_any_mutation_of_a_real_page(
        edits in prop::collection::vec(edit(), 1..4)
    ) {
        let text = mutate(STREAM_PAGE, &edits);
        if let Ok(page) = serde_json::from_str::<Page<Assignment>>(&text) {
            for a in &page.data {
                // The learner is always in filter form, whatever was sent.
                prop_assert!(a.learner.to_string().contains('-'));
            }
        }
    }

    #[test]
    fn every_slug_is_one_safe_path_component(name in any::<String>()) {
        let slug = path_component(&name);
        prop_assert!(!slug.is_empty() && slug.len() <= MAX_NAME_BYTES);
        prop_assert_eq!(path_component_problem(&slug), None, "{:?}", slug);
        let parts: Vec<Component> = Path::new(&slug).components().collect();
        prop_assert!(matches!(parts.as_slice(), [Component::Normal(_)]), "{:?}", slug);
        if path_component_problem(&name).is_none() {
            prop_assert_eq!(slug, name);
        }
    }

    #[test]
    fn one_line_text_has_no_line_break_and_csv_cells_start_safely(text in any::<String>()) {
        prop_assert!(!one_line(&text).contains(['\r', '\n']));
        let cell = csv_text(&text);
        prop_assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']));
        prop_assert!(cell.ends_with(text.as_str()));
    }
}
