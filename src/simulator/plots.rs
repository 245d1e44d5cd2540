//! The simulator's charts, as PNG files (plotters, system fonts through fontconfig): visits
//! per hour by outcome, the lag to catch a commit, the queue's fill, the four metrics over
//! time, and, for several simulations, one chart comparing them.

use std::path::{Path, PathBuf};

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::report::Report;
use crate::error::{Error, Result};

const SIZE: (u32, u32) = (1200, 700);
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// A file-name-safe form of a simulation's label.
pub fn slug(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.trim_matches('-').to_string()
}

fn draw_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("cannot draw {}: {e}", path.display()))
}

/// A drawing area of the bitmap.
type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// A chart on `area` with its caption and its mesh, from 0 to each axis' maximum; an axis is
/// (description, maximum).
fn axes<'a, 'b>(
    area: &'a Area<'b>,
    path: &Path,
    title: &str,
    (x_desc, x_max): (&str, f64),
    (y_desc, y_max): (&str, f64),
) -> Result<ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 28))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| draw_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(|e| draw_error(path, e))?;
    Ok(chart)
}

/// Series of points: a name, and (simulated hours, value) pairs.
type Series = [(String, Vec<(f64, f64)>)];

/// One line per series over the simulated hours, on `area` (errors name `path`).
fn draw_lines(
    area: &Area<'_>,
    path: &Path,
    title: &str,
    y_label: &str,
    series: &Series,
    legend: SeriesLabelPosition,
) -> Result<()> {
    let x_max = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let y_max = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * 1.05;
    let mut chart = axes(
        area,
        path,
        title,
        ("simulated hours", x_max),
        (y_label, y_max),
    )?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(|e| draw_error(path, e))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 18))
        .draw()
        .map_err(|e| draw_error(path, e))?;
    Ok(())
}

/// A PNG of one line chart.
fn line_chart(path: &Path, title: &str, y_label: &str, series: &Series) -> Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(path, e))?;
    draw_lines(
        &root,
        path,
        title,
        y_label,
        series,
        SeriesLabelPosition::UpperRight,
    )?;
    root.present().map_err(|e| draw_error(path, e))?;
    Ok(())
}

/// Bars: the lag distribution, in hours.
fn histogram(path: &Path, title: &str, values_h: &[f64]) -> Result<()> {
    const BINS: usize = 40;
    let mut sorted = values_h.to_vec();
    sorted.sort_by(f64::total_cmp);
    // up to the 99th percentile: the tail would squash the rest
    let top = sorted
        .get(((sorted.len() as f64 * 0.99) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(1.0)
        .max(1e-3);
    let width = top / BINS as f64;
    let mut counts = [0u64; BINS];
    for v in &sorted {
        let i = ((v / width) as usize).min(BINS - 1);
        counts[i] += 1;
    }
    let y_max = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.05;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(path, e))?;
    let x_desc = "hours from a commit to the visit that archived it (up to the 99th percentile)";
    let mut chart = axes(&root, path, title, (x_desc, top), ("visits", y_max))?;
    chart
        .draw_series(counts.iter().enumerate().map(|(i, c)| {
            let x0 = i as f64 * width;
            Rectangle::new(
                [(x0, 0.0), (x0 + width * 0.9, *c as f64)],
                PALETTE[0].filled(),
            )
        }))
        .map_err(|e| draw_error(path, e))?;
    root.present().map_err(|e| draw_error(path, e))?;
    Ok(())
}

fn hours(t: f64) -> f64 {
    t / 3600.0
}

/// Writes the four charts of one simulation into `dir`; returns their paths.
pub fn write_report_plots(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Other(format!("cannot create {}: {e}", dir.display())))?;
    let name = slug(&report.label);
    let mut paths = Vec::new();

    let path = dir.join(format!("{name}-visits.png"));
    let by_outcome = |k: usize| -> Vec<(f64, f64)> {
        report
            .hourly
            .iter()
            .enumerate()
            .map(|(h, c)| (h as f64 + 0.5, f64::from(c[k])))
            .collect()
    };
    line_chart(
        &path,
        &format!("Visits per hour by outcome: {}", report.label),
        "visits per hour",
        &[
            ("eventful".into(), by_outcome(0)),
            ("uneventful".into(), by_outcome(1)),
            ("failed".into(), by_outcome(2)),
        ],
    )?;
    paths.push(path);

    let path = dir.join(format!("{name}-lag.png"));
    let lags: Vec<f64> = report.lags.iter().map(|l| f64::from(*l) / 3600.0).collect();
    histogram(
        &path,
        &format!("Lag to catch a new commit: {}", report.label),
        &lags,
    )?;
    paths.push(path);

    let path = dir.join(format!("{name}-queue.png"));
    let fill: Vec<(f64, f64)> = report
        .queue_fill
        .iter()
        .map(|(t, n)| (hours(f64::from(*t)), f64::from(*n)))
        .collect();
    line_chart(
        &path,
        &format!("Loader queue fill at each scheduler pass: {}", report.label),
        "messages waiting",
        &[("waiting".into(), fill)],
    )?;
    paths.push(path);

    let path = dir.join(format!("{name}-metrics.png"));
    let metric = |f: fn(&super::report::MetricsPoint) -> f64| -> Vec<(f64, f64)> {
        report.metrics.iter().map(|m| (hours(m.t), f(m))).collect()
    };
    line_chart(
        &path,
        &format!("Scheduler metrics over time: {}", report.label),
        "origins",
        &[
            ("known".into(), metric(|m| m.known as f64)),
            ("enabled".into(), metric(|m| m.enabled as f64)),
            ("never visited".into(), metric(|m| m.never_visited as f64)),
            (
                "with pending changes".into(),
                metric(|m| m.pending_changes as f64),
            ),
            ("visits so far".into(), metric(|m| m.visits as f64)),
        ],
    )?;
    paths.push(path);
    Ok(paths)
}

/// One chart comparing simulations: eventful visits so far, and origins visited at least
/// once, over time.
pub fn write_comparison_plot(reports: &[Report], dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Other(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join("comparison.png");
    draw_comparison(reports, &path)?;
    Ok(path)
}

fn draw_comparison(reports: &[Report], path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, (1400, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(path, e))?;
    let (top, bottom) = root.split_vertically(500);
    let eventful: Vec<(String, Vec<(f64, f64)>)> = reports
        .iter()
        .map(|r| {
            let mut total = 0.0;
            let pts = r
                .hourly
                .iter()
                .enumerate()
                .map(|(h, c)| {
                    total += f64::from(c[0]);
                    (h as f64 + 1.0, total)
                })
                .collect();
            (r.label.clone(), pts)
        })
        .collect();
    let visited: Vec<(String, Vec<(f64, f64)>)> = reports
        .iter()
        .map(|r| {
            let pts = r
                .metrics
                .iter()
                .map(|m| (hours(m.t), m.visited_origins as f64))
                .collect();
            (r.label.clone(), pts)
        })
        .collect();
    draw_lines(
        &top,
        path,
        "Eventful visits so far",
        "eventful visits",
        &eventful,
        SeriesLabelPosition::LowerRight,
    )?;
    draw_lines(
        &bottom,
        path,
        "Origins visited at least once",
        "origins",
        &visited,
        SeriesLabelPosition::LowerRight,
    )?;
    root.present().map_err(|e| draw_error(path, e))?;
    Ok(())
}
