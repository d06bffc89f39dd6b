//! SVG plots of one run: throughput against concurrency, and latency CDFs.

use std::path::Path;

use anyhow::Context as _;
use plotters::prelude::*;

use super::{
    results::{Results, Target},
    table::{Row, median_run},
};
use crate::plan;

/// Plot size in pixels.
const SIZE: (u32, u32) = (960, 600);
/// Line colours, told apart on white (Tableau 10 and two more); series beyond reuse them.
const COLORS: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(0, 80, 0),
];

/// An axis tick: whole numbers from 10 up, two significant figures below.
fn tick(value: f64) -> String {
    if 10.0 <= value.abs() {
        format!("{value:.0}")
    } else {
        let digits = (1 - value.abs().log10().floor() as i32).clamp(0, 6) as usize;
        format!("{value:.digits$}")
    }
}

fn color(index: usize) -> RGBColor {
    COLORS[index % COLORS.len()]
}

/// Throughput (median over repeats) against concurrency, one line per scenario and target.
pub fn throughput(rows: &[Row], path: &Path) -> anyhow::Result<()> {
    let rates = rows
        .iter()
        .map(|r| r.per_second.median)
        .filter(|r| 0.0 < *r);
    let (min_rate, max_rate) =
        rates.fold((f64::MAX, 1.0_f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
    let mut concurrencies: Vec<f64> = rows.iter().map(|r| r.concurrency as f64).collect();
    concurrencies.sort_by(f64::total_cmp);
    concurrencies.dedup();
    let max_c = concurrencies.last().copied().unwrap_or(1.0).max(2.0);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    // Both axes logarithmic: rates span from tens (one client, one fsync per write) to tens of
    // thousands (health checks); the ticks are the measured concurrencies.
    let x = (0.8..max_c * 1.25)
        .log_scale()
        .with_key_points(concurrencies);
    let y = (min_rate.min(max_rate) * 0.5..max_rate * 2.0).log_scale();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Throughput against concurrency (closed loop)",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .max_light_lines(0)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| tick(*y))
        .x_desc("concurrent clients (log)")
        .y_desc("operations per second (log)")
        .draw()
        .map_err(plot_error)?;
    for (index, (scenario, target)) in series(rows).into_iter().enumerate() {
        let line = color(index);
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.scenario == scenario && r.target == target)
            .map(|r| (r.concurrency as f64, r.per_second.median))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), line.stroke_width(2)))
            .map_err(plot_error)?
            .label(format!("{scenario} ({})", target.name()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], line));
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 3, line.filled())))
            .map_err(plot_error)?;
    }
    legend(&mut chart)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Latency CDFs at `concurrency` against the leader: one curve per scenario, from the repeat
/// with the median rate. `false` when no run had that concurrency (nothing is written).
pub fn cdfs(results: &Results, concurrency: usize, path: &Path) -> anyhow::Result<bool> {
    let curves: Vec<(&str, Vec<(f64, f64)>)> = plan::SCENARIOS
        .iter()
        .filter_map(|s| {
            let run = median_run(results, s.name, Target::Leader, concurrency)?;
            let points: Vec<(f64, f64)> = run
                .result
                .cdf_us
                .iter()
                .map(|[quantile, us]| (us.max(1.0) / 1000.0, *quantile))
                .collect();
            (!points.is_empty()).then_some((s.name, points))
        })
        .collect();
    if curves.is_empty() {
        return Ok(false);
    }
    let all = curves.iter().flat_map(|(_, p)| p.iter().map(|(ms, _)| *ms));
    let (low, high) = all.fold((f64::MAX, f64::MIN), |(lo, hi), ms| {
        (lo.min(ms), hi.max(ms))
    });
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Latency CDF at {concurrency} clients, against the leader"),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((low * 0.9..high * 1.1).log_scale(), 0.0..1.0)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .max_light_lines(0)
        .x_label_formatter(&|x| tick(*x))
        .x_desc("latency, ms (log)")
        .y_desc("fraction of calls at or below")
        .draw()
        .map_err(plot_error)?;
    for (index, (name, points)) in curves.into_iter().enumerate() {
        let line = color(index);
        chart
            .draw_series(LineSeries::new(points, line.stroke_width(2)))
            .map_err(plot_error)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], line));
    }
    legend(&mut chart)?;
    root.present().map_err(plot_error)?;
    Ok(true)
}

/// The distinct (scenario, target) pairs of `rows`, in row order.
fn series(rows: &[Row]) -> Vec<(String, Target)> {
    let mut series: Vec<(String, Target)> = Vec::new();
    for row in rows {
        let key = (row.scenario.clone(), row.target);
        if !series.contains(&key) {
            series.push(key);
        }
    }
    series
}

fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(plot_error)
}

fn plot_error<E: std::fmt::Display>(error: E) -> anyhow::Error {
    anyhow::format_err!("plot: {error}")
}

/// Writes both plots beside the results JSON: (`<stem>-throughput.svg`, `<stem>-cdf-64.svg`
/// when there were runs at 64 clients).
pub fn write_all(
    results: &Results,
    rows: &[Row],
    out_dir: &Path,
) -> anyhow::Result<(std::path::PathBuf, Option<std::path::PathBuf>)> {
    let stem = results.stem();
    let throughput_path = out_dir.join(format!("{stem}-throughput.svg"));
    throughput(rows, &throughput_path).context("throughput plot")?;
    let cdf_path = out_dir.join(format!("{stem}-cdf-{}.svg", plan::CDF_CONCURRENCY));
    let cdf = cdfs(results, plan::CDF_CONCURRENCY, &cdf_path)
        .context("CDF plot")?
        .then_some(cdf_path);
    Ok((throughput_path, cdf))
}
