//! `warrant-chaos`: the long tier, replays, and schedule files.
//!
//! ```text
//! warrant-chaos long [--seed N] [--minutes M] [--table FILE]   every nemesis at length, then composed
//! warrant-chaos run <scenario> [--seed N]                      one CI-tier or canary scenario
//! warrant-chaos schedule <nemesis,...> --seed N [--ms D]       print the schedule a seed makes
//! warrant-chaos table --seed N DIR...                          the table of earlier runs' artefacts
//! ```
//!
//! It runs the `warrant` binary beside it (or `CHAOS_WARRANT_BIN`), which must be built with the
//! `chaos` feature: `chaos-tests/long.sh` builds both and runs the long tier.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use warrant_chaos::{
    history::History,
    run::{Scenario, run, workload_rows},
    schedule::{NemesisKind, Schedule},
    tiers,
};

#[derive(Parser)]
#[command(
    name = "warrant-chaos",
    about = "Fault tests of real warrant processes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every nemesis alone, then all of them composed; prints the nemesis x workload table.
    Long {
        /// The first seed (default: from the clock, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// The total time to aim for, in minutes (split over the scenarios).
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// Also write the table (Markdown) to this file.
        #[arg(long)]
        table: Option<PathBuf>,
    },
    /// One scenario of the CI tier (`ci-<nemesis>`) or a canary (`canary-<name>`).
    Run {
        scenario: String,
        /// Replay with this seed instead of the tier's.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Prints the nemesis x workload table of earlier runs, from their artefacts directories.
    Table {
        #[arg(long)]
        seed: u64,
        dirs: Vec<PathBuf>,
    },
    /// Prints the schedule file a seed makes for these nemeses (comma-separated names).
    Schedule {
        #[arg(value_delimiter = ',')]
        nemeses: Vec<String>,
        #[arg(long)]
        seed: u64,
        #[arg(long, default_value_t = tiers::CI_DURATION.as_millis() as u64)]
        ms: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Long {
            seed,
            minutes,
            table,
        } => long(seed, minutes, table).await,
        Command::Run { scenario, seed } => {
            let mut scenario = named(&scenario)?;
            if let Some(seed) = seed {
                scenario.seed = seed;
            }
            let report = run(&scenario).await?;
            println!("{}", report.summary());
            if !report.ok() {
                bail!("{} failed", scenario.name);
            }
            Ok(())
        }
        Command::Table { seed, dirs } => {
            print!("{}", markdown_table(seed, &dirs)?);
            Ok(())
        }
        Command::Schedule { nemeses, seed, ms } => {
            let kinds = nemeses
                .iter()
                .map(|n| kind(n))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let schedule = Schedule::generate(seed, &kinds, ms, tiers::CI_FAULT_WINDOW);
            print!("{}", String::from_utf8_lossy(&schedule.to_file_bytes()));
            Ok(())
        }
    }
}

fn kind(name: &str) -> anyhow::Result<NemesisKind> {
    NemesisKind::ALL
        .iter()
        .copied()
        .find(|k| k.name() == name)
        .with_context(|| {
            let names: Vec<&str> = NemesisKind::ALL.iter().map(|k| k.name()).collect();
            format!("no nemesis {name:?}; there are {}", names.join(", "))
        })
}

fn named(name: &str) -> anyhow::Result<Scenario> {
    if let Some(nemesis) = name.strip_prefix("ci-") {
        return Ok(tiers::ci_scenario(kind(nemesis)?));
    }
    if let Some(canary) = name.strip_prefix("canary-")
        && tiers::CANARIES.iter().any(|(c, _)| *c == canary)
    {
        return Ok(tiers::canary_scenario(canary));
    }
    bail!("no scenario {name:?}: give ci-<nemesis> or canary-<name>")
}

async fn long(seed: Option<u64>, minutes: u64, table: Option<PathBuf>) -> anyhow::Result<()> {
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    // Nine scenarios, the composed one twice as long: ten shares of the time, less start-up.
    let share = Duration::from_secs((minutes * 60 / 10).max(30));
    let scenarios = tiers::long_scenarios(seed, share);
    println!(
        "long tier: seed {seed}, {} scenarios, {share:?} each (composed: twice)",
        scenarios.len()
    );
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for scenario in &scenarios {
        // A run that could not complete (the harness's own failure) is reported and the tier
        // goes on: the other scenarios still say something.
        match run(scenario).await {
            Ok(report) => {
                println!("{}", report.summary());
                reports.push(report);
            }
            Err(error) => {
                println!("{}: the run did not complete: {error:#}", scenario.name);
                errors.push(scenario.name.clone());
            }
        }
    }
    let dirs: Vec<PathBuf> = reports.iter().map(|r| r.artefacts.clone()).collect();
    let text = markdown_table(seed, &dirs)?;
    println!("{text}");
    if let Some(path) = table {
        std::fs::write(&path, &text).with_context(|| format!("write {}", path.display()))?;
    }
    if !errors.is_empty() {
        println!("runs that did not complete: {}", errors.join(", "));
    }
    if reports.iter().any(|r| !r.ok()) || !errors.is_empty() {
        bail!("the long tier found violations or did not complete");
    }
    Ok(())
}

/// The nemesis x workload table of `chaos-tests/README.md`, from each run's artefacts
/// directory (its `report.json` and `history.jsonl`).
fn markdown_table(seed: u64, artefacts: &[PathBuf]) -> anyhow::Result<String> {
    let date = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut text = format!(
        "Long tier of {date}, seed {seed} (scenario seeds count up from it). Every scenario ran \
         W1, W2 (two clients), W3, W5 and W6 at once; \"cluster\" is the checks of the whole \
         cluster (digests, liveness).\n\n\
         | scenario | workload | operations | acknowledged | lost (must be 0) | violations (must be 0) |\n\
         |---|---|---|---|---|---|\n"
    );
    for dir in artefacts {
        let report: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join("report.json"))
                .with_context(|| format!("read {}/report.json", dir.display()))?,
        )?;
        let history = History::read_file(&dir.join("history.jsonl"))?;
        let verdicts: Vec<(String, bool, usize)> = report["verdicts"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|v| {
                        let count = v["violations"].as_array().map_or(0, Vec::len);
                        (
                            v["checker"].as_str().unwrap_or("").to_string(),
                            v["ok"].as_bool().unwrap_or(false),
                            count,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let lost = report["lost"].as_u64().unwrap_or(0) as usize;
        let scenario = report["scenario"].as_str().unwrap_or("?");
        let failpoint = report["failpoint"].as_str().filter(|f| !f.is_empty());
        let name = failpoint.map_or(scenario.to_string(), |f| format!("{scenario} ({f})"));
        for row in workload_rows(&verdicts, lost, &history) {
            text.push_str(&format!(
                "| {name} | {} | {} | {} | {} | {} |\n",
                row.workload, row.operations, row.acknowledged, row.lost, row.violations
            ));
        }
    }
    Ok(text)
}
