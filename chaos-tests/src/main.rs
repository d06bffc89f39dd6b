//! `warrant-chaos`: the long tier, replays, and schedule files.
//!
//! ```text
//! warrant-chaos long [--seed N] [--minutes M] [--table FILE]   every nemesis at length, then composed
//! warrant-chaos run <scenario> [--seed N]                      one CI-tier or canary scenario
//! warrant-chaos schedule <nemesis,...> --seed N [--ms D]       print the schedule a seed makes
//! ```
//!
//! It runs the `warrant` binary beside it (or `CHAOS_WARRANT_BIN`), which must be built with the
//! `chaos` feature: `chaos-tests/long.sh` builds both and runs the long tier.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use warrant_chaos::{
    run::{Report, Scenario, run},
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
    for scenario in &scenarios {
        let report = run(scenario)
            .await
            .with_context(|| format!("scenario {}", scenario.name))?;
        println!("{}", report.summary());
        reports.push(report);
    }
    let text = markdown_table(seed, &reports);
    println!("{text}");
    if let Some(path) = table {
        std::fs::write(&path, &text).with_context(|| format!("write {}", path.display()))?;
    }
    if reports.iter().any(|r| !r.ok()) {
        bail!("the long tier found violations");
    }
    Ok(())
}

/// The nemesis x workload table of `chaos-tests/README.md`.
fn markdown_table(seed: u64, reports: &[Report]) -> String {
    let date = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut text = format!(
        "Long tier of {date}, seed {seed}. Every scenario ran W1, W2 (two clients), W3, W5 and W6 at once.\n\n\
         | scenario | nemesis steps | operations | acknowledged writes | lost (must be 0) | violations (must be 0) | liveness after heal |\n\
         |---|---|---|---|---|---|---|\n"
    );
    for report in reports {
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            report.scenario,
            report.nemesis.len(),
            report.operations,
            report.acknowledged,
            report.lost,
            report.violations,
            report
                .liveness_ms
                .map_or("none".to_string(), |ms| format!("{ms} ms")),
        ));
    }
    text
}
