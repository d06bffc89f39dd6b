//! Identity-model apply throughput against an in-memory state: token issuances per batch, and
//! one batch of the audit fixtures' mix; each with the Merkle tree and the history
//! (`apply_batch`) and without them (`apply_batch_unaudited`, today's apply before issue 11),
//! side by side in the same run.

use divan::{Bencher, counter::ItemsCount};
use warrant_bench::{audit::workload::Workload, issue_batch, seeded_state};
use warrant_identity::{InMemoryState, apply::apply_batch_unaudited, apply_batch};
use warrant_proto::log;
use warrant_raft::storage::ApplyFn;

fn main() {
    divan::main();
}

/// Applies one batch of `n` issuances (the work one Raft entry carries under group commit).
#[divan::bench(args = [1, 64, 1024])]
fn apply_issue_batch(bencher: Bencher, n: u64) {
    let state = seeded_state();
    let batch = issue_batch(1, n);
    bencher.counter(ItemsCount::new(n)).bench(|| {
        apply_batch(divan::black_box(&state), divan::black_box(&batch), 2).expect("apply")
    });
}

/// [`apply_issue_batch`] without the tree and history.
#[divan::bench(args = [1, 64, 1024])]
fn apply_issue_batch_unaudited(bencher: Bencher, n: u64) {
    let state = seeded_state();
    let batch = issue_batch(1, n);
    bencher.counter(ItemsCount::new(n)).bench(|| {
        apply_batch_unaudited(divan::black_box(&state), divan::black_box(&batch), 2).expect("apply")
    });
}

/// Events in the state the mix batch applies to.
const MIX_STATE_EVENTS: u64 = 10_000;

/// The audit workload's state after [`MIX_STATE_EVENTS`] events applied by `apply`, and its
/// next batch with its log index.
fn mix_state(apply: ApplyFn) -> (InMemoryState, log::Batch, u64) {
    let mut workload = Workload::new(1, MIX_STATE_EVENTS);
    let mut state = InMemoryState::new();
    let mut index = 0;
    while warrant_identity::query::applied_seq(&state).expect("read") < MIX_STATE_EVENTS {
        index += 1;
        let applied = apply(&state, &workload.next_batch(), index).expect("apply");
        state.apply_writes(&applied.writes);
    }
    (state, workload.next_batch(), index + 1)
}

/// One batch of the audit fixtures' mix (256 commands, about 500 events), counted in events.
#[divan::bench(args = ["audited", "unaudited"])]
fn apply_audit_mix_batch(bencher: Bencher, apply: &str) {
    let apply: ApplyFn = match apply {
        "audited" => apply_batch,
        _ => apply_batch_unaudited,
    };
    let (state, batch, index) = mix_state(apply);
    let events = apply(&state, &batch, index).expect("apply").events.len();
    bencher
        .counter(ItemsCount::new(events))
        .bench(|| apply(divan::black_box(&state), divan::black_box(&batch), index).expect("apply"));
}
