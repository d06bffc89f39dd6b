//! A block of consecutive loopback ports for one cluster, free when it was picked.
//!
//! Blocks are aligned to their length inside [`PORT_RANGE`] and picked at random, so two
//! benchmarks (or a benchmark and the tests) on one machine rarely try the same ports; every
//! port of a block is bound once before it is handed out, and a block with a taken port is
//! skipped.

use std::{net::TcpListener, ops::Range};

/// Where blocks are picked from: above the ports most services register, and below Linux's
/// default ephemeral range (32768–60999), so the kernel does not hand a block's ports out as
/// the source ports of outgoing connections between the pick and the bind.
pub const PORT_RANGE: Range<u16> = 20_000..32_000;
/// How many random blocks are tried before giving up.
const PICK_ATTEMPTS_MAX: usize = 64;

/// `len` consecutive ports starting at `base`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortBlock {
    base: u16,
    len: u16,
}

impl PortBlock {
    /// A free block of `len` ports.
    pub fn allocate(len: u16) -> anyhow::Result<PortBlock> {
        let candidates = (0..PICK_ATTEMPTS_MAX).map(|_| candidate_base(rand::random(), len));
        first_free(candidates, len).ok_or_else(|| {
            anyhow::format_err!(
                "no free block of {len} loopback ports in {PORT_RANGE:?} after {PICK_ATTEMPTS_MAX} tries"
            )
        })
    }

    /// The `index`th port of the block.
    pub fn port(&self, index: u16) -> u16 {
        assert!(
            index < self.len,
            "port {index} of a block of {} ports",
            self.len
        );
        self.base + index
    }

    pub fn len(&self) -> u16 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The base of the aligned block that `seed` picks: a multiple of `len` from the start of
/// [`PORT_RANGE`], with the whole block inside it.
pub fn candidate_base(seed: u64, len: u16) -> u16 {
    assert!(
        0 < len && len <= PORT_RANGE.end - PORT_RANGE.start,
        "block length {len}"
    );
    let blocks = u64::from((PORT_RANGE.end - PORT_RANGE.start) / len);
    let index = u16::try_from(seed % blocks).expect("fewer blocks than ports");
    PORT_RANGE.start + index * len
}

/// The first candidate whose `len` ports can all be bound on 127.0.0.1 right now.
pub fn first_free(candidates: impl IntoIterator<Item = u16>, len: u16) -> Option<PortBlock> {
    candidates
        .into_iter()
        .find(|base| (0..len).all(|i| port_is_free(base + i)))
        .map(|base| PortBlock { base, len })
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_aligned_and_inside_the_range() {
        for seed in [0, 1, 7, 999, u64::MAX, rand::random()] {
            for len in [1, 6, 12, 100] {
                let base = candidate_base(seed, len);
                assert!(PORT_RANGE.contains(&base), "{base} for seed {seed}");
                assert!(
                    base + len <= PORT_RANGE.end,
                    "{base}+{len} leaves the range"
                );
                assert_eq!((base - PORT_RANGE.start) % len, 0, "{base} not aligned");
            }
        }
    }

    #[test]
    fn different_seeds_reach_different_blocks() {
        let bases: std::collections::BTreeSet<u16> =
            (0..50).map(|seed| candidate_base(seed, 12)).collect();
        assert_eq!(bases.len(), 50);
    }

    #[test]
    fn a_block_with_a_taken_port_is_skipped() {
        let free = PortBlock::allocate(6).expect("a free block");
        let taken = PortBlock::allocate(6).expect("another free block");
        // Hold the middle port of one block: it must be passed over for the next candidate.
        let _held = TcpListener::bind(("127.0.0.1", taken.port(3))).expect("bind");
        let picked = first_free([taken.port(0), free.port(0)], 6).expect("one is free");
        assert_eq!(picked, free);
        assert_eq!(first_free([taken.port(0)], 6), None);
    }

    #[test]
    fn allocated_ports_are_distinct_and_bindable() {
        let block = PortBlock::allocate(12).expect("a free block");
        let ports: std::collections::BTreeSet<u16> = (0..12).map(|i| block.port(i)).collect();
        assert_eq!(ports.len(), 12);
        for port in ports {
            assert!(port_is_free(port), "port {port} is not free");
        }
    }
}
