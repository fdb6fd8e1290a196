//! The trend chart of the built-in emails: a small PNG drawn by charts-rs
//! (which lives only here). charts-rs measures and rasterises text with the
//! Roboto font it embeds, so no system font is read and nothing is fetched.

use chrono::DateTime;

use crate::report::TrendPoint;

/// Width of the chart in pixels (the email shows it at this size).
pub const WIDTH: u32 = 560;
/// Height of the chart in pixels.
pub const HEIGHT: u32 = 200;
/// The `Content-ID` of the chart in an email: templates show it with
/// `<img src="cid:trend.png">`, and the email attaches it inline only then.
pub const CONTENT_ID: &str = "trend.png";

/// Why the chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing the trend chart: {0}")]
pub struct ChartError(String);

/// The trend as a PNG of [`WIDTH`] × [`HEIGHT`]: the overdue count at each
/// fire, labelled with its date (the numbers are beside it in the email).
pub fn trend_png(trend: &[TrendPoint]) -> Result<Vec<u8>, ChartError> {
    use charts_rs::{LineChart, Series};
    let labels: Vec<String> = trend
        .iter()
        .map(|p| {
            DateTime::parse_from_rfc3339(&p.at)
                .map(|t| t.format("%b %-d").to_string())
                .unwrap_or_else(|_| p.at.clone())
        })
        .collect();
    let series = |name: &str, values: Vec<f32>| {
        let mut s = Series::new(name.to_string(), values);
        s.label_show = true;
        s
    };
    let mut chart = LineChart::new(
        vec![series(
            "Overdue",
            trend.iter().map(|p| p.overdue as f32).collect(),
        )],
        labels,
    );
    chart.width = WIDTH as f32;
    chart.height = HEIGHT as f32;
    let svg = chart.svg().map_err(|e| ChartError(e.to_string()))?;
    charts_rs::svg_to_png(&svg).map_err(|e| ChartError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: &str, overdue: u64) -> TrendPoint {
        TrendPoint {
            at: at.into(),
            assignments: 20,
            overdue,
            completed: 20 - overdue,
            completion_rate: Some((20 - overdue) as f64 / 20.0),
        }
    }

    #[test]
    fn the_trend_chart_is_a_png_of_the_documented_size() {
        let png = trend_png(&[
            point("2026-11-09T08:00:00-06:00", 12),
            point("2026-11-16T08:00:00-06:00", 15),
            point("2026-11-23T08:00:00-06:00", 9),
        ])
        .unwrap();

        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((width, height), (WIDTH, HEIGHT));
    }
}
