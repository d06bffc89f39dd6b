//! The results of one `audit-bench` run: JSON under `bench/results/<date>-audit.json`, and a
//! markdown section for BENCHMARKS.md printed to stdout.

use std::{fmt::Write as _, path::Path};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{
    fixture::Manifest,
    lookups::OpResult,
    throughput::{CurrentReads, Throughput},
};
use crate::report::{machine::Machine, markdown::number};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditResults {
    pub date: String,
    /// `release` or `debug`: only release figures belong in BENCHMARKS.md.
    pub build: String,
    pub machine: Machine,
    pub seed: u64,
    pub lookups: u64,
    pub storage_cache_mib: u64,
    /// Anchor: one SHA-256 of 65 bytes (an interior node's input), ns, this thread.
    pub sha256_65b_ns: f64,
    pub throughput: Vec<Throughput>,
    /// Current reads on the RocksDB comparison's two stores.
    pub current_reads: Option<CurrentReads>,
    pub sizes: Vec<SizeResult>,
}

/// One fixture size: how it was loaded and what reading it cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SizeResult {
    pub manifest: Manifest,
    pub ops: Vec<OpResult>,
}

impl AuditResults {
    /// Writes `<out_dir>/<date>-audit[-<tag>].json` and returns its path.
    pub fn write_json(
        &self,
        out_dir: &Path,
        tag: Option<&str>,
    ) -> anyhow::Result<std::path::PathBuf> {
        let suffix = tag.map(|tag| format!("-{tag}")).unwrap_or_default();
        let path = out_dir.join(format!("{}-audit{suffix}.json", self.date));
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&path, text + "\n").with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }

    /// The BENCHMARKS.md section.
    pub fn markdown(&self, json_link: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## {}: issue 11, the auditor's log (`audit-bench`)\n\nMachine: {}. Build: {}, one \
             thread, storage cache {} MiB. Each cell: {} timed calls after as many \
             warm-up calls, p50 / p99. Anchors in the same run: one SHA-256 of 65 bytes {}; the \
             RocksDB point get in the first row. Raw results: [`{json_link}`]({json_link}).\n",
            self.date,
            self.machine.summary(),
            self.build,
            self.storage_cache_mib,
            self.lookups,
            duration(self.sha256_65b_ns),
        );
        self.fixtures_table(&mut out);
        self.lookups_table(&mut out);
        self.throughput_table(&mut out);
        self.current_table(&mut out);
        out
    }

    fn fixtures_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "### Fixtures (`audit-fixture`: the workload stream applied through the state \
             machine's write path, one synced WriteBatch per {} entries of {} commands)\n\n| size | events | humans / \
             agents | commands refused | load | events/s | on disk | bytes per event |\n\
             |---|---|---|---|---|---|---|---|",
            super::fixture::ENTRIES_PER_APPLY,
            super::workload::COMMANDS_PER_BATCH,
        );
        for size in &self.sizes {
            let m = &size.manifest;
            let _ = writeln!(
                out,
                "| {} | {} | {} / {} | {} | {:.1} s | {} | {:.0} MiB | {:.0} |",
                size_label(m.target_events),
                m.events,
                m.world.humans,
                m.world.agents,
                m.rejected,
                m.load_seconds,
                number(m.events_per_s),
                m.disk_bytes as f64 / f64::from(1 << 20),
                m.disk_bytes as f64 / m.events.max(1) as f64,
            );
        }
        out.push('\n');
    }

    fn lookups_table(&self, out: &mut String) {
        let _ = write!(out, "### Reads and proofs, p50 / p99\n\n| operation |");
        for size in &self.sizes {
            let _ = write!(out, " {} |", size_label(size.manifest.target_events));
        }
        let _ = write!(out, "\n|---|");
        for _ in &self.sizes {
            out.push_str("---|");
        }
        out.push('\n');
        let names: Vec<&str> = self
            .sizes
            .first()
            .map(|s| s.ops.iter().map(|op| op.name.as_str()).collect())
            .unwrap_or_default();
        for name in names {
            let _ = write!(out, "| {name} |");
            for size in &self.sizes {
                match size.ops.iter().find(|op| op.name == name) {
                    Some(op) => {
                        let _ = write!(
                            out,
                            " {} / {} |",
                            duration(op.p50_ns as f64),
                            duration(op.p99_ns as f64)
                        );
                    }
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
        out.push('\n');
    }

    fn throughput_table(&self, out: &mut String) {
        if self.throughput.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "### Apply with the tree and history against today's apply (same run, same batches, \
             taking turns)\n\n| store | events | with tree and history | today's apply \
             (`apply_batch_unaudited`) | ratio (goal ≥ 0.8×) |\n|---|---|---|---|---|"
        );
        for t in &self.throughput {
            let _ = writeln!(
                out,
                "| {} | {} | {} events/s | {} events/s | {:.2}× |",
                t.store,
                t.events,
                number(t.audited_events_per_s),
                number(t.unaudited_events_per_s),
                t.ratio
            );
        }
    }
}

impl AuditResults {
    fn current_table(&self, out: &mut String) {
        let Some(current) = &self.current_reads else {
            return;
        };
        let _ = writeln!(
            out,
            "\n### Current reads: the store with the tree and history against today's ({} \
             events each, the RocksDB comparison's stores, read right after loading; SST files \
             {} MiB against {} MiB), p50 / p99\n\n| operation | with tree and history | \
             today's store | p99 ratio |\n|---|---|---|---|",
            current.events,
            current.audited_sst_bytes >> 20,
            current.unaudited_sst_bytes >> 20,
        );
        for op in &current.audited {
            let Some(today) = current.unaudited.iter().find(|it| it.name == op.name) else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {} | {} / {} | {} / {} | {:.2}× |",
                op.name,
                duration(op.p50_ns as f64),
                duration(op.p99_ns as f64),
                duration(today.p50_ns as f64),
                duration(today.p99_ns as f64),
                op.p99_ns as f64 / today.p99_ns.max(1) as f64,
            );
        }
    }
}

/// `10⁴` for a power of ten, else the number.
pub fn size_label(events: u64) -> String {
    const SUPERSCRIPTS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let digits = events.to_string();
    let is_power = digits.starts_with('1') && digits[1..].chars().all(|c| c == '0');
    if !is_power || digits.len() < 2 {
        return digits;
    }
    let exponent: String = (digits.len() - 1)
        .to_string()
        .chars()
        .filter_map(|c| c.to_digit(10).map(|d| SUPERSCRIPTS[d as usize]))
        .collect();
    format!("10{exponent}")
}

/// A duration given in ns, in the unit that keeps three significant digits.
pub fn duration(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_durations() {
        assert_eq!(size_label(10_000), "10⁴");
        assert_eq!(size_label(10_000_000), "10⁷");
        assert_eq!(size_label(12_000), "12000");
        assert_eq!(size_label(1), "1");
        assert_eq!(duration(850.0), "850 ns");
        assert_eq!(duration(12_345.0), "12.35 µs");
        assert_eq!(duration(1_500_000.0), "1.50 ms");
    }
}
