//! The filters every template can use, on top of Tera's built-ins, and the
//! escape functions of each output kind.
//!
//! The doc comment of each filter is its user documentation (the README
//! copies it).

use std::fmt::Write as _;
use std::str::FromStr;

use chrono::DateTime;
use chrono::format::{Item, StrftimeItems};
use chrono_tz::Tz;
use tera::{Error, Kwargs, State, TeraResult, Value};

/// What `date` and `datetime` print for a null or missing timestamp, and
/// `percent` for a null rate.
pub const NONE: &str = "—";

/// Default format of `date`: `Mon, Nov 23, 2026`.
pub const DATE_FORMAT: &str = "%a, %b %-d, %Y";

/// Default format of `datetime`: `Mon, Nov 23, 2026 08:00 CST`.
pub const DATETIME_FORMAT: &str = "%a, %b %-d, %Y %H:%M %Z";

/// Registers the trainwatch filters on `tera`. `json_is_markup` says whether
/// the `json` filter's output is already in the output language (JSON
/// templates) or is text to be escaped like any other (HTML, plain text).
pub fn register(tera: &mut tera::Tera, json_is_markup: bool) {
    tera.register_filter("date", date);
    tera.register_filter("datetime", datetime);
    tera.register_filter("percent", percent);
    tera.register_filter("counted", counted);
    tera.register_filter("trend_text", trend_text);
    if json_is_markup {
        tera.register_filter("json", |v: &Value, k: Kwargs, s: &State| {
            json(v, k, s).map(|out| Value::safe_string(&out))
        });
    } else {
        tera.register_filter("json", |v: &Value, k: Kwargs, s: &State| {
            json(v, k, s).map(|out| Value::normal_string(&out))
        });
    }
}

/// `date(format="%a, %b %-d, %Y", tz=…)`: an RFC 3339 timestamp shown in
/// the job's timezone.
///
/// - input: an RFC 3339 string such as `window.start` or `overdue[0].due_at`;
///   null or missing prints `—`.
/// - `format`: a [chrono format string](https://docs.rs/chrono/latest/chrono/format/strftime/index.html);
///   the default prints `Mon, Nov 23, 2026`.
/// - `tz`: an IANA timezone name; the default is the context's
///   `job.timezone`, and without one the timestamp's own offset.
///
/// Example: `{{ window.end | date(format="%Y-%m-%d %H:%M %Z") }}`.
pub fn date(value: &Value, kwargs: Kwargs, state: &State) -> TeraResult<String> {
    format_timestamp(value, &kwargs, state, DATE_FORMAT)
}

/// `datetime(format="%a, %b %-d, %Y %H:%M %Z", tz=…)`: `date` with a default
/// format that includes the time and the zone abbreviation
/// (`Mon, Nov 23, 2026 08:00 CST`).
pub fn datetime(value: &Value, kwargs: Kwargs, state: &State) -> TeraResult<String> {
    format_timestamp(value, &kwargs, state, DATETIME_FORMAT)
}

fn format_timestamp(
    value: &Value,
    kwargs: &Kwargs,
    state: &State,
    default_format: &str,
) -> TeraResult<String> {
    if value.is_none() || value.is_undefined() {
        return Ok(NONE.to_string());
    }
    let Some(text) = value.as_str() else {
        return Err(Error::message(format!(
            "date: expected an RFC 3339 string, got {}",
            value.name()
        )));
    };
    let instant = DateTime::parse_from_rfc3339(text)
        .map_err(|err| Error::message(format!("date: `{text}` is not RFC 3339: {err}")))?;
    let format = kwargs.get::<&str>("format")?.unwrap_or(default_format);
    let items: Vec<Item<'_>> = StrftimeItems::new(format).collect();
    if items.iter().any(|item| matches!(item, Item::Error)) {
        return Err(Error::message(format!(
            "date: `{format}` is not a valid chrono format string"
        )));
    }
    let tz_name = match kwargs.get::<&str>("tz")? {
        Some(tz) => Some(tz.to_string()),
        None => state.get::<Value>("job")?.and_then(|job| {
            job.get_from_path("timezone")
                .and_then(Value::as_str)
                .map(str::to_string)
        }),
    };
    let mut out = String::new();
    let written = match tz_name {
        Some(name) => {
            let tz = Tz::from_str(&name)
                .map_err(|_| Error::message(format!("date: unknown timezone `{name}`")))?;
            write!(
                out,
                "{}",
                instant.with_timezone(&tz).format_with_items(items.iter())
            )
        }
        None => write!(out, "{}", instant.format_with_items(items.iter())),
    };
    // chrono reports a specifier the value cannot satisfy as a fmt error.
    written.map_err(|_| Error::message(format!("date: cannot format `{text}` with `{format}`")))?;
    Ok(out)
}

