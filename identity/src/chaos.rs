//! Planted bugs ("canaries") for chaos-tests/, compiled only with the `chaos` feature.
//!
//! Each canary is a known-wrong behaviour that the chaos suite must catch: it is inert unless
//! the environment variable [`CANARY_ENV`] (a comma-separated list of names) names it, read once
//! per process. This is the lowest crate, so `raft` and `api` ask here too; the bugs themselves
//! live where they bite (see ARCHITECTURE.md, "Fault injection").
//!
//! The variable has no `WARRANT_` prefix on purpose: the node maps every `WARRANT_*` variable
//! to a configuration key and refuses unknown ones.

use std::sync::OnceLock;

/// The environment variable that names the active canaries.
pub const CANARY_ENV: &str = "CHAOS_CANARY";

/// One planted bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Canary {
    /// The node acknowledges log appends (and applies) before they are durable: written without
    /// RocksDB's WAL, durable only when a memtable flush catches up, so SIGKILL loses them.
    AckBeforeFsync,
    /// A LINEARIZABLE client read is answered from local state, with no read index.
    LinearizableReadLocal,
    /// Verify on a node that is not the leader skips the revocation checks.
    SkipFollowerRevocation,
    /// Apply stamps what it writes with the node's wall clock instead of the batch's stamp.
    ApplyReadsClock,
}

impl Canary {
    /// Every canary, in a fixed order.
    pub const ALL: [Canary; 4] = [
        Canary::AckBeforeFsync,
        Canary::LinearizableReadLocal,
        Canary::SkipFollowerRevocation,
        Canary::ApplyReadsClock,
    ];

    /// The name [`CANARY_ENV`] uses for it.
    pub fn name(self) -> &'static str {
        match self {
            Canary::AckBeforeFsync => "ack_before_fsync",
            Canary::LinearizableReadLocal => "linearizable_read_local",
            Canary::SkipFollowerRevocation => "skip_follower_revocation",
            Canary::ApplyReadsClock => "apply_reads_clock",
        }
    }

    pub fn from_name(name: &str) -> Option<Canary> {
        Canary::ALL.into_iter().find(|canary| canary.name() == name)
    }

    fn bit(self) -> u8 {
        match self {
            Canary::AckBeforeFsync => 1,
            Canary::LinearizableReadLocal => 1 << 1,
            Canary::SkipFollowerRevocation => 1 << 2,
            Canary::ApplyReadsClock => 1 << 3,
        }
    }
}

/// A set of canaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Canaries {
    bits: u8,
}

impl Canaries {
    pub fn contains(self, canary: Canary) -> bool {
        self.bits & canary.bit() != 0
    }

    pub fn insert(&mut self, canary: Canary) {
        self.bits |= canary.bit();
    }

    pub fn is_empty(self) -> bool {
        self.bits == 0
    }

    /// The names of the canaries in the set, in [`Canary::ALL`]'s order.
    pub fn names(self) -> Vec<&'static str> {
        Canary::ALL
            .into_iter()
            .filter(|canary| self.contains(*canary))
            .map(Canary::name)
            .collect()
    }
}

/// A [`CANARY_ENV`] value that names canaries that do not exist. The ones it names that do
/// exist are still in `known`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{CANARY_ENV} names unknown canaries {unknown:?}; known: {}",
    Canary::ALL.map(Canary::name).join(", ")
)]
pub struct UnknownCanaries {
    pub unknown: Vec<String>,
    pub known: Canaries,
}

/// Parses a comma-separated list of canary names. Blanks around names and empty items are
/// ignored, so an empty or unset variable is the empty set.
pub fn parse(list: &str) -> Result<Canaries, UnknownCanaries> {
    let mut known = Canaries::default();
    let mut unknown = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match Canary::from_name(name) {
            Some(canary) => known.insert(canary),
            None if !unknown.iter().any(|u| u == name) => unknown.push(name.to_string()),
            None => {}
        }
    }
    if unknown.is_empty() {
        Ok(known)
    } else {
        Err(UnknownCanaries { unknown, known })
    }
}

/// The canaries [`CANARY_ENV`] names, read and parsed on the first call. Unknown names are
/// logged as an error on that call (so once per process) and otherwise ignored.
pub fn active() -> Canaries {
    static ACTIVE: OnceLock<Canaries> = OnceLock::new();
    *ACTIVE.get_or_init(|| {
        let list = std::env::var(CANARY_ENV).unwrap_or_default();
        parse(&list).unwrap_or_else(|error| {
            tracing::error!(%error, "unknown canary names ignored");
            error.known
        })
    })
}

/// Whether the planted bug `canary` is active in this process.
pub fn canary(canary: Canary) -> bool {
    active().contains(canary)
}

/// The time apply stamps on what a batch writes: the batch's own stamp, unless the
/// `apply_reads_clock` canary makes every replica read its own wall clock instead.
pub(crate) fn apply_time_unix_ms(batch_time_unix_ms: u64) -> u64 {
    if !canary(Canary::ApplyReadsClock) {
        return batch_time_unix_ms;
    }
    // Planted bug: replicas apply at different instants, so their events, rows and Merkle
    // roots differ.
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(batch_time_unix_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_to_its_canary() {
        for canary in Canary::ALL {
            let parsed = parse(canary.name()).expect("a known name");
            assert_eq!(parsed.names(), vec![canary.name()]);
            assert!(parsed.contains(canary));
        }
    }

    #[test]
    fn a_list_with_blanks_and_empty_items_names_each_canary_once() {
        let parsed = parse(" apply_reads_clock,,ack_before_fsync , apply_reads_clock,")
            .expect("known names");
        assert_eq!(
            parsed.names(),
            vec!["ack_before_fsync", "apply_reads_clock"]
        );
        assert!(!parsed.contains(Canary::LinearizableReadLocal));
    }

    #[test]
    fn empty_and_blank_lists_are_the_empty_set() {
        for list in ["", " ", ",", " , ,"] {
            let parsed = parse(list).expect("nothing named");
            assert!(parsed.is_empty(), "{list:?}");
            assert!(parsed.names().is_empty());
        }
    }

    #[test]
    fn unknown_names_are_an_error_that_keeps_the_known_ones() {
        let error =
            parse("skip_follower_revocation,ack_before_sync,ACK_BEFORE_FSYNC,ack_before_sync")
                .expect_err("unknown names");
        assert_eq!(error.unknown, vec!["ack_before_sync", "ACK_BEFORE_FSYNC"]);
        assert_eq!(error.known.names(), vec!["skip_follower_revocation"]);
        let message = error.to_string();
        assert!(message.contains("CHAOS_CANARY"), "{message}");
        assert!(message.contains("ack_before_sync"), "{message}");
        for canary in Canary::ALL {
            assert!(message.contains(canary.name()), "{message}");
        }
    }

    #[test]
    fn bits_are_distinct() {
        let mut all = Canaries::default();
        for canary in Canary::ALL {
            assert!(!all.contains(canary), "{canary:?} shares a bit");
            all.insert(canary);
        }
        assert_eq!(all.names().len(), Canary::ALL.len());
    }

    #[test]
    fn the_batch_stamp_is_kept_unless_the_canary_is_active() {
        // Tests run without CHAOS_CANARY.
        assert!(active().is_empty());
        assert_eq!(apply_time_unix_ms(1_234), 1_234);
    }
}
