//! The layering ARCHITECTURE.md promises, read from the code itself: every
//! `crate::x` path in `src/` (comments and strings aside) must name a module
//! in a lower layer than the file's own, so the import graph has no circle;
//! and the crates that carry a concern (lettre, tera, rusqlite, …) are named
//! only in the modules that own it. A new import that breaks a rule fails
//! here with the file and the line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and its layer. A module may import only
/// modules of a strictly lower layer. Keep in step with ARCHITECTURE.md.
const LAYERS: &[(&str, u32)] = &[
    // Leaves: plain values and pure functions, no I/O of their own.
    ("learner", 0),
    ("names", 0),
    ("defaults", 0),
    ("errors", 0),
    ("status", 0),
    ("memory", 0),
    // What differs per webhook kind (names, escaping, limits, headers):
    // pure, so config can check names and render, outbox and deliver use it.
    ("sink", 0),
    ("mailbox", 1),
    ("retry", 1),
    ("window", 1),
    ("schedule", 2),
    // The configuration: typed values, loaded and resolved.
    ("config", 3),
    // Outgoing HTTP and its pacing.
    ("http", 4),
    ("ratelimit", 5),
    // The stages, in the order data flows through them.
    ("samsara", 6),
    ("teams", 7),
    ("data", 8),
    ("report", 9),
    ("store", 10),
    ("mirror", 11),
    ("render", 12),
    ("outbox", 13),
    ("deliver", 14),
    ("ledger", 15),
    ("job", 16),
    // What sequences runs and faces the user.
    ("check", 17),
    ("export", 17),
    ("metrics", 17),
    ("sample", 17),
    ("daemon", 18),
    ("server", 18),
    ("init", 18),
    ("service", 19),
    ("cli", 20),
];

