//! The built-in templates, escaping, overrides from templates_dir and
//! template errors.

use crate::render_fixture;

use render_fixture::{ACCENTED, COURSE, NASTY, report};
use serde_json::Value;
use trainwatch::render::{FailureContext, RenderError, Renderer};

fn renderer() -> Renderer {
    Renderer::new(None).expect("the built-in templates compile")
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap()
}

/// Every string anywhere in `value`.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

#[test]
fn every_built_in_email_matches_its_snapshot() {
    let renderer = renderer();
    for name in ["overdue", "digest", "audit"] {
        let email = renderer.email(name, &report(), None).unwrap();
        insta::assert_snapshot!(format!("{name}.subject"), email.subject);
        insta::assert_snapshot!(format!("{name}.html"), email.html);
        insta::assert_snapshot!(format!("{name}.txt"), email.text);
    }
}

#[test]
fn every_built_in_webhook_payload_matches_its_snapshot() {
    let renderer = renderer();
    let slack = renderer.slack("digest", &report()).unwrap();
    insta::assert_snapshot!("digest.slack.json", pretty(&Value::Array(slack)));
    let teams = renderer.msteams("digest", &report()).unwrap();
    insta::assert_snapshot!("digest.msteams.json", pretty(&teams));
    let body = renderer.json_body("digest", &report(), false).unwrap();
    insta::assert_snapshot!("digest.body.json", pretty(&body));
}

#[test]
fn the_archive_report_matches_its_snapshot() {
    insta::assert_snapshot!(
        "audit.report.html",
        renderer().archive_html(&report()).unwrap()
    );
}

#[test]
fn the_failure_email_matches_its_snapshot() {
    let r = report();
    let failure = FailureContext {
        job: r.job,
        window: Some(r.window),
        generated_at: r.generated_at,
        error:
            "fetching assignments: 503 Service Unavailable\n  after 5 attempts <retry budget spent>"
                .into(),
    };
    let email = renderer().failure_email(&failure, None).unwrap();
    assert_eq!(email.subject, "trainwatch: job weekly-overdue failed");
    assert!(email.html.contains("&lt;retry budget spent&gt;"));
    insta::assert_snapshot!("failure.html", email.html);
    insta::assert_snapshot!("failure.txt", email.text);
}

#[test]
fn overdue_and_audit_also_render_for_slack_and_teams() {
    let renderer = renderer();
    for name in ["overdue", "audit"] {
        assert!(!renderer.slack(name, &report()).unwrap().is_empty());
        renderer.msteams(name, &report()).unwrap();
    }
}

#[test]
fn html_shows_names_as_text_never_as_markup() {
    for name in ["overdue", "digest", "audit"] {
        let html = renderer().email(name, &report(), None).unwrap().html;
        assert!(
            html.contains("O&#39;Brien &amp; &lt;Sons&gt; &quot;Ltd&quot;\\"),
            "{name}.html"
        );
        assert!(
            html.contains("Hazmat &lt;Level 2&gt; &amp; Spills"),
            "{name}.html"
        );
        assert!(
            !html.contains("<Sons>") && !html.contains("<Level 2>"),
            "{name}.html"
        );
    }
    let html = renderer().email("overdue", &report(), None).unwrap().html;
    assert!(html.contains(ACCENTED));
    let archive = renderer().archive_html(&report()).unwrap();
    assert!(archive.contains("&lt;Sons&gt;") && !archive.contains("<Sons>"));
}

