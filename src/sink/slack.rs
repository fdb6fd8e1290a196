//! Slack incoming webhooks (`kind = "slack"`), and Slack's Block Kit
//! limits, enforced on the rendered payload rather than trusted to the
//! template.
//!
//! A template renders one object `{"text": …, "blocks": [...]}`; [`split`]
//! makes every block fit (headers truncated, long sections split on line
//! boundaries) and cuts the blocks into numbered messages of at most
//! [`MAX_BLOCKS`]. Text is counted in characters after Slack's escaping
//! (`&amp;` is five), which errs on the safe side.

use std::io;

use serde_json::{Map, Value, json};

use super::{Sink, Templates, counted, escape_json_string};

/// `kind = "slack"`: Block Kit messages from `NAME.slack.json`, split to
/// Slack's limits, posted one per second per URL; only HTTP 200 is success.
#[derive(Debug, Clone, Copy)]
pub struct Slack;

impl Sink for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }
    fn template_suffix(&self) -> &'static str {
        ".slack.json"
    }
    fn builtin_templates(&self) -> Templates {
        templates![
            "overdue.slack.json",
            "escalation.slack.json",
            "digest.slack.json",
            "audit.slack.json",
        ]
    }
    fn escape(&self) -> super::EscapeFn {
        escape_slack
    }
    fn shape(&self, body: Value) -> Result<Vec<Value>, String> {
        split(body)
    }
    fn multi_part(&self) -> bool {
        true
    }
    fn summary(&self, parts: usize, _include_assignments: bool) -> String {
        counted(parts, "Slack message")
    }
    fn failure(&self, headline: &str, error: &str, _context: Value) -> Value {
        json!({"text": format!("{headline}\n```{}```", escape_mrkdwn(error))})
    }
    fn per_second(&self) -> Option<u32> {
        // Slack accepts one message per second per webhook, in bursts
        // tolerated briefly; trainwatch never relies on the burst.
        Some(1)
    }
    fn success(&self, status: u16) -> bool {
        status == 200
    }
}

/// Escape for Slack mrkdwn inside a JSON string literal: `&`, `<`, `>` as
/// Slack's entities, then JSON string escaping.
pub fn escape_slack(input: &str, out: &mut dyn io::Write) -> io::Result<()> {
    escape_json_string(&escape_mrkdwn(input), out)
}

/// Slack's three reserved characters as entities.
pub fn escape_mrkdwn(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Blocks per message.
pub const MAX_BLOCKS: usize = 50;
/// Characters in a section's `text`.
pub const MAX_SECTION_TEXT: usize = 3000;
/// Characters in a header's `text`.
pub const MAX_HEADER_TEXT: usize = 150;
/// Fields per section, and characters per field.
pub const MAX_FIELDS: usize = 10;
pub const MAX_FIELD_TEXT: usize = 2000;
/// Elements per context block.
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
/// Characters of the top-level `text` fallback we send (Slack truncates at
/// 40,000; a notification needs far less).
pub const MAX_FALLBACK_TEXT: usize = 3000;

/// The messages for one rendered payload, in order, each within the limits.
pub fn split(payload: Value) -> Result<Vec<Value>, String> {
    let Value::Object(mut payload) = payload else {
        return Err("the Slack template must render a JSON object".into());
    };
    let blocks = match payload.remove("blocks") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(blocks)) => blocks,
        Some(_) => return Err("`blocks` must be an array".into()),
    };
    let mut fitted = Vec::with_capacity(blocks.len());
    for mut block in blocks {
        plain_text_unescaped(&mut block);
        fit_block(block, &mut fitted)?;
    }
    let header = match fitted.first() {
        Some(b) if block_type(b) == Some("header") => Some(fitted.remove(0)),
        _ => None,
    };
    let text = match payload.remove("text") {
        Some(Value::String(text)) if !text.trim().is_empty() => text,
        None | Some(Value::Null) | Some(Value::String(_)) => header
            .as_ref()
            .and_then(|h| h.pointer("/text/text"))
            .and_then(Value::as_str)
            // The header is plain text; the fallback is read as mrkdwn.
            .map(escape_mrkdwn)
            .ok_or(
                "the payload needs a non-empty top-level `text` (or a header to derive it from)",
            )?,
        Some(_) => return Err("`text` must be a string".into()),
    };

    let per_message = MAX_BLOCKS - usize::from(header.is_some());
    let mut parts: Vec<Vec<Value>> = Vec::new();
    for block in fitted {
        match parts.last_mut() {
            Some(part) if part.len() < per_message => part.push(block),
            _ => parts.push(vec![block]),
        }
    }
    for part in &mut parts {
        // A divider at either end of a part separates nothing.
        while part.first().and_then(block_type) == Some("divider") {
            part.remove(0);
        }
        while part.last().and_then(block_type) == Some("divider") {
            part.pop();
        }
    }
    parts.retain(|part| !part.is_empty());
    if parts.is_empty() {
        parts.push(Vec::new());
    }

    let n = parts.len();
    Ok(parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let suffix = if n > 1 {
                format!(" (part {}/{n})", i + 1)
            } else {
                String::new()
            };
            let mut blocks = Vec::with_capacity(part.len() + 1);
            if let Some(header) = &header {
                let mut header = header.clone();
                if let Some(Value::String(t)) = header.pointer_mut("/text/text") {
                    *t = with_suffix(t, &suffix, MAX_HEADER_TEXT);
                }
                blocks.push(header);
            }
            blocks.extend(part);
            let mut message = payload.clone();
            message.insert(
                "text".into(),
                Value::String(with_suffix(&text, &suffix, MAX_FALLBACK_TEXT)),
            );
            message.insert("blocks".into(), Value::Array(blocks));
            Value::Object(message)
        })
        .collect())
}

