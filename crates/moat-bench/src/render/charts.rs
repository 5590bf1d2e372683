//! The report's PNG charts, drawn with `plotters` (bitmap backend). Text is rendered with
//! `ab_glyph` from a TrueType font loaded at run time ([`FONT`], Debian's
//! `fonts-dejavu-core`), so neither a font nor fontconfig is needed at build time.

use crate::results::{Bars, Series};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::error::Error;
use std::path::Path;
use std::sync::OnceLock;

/// The font every chart's text is drawn with (`apt-get install fonts-dejavu-core`).
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Loads and registers [`FONT`] as `sans-serif`, once per process.
pub fn ensure_font() -> Result<(), String> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT).map_err(|e| {
                format!("{FONT}: {e} (as root: apt-get install -y fonts-dejavu-core)")
            })?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{FONT}: not a usable TrueType font"))
        })
        .clone()
}

/// A product's colour, the same in every chart.
fn color(product: &str, index: usize) -> RGBColor {
    let p = product.to_ascii_lowercase();
    if p.contains("moat") && p.contains("dir") {
        RGBColor(44, 160, 44)
    } else if p.contains("moat") {
        RGBColor(31, 119, 180)
    } else if p.contains("clam") {
        RGBColor(214, 39, 40)
    } else if p.contains("no scanner") || p == "none" {
        RGBColor(127, 127, 127)
    } else {
        [
            RGBColor(255, 127, 14),
            RGBColor(148, 103, 189),
            RGBColor(140, 86, 75),
        ][index % 3]
    }
}

/// A value with about three significant digits.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Draws one panel per [`Bars`] (grouped bars, value on each bar; log-scale y when the
/// values span more than 30×) into `path`.
pub fn bars_chart(path: &Path, bars: &[&Bars]) -> Result<(), String> {
    ensure_font()?;
    draw_bars(path, bars).map_err(|e| format!("{}: {e}", path.display()))
}

fn draw_bars(path: &Path, bars: &[&Bars]) -> Result<(), Box<dyn Error>> {
    let (w, panel_h) = (1000u32, 430u32);
    let root =
        BitMapBackend::new(path, (w, panel_h * bars.len().max(1) as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((bars.len().max(1), 1));
    for (area, b) in panels.iter().zip(bars) {
        let n = b.labels.len().max(1);
        let vals: Vec<f64> = b
            .values
            .iter()
            .flat_map(|(_, v)| v.iter().flatten().copied())
            .filter(|v| *v > 0.0 && v.is_finite())
            .collect();
        let max = vals.iter().copied().fold(1e-9, f64::max);
        let min = vals.iter().copied().fold(f64::INFINITY, f64::min).min(max);
        let x = 0f64..n as f64;
        if max / min > 30.0 {
            // Headroom above the tallest bar for its value and the legend.
            let (lo, hi) = (min / 3.0, max * 12.0);
            let chart = ChartBuilder::on(area)
                .caption(
                    format!("{} ({}, log scale)", b.name, b.unit),
                    ("sans-serif", 22),
                )
                .margin(15)
                .x_label_area_size(45)
                .y_label_area_size(80)
                .build_cartesian_2d(x, (lo..hi).log_scale())?;
            bar_panel(&root, chart, b, lo)?;
        } else {
            let chart = ChartBuilder::on(area)
                .caption(format!("{} ({})", b.name, b.unit), ("sans-serif", 22))
                .margin(15)
                .x_label_area_size(45)
                .y_label_area_size(80)
                .build_cartesian_2d(x, 0f64..max * 1.35)?;
            bar_panel(&root, chart, b, 0.0)?;
        }
    }
    root.present()?;
    Ok(())
}

/// One bar chart panel on a built chart whose bars start at `base`.
fn bar_panel<'a, Y>(
    root: &DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>,
    mut chart: ChartContext<
        'a,
        BitMapBackend<'a>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, Y>,
    >,
    b: &Bars,
    base: f64,
) -> Result<(), Box<dyn Error>>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let k = b.values.len().max(1);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|v| short(*v))
        .y_labels(8)
        .y_desc(b.unit.as_str())
        .label_style(("sans-serif", 14))
        .draw()?;
    let bw = 0.8 / k as f64;
    for (j, (product, values)) in b.values.iter().enumerate() {
        let c = color(product, j);
        let present: Vec<(usize, f64)> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.filter(|v| *v > 0.0 && v.is_finite()).map(|v| (i, v)))
            .collect();
        let x0 = |i: usize| i as f64 + 0.1 + j as f64 * bw;
        chart
            .draw_series(
                present.iter().map(|&(i, v)| {
                    Rectangle::new([(x0(i), base), (x0(i) + bw * 0.9, v)], c.filled())
                }),
            )?
            .label(product.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
        chart.draw_series(present.iter().map(|&(i, v)| {
            Text::new(
                short(v),
                (x0(i) + bw * 0.45, v),
                ("sans-serif", 14)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))?;
    }
    for (i, label) in b.labels.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.5, base));
        root.draw(&Text::new(
            label.clone(),
            (px, py + 10),
            ("sans-serif", 16)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    Ok(())
}

/// The `q` quantile (0..=1) of sorted samples.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)])
}

/// Draws one panel per [`Series`]: the cumulative distribution of each product's samples,
/// log-scale x, into `path`.
pub fn cdf_chart(path: &Path, series: &[&Series]) -> Result<(), String> {
    ensure_font()?;
    draw_cdf(path, series).map_err(|e| format!("{}: {e}", path.display()))
}

fn draw_cdf(path: &Path, series: &[&Series]) -> Result<(), Box<dyn Error>> {
    let n = series.len().max(1);
    let cols = if n > 1 { 2 } else { 1 };
    let rows = n.div_ceil(cols);
    let root = BitMapBackend::new(path, (700 * cols as u32, 460 * rows as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((rows, cols));
    for (area, s) in areas.iter().zip(series) {
        let all: Vec<f64> = s
            .samples
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| *v > 0.0 && v.is_finite())
            .collect();
        let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = all.iter().copied().fold(0.0, f64::max);
        let (lo, hi) = if lo.is_finite() && hi > lo {
            (lo * 0.8, hi * 1.25)
        } else {
            (0.1, 10.0)
        };
        let unit = if s.unit == "us" {
            "µs"
        } else {
            s.unit.as_str()
        };
        let mut chart = ChartBuilder::on(area)
            .caption(s.name.as_str(), ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d((lo..hi).log_scale(), 0f64..1.0)?;
        chart
            .configure_mesh()
            .x_label_formatter(&|v| short(*v))
            .x_desc(format!("latency ({unit}, log scale)"))
            .y_desc("fraction of opens ≤ x")
            .label_style(("sans-serif", 13))
            .draw()?;
        for (j, (product, samples)) in s.samples.iter().enumerate() {
            let mut v: Vec<f64> = samples
                .iter()
                .copied()
                .filter(|v| *v > 0.0 && v.is_finite())
                .collect();
            if v.is_empty() {
                continue;
            }
            v.sort_by(f64::total_cmp);
            let step = (v.len() / 500).max(1);
            let mut points: Vec<(f64, f64)> = (0..v.len())
                .step_by(step)
                .map(|i| (v[i], (i + 1) as f64 / v.len() as f64))
                .collect();
            points.push((v[v.len() - 1], 1.0));
            let c = color(product, j);
            let label = format!(
                "{product}: p50 {} / p99 {} {unit}",
                short(quantile(&v, 0.5).unwrap_or(0.0)),
                short(quantile(&v, 0.99).unwrap_or(0.0))
            );
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], c.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()?;
    }
    root.present()?;
    Ok(())
}
