//! `${VAR}` substitution in every string value of the spanned tree.

use std::borrow::Cow;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diag::Diag;

/// Replaces `${VAR}` in every string value under `table` with `env(VAR)`;
/// `$${` stands for a literal `${`. A missing or malformed reference is a
/// problem at the string's span, named with the key path that uses it.
pub(crate) fn substitute(
    table: &mut DeTable<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    diag: &mut Diag<'_>,
) {
    for (key, value) in table.iter_mut() {
        substitute_value(value, key.get_ref(), env, diag);
    }
}

fn substitute_value(
    value: &mut Spanned<DeValue<'_>>,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    diag: &mut Diag<'_>,
) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(text) => {
            if !text.contains('$') {
                return;
            }
            let mut problems = Vec::new();
            let (expanded, used_env) = expand(text, env, &mut |p| problems.push(p));
            let broken = !problems.is_empty();
            for problem in problems {
                diag.push(span.clone(), format!("{problem} (used by {path})"));
            }
            if broken {
                diag.broken(span.clone());
            }
            if used_env {
                diag.substituted(span, expanded.clone());
            }
            *text = Cow::Owned(expanded);
        }
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_value(item, &format!("{path}[{i}]"), env, diag);
            }
        }
        DeValue::Table(table) => {
            for (key, item) in table.iter_mut() {
                substitute_value(item, &format!("{path}.{}", key.get_ref()), env, diag);
            }
        }
        DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) | DeValue::Datetime(_) => {}
    }
}

/// Expands one string; returns it and whether any variable was read.
fn expand(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problem: &mut dyn FnMut(String),
) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    let mut used_env = false;
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                problem("`${` is not closed by `}` (write `$${` for a literal `${`)".into());
                out.push_str(after);
                rest = "";
                break;
            };
            let name = &tail[..end];
            if !is_var_name(name) {
                problem(format!(
                    "`${{{name}}}` is not an environment variable reference: names are letters, digits and `_`"
                ));
            } else if let Some(value) = env(name) {
                out.push_str(&value);
                used_env = true;
            } else {
                problem(format!("environment variable {name} is not set"));
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    (out, used_env)
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (String, bool, Vec<String>) {
        let env = |name: &str| (name == "TOKEN").then(|| "s3cret".to_string());
        let mut problems = Vec::new();
        let (out, used) = expand(text, &env, &mut |p| problems.push(p));
        (out, used, problems)
    }

    #[test]
    fn variables_are_replaced_and_the_rest_kept() {
        assert_eq!(
            run("Bearer ${TOKEN}!"),
            ("Bearer s3cret!".into(), true, vec![])
        );
        assert_eq!(run("cost: $5"), ("cost: $5".into(), false, vec![]));
    }

    #[test]
    fn a_doubled_dollar_is_a_literal() {
        assert_eq!(run("$${TOKEN}"), ("${TOKEN}".into(), false, vec![]));
    }

    #[test]
    fn missing_and_malformed_references_are_problems() {
        let (_, _, problems) = run("${NOPE} ${not valid} ${OPEN");
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("environment variable NOPE is not set"));
        assert!(problems[1].contains("`${not valid}`"));
        assert!(problems[2].contains("not closed"));
    }
}
