//! Untrusted names kept as data: names that become path components, text
//! that must stay on one line, and CSV cells a spreadsheet must not run.
//!
//! Three kinds of names reach places where they could change meaning:
//! - **paths**: job and team names name folders (`preview`, archives). A name
//!   from the config is *checked* ([`path_component_problem`]) so the user
//!   sees a clear error; a name from data (a Samsara tag, say) is *made safe*
//!   ([`path_component`]), because there is no one to tell.
//! - **lines**: a header, a log or summary line must not be split by CR/LF
//!   in a name ([`one_line`]).
//! - **spreadsheets**: a CSV cell that starts with `=`, `+`, `-`, `@`, tab or
//!   CR is a formula to Excel and LibreOffice; [`csv_text`] neutralises it
//!   the way OWASP recommends (a leading `'`).

use std::borrow::Cow;

/// The longest name, in bytes, that may name a folder. File systems allow
/// 255 bytes per component; trainwatch adds suffixes (`.tmp-PID`, a window
/// stamp) to some, so names keep well clear of the limit.
pub const MAX_NAME_BYTES: usize = 100;

/// Characters that Windows (or a shell) would read as something other than
/// a name; rejected in config names and replaced in slugs so that one rule
/// holds everywhere.
const RESERVED: &[char] = &['/', '\\', '<', '>', ':', '"', '|', '?', '*'];

/// Why `name` cannot be one path component as it is, or `None` when it can.
///
/// The message completes "… is not allowed: …" and says what to write instead.
pub fn path_component_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Some(format!(
            "it is {} bytes long, and names a folder, so at most {MAX_NAME_BYTES} bytes fit",
            name.len()
        ));
    }
    if name.starts_with('.') {
        return Some("it names a folder, so it cannot start with `.`".into());
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Some(format!(
            "it contains the control character {:?}, and names a folder",
            c
        ));
    }
    if let Some(c) = name.chars().find(|c| RESERVED.contains(c)) {
        return Some(format!(
            "it contains `{c}`, and names a folder: leave out / \\ < > : \" | ? *"
        ));
    }
    if name.trim() != name {
        return Some("it starts or ends with a space, and names a folder".into());
    }
    None
}

/// `name` as one safe path component: itself when
/// [`path_component_problem`] finds nothing, otherwise with every reserved
/// or control character replaced by `_`, a leading `.` replaced by `_`,
/// surrounding spaces trimmed, and cut to [`MAX_NAME_BYTES`] on a character
/// boundary. Never empty, never `.` or `..`, never a path with a separator.
pub fn path_component(name: &str) -> String {
    if path_component_problem(name).is_none() {
        return name.to_string();
    }
    let mut out: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_control() || RESERVED.contains(&c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    if out.starts_with('.') {
        out.replace_range(0..1, "_");
    }
    if out.len() > MAX_NAME_BYTES {
        let mut cut = MAX_NAME_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    // Trimming or cutting can leave an edge space or nothing at all.
    let out = out.trim().to_string();
    if out.is_empty() { "_".to_string() } else { out }
}

/// `text` on one line: every control character (CR, LF, tab, …) becomes a
/// space, so a name can never start a new header, log or summary line.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// A text cell for CSV: prefixed with `'` when it starts with a character a
/// spreadsheet reads as a formula (`=`, `+`, `-`, `@`, tab, CR), as OWASP
/// advises. Only for text columns: a negative number is not a formula.
pub fn csv_text(text: &str) -> Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{text}")),
        _ => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Component, Path};

    #[test]
    fn ordinary_names_are_their_own_path_component() {
        for name in [
            "north-yard",
            "North Yard",
            "weekly.overdue",
            "Zoë_2",
            "a..b",
        ] {
            assert_eq!(path_component_problem(name), None, "{name}");
            assert_eq!(path_component(name), name);
        }
    }

    #[test]
    fn names_that_would_leave_their_folder_are_refused_and_slugged() {
        for (name, slug) in [
            ("../../x", "_._.._x"),
            ("/etc/passwd", "_etc_passwd"),
            ("a\\b", "a_b"),
            ("..", "_."),
            (".hidden", "_hidden"),
            ("line\r\nbreak", "line__break"),
            ("", "_"),
            ("   ", "_"),
        ] {
            assert!(path_component_problem(name).is_some(), "{name:?}");
            assert_eq!(path_component(name), slug, "{name:?}");
        }
    }

    #[test]
    fn a_long_name_is_refused_and_its_slug_is_cut_on_a_character_boundary() {
        let name = "é".repeat(80);
        assert!(
            path_component_problem(&name)
                .unwrap()
                .contains("160 bytes long")
        );
        let slug = path_component(&name);
        assert_eq!(slug, "é".repeat(50));
    }

    #[test]
    fn every_slug_is_exactly_one_normal_component() {
        for name in ["../../x", "/", "a/../../b", "C:\\x", "..", ".", "\0"] {
            let slug = path_component(name);
            let parts: Vec<Component> = Path::new(&slug).components().collect();
            assert!(
                matches!(parts.as_slice(), [Component::Normal(_)]),
                "{name:?} → {slug:?}"
            );
        }
    }

    #[test]
    fn one_line_turns_line_breaks_into_spaces() {
        assert_eq!(one_line("a\r\nb\tc"), "a  b c");
        assert!(matches!(one_line("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn formula_cells_are_prefixed_and_others_left_alone() {
        for (cell, safe) in [
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("Dana Ortiz", "Dana Ortiz"),
            ("", ""),
            ("a=b", "a=b"),
        ] {
            assert_eq!(csv_text(cell), safe);
        }
    }
}
