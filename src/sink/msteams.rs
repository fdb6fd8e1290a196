//! Microsoft Teams Workflows webhooks (`kind = "msteams"`): payloads
//! checked for shape and cut to fit Teams' message size limit.
//!
//! A template marks the lists that may be shortened by giving their
//! `Container` an `id` ending in `-rows`; when the payload is too big, rows
//! are dropped from the end of the longest such list and an "and N more"
//! line takes their place, until the payload fits.

use serde_json::{Value, json};

use super::{Sink, Templates};

/// `kind = "msteams"`: a Workflows message with one Adaptive Card from
/// `NAME.msteams.json`, cut to [`MAX_BYTES`]; any 2xx is success
/// (Workflows answers 202).
#[derive(Debug, Clone, Copy)]
pub struct MsTeams;

impl Sink for MsTeams {
    fn name(&self) -> &'static str {
        "msteams"
    }
    fn template_suffix(&self) -> &'static str {
        ".msteams.json"
    }
    fn builtin_templates(&self) -> Templates {
        templates![
            "overdue.msteams.json",
            "escalation.msteams.json",
            "digest.msteams.json",
            "audit.msteams.json",
        ]
    }
    fn shape(&self, body: Value) -> Result<Vec<Value>, String> {
        fit(body).map(|card| vec![card])
    }
    fn summary(&self, _parts: usize, _include_assignments: bool) -> String {
        "1 Adaptive Card".into()
    }
    fn failure(&self, headline: &str, error: &str, _context: Value) -> Value {
        json!({
            "type": "message",
            "attachments": [{
                "contentType": CARD_CONTENT_TYPE,
                "content": {
                    "type": "AdaptiveCard",
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": headline, "weight": "Bolder", "wrap": true},
                        {"type": "TextBlock", "text": error, "wrap": true, "fontType": "Monospace"},
                    ],
                },
            }],
        })
    }
}

/// Teams rejects messages over 28 KB; we stay a little under, in bytes of
/// the JSON as sent.
pub const MAX_BYTES: usize = 28_000;

/// The content type of an Adaptive Card attachment.
pub const CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";

/// `payload` checked and, if needed, shortened to fit [`MAX_BYTES`].
pub fn fit(mut payload: Value) -> Result<Value, String> {
    check_shape(&payload)?;
    if size(&payload) <= MAX_BYTES {
        return Ok(payload);
    }
    // Longest list first; each list is cut as little as needed, possibly to nothing.
    let mut lists = Vec::new();
    find_row_lists(&payload, String::new(), &mut lists);
    lists.sort_by_key(|(_, len)| std::cmp::Reverse(*len));
    for (pointer, len) in lists {
        let original = payload
            .pointer(&pointer)
            .cloned()
            .ok_or("internal: a row list disappeared")?;
        // The largest number of rows to keep that fits, by bisection.
        let (mut lo, mut hi) = (0, len);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            set_rows(&mut payload, &pointer, &original, mid);
            if size(&payload) <= MAX_BYTES {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        set_rows(&mut payload, &pointer, &original, lo);
        if size(&payload) <= MAX_BYTES {
            return Ok(payload);
        }
    }
    Err(format!(
        "the card is {} bytes, over Teams' limit of {MAX_BYTES}, and has no more rows to drop \
         (mark long lists with a Container whose id ends in `-rows`)",
        size(&payload)
    ))
}

fn size(payload: &Value) -> usize {
    serde_json::to_vec(payload).map_or(usize::MAX, |v| v.len())
}

fn check_shape(payload: &Value) -> Result<(), String> {
    if payload.get("type").and_then(Value::as_str) != Some("message") {
        return Err("the payload needs \"type\": \"message\"".into());
    }
    let attachments = payload
        .get("attachments")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or("the payload needs a non-empty `attachments` array")?;
    for a in attachments {
        if a.get("contentType").and_then(Value::as_str) != Some(CARD_CONTENT_TYPE) {
            return Err(format!(
                "every attachment needs \"contentType\": \"{CARD_CONTENT_TYPE}\""
            ));
        }
        if a.pointer("/content/type").and_then(Value::as_str) != Some("AdaptiveCard") {
            return Err("every attachment's content must be an AdaptiveCard".into());
        }
    }
    Ok(())
}

/// JSON pointers to the `items` of every Container whose id ends in `-rows`.
fn find_row_lists(value: &Value, pointer: String, out: &mut Vec<(String, usize)>) {
    match value {
        Value::Object(map) => {
            let is_rows = map
                .get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| id.ends_with("-rows"));
            if is_rows && let Some(Value::Array(items)) = map.get("items") {
                out.push((format!("{pointer}/items"), items.len()));
            }
            for (key, v) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                find_row_lists(v, format!("{pointer}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                find_row_lists(v, format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Sets the list at `pointer` to the first `keep` rows of `original`, plus
/// an "and N more" line when rows were dropped.
fn set_rows(payload: &mut Value, pointer: &str, original: &Value, keep: usize) {
    let rows = original.as_array().map_or(&[][..], Vec::as_slice);
    let mut kept: Vec<Value> = rows.iter().take(keep).cloned().collect();
    let dropped = rows.len().saturating_sub(keep);
    if dropped > 0 {
        kept.push(json!({
            "type": "TextBlock",
            "text": format!("…and {dropped} more"),
            "isSubtle": true,
            "wrap": true,
        }));
    }
    if let Some(slot) = payload.pointer_mut(pointer) {
        *slot = Value::Array(kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(rows: usize) -> Value {
        let items: Vec<Value> = (0..rows)
            .map(|i| json!({"type": "TextBlock", "text": format!("row {i} {}", "x".repeat(80))}))
            .collect();
        json!({"type": "message", "attachments": [{"contentType": CARD_CONTENT_TYPE, "content": {
            "type": "AdaptiveCard", "version": "1.4",
            "body": [{"type": "Container", "id": "overdue-rows", "items": items}]
        }}]})
    }

    #[test]
    fn a_small_card_is_left_alone() {
        assert_eq!(fit(card(3)).unwrap(), card(3));
    }

    #[test]
    fn a_big_card_keeps_as_many_rows_as_fit_and_says_how_many_more() {
        let out = fit(card(2000)).unwrap();
        assert!(size(&out) <= MAX_BYTES);
        let items = out
            .pointer("/attachments/0/content/body/0/items")
            .and_then(Value::as_array)
            .unwrap();
        let kept = items.len() - 1;
        assert!(kept > 100, "kept only {kept}");
        assert_eq!(
            items.last().unwrap()["text"],
            format!("…and {} more", 2000 - kept)
        );
        // One more row would not have fit.
        let mut bigger = out.clone();
        set_rows(
            &mut bigger,
            "/attachments/0/content/body/0/items",
            card(2000)
                .pointer("/attachments/0/content/body/0/items")
                .unwrap(),
            kept + 1,
        );
        assert!(size(&bigger) > MAX_BYTES);
    }

    #[test]
    fn a_payload_that_is_not_a_card_is_an_error() {
        assert!(fit(json!({"type": "message", "attachments": []})).is_err());
        assert!(fit(json!({"text": "hi"})).is_err());
    }
}
