//! Identity-model apply throughput: token issuances per batch against an in-memory state.

use divan::{Bencher, counter::ItemsCount};
use warrant_bench::{issue_batch, seeded_state};
use warrant_identity::apply_batch;

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