#[test]
fn email_html_is_built_for_email_clients() {
    let html = renderer().email("overdue", &report(), None).unwrap().html;
    assert!(html.contains(r#"<meta name="color-scheme" content="light only">"#));
    assert!(html.contains("color-scheme:light only"));
    assert!(html.contains("<!--[if mso]>"));
    assert!(html.contains("max-width:600px"));
    for external in ["<link", "src=\"http", "@import", "url("] {
        assert!(!html.contains(external), "{external}");
    }
}

#[test]
fn the_plain_text_part_and_subject_keep_names_as_they_are() {
    let email = renderer().email("overdue", &report(), None).unwrap();
    assert!(email.text.contains(NASTY));
    assert!(email.text.contains(COURSE));
    assert_eq!(
        email.subject,
        format!("Overdue training, North Yard & {NASTY}: 4 (1 new, 2 resolved)")
    );
}

#[test]
fn a_subject_from_the_delivery_is_rendered_without_escaping() {
    let email = renderer()
        .email(
            "overdue",
            &report(),
            Some("Overdue training, {{ team.name }}:\n{{ totals.overdue }}"),
        )
        .unwrap();
    assert_eq!(
        email.subject,
        format!("Overdue training, North Yard & {NASTY}: 4")
    );
}

#[test]
fn overdue_email_rolls_up_by_course_and_groups_learners_most_overdue_first() {
    let text = renderer().email("overdue", &report(), None).unwrap().text;
    assert!(text.contains(&format!("- {COURSE}: 3 overdue")));
    assert!(text.contains("- Hours of Service: 1 overdue"));
    assert!(
        !text.contains("Pre-trip Inspection"),
        "no course without overdue rows"
    );
    // One block per learner: the one with two overdue courses (31 and 0
    // days) first, both their rows together, then the others.
    let block = text
        .find(&format!("{NASTY} (2 overdue, up to 31 days)"))
        .unwrap();
    let first = text.find("31 days overdue").unwrap();
    let same_learner = text.find("0 days overdue").unwrap();
    let next_learner = text.find("13 days overdue").unwrap();
    assert!(block < first && first < same_learner && same_learner < next_learner);
}

#[test]
fn the_window_is_shown_in_the_job_timezone_across_the_dst_change() {
    let text = renderer().email("overdue", &report(), None).unwrap().text;
    assert!(
        text.contains("Oct 26, 2026 00:00 CDT – Nov 2, 2026 00:00 CST"),
        "{text}"
    );
    assert!(
        text.contains("Generated Mon, Nov 2, 2026 08:00 CST"),
        "{text}"
    );
}

#[test]
fn the_date_filter_follows_the_job_timezone_over_a_dst_change() {
    let out = renderer()
        .render_str(
            "{{ '2026-11-01T06:30:00Z' | datetime }} / {{ '2026-11-01T07:30:00Z' | datetime }} / {{ '2026-03-08T08:00:00Z' | date(format='%-d %b %H:%M %Z') }}",
            &report(),
        )
        .unwrap();
    assert_eq!(
        out,
        "Sun, Nov 1, 2026 01:30 CDT / Sun, Nov 1, 2026 01:30 CST / 8 Mar 03:00 CDT"
    );
}

#[test]
fn percent_of_a_null_rate_is_a_dash() {
    let out = renderer()
        .render_str(
            "{{ totals.completion_rate | percent }} {{ courses[0].completion_rate | percent }}",
            &report(),
        )
        .unwrap();
    assert_eq!(out, "— 25%");
}

#[test]
fn address_templates_render_without_escaping() {
    let out = renderer()
        .render_str("{{ team.manager }}", &report())
        .unwrap();
    assert_eq!(out, "Dana Ortiz <dana.ortiz@example.com>");
}

/// Every string of `value` outside `plain_text` objects (mrkdwn, the
/// fallback), and separately the texts of `plain_text` objects.
fn mrkdwn_and_plain(value: &Value, mrkdwn: &mut Vec<String>, plain: &mut Vec<String>) {
    match value {
        Value::Object(map) if map.get("type").and_then(Value::as_str) == Some("plain_text") => {
            strings(value, plain);
        }
        Value::String(s) => mrkdwn.push(s.clone()),
        Value::Array(items) => items
            .iter()
            .for_each(|v| mrkdwn_and_plain(v, mrkdwn, plain)),
        Value::Object(map) => map
            .values()
            .for_each(|v| mrkdwn_and_plain(v, mrkdwn, plain)),
        _ => {}
    }
}

// Since plain_text is shown literally by Slack, it now carries the
// characters themselves; the entity checks below apply to mrkdwn only.
#[test]
fn slack_plain_text_carries_characters_not_entities() {
    let messages = renderer().slack("digest", &report()).unwrap();
    let (mut mrkdwn, mut plain) = (Vec::new(), Vec::new());
    messages
        .iter()
        .for_each(|m| mrkdwn_and_plain(m, &mut mrkdwn, &mut plain));
    let header = plain.join("\n");
    assert!(header.contains(r#"O'Brien & <Sons> "Ltd"\"#), "{header}");
    for text in &plain {
        for entity in ["&amp;", "&lt;", "&gt;"] {
            assert!(!text.contains(entity), "{entity} in plain_text: {text}");
        }
    }
}

#[test]
fn slack_text_uses_slack_entities_and_stays_valid_json() {
    let messages = renderer().slack("digest", &report()).unwrap();
    let (mut texts, mut plain) = (Vec::new(), Vec::new());
    messages
        .iter()
        .for_each(|m| mrkdwn_and_plain(m, &mut texts, &mut plain));
    let all = texts.join("\n");
    assert!(
        all.contains(r#"O'Brien &amp; &lt;Sons&gt; "Ltd"\"#),
        "{all}"
    );
    assert!(all.contains("Hazmat &lt;Level 2&gt; &amp; Spills"));
    assert!(all.contains(ACCENTED));
    for text in &texts {
        assert!(
            !text.contains('<') && !text.contains('>'),
            "unescaped: {text}"
        );
        let bare_amp = text.match_indices('&').any(|(i, _)| {
            !["&amp;", "&lt;", "&gt;"]
                .iter()
                .any(|e| text[i..].starts_with(e))
        });
        assert!(!bare_amp, "bare &: {text}");
    }
}

#[test]
fn teams_and_json_bodies_carry_names_exactly() {
    let renderer = renderer();
    let team = format!("North Yard & {NASTY}");
    let card = renderer.msteams("digest", &report()).unwrap();
    let mut texts = Vec::new();
    strings(&card, &mut texts);
    assert!(texts.iter().any(|t| t.contains(&team)), "{texts:?}");
    let body = renderer.json_body("digest", &report(), false).unwrap();
    assert_eq!(body["team"]["name"], team.as_str());
}

#[test]
fn names_with_newlines_and_control_characters_still_make_valid_json() {
    let mut r = report();
    std::sync::Arc::make_mut(&mut std::sync::Arc::make_mut(&mut r.overdue[0]).learner).name =
        "Line\nbreak\ttab \u{1} \"quoted\" \\ </script>".into();
    r.courses[0].title = "Title\r\nwith CRLF".into();
    let renderer = renderer();
    let messages = renderer.slack("digest", &r).unwrap();
    let mut texts = Vec::new();
    messages.iter().for_each(|m| strings(m, &mut texts));
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Line\nbreak\ttab \u{1} \"quoted\" \\ &lt;/script&gt;"))
    );
    let card = renderer.msteams("digest", &r).unwrap();
    let mut texts = Vec::new();
    strings(&card, &mut texts);
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Line\nbreak\ttab \u{1} \"quoted\" \\ </script>"))
    );
}

