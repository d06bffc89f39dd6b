//! Reads over one loaded fixture, warm: as-of point lookups, EffectiveAccess as of a time, the
//! time → seq seek, the same reads on the current state, and Merkle proofs with their
//! verification. Each operation runs `lookups` times untimed (to warm the caches), then
//! `lookups` times timed one by one into an HDR histogram (ns, 3 significant digits).

use std::time::Instant;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use serde::{Deserialize, Serialize};
use warrant_identity::{
    StateRead,
    audit::{
        history::{self, AsOf},
        merkle::{self, Hash},
        tree,
    },
    effective, keys, query,
};
use warrant_raft::StateReader;

use super::{
    fixture::Fixture,
    workload::{World, agent_id, human_id, owner_of},
};

/// The longest operation the histograms hold: 60 s.
const LATENCY_NS_MAX: u64 = 60_000_000_000;
/// The item limit EffectiveAccess is asked with: the most the API asks.
const EFFECTIVE_ACCESS_LIMIT: usize = warrant_identity::limits::EFFECTIVE_ACCESS_ITEMS_MAX;

/// One operation's latencies over the timed runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpResult {
    pub name: String,
    pub count: u64,
    /// Runs that found what they looked for (an agent row that existed then, a seq > 0).
    pub hits: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    pub mean_ns: f64,
}

/// The operation names, in report order.
pub const ANCHOR_GET: &str = "anchor: RocksDB point get of a random event row";
pub const AGENT_CURRENT: &str = "GetAgent (query::agent), current state";
pub const ACCESS_CURRENT: &str = "EffectiveAccess (effective::effective_access), current state";
pub const AGENT_AS_OF: &str = "GetAgent as of a random seq (AsOf)";
pub const SEQ_AT_TIME: &str = "seq_at_time of a random time";
pub const ACCESS_AS_OF: &str = "EffectiveAccess as of a random time (seq_at_time + AsOf)";
pub const INCLUSION_PROVE: &str = "inclusion proof + root, random leaf, full size";
pub const INCLUSION_VERIFY: &str = "verify inclusion (merkle::verify_inclusion)";
pub const CONSISTENCY_PROVE: &str = "consistency proof + both roots, random old size";
pub const CONSISTENCY_VERIFY: &str = "verify consistency (merkle::verify_consistency)";

/// Measures every operation over `fixture`.
pub fn measure(fixture: &Fixture, lookups: u64, seed: u64) -> anyhow::Result<Vec<OpResult>> {
    let reader = fixture.store.reader();
    let size = tree::size(&reader).context("read the tree size")?;
    anyhow::ensure!(
        size == fixture.manifest.events,
        "the tree holds {size} leaves but the log {} events",
        fixture.manifest.events
    );
    let mut runner = Runner {
        lookups,
        rng: StdRng::seed_from_u64(seed),
        results: Vec::new(),
    };
    let m = &fixture.manifest;
    current_reads(&mut runner, &reader, m.world, m.last_time_ms)?;
    as_of_reads(&mut runner, &reader, fixture, size)?;
    proofs(&mut runner, &reader, size, seed)?;
    Ok(runner.results)
}

/// Times operations one after the other with one random stream.
struct Runner {
    lookups: u64,
    rng: StdRng,
    results: Vec<OpResult>,
}

impl Runner {
    fn run(
        &mut self,
        name: &str,
        op: &mut dyn FnMut(&mut StdRng) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let result = time_op(name, self.lookups, &mut self.rng, op)?;
        eprintln!(
            "  {name}: p50 {} ns, p99 {} ns",
            result.p50_ns, result.p99_ns
        );
        self.results.push(result);
        Ok(())
    }
}

/// The reads of the current state: the anchor, GetAgent, EffectiveAccess.
fn current_reads(
    runner: &mut Runner,
    reader: &StateReader,
    world: World,
    last_ms: u64,
) -> anyhow::Result<()> {
    let size = query::applied_seq(reader)?;
    anyhow::ensure!(0 < size, "the store holds no event");
    runner.run(ANCHOR_GET, &mut |rng| {
        let seq = rng.random_range(1..=size);
        Ok(reader.get(&keys::event(seq))?.is_some())
    })?;
    runner.run(AGENT_CURRENT, &mut |rng| {
        let agent = agent_id(rng.random_range(0..world.agents));
        Ok(query::agent(reader, &agent)?.is_some())
    })?;
    runner.run(ACCESS_CURRENT, &mut |rng| {
        let agent = rng.random_range(0..world.agents);
        effective_access(reader, agent, last_ms)
    })
}

/// The reads as of a past seq or time: GetAgent, seq_at_time, EffectiveAccess.
fn as_of_reads(
    runner: &mut Runner,
    reader: &StateReader,
    fixture: &Fixture,
    size: u64,
) -> anyhow::Result<()> {
    let agents = fixture.manifest.world.agents;
    let (first_ms, last_ms) = (
        fixture.manifest.first_time_ms,
        fixture.manifest.last_time_ms,
    );
    runner.run(AGENT_AS_OF, &mut |rng| {
        let seq = rng.random_range(1..=size);
        let agent = agent_id(rng.random_range(0..agents));
        let as_of = AsOf::new(reader, seq);
        Ok(query::agent(&as_of, &agent)?.is_some())
    })?;
    runner.run(SEQ_AT_TIME, &mut |rng| {
        let time = rng.random_range(first_ms..=last_ms);
        Ok(0 < history::seq_at_time(reader, time)?)
    })?;
    runner.run(ACCESS_AS_OF, &mut |rng| {
        let agent = rng.random_range(0..agents);
        let time = rng.random_range(first_ms..=last_ms);
        let seq = history::seq_at_time(reader, time)?;
        effective_access(&AsOf::new(reader, seq), agent, time)
    })
}

