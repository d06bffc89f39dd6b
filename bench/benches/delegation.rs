//! What delegation chains cost: issuing under a chain of depth d in apply (which walks the chain
//! to check every link is in force), and the same walk when `Verify` checks a delegated token.
//! Anchor: issuing a token for the agent itself (no chain) in the same run.

use divan::Bencher;
use warrant_bench::{chained_state, delegated_issue_batch, issue_batch, seeded_state};
use warrant_identity::{apply_batch, query, validity};

fn main() {
    divan::main();
}

/// Anchor: one issuance with no delegation.
#[divan::bench]
fn anchor_apply_issue_for_itself(bencher: Bencher) {
    let state = seeded_state();
    let batch = issue_batch(1, 1);
    bencher.bench(|| {
        apply_batch(divan::black_box(&state), divan::black_box(&batch), 3).expect("apply")
    });
}

/// One issuance by the agent at `depth`, for the human at the root.
#[divan::bench(args = [1, 2, 4, 8])]
fn apply_issue_under_chain(bencher: Bencher, depth: u32) {
    let state = chained_state(depth);
    let batch = delegated_issue_batch(depth, "bench-jti");
    bencher.bench(|| {
        apply_batch(divan::black_box(&state), divan::black_box(&batch), 3).expect("apply")
    });
}

/// Verify's state check of a token issued at `depth`: revocation, agents, human, every link.
#[divan::bench(args = [1, 2, 4, 8])]
fn verify_state_of_chained_token(bencher: Bencher, depth: u32) {
    let mut state = chained_state(depth);
    let applied =
        apply_batch(&state, &delegated_issue_batch(depth, "bench-jti"), 3).expect("apply");
    state.apply_writes(&applied.writes);
    let row = query::token(&state, "bench-jti")
        .expect("read")
        .expect("issued");
    bencher.bench(|| {
        validity::token(
            divan::black_box(&state),
            divan::black_box(&row),
            1_700_000_100,
        )
        .expect("read")
        .expect("in force")
    });
}
