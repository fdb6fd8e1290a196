//! Slack's and Teams' limits hold however big the report is.

use crate::render_fixture;

use render_fixture::{report, with_courses, with_overdue};
use serde_json::Value;
use trainwatch::render::Renderer;

/// Slack's documented limits, checked independently of the code under test.
fn assert_within_slack_limits(message: &Value) {
    let text = message["text"].as_str().expect("a top-level text fallback");
    assert!(!text.trim().is_empty(), "the fallback text is empty");
    let blocks = message["blocks"].as_array().expect("blocks");
    assert!(blocks.len() <= 50, "{} blocks", blocks.len());
    for block in blocks {
        let chars = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
        match block["type"].as_str() {
            Some("header") => {
                let n = chars(&block["text"]["text"]);
                assert!(n <= 150, "a header of {n} characters");
            }
            Some("section") => {
                let n = chars(&block["text"]["text"]);
                assert!(n <= 3000, "a section of {n} characters");
                if let Some(fields) = block["fields"].as_array() {
                    assert!(fields.len() <= 10);
                    assert!(fields.iter().all(|f| chars(&f["text"]) <= 2000));
                }
            }
            _ => {}
        }
    }
}

fn header_text(message: &Value) -> &str {
    message["blocks"][0]["text"]["text"].as_str().unwrap()
}

#[test]
fn a_digest_of_200_courses_is_split_into_numbered_messages_within_slack_limits() {
    let messages = Renderer::new(None)
        .unwrap()
        .slack("digest", &with_courses(200))
        .unwrap();
    let n = messages.len();
    assert!(
        n >= 5,
        "200 course sections need at least 5 messages, got {n}"
    );
    for (i, message) in messages.iter().enumerate() {
        assert_within_slack_limits(message);
        let part = format!("(part {}/{n})", i + 1);
        assert!(
            header_text(message).ends_with(&part),
            "{}",
            header_text(message)
        );
        assert!(message["text"].as_str().unwrap().ends_with(&part));
    }
    // Nothing is lost: every course appears once, in order.
    let all = serde_json::to_string(&messages).unwrap();
    let positions: Vec<usize> = (0..200)
        .map(|i| {
            all.find(&format!("*Course {i:03} &amp;"))
                .expect("every course")
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_small_digest_is_one_message_without_a_part_number() {
    let messages = Renderer::new(None)
        .unwrap()
        .slack("digest", &report())
        .unwrap();
    assert_eq!(messages.len(), 1);
    assert_within_slack_limits(&messages[0]);
    assert!(!header_text(&messages[0]).contains("part"));
}

#[test]
fn an_over_long_section_is_split_on_line_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("digest.slack.json"),
        r#"{"text": "All overdue", "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "{{ team.name }} {{ team.name }} {{ team.name }} {{ team.name }} {{ team.name }}"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "{% for r in overdue %}{{ r.learner.name }}: {{ r.course.title }}\n{% endfor %}"}}
        ]}"#,
    )
    .unwrap();
    let renderer = Renderer::new(Some(dir.path())).unwrap();
    let messages = renderer.slack("digest", &with_overdue(400)).unwrap();
    assert_eq!(messages.len(), 1);
    assert_within_slack_limits(&messages[0]);
    let sections: Vec<&str> = messages[0]["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "section")
        .map(|b| b["text"]["text"].as_str().unwrap())
        .collect();
    assert!(sections.len() > 1, "one section of {} rows", 400);
    let lines: Vec<&str> = sections.iter().flat_map(|s| s.lines()).collect();
    assert_eq!(lines.len(), 400, "no line lost or cut");
    assert!(
        lines
            .iter()
            .all(|l| l.ends_with("Hazmat &lt;Level 2&gt; &amp; Spills"))
    );
    assert!(header_text(&messages[0]).ends_with('…'));
}

#[test]
fn a_teams_card_with_2000_overdue_rows_stays_under_28_kb_and_says_how_many_more() {
    let card = Renderer::new(None)
        .unwrap()
        .msteams("digest", &with_overdue(2000))
        .unwrap();
    let bytes = serde_json::to_vec(&card).unwrap();
    assert!(bytes.len() < 28 * 1024, "{} bytes", bytes.len());
    let body = card["attachments"][0]["content"]["body"]
        .as_array()
        .unwrap();
    let rows = body
        .iter()
        .find(|b| b["id"] == "overdue-rows")
        .and_then(|b| b["items"].as_array())
        .expect("the overdue rows");
    let kept = rows.len() - 1;
    assert!(kept >= 20, "only {kept} rows kept");
    let more = rows.last().unwrap()["text"].as_str().unwrap();
    assert_eq!(more, format!("…and {} more", 2000 - kept));
    assert_eq!(card["attachments"][0]["content"]["version"], "1.4");
}