/// The current-state reads alone ([`ANCHOR_GET`], [`AGENT_CURRENT`], [`ACCESS_CURRENT`]) over
/// any store of the workload, audited or not: how current reads compare with today's.
pub fn measure_current(
    reader: &StateReader,
    world: World,
    last_ms: u64,
    lookups: u64,
    seed: u64,
) -> anyhow::Result<Vec<OpResult>> {
    let mut runner = Runner {
        lookups,
        rng: StdRng::seed_from_u64(seed),
        results: Vec::new(),
    };
    current_reads(&mut runner, reader, world, last_ms)?;
    Ok(runner.results)
}

/// Proof generation at the full size, and verification of proofs made beforehand.
fn proofs(runner: &mut Runner, reader: &StateReader, size: u64, seed: u64) -> anyhow::Result<()> {
    runner.run(INCLUSION_PROVE, &mut |rng| {
        let index = rng.random_range(0..size);
        let proof = tree::inclusion_proof(reader, index, size)?;
        let root = tree::root(reader, size)?;
        std::hint::black_box((proof, root));
        Ok(true)
    })?;
    let samples = inclusion_samples(reader, size, runner.lookups, seed)?;
    let mut next = 0_usize;
    runner.run(INCLUSION_VERIFY, &mut |_| {
        let (index, leaf, proof, root) = &samples[next % samples.len()];
        next += 1;
        merkle::verify_inclusion(*index, size, leaf, proof, root)?;
        Ok(true)
    })?;
    runner.run(CONSISTENCY_PROVE, &mut |rng| {
        let old = rng.random_range(1..size.max(2));
        let proof = tree::consistency_proof(reader, old, size)?;
        let roots = (tree::root(reader, old)?, tree::root(reader, size)?);
        std::hint::black_box((proof, roots));
        Ok(true)
    })?;
    let samples = consistency_samples(reader, size, runner.lookups, seed)?;
    let mut next = 0_usize;
    runner.run(CONSISTENCY_VERIFY, &mut |_| {
        let (old, old_root, proof, new_root) = &samples[next % samples.len()];
        next += 1;
        merkle::verify_consistency(*old, size, old_root, new_root, proof)?;
        Ok(true)
    })
}

/// EffectiveAccess of agent `agent` for its owner at `time_ms`, as the API asks it.
fn effective_access(state: &dyn StateRead, agent: u32, time_ms: u64) -> anyhow::Result<bool> {
    let answer = effective::effective_access(
        state,
        &agent_id(agent),
        Some(human_id(owner_of(agent)).as_str()),
        time_ms / 1000,
        EFFECTIVE_ACCESS_LIMIT,
    )?;
    Ok(std::hint::black_box(answer).is_some())
}

/// Runs `op` `lookups` times to warm up, then `lookups` times timed.
fn time_op(
    name: &str,
    lookups: u64,
    rng: &mut StdRng,
    op: &mut dyn FnMut(&mut StdRng) -> anyhow::Result<bool>,
) -> anyhow::Result<OpResult> {
    for _ in 0..lookups {
        op(rng).with_context(|| format!("{name} (warm-up)"))?;
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, LATENCY_NS_MAX, 3)
        .map_err(|e| anyhow::format_err!("histogram bounds: {e}"))?;
    let mut hits = 0_u64;
    for _ in 0..lookups {
        let start = Instant::now();
        let hit = op(rng).with_context(|| name.to_string())?;
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        histogram.saturating_record(ns.max(1));
        hits += u64::from(hit);
    }
    Ok(OpResult {
        name: name.to_string(),
        count: histogram.len(),
        hits,
        p50_ns: histogram.value_at_quantile(0.50),
        p99_ns: histogram.value_at_quantile(0.99),
        max_ns: histogram.max(),
        mean_ns: histogram.mean(),
    })
}

type InclusionSample = (u64, Hash, Vec<Hash>, Hash);

/// `count` inclusion proofs of random leaves at the full size, each leaf hashed from its event
/// record as a verifier would; checked once here, so a wrong proof fails loudly.
fn inclusion_samples(
    reader: &StateReader,
    size: u64,
    count: u64,
    seed: u64,
) -> anyhow::Result<Vec<InclusionSample>> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x1c1);
    let root = tree::root(reader, size)?;
    (0..count.max(1))
        .map(|_| {
            let index = rng.random_range(0..size);
            let record = reader
                .get(&keys::event(index + 1))?
                .with_context(|| format!("event {} is missing", index + 1))?;
            let leaf = merkle::leaf_hash(&record);
            let proof = tree::inclusion_proof(reader, index, size)?;
            merkle::verify_inclusion(index, size, &leaf, &proof, &root)
                .with_context(|| format!("the inclusion proof of leaf {index} fails"))?;
            Ok((index, leaf, proof, root))
        })
        .collect()
}

type ConsistencySample = (u64, Hash, Vec<Hash>, Hash);

/// `count` consistency proofs from random old sizes to the full size, checked once here.
fn consistency_samples(
    reader: &StateReader,
    size: u64,
    count: u64,
    seed: u64,
) -> anyhow::Result<Vec<ConsistencySample>> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xc0c);
    let new_root = tree::root(reader, size)?;
    (0..count.max(1))
        .map(|_| {
            let old = rng.random_range(1..size.max(2));
            let old_root = tree::root(reader, old)?;
            let proof = tree::consistency_proof(reader, old, size)?;
            merkle::verify_consistency(old, size, &old_root, &new_root, &proof)
                .with_context(|| format!("the consistency proof {old} → {size} fails"))?;
            Ok((old, old_root, proof, new_root))
        })
        .collect()
}