/// Turns Slack's entities back into characters in every `plain_text`
/// object of `value`. Templates escape every value for mrkdwn (`&lt;`), but
/// Slack shows plain text literally, entities and all: a header would read
/// `O'Brien &amp; Sons`.
fn plain_text_unescaped(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("plain_text")
                && let Some(Value::String(text)) = map.get_mut("text")
            {
                *text = unescape_mrkdwn(text);
            }
            map.values_mut().for_each(plain_text_unescaped);
        }
        Value::Array(items) => items.iter_mut().for_each(plain_text_unescaped),
        _ => {}
    }
}

/// The inverse of [`escape_mrkdwn`], in one pass
/// (so `&amp;lt;` becomes `&lt;`, as it was written).
fn unescape_mrkdwn(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let (c, len) = if rest.starts_with("&amp;") {
            ('&', 5)
        } else if rest.starts_with("&lt;") {
            ('<', 4)
        } else if rest.starts_with("&gt;") {
            ('>', 4)
        } else {
            ('&', 1)
        };
        out.push(c);
        rest = &rest[len..];
    }
    out.push_str(rest);
    out
}

fn block_type(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

/// Pushes `block` made to fit, split in several where it has to be.
fn fit_block(block: Value, out: &mut Vec<Value>) -> Result<(), String> {
    let Value::Object(mut block) = block else {
        return Err("every entry of `blocks` must be an object".into());
    };
    match block.get("type").and_then(Value::as_str) {
        Some("header") => {
            if let Some(Value::String(t)) = block.get_mut("text").and_then(|t| t.get_mut("text")) {
                *t = truncate(t, MAX_HEADER_TEXT);
            }
            out.push(Value::Object(block));
        }
        Some("context") => {
            if let Some(Value::Array(elements)) = block.get_mut("elements") {
                elements.truncate(MAX_CONTEXT_ELEMENTS);
                for e in elements {
                    if let Some(Value::String(t)) = e.get_mut("text") {
                        *t = truncate(t, MAX_SECTION_TEXT);
                    }
                }
            }
            out.push(Value::Object(block));
        }
        Some("section") => {
            if let Some(Value::Array(fields)) = block.get_mut("fields") {
                fields.truncate(MAX_FIELDS);
                for f in fields {
                    if let Some(Value::String(t)) = f.get_mut("text") {
                        *t = truncate(t, MAX_FIELD_TEXT);
                    }
                }
            }
            let text = block
                .get("text")
                .and_then(|t| t.get("text"))
                .and_then(Value::as_str)
                .map(str::to_string);
            match text {
                Some(text) if text.chars().count() > MAX_SECTION_TEXT => {
                    let kind = block["text"]
                        .get("type")
                        .cloned()
                        .unwrap_or(json!("mrkdwn"));
                    for (i, chunk) in split_lines(&text, MAX_SECTION_TEXT).into_iter().enumerate() {
                        let mut piece = if i == 0 {
                            block.clone()
                        } else {
                            // Continuations carry the text only: a block_id must be
                            // unique, and fields or an accessory belong to the first.
                            Map::new()
                        };
                        piece.insert("type".into(), json!("section"));
                        piece.insert("text".into(), json!({ "type": kind, "text": chunk }));
                        out.push(Value::Object(piece));
                    }
                }
                _ => out.push(Value::Object(block)),
            }
        }
        Some(_) => out.push(Value::Object(block)),
        None => return Err("every block needs a `type`".into()),
    }
    Ok(())
}

/// `text` cut into pieces of at most `max` characters, on line boundaries;
/// a single line longer than `max` is truncated.
pub fn split_lines(text: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut current_len = 0;
    for line in text.split('\n') {
        let line = truncate(line, max);
        let len = line.chars().count();
        if current_len > 0 && current_len + 1 + len > max {
            pieces.push(std::mem::take(&mut current));
            current_len = 0;
        }
        if current_len > 0 {
            current.push('\n');
            current_len += 1;
        }
        current.push_str(&line);
        current_len += len;
    }
    pieces.push(current);
    pieces.retain(|p| !p.trim().is_empty());
    pieces
}

/// `text` in at most `max` characters, ending with `…` when cut, and never
/// cut inside an entity such as `&amp;`.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut kept: String = text.chars().take(max.saturating_sub(1)).collect();
    if let Some(amp) = kept.rfind('&')
        && !kept[amp..].contains(';')
        && kept.len() - amp < 8
    {
        kept.truncate(amp);
    }
    kept.push('…');
    kept
}