/// `percent(decimals=0)`: a rate in 0..1 as a percentage: `0.853` → `85%`,
/// with `decimals=1` → `85.3%`; null prints `—`.
pub fn percent(value: &Value, kwargs: Kwargs, _: &State) -> TeraResult<String> {
    if value.is_none() || value.is_undefined() {
        return Ok(NONE.to_string());
    }
    let Some(rate) = value.as_f64() else {
        return Err(Error::message(format!(
            "percent: expected a number or null, got {}",
            value.name()
        )));
    };
    let decimals = kwargs.get::<usize>("decimals")?.unwrap_or(0);
    Ok(format!("{:.*}%", decimals, rate * 100.0))
}

/// `counted(one="…", many="…")`: a count with its noun, singular for 1 and
/// -1: `1 | counted(one="course")` → `1 course`, `3 | counted(one="course")`
/// → `3 courses`; `many` defaults to `one` + `s`
/// (`2 | counted(one="category", many="categories")`). Null counts as 0.
/// (Tera's own `pluralize` gives only the suffix.)
pub fn counted(value: &Value, kwargs: Kwargs, _: &State) -> TeraResult<String> {
    let n = if value.is_none() || value.is_undefined() {
        0
    } else {
        value.as_i128().ok_or_else(|| {
            Error::message(format!(
                "counted: expected an integer, got {}",
                value.name()
            ))
        })?
    };
    let one = kwargs.must_get::<&str>("one")?;
    Ok(noun_count(n, one, kwargs.get::<&str>("many")?))
}

/// `1 course`, `3 courses`: `many` defaults to `one` + "s". Shared by the
/// `counted` filter and trainwatch's own output.
pub fn noun_count(n: i128, one: &str, many: Option<&str>) -> String {
    match many {
        _ if n == 1 || n == -1 => format!("{n} {one}"),
        Some(many) => format!("{n} {many}"),
        None => format!("{n} {one}s"),
    }
}

/// [`noun_count`] for a regular plural.
pub fn count(n: usize, one: &str) -> String {
    noun_count(n as i128, one, None)
}

/// `trend_text(field="overdue", label="Overdue")`: a report's `trend` as
/// one line, its previous point to its last with the change:
/// `Overdue 12 → 15 ▲3` (`▼` for fewer, `=` for the same); one point gives
/// `Overdue 15`, none an empty string. `field` is any count of a trend
/// point (`assignments`, `overdue`, `completed`).
pub fn trend_text(value: &Value, kwargs: Kwargs, _: &State) -> TeraResult<String> {
    let field = kwargs.get::<&str>("field")?.unwrap_or("overdue");
    let label = kwargs.get::<&str>("label")?.unwrap_or("Overdue");
    let points =
        serde_json::to_value(value).map_err(|err| Error::message(format!("trend_text: {err}")))?;
    let counts: Vec<i64> = match &points {
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::Array(points) => points
            .iter()
            .map(|p| {
                p.get(field)
                    .and_then(serde_json::Value::as_i64)
                    .ok_or_else(|| {
                        Error::message(format!(
                            "trend_text: a trend point without a count `{field}`"
                        ))
                    })
            })
            .collect::<TeraResult<_>>()?,
        other => {
            return Err(Error::message(format!(
                "trend_text: expected a trend (a list of points), got {other}"
            )));
        }
    };
    Ok(match counts.as_slice() {
        [] => String::new(),
        [only] => format!("{label} {only}"),
        [.., before, now] => {
            let change = match now - before {
                0 => "=".to_string(),
                d if d > 0 => format!("▲{d}"),
                d => format!("▼{}", -d),
            };
            format!("{label} {before} → {now} {change}")
        }
    })
}

