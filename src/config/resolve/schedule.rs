//! A job's `schedule`: the cron expression, with a message naming the
//! field that is wrong.

use super::*;

impl Cx<'_, '_> {
    pub(super) fn schedule(&mut self, expr: &Spanned<String>) -> Option<Schedule> {
        let text = expr.get_ref().trim();
        let fields = text.split_whitespace().count();
        let shown = self.quote(expr);
        if fields != 5 && fields != 6 {
            let plural = if fields == 1 { "" } else { "s" };
            self.problem(
                expr.span(),
                format!("schedule {shown} has {fields} field{plural}: {CRON_SHAPE}"),
            );
            return None;
        }
        match crate::schedule::parse(text) {
            Ok(schedule) => Some(Schedule {
                expr: expr.get_ref().clone(),
                ..schedule
            }),
            Err(err) => {
                let message = match cron_field_problem(text) {
                    Some(problem) => format!("schedule {shown}: {problem}"),
                    None => {
                        // No single field is at fault (the combination is):
                        // croner's reason, then the shape.
                        let reason = match &err {
                            croner::errors::CronError::InvalidPattern(m)
                            | croner::errors::CronError::IllegalCharacters(m)
                            | croner::errors::CronError::ComponentError(m) => m
                                .trim_end_matches('.')
                                .replace("CronPattern contains", "it contains"),
                            other => other.to_string(),
                        };
                        format!(
                            "schedule {shown} is not a valid cron expression: {reason}; {CRON_SHAPE}"
                        )
                    }
                };
                self.problem(expr.span(), message);
                None
            }
        }
    }
}

/// The cron fields in order, for 5 and for 6 fields: (name, what it takes).
const CRON_FIELDS: [(&str, &str); 6] = [
    ("SEC", "0-59"),
    ("MIN", "0-59"),
    ("HOUR", "0-23"),
    ("DAY", "1-31"),
    ("MONTH", "1-12 or Jan-Dec"),
    ("WEEKDAY", "0-7 or Sun-Sat (0 and 7 are Sunday)"),
];

/// The first cron field that is wrong on its own, quoted as written, with
/// what to write instead: `the WEEKDAY field `Monday` is not a weekday: use
/// `Mon``. `None` when every field parses alone.
fn cron_field_problem(expr: &str) -> Option<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let roles = &CRON_FIELDS[6 - fields.len()..];
    for (i, (field, (role, takes))) in fields.iter().zip(roles).enumerate() {
        let mut probe = vec!["*"; fields.len()];
        probe[i] = field;
        if probe[0] == "*" && fields.len() == 6 {
            probe[0] = "0"; // every second parses too, but reads oddly
        }
        if crate::schedule::parse(&probe.join(" ")).is_ok() {
            continue;
        }
        let named = |names: &[&str]| -> Option<String> {
            // `Monday` → `Mon`, `Tues` → `Tue`, `September` → `Sep`, in any case
            // and inside lists and ranges (`Monday-Friday` → `Mon-Fri`).
            let mut changed = false;
            let fixed: String = field
                .split_inclusive([',', '-', '/'])
                .map(|part| {
                    let (word, sep) = match part.char_indices().last() {
                        Some((at, ',' | '-' | '/')) => part.split_at(at),
                        _ => (part, ""),
                    };
                    let lower = word.to_ascii_lowercase();
                    match names
                        .iter()
                        .find(|n| lower.len() > 3 && lower.starts_with(&n.to_ascii_lowercase()))
                    {
                        Some(n) => {
                            changed = true;
                            format!("{n}{sep}")
                        }
                        None => part.to_string(),
                    }
                })
                .collect();
            changed.then_some(fixed)
        };
        let suggestion = match *role {
            "WEEKDAY" => named(&["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]),
            "MONTH" => named(&[
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ]),
            _ => None,
        };
        let layout = if fields.len() == 6 {
            "SEC MIN HOUR DAY MONTH WEEKDAY"
        } else {
            "MIN HOUR DAY MONTH WEEKDAY"
        };
        return Some(match suggestion {
            Some(fixed) => {
                let mut whole = fields.clone();
                whole[i] = &fixed;
                format!(
                    "the {role} field `{field}` is not valid: use `{fixed}` (names have three letters), as in `{}`",
                    whole.join(" ")
                )
            }
            None => format!(
                "the {role} field `{field}` is not valid: it takes {takes}, `*`, lists `1,3`, ranges `1-5` and steps `*/2` (fields: {layout})"
            ),
        });
    }
    None
}
