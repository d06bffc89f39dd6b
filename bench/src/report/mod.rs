//! The cluster benchmark's outputs: the results JSON, the SVG plots beside it, and the section
//! of BENCHMARKS.md between the `cluster-bench` markers.
//!
//! - [`results`]: what a run measured, as JSON.
//! - [`machine`]: the machine it ran on.
//! - [`stats`]: percentiles, and median and range over repeats.
//! - [`table`]: runs folded into rows with the ratios to the anchors.
//! - [`markdown`]: the BENCHMARKS.md section, and its replacement between the markers.
//! - [`plots`]: throughput against concurrency, latency CDFs.

pub mod machine;
pub mod markdown;
pub mod plots;
pub mod results;
pub mod stats;
pub mod table;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use results::Results;

/// What [`write`] wrote.
pub struct Written {
    pub json: PathBuf,
    pub throughput_svg: PathBuf,
    pub cdf_svg: Option<PathBuf>,
}

/// Writes the results JSON and the plots into `out_dir`, and replaces the cluster-bench
/// section of `benchmarks_md` (creating the file, or appending the markers, when absent).
pub fn write(results: &Results, out_dir: &Path, benchmarks_md: &Path) -> anyhow::Result<Written> {
    let json = results.write_json(out_dir)?;
    let rows = table::rows(results);
    let (throughput_svg, cdf_svg) = plots::write_all(results, &rows, out_dir)?;
    let doc_dir = benchmarks_md.parent().unwrap_or(Path::new("."));
    let links = markdown::PlotLinks {
        throughput: link(doc_dir, &throughput_svg),
        cdf: cdf_svg.as_ref().map(|p| link(doc_dir, p)),
    };
    let section = markdown::render(results, &links, &link(doc_dir, &json));
    let doc = std::fs::read_to_string(benchmarks_md).unwrap_or_default();
    std::fs::write(benchmarks_md, markdown::replace_section(&doc, &section))
        .with_context(|| format!("write {}", benchmarks_md.display()))?;
    Ok(Written {
        json,
        throughput_svg,
        cdf_svg,
    })
}

/// `target` relative to `from` when it lies below it, else as it is.
fn link(from: &Path, target: &Path) -> String {
    let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (from, target_abs) = (absolute(from), absolute(target));
    target_abs
        .strip_prefix(&from)
        .map(|rel| rel.display().to_string())
        .unwrap_or_else(|_| target.display().to_string())
}
