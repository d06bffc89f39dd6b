//! `cluster-bench`: the three-node cluster benchmark of issue 13, in one command.
//!
//! Starts fresh etcd and warrant clusters on loopback per repeat, drives every scenario through
//! the load generator, measures the anchors in the same run, SIGKILLs the leader under writes,
//! then writes `bench/results/<date>[-quick].json`, SVG plots beside it, and the cluster-bench
//! section of BENCHMARKS.md. `--only procs` just starts, checks and stops the clusters.

use std::{
    path::{Path, PathBuf},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use warrant_bench::{
    anchors,
    plan::{Mode, Plan},
    procs::{self, EtcdCluster, WarrantCluster, etcd::ETCD_BINARY},
    report::{
        self,
        machine::Machine,
        results::{Results, RunSetup, utc_date},
    },
    suite::Suite,
};

#[derive(Parser)]
#[command(about = "Warrant's three-node cluster benchmark, with etcd and in-process anchors")]
struct Args {
    /// quick: at most 3 minutes; full: at most 15.
    #[arg(long, value_enum, default_value = "quick")]
    mode: Mode,
    /// The `warrant` binary to run; default: `warrant` next to this executable.
    #[arg(long)]
    warrant_bin: Option<PathBuf>,
    #[arg(long, default_value = ETCD_BINARY)]
    etcd_bin: PathBuf,
    /// Where the results JSON and the plots go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    out_dir: PathBuf,
    /// The BENCHMARKS.md whose cluster-bench section is replaced.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../BENCHMARKS.md"))]
    benchmarks_md: PathBuf,
    /// The directory the run directory (node data and logs) is made in: on the disk to measure.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    run_parent: PathBuf,
    /// Keep the run directory after a successful run too (a failed run always keeps it).
    #[arg(long)]
    keep_run_dir: bool,
    /// Only start both clusters, check leadership, memory, a node's kill and restart, and stop.
    #[arg(long, value_parser = ["procs"])]
    only: Option<String>,
    /// Run only this scenario (repeatable), without revocation reach, history and failover:
    /// to profile one path. A narrowed run writes its JSON but leaves BENCHMARKS.md alone.
    #[arg(long)]
    scenario: Vec<String>,
    /// Run only at this many clients (repeatable).
    #[arg(long)]
    clients: Vec<usize>,
    /// Measure each run for this many seconds instead of the mode's.
    #[arg(long)]
    measure_s: Option<f64>,
    /// Measure nothing: render the plots and the BENCHMARKS.md section from this results JSON.
    #[arg(long)]
    report_from: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start tokio")?;
    let run_dir = tempfile::Builder::new()
        .prefix("warrant-cluster-bench-")
        .tempdir_in(&args.run_parent)
        .with_context(|| format!("create a run directory in {}", args.run_parent.display()))?;
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run(&args, run_dir.path()) => Some(outcome),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match outcome {
        Some(Ok(())) if !args.keep_run_dir => Ok(()),
        Some(Ok(())) => {
            eprintln!("run directory kept: {}", run_dir.keep().display());
            Ok(())
        }
        Some(Err(e)) => {
            eprintln!(
                "run failed; its node logs are in {}",
                run_dir.keep().display()
            );
            Err(e)
        }
        None => {
            let killed = procs::child::kill_all_started();
            eprintln!(
                "interrupted: killed {killed} started processes; run directory kept: {}",
                run_dir.keep().display()
            );
            std::process::exit(130);
        }
    }
}

async fn run(args: &Args, run_dir: &Path) -> anyhow::Result<()> {
    if let Some(json) = &args.report_from {
        let results = Results::read_json(json)?;
        let written = report::write(&results, &args.out_dir, &args.benchmarks_md)?;
        println!("plots: {}", written.throughput_svg.display());
        println!("updated: {}", args.benchmarks_md.display());
        return Ok(());
    }
    let warrant_bin = match &args.warrant_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("find this executable")?
            .with_file_name("warrant"),
    };
    anyhow::ensure!(
        warrant_bin.is_file(),
        "no warrant binary at {} (build it with `cargo build --release --workspace`, or pass --warrant-bin)",
        warrant_bin.display()
    );
    anyhow::ensure!(
        args.etcd_bin.is_file(),
        "no etcd at {} (Debian: apt-get install etcd-server)",
        args.etcd_bin.display()
    );
    if args.only.as_deref() == Some("procs") {
        return procs_only(&warrant_bin, &args.etcd_bin, run_dir).await;
    }
    let started = Instant::now();
    let measure = args
        .measure_s
        .map(std::time::Duration::try_from_secs_f64)
        .transpose()
        .context("--measure-s must be a non-negative number of seconds")?;
    let plan = Plan::for_mode(args.mode).narrowed_to(&args.scenario, &args.clients, measure)?;
    let progress = ProgressBar::new((plan.repeats * plan.runs_per_repeat()) as u64);
    progress.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .context("progress template")?,
    );
    let suite = Suite {
        plan: plan.clone(),
        warrant_bin: warrant_bin.clone(),
        etcd_bin: args.etcd_bin.clone(),
        run_dir: run_dir.to_path_buf(),
        progress: progress.clone(),
    };
    let mut results = empty_results(&plan, &warrant_bin, &args.etcd_bin, run_dir);
    for repeat in 0..plan.repeats {
        let output = suite.repeat(repeat).await?;
        results.anchors.push(output.anchors);
        results.runs.extend(output.runs);
        results.reach = results.reach.take().or(output.reach);
        results.failovers.extend(output.failovers);
        results.memory.extend(output.memory);
    }
    progress.finish_and_clear();
    results.elapsed_s = started.elapsed().as_secs_f64();
    if plan.narrowed() {
        let json = results.write_json(&args.out_dir)?;
        println!(
            "narrowed run: results in {}; BENCHMARKS.md left alone",
            json.display()
        );
        return Ok(());
    }
    let written = report::write(&results, &args.out_dir, &args.benchmarks_md)?;
    println!(
        "cluster-bench --mode {} took {:.0} s (budget {} s)",
        plan.mode_name(),
        results.elapsed_s,
        plan.budget.as_secs()
    );
    println!("results: {}", written.json.display());
    println!("plots:   {}", written.throughput_svg.display());
    if let Some(cdf) = &written.cdf_svg {
        println!("         {}", cdf.display());
    }
    println!("updated: {}", args.benchmarks_md.display());
    Ok(())
}