#[test]
fn the_json_body_leaves_out_assignments_unless_asked() {
    let renderer = renderer();
    let without = renderer.json_body("digest", &report(), false).unwrap();
    assert!(without.get("assignments").is_none());
    assert_eq!(without["totals"]["overdue"], 4);
    let with = renderer.json_body("digest", &report(), true).unwrap();
    assert_eq!(with["assignments"].as_array().unwrap().len(), 4);
}

#[test]
fn a_file_in_templates_dir_overrides_the_built_in_of_that_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("overdue.txt"), "Custom: {{ team.name }}").unwrap();
    std::fs::write(dir.path().join("README.md"), "not a template {{").unwrap();
    let renderer = Renderer::new(Some(dir.path())).unwrap();
    let email = renderer.email("overdue", &report(), None).unwrap();
    assert_eq!(email.text, format!("Custom: North Yard & {NASTY}"));
    // The other outputs of that name are still the built-in ones.
    assert!(email.html.contains("Overdue, by learner"));
}

#[test]
fn a_json_body_template_in_templates_dir_shapes_the_webhook_body() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("digest.json"),
        r#"{"team": "{{ team.name }}", "overdue": {{ totals.overdue }}, "rows": {{ overdue | length }}, "first": {{ overdue[0].learner | json }}, "all": {{ assignments | length }}}"#,
    )
    .unwrap();
    let renderer = Renderer::new(Some(dir.path())).unwrap();
    let body = renderer.json_body("digest", &report(), false).unwrap();
    assert_eq!(body["team"], format!("North Yard & {NASTY}").as_str());
    assert_eq!(body["overdue"], 4);
    assert_eq!(body["first"]["name"], NASTY);
    assert_eq!(body["rows"], 4);
    assert_eq!(body["all"], 0, "assignments are empty unless asked");
    let body = renderer.json_body("digest", &report(), true).unwrap();
    assert_eq!(body["all"], 4);
}

#[test]
fn a_new_template_name_from_templates_dir_is_known_and_renders_what_it_has() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("weekly.html"), "<p>{{ team.name }}</p>").unwrap();
    std::fs::write(dir.path().join("weekly.txt"), "{{ team.name }}").unwrap();
    let renderer = Renderer::new(Some(dir.path())).unwrap();
    assert!(renderer.has_template("weekly"));
    assert!(!renderer.has_template("monthly"));
    let email = renderer.email("weekly", &report(), None).unwrap();
    assert_eq!(email.subject, "weekly-overdue: training report");
    assert!(email.html.contains("&lt;Sons&gt;"));
    let err = renderer.slack("weekly", &report()).unwrap_err();
    assert!(matches!(err, RenderError::Missing { .. }));
    assert!(err.to_string().contains("weekly.slack.json"), "{err}");
}

#[test]
fn a_template_with_a_syntax_error_is_reported_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("overdue.html");
    std::fs::write(&path, "<p>\n{{ team.name }}\n{% if %}\n</p>\n").unwrap();
    let err = Renderer::new(Some(dir.path())).unwrap_err();
    match &err {
        RenderError::Compile { file, line, .. } => {
            assert_eq!(file, &path.display().to_string());
            assert_eq!(*line, Some(3));
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with(&format!("{}:3:", path.display())),
        "{err}"
    );
}