/// `json(pretty=false)`: any value as JSON, for example
/// `{{ team | json }}`. In JSON templates (`.slack.json`, `.msteams.json`,
/// `.json`) the output is inserted as JSON; in HTML it is escaped like any
/// other text.
pub fn json(value: &Value, kwargs: Kwargs, _: &State) -> TeraResult<String> {
    let pretty = kwargs.get::<bool>("pretty")?.unwrap_or(false);
    let out = if value.is_undefined() {
        Ok("null".to_string())
    } else if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    out.map_err(|err| Error::message(format!("json: {err}")))
}

pub use crate::sink::escape_json_string;
pub use crate::sink::slack::{escape_mrkdwn, escape_slack};

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, ctx: &tera::Context) -> TeraResult<String> {
        let mut tera = tera::Tera::new();
        register(&mut tera, false);
        tera.render_str(template, ctx, false)
    }

    fn job(tz: &str) -> tera::Context {
        let mut ctx = tera::Context::new();
        ctx.insert("job", &serde_json::json!({ "timezone": tz }));
        ctx
    }

    #[test]
    fn date_uses_the_job_timezone_on_both_sides_of_a_dst_change() {
        let ctx = job("America/Chicago");
        // The night of 2026-11-01, Chicago leaves CDT (UTC-5) for CST (UTC-6).
        let out = render(
            "{{ '2026-11-01T06:30:00Z' | datetime }} / {{ '2026-11-01T07:30:00Z' | datetime }} / {{ '2026-11-02T14:00:00Z' | datetime }}",
            &ctx,
        )
        .unwrap();
        assert_eq!(
            out,
            "Sun, Nov 1, 2026 01:30 CDT / Sun, Nov 1, 2026 01:30 CST / Mon, Nov 2, 2026 08:00 CST"
        );
    }

    #[test]
    fn date_prefers_the_tz_argument_and_takes_a_format() {
        let out = render(
            "{{ '2026-03-08T07:59:00Z' | date(tz='America/Chicago', format='%Y-%m-%d %H:%M %:z') }}|{{ '2026-03-08T08:00:00Z' | date(tz='America/Chicago', format='%H:%M %Z') }}",
            &job("Europe/Paris"),
        )
        .unwrap();
        assert_eq!(out, "2026-03-08 01:59 -06:00|03:00 CDT");
    }

    #[test]
    fn date_defaults_to_a_short_weekday_and_month() {
        let out = render("{{ '2026-11-23T15:00:00-06:00' | date }}", &job("UTC")).unwrap();
        assert_eq!(out, "Mon, Nov 23, 2026");
    }

    #[test]
    fn date_of_null_is_a_dash_and_bad_input_is_an_error() {
        let mut ctx = job("UTC");
        ctx.insert("nothing", &Option::<String>::None);
        assert_eq!(render("{{ nothing | date }}", &ctx).unwrap(), NONE);
        assert!(render("{{ 'yesterday' | date }}", &ctx).is_err());
        assert!(render("{{ '2026-01-01T00:00:00Z' | date(tz='Mars/Base') }}", &ctx).is_err());
        assert!(render("{{ '2026-01-01T00:00:00Z' | date(format='%Q') }}", &ctx).is_err());
    }

    #[test]
    fn percent_rounds_and_prints_a_dash_for_null() {
        let mut ctx = tera::Context::new();
        ctx.insert("rate", &Option::<f64>::None);
        let out = render(
            "{{ 0.853 | percent }} {{ 0.853 | percent(decimals=1) }} {{ 1 | percent }} {{ rate | percent }}",
            &ctx,
        )
        .unwrap();
        assert_eq!(out, "85% 85.3% 100% —");
    }

    #[test]
    fn counted_picks_singular_or_plural() {
        let out = render(
            "{{ 1 | counted(one='day') }}, {{ 0 | counted(one='day') }}, {{ 2 | counted(one='category', many='categories') }}",
            &tera::Context::new(),
        )
        .unwrap();
        assert_eq!(out, "1 day, 0 days, 2 categories");
    }

    #[test]
    fn slack_escape_makes_entities_and_a_valid_json_string() {
        let mut out = Vec::new();
        escape_slack("O'Brien & <Sons> \"Ltd\"\\\nZoë", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, r#"O'Brien &amp; &lt;Sons&gt; \"Ltd\"\\\nZoë"#);
        let parsed: String = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(parsed, "O'Brien &amp; &lt;Sons&gt; \"Ltd\"\\\nZoë");
    }
}
