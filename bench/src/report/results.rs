//! The results of one `cluster-bench` run, as written to `bench/results/<date>[-quick].json`
//! and read back by the report.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::machine::Machine;
use crate::{
    anchors::Anchors, failover::FailoverResult, load::RunResult, procs::ProcMemory,
    scenarios::Reach,
};

/// Where a load run sent its requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Warrant's leader, or etcd's.
    Leader,
    /// A Warrant follower, which forwards writes and asks the leader for linearizable reads.
    Follower,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Leader => "leader",
            Target::Follower => "follower",
        }
    }
}

/// One load run of one repeat.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    /// Which repeat (fresh clusters each), from 0.
    pub repeat: usize,
    /// A scenario name from [`crate::plan::SCENARIOS`].
    pub scenario: String,
    pub target: Target,
    pub result: RunResult,
}

/// A process's memory after a repeat's load runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryRecord {
    pub repeat: usize,
    /// `warrant leader`, `warrant follower`, `etcd leader` or `etcd follower`.
    pub process: String,
    /// When it was read: `load runs` (after them), or after importing a long history.
    #[serde(default)]
    pub after: String,
    /// Events in the log when it was read.
    #[serde(default)]
    pub events: u64,
    pub memory: Option<ProcMemory>,
}

/// How the run was set up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSetup {
    pub mode: String,
    pub concurrencies: Vec<usize>,
    pub repeats: usize,
    pub warmup_s: f64,
    pub measure_s: f64,
    pub warrant_binary: String,
    pub etcd_version: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    /// UTC, YYYY-MM-DD.
    pub date: String,
    pub started_unix_s: u64,
    pub elapsed_s: f64,
    pub machine: Machine,
    pub setup: RunSetup,
    /// One per repeat.
    pub anchors: Vec<Anchors>,
    pub runs: Vec<RunRecord>,
    pub reach: Option<Reach>,
    pub failovers: Vec<FailoverResult>,
    pub memory: Vec<MemoryRecord>,
}

impl Results {
    /// The file name stem of this run's outputs: `<date>` or `<date>-quick`.
    pub fn stem(&self) -> String {
        if self.setup.mode == "full" {
            self.date.clone()
        } else {
            format!("{}-{}", self.date, self.setup.mode)
        }
    }

    /// Writes `<out_dir>/<stem>.json` (pretty-printed) and returns its path.
    pub fn write_json(&self, out_dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(out_dir)
            .with_context(|| format!("create {}", out_dir.display()))?;
        let path = out_dir.join(format!("{}.json", self.stem()));
        let json = serde_json::to_string_pretty(self).context("results as JSON")?;
        std::fs::write(&path, json + "\n").with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }

    pub fn read_json(path: &Path) -> anyhow::Result<Results> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
    }
}

/// The UTC calendar date (YYYY-MM-DD) of `unix_s` seconds since the epoch.
pub fn utc_date(unix_s: u64) -> String {
    // Days to civil date, proleptic Gregorian (Howard Hinnant's algorithm).
    let days = (unix_s / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_unix_seconds() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(86_399), "1970-01-01");
        assert_eq!(utc_date(86_400), "1970-01-02");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14");
        assert_eq!(utc_date(1_709_164_800), "2024-02-29");
        assert_eq!(utc_date(1_735_689_599), "2024-12-31");
    }
}