#[test]
fn a_template_using_an_unknown_filter_is_reported_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("digest.slack.json");
    std::fs::write(&path, "{\n\"text\": \"{{ team.name | shout }}\"}").unwrap();
    let err = Renderer::new(Some(dir.path())).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}:2:", path.display())),
        "{err}"
    );
    let chain = std::error::Error::source(&err).unwrap().to_string();
    assert!(chain.contains("Unknown filter `shout`"), "{chain}");
}

#[test]
fn a_json_template_that_renders_invalid_json_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("digest.msteams.json"),
        "{\"type\": \"message\",}",
    )
    .unwrap();
    let renderer = Renderer::new(Some(dir.path())).unwrap();
    let err = renderer.msteams("digest", &report()).unwrap_err();
    assert!(matches!(err, RenderError::Json { .. }), "{err:?}");
    assert!(err.to_string().contains("digest.msteams.json"), "{err}");
}

#[test]
fn a_template_that_fails_while_rendering_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("overdue.txt"),
        "{{ window.start | date(tz='Mars/Base') }}",
    )
    .unwrap();
    let renderer = Renderer::new(Some(dir.path())).unwrap();
    let err = renderer.email("overdue", &report(), None).unwrap_err();
    assert!(err.to_string().contains("overdue.txt"), "{err}");
    let chain = std::error::Error::source(&err).unwrap().to_string();
    assert!(chain.contains("unknown timezone `Mars/Base`"), "{chain}");
}

#[test]
fn check_str_compiles_without_rendering() {
    assert!(Renderer::check_str("Overdue training, {{ team.name }}: {{ totals.overdue }}").is_ok());
    let err = Renderer::check_str("{{ team.name ").unwrap_err();
    assert!(err.to_string().contains("{{ team.name "), "{err}");
}

#[test]
fn the_escalation_email_says_why_the_reader_gets_it() {
    let mut narrowed = report();
    narrowed.min_days_overdue = Some(30);
    narrowed.overdue.retain(|r| r.days_overdue.unwrap() >= 30);
    narrowed.overdue_by_learner = trainwatch::report::by_learner(&narrowed.overdue);
    narrowed.totals.overdue = narrowed.overdue.len() as u64;
    narrowed.totals.learners = 1;
    narrowed.courses.retain(|c| c.id == "course-hazmat");
    narrowed.courses[0].overdue = 1;
    narrowed.due_soon.clear();
    let renderer = renderer();

    let email = renderer.email("escalation", &narrowed, None).unwrap();

    assert!(
        email
            .text
            .contains("You get this because you are the escalation contact of North Yard")
    );
    assert!(email.text.contains("overdue 30 days or more"));
    insta::assert_snapshot!("escalation.subject", email.subject);
    insta::assert_snapshot!("escalation.txt", email.text);
    insta::assert_snapshot!("escalation.html", email.html);
    let slack = renderer.slack("escalation", &narrowed).unwrap();
    insta::assert_snapshot!(
        "escalation.slack.json",
        serde_json::to_string_pretty(&slack).unwrap()
    );
    let teams = renderer.msteams("escalation", &narrowed).unwrap();
    insta::assert_snapshot!(
        "escalation.msteams.json",
        serde_json::to_string_pretty(&teams).unwrap()
    );
}

#[test]
fn only_templates_that_name_the_rows_get_them_in_their_context() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, source: &str| std::fs::write(dir.path().join(name), source).unwrap();
    // A partial that lists rows, included by a Slack message that does not
    // name them itself.
    write("_list.slack.json", r#"{{ assignments | length }}"#);
    write(
        "viaparts.slack.json",
        r#"{"text": "{% include "_list.slack.json" %} rows"}"#,
    );
    write("_list.txt", r#"{{ assignments | length }}"#);
    let renderer = Renderer::new(Some(dir.path())).unwrap();
    let report = report();
    let rows = report.assignments.len();
    let first = &report.assignments[0].assignment_id;
    assert!(rows > 0);

    let slack = renderer.slack("viaparts", &report).unwrap();
    assert!(
        slack[0].to_string().contains(&format!("{rows} rows")),
        "{}",
        slack[0]
    );
    let text = |source: &str| renderer.render_str(source, &report).unwrap();
    assert_eq!(text("{{ assignments | length }}"), rows.to_string());
    assert_eq!(text(r#"{% include "_list.txt" %}"#), rows.to_string());
    assert_eq!(
        text("{{ totals.assignments }}"),
        report.totals.assignments.to_string()
    );
    // The whole-context variable counts as reading the rows as well.
    assert!(text("{{ __tera_context }}").contains(first.as_str()));
}