/// `text` + `suffix` in at most `max` characters, cutting `text` only.
fn with_suffix(text: &str, suffix: &str, max: usize) -> String {
    let room = max.saturating_sub(suffix.chars().count());
    format!("{}{suffix}", truncate(text, room))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_never_cuts_an_entity_in_half() {
        assert_eq!(truncate("abc &amp; def", 7), "abc …");
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("Zoë Ångström", 5), "Zoë …");
    }

    #[test]
    fn long_text_splits_on_line_boundaries() {
        let text = ["a".repeat(6), "b".repeat(6), "c".repeat(6)].join("\n");
        assert_eq!(split_lines(&text, 13), vec!["aaaaaa\nbbbbbb", "cccccc"]);
        assert_eq!(split_lines(&"x".repeat(20), 5), vec!["xxxx…"]);
    }

    #[test]
    fn a_small_payload_is_one_message_unchanged() {
        let payload = json!({"text": "hi", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "Hi"}}]});
        assert_eq!(split(payload.clone()).unwrap(), vec![payload]);
    }

    #[test]
    fn plain_text_carries_characters_and_mrkdwn_keeps_its_entities() {
        let payload = json!({"blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "O'Brien &amp; &lt;Sons&gt; &amp;lt;"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "O'Brien &amp; &lt;Sons&gt;"}},
            {"type": "context", "elements": [{"type": "plain_text", "text": "a &lt; b"}]},
        ]});
        let message = split(payload).unwrap().remove(0);
        assert_eq!(
            message["blocks"][0]["text"]["text"],
            "O'Brien & <Sons> &lt;"
        );
        assert_eq!(
            message["blocks"][1]["text"]["text"],
            "O'Brien &amp; &lt;Sons&gt;"
        );
        assert_eq!(message["blocks"][2]["elements"][0]["text"], "a < b");
        assert_eq!(
            message["text"], "O'Brien &amp; &lt;Sons&gt; &amp;lt;",
            "the fallback derived from the header is mrkdwn again"
        );
    }

    #[test]
    fn a_payload_without_text_or_header_is_an_error() {
        assert!(split(json!({"blocks": [{"type": "divider"}]})).is_err());
        assert!(split(json!(["not", "an", "object"])).is_err());
    }
}