/// The results of a run about to start, with no measurement yet.
fn empty_results(plan: &Plan, warrant_bin: &Path, etcd_bin: &Path, run_dir: &Path) -> Results {
    let started_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Results {
        date: utc_date(started_unix_s),
        started_unix_s,
        elapsed_s: 0.0,
        machine: Machine::detect(run_dir),
        setup: RunSetup {
            mode: plan.mode_name().to_string(),
            concurrencies: plan.concurrencies.clone(),
            repeats: plan.repeats,
            warmup_s: plan.warmup.as_secs_f64(),
            measure_s: plan.measure.as_secs_f64(),
            warrant_binary: warrant_bin.display().to_string(),
            etcd_version: etcd_version(etcd_bin),
        },
        anchors: Vec::new(),
        runs: Vec::new(),
        reach: None,
        failovers: Vec::new(),
        memory: Vec::new(),
    }
}

/// `--only procs`: both clusters start and elect, memory reads, a follower is SIGKILLed and
/// restarted, the anchors run, and everything stops with no process left behind.
async fn procs_only(warrant_bin: &Path, etcd_bin: &Path, run_dir: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let etcd = EtcdCluster::start(etcd_bin, run_dir).await?;
    let etcd_leader = etcd.leader().await?;
    println!(
        "etcd: {} members up, leader {} ({:.1} s)",
        etcd.members.len(),
        etcd.members[etcd_leader].name,
        started.elapsed().as_secs_f64()
    );
    let mut warrant = WarrantCluster::start(warrant_bin, run_dir).await?;
    let (leader, follower) = warrant.leader_and_follower().await?;
    println!(
        "warrant: {} nodes serving, leader {leader} ({:.1} s)",
        warrant.live().len(),
        started.elapsed().as_secs_f64()
    );
    for id in warrant.live() {
        println!("  warrant-{id}: {:?}", warrant.memory(id));
    }
    for (name, memory) in etcd.memory() {
        println!("  {name}: {memory:?}");
    }
    warrant.kill(follower)?;
    anyhow::ensure!(
        warrant.live().len() == 2,
        "the killed follower still counts as live"
    );
    let after_kill = warrant.leader(procs::START_WAIT_MAX).await?;
    warrant.restart(follower).await?;
    let after_restart = warrant.leader(procs::START_WAIT_MAX).await?;
    println!(
        "killed follower {follower} (leader then {after_kill}), restarted it (leader {after_restart})"
    );
    let anchors = anchors::measure(run_dir)?;
    println!("anchors: {anchors:?}");
    warrant.stop().await;
    etcd.stop().await;
    let left = procs::child::started_count();
    anyhow::ensure!(left == 0, "{left} started processes were not reaped");
    println!(
        "stopped cleanly in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `etcd --version`'s first line, e.g. `etcd Version: 3.4.23`.
fn etcd_version(etcd_bin: &Path) -> String {
    std::process::Command::new(etcd_bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".to_string())
}