/// External crates that carry one concern, and the modules allowed to name them.
const OWNERS: &[(&str, &[&str])] = &[
    ("lettre", &["mailbox", "deliver"]),
    ("tera", &["render", "check"]),
    ("charts_rs", &["render"]),
    ("rusqlite", &["store", "mirror", "ratelimit"]),
    // `config` parses `[store] url` with the driver's own parser, so a bad
    // URL is a config problem at its line; it opens no connection.
    ("tokio_postgres", &["config", "store", "mirror"]),
    ("deadpool_postgres", &["store", "mirror"]),
    ("axum", &["server", "sample"]),
    ("tokio_cron_scheduler", &["daemon"]),
    ("clap", &["cli"]),
    ("clap_complete", &["cli"]),
    ("clap_mangen", &["cli"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/store/sqlite/runs.rs`
/// → `store`), or `None` for the crate roots.
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).expect("under src/");
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// The text with comments, string and char literals blanked (newlines kept,
/// so line numbers still match), leaving only code.
fn code_only(text: &str) -> String {
    let bytes: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < bytes.len() && bytes[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < bytes.len() {
                if bytes[i] == '/' && bytes.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if bytes[i] == '*' && bytes.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(bytes[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&bytes, i) {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while bytes.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if bytes.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            out.push_str(&" ".repeat(j - i + 1));
            i = j + 1;
            while i < bytes.len() {
                if bytes[i] == '"' && (0..hashes).all(|k| bytes.get(i + 1 + k) == Some(&'#')) {
                    out.push_str(&" ".repeat(hashes + 1));
                    i += hashes + 1;
                    break;
                }
                out.push(blank(bytes[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < bytes.len() && bytes[i] != '"' {
                if bytes[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < bytes.len() {
                    out.push(blank(bytes[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && is_char_literal(&bytes, i) {
            let end = char_literal_end(&bytes, i);
            out.push_str(&" ".repeat(end - i));
            i = end;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// `'a'`, `'\n'`, `'\u{1F600}'` — but not a lifetime like `'a`.
fn is_char_literal(chars: &[char], i: usize) -> bool {
    match chars.get(i + 1) {
        Some('\\') => true,
        Some(_) => chars.get(i + 2) == Some(&'\''),
        None => false,
    }
}

fn char_literal_end(chars: &[char], i: usize) -> usize {
    let mut j = i + 1;
    if chars.get(j) == Some(&'\\') {
        j += 2;
    } else {
        j += 1;
    }
    while j < chars.len() && chars[j] != '\'' {
        j += 1;
    }
    j + 1
}

/// Every module a line of code names through `crate::` — `crate::a::b`, and
/// each head of a group, `crate::{a::X, b}`.
fn crate_paths(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let before_ok = rest[..at]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '$'));
        rest = &rest[at + "crate::".len()..];
        if !before_ok {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            let mut heads = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        heads.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 || !item.contains("::") {
                    item.push(c);
                }
            }
            heads.push(item);
            for head in heads {
                let name = head.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() && name != "self" {
                    found.push(name.to_string());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

/// Whether `line` names the external crate `krate` as a path (`lettre::…`).
fn names_crate(line: &str, krate: &str) -> bool {
    let needle = format!("{krate}::");
    line.match_indices(&needle).any(|(at, _)| {
        line[..at]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'))
    })
}

struct Source {
    module: String,
    path: PathBuf,
    code: String,
}

fn sources() -> Vec<Source> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let module = module_of(&path)?;
            let text = std::fs::read_to_string(&path).expect("a source file is readable");
            Some(Source {
                module,
                path,
                code: code_only(&text),
            })
        })
        .collect()
}

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn place(source: &Source, index: usize) -> String {
    let rel = source
        .path
        .strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap();
    format!("{}:{}", rel.display(), index + 1)
}

#[test]
fn every_module_of_src_has_a_layer() {
    let unknown: Vec<String> = sources()
        .iter()
        .filter(|s| layer(&s.module).is_none())
        .map(|s| format!("{} (module `{}`)", s.path.display(), s.module))
        .collect();
    assert!(
        unknown.is_empty(),
        "modules missing from LAYERS in this test and from ARCHITECTURE.md:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn modules_import_only_lower_layers_so_there_is_no_circle() {
    let mut broken = Vec::new();
    let mut edges: BTreeMap<(String, String), String> = BTreeMap::new();
    for source in sources() {
        let Some(own) = layer(&source.module) else {
            continue;
        };
        for (index, line) in source.code.lines().enumerate() {
            for target in crate_paths(line) {
                if target == source.module {
                    continue;
                }
                let Some(theirs) = layer(&target) else {
                    // A crate-root item (a macro, a re-export): not a module.
                    continue;
                };
                edges
                    .entry((source.module.clone(), target.clone()))
                    .or_insert_with(|| place(&source, index));
                if theirs >= own {
                    broken.push(format!(
                        "{}: `{}` (layer {own}) imports `{target}` (layer {theirs})",
                        place(&source, index),
                        source.module
                    ));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the layering (a module may import only lower layers):\n{}",
        broken.join("\n")
    );
    // The rule above implies no circle; say so directly as well, so a change
    // to LAYERS that allowed same-layer imports could not hide one.
    let modules: Vec<&str> = LAYERS.iter().map(|(m, _)| *m).collect();
    for start in &modules {
        let mut stack = vec![start.to_string()];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(m) = stack.pop() {
            for ((from, to), at) in &edges {
                if *from == m {
                    assert!(
                        to != start,
                        "import circle through `{start}` (edge at {at})"
                    );
                    if seen.insert(to.clone()) {
                        stack.push(to.clone());
                    }
                }
            }
        }
    }
}

#[test]
fn crates_with_one_concern_are_named_only_by_their_owners() {
    let mut broken = Vec::new();
    for source in sources() {
        for (index, line) in source.code.lines().enumerate() {
            for (krate, owners) in OWNERS {
                if names_crate(line, krate) && !owners.contains(&source.module.as_str()) {
                    broken.push(format!(
                        "{}: `{}` names `{krate}`, which only {owners:?} may",
                        place(&source, index),
                        source.module
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn no_source_file_is_over_six_hundred_lines() {
    let long: Vec<String> = sources()
        .iter()
        .filter_map(|s| {
            let text = std::fs::read_to_string(&s.path).ok()?;
            // Unit tests at the end of a file do not count.
            let body = text.split("\n#[cfg(test)]").next().unwrap_or(&text);
            let lines = body.lines().count();
            (lines > 600).then(|| format!("{}: {lines} lines", s.path.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over 600 lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checker_sees_what_it_must() {
    // The parser itself, on lines that must and must not count.
    assert_eq!(crate_paths("use crate::store::Store;"), ["store"]);
    assert_eq!(
        crate_paths("use crate::{config::Config, report::{Report, Row}, window};"),
        ["config", "report", "window"]
    );
    assert_eq!(crate_paths("x = crate::job::run(a, b);"), ["job"]);
    assert!(crate_paths("let s = my_crate::job;").is_empty());
    let code =
        code_only("/// see [`crate::job`]\nlet s = \"crate::cli\"; // crate::cli\nuse crate::x;");
    let paths: Vec<String> = code.lines().flat_map(crate_paths).collect();
    assert_eq!(paths, ["x"]);
    assert!(names_crate("use lettre::Message;", "lettre"));
    assert!(!names_crate("use crate::lettre_like::X;", "lettre"));
}
