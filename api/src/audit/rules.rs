//! The signer's rules as a state machine, pure: no clock, no disk, no Raft. The signer
//! (`signer`) feeds it what it read (the tree size, verified ranges, faults) and asks it what
//! may be signed.
//!
//! - Never a size below the record's: a tree smaller than the record is `Rollback` until it has
//!   caught up.
//! - Never another root at the record's size: the root signed is always the verified range's,
//!   which starts from the record's frontier, and at the record's size the record is kept.
//! - Never a size not confirmed current: [`Rules::plan`] takes the size a LINEARIZABLE barrier
//!   confirmed and refuses while the verified tree is below it.
//! - A fault is `Corrupt` forever (the first one is kept and reported once).

use tonic::Code;
use warrant_identity::audit::merkle::CompactRange;

use super::{record::Signed, verify::Fault};
use crate::error::{ApiError, Reason};

/// What the signer can do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerState {
    /// Verifying the leaves since the record (at start, or after a rollback caught up).
    Verifying,
    /// Signs and proves.
    Ready,
    /// The tree is smaller than a checkpoint this node signed: its data was rolled back.
    Rollback { signed_size: u64, tree_size: u64 },
    /// The stored tree disagrees with the event records, first at leaf `index`.
    Corrupt { index: u64, what: String },
}

/// Why nothing can be signed or proven now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this node is still verifying its tree against its event records")]
    Verifying,
    #[error("the tree is empty: there is nothing to sign")]
    Empty,
    #[error("this node has verified {verified} leaves, below the {confirmed} confirmed current")]
    Behind { verified: u64, confirmed: u64 },
    #[error(
        "this node's tree has {tree_size} leaves, fewer than the {signed_size} it signed before"
    )]
    Rollback { signed_size: u64, tree_size: u64 },
    #[error("this node's stored tree disagrees with its event records at leaf {index}: {what}")]
    Corrupt { index: u64, what: String },
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let message = refusal.to_string();
        match refusal {
            Refusal::Verifying | Refusal::Empty | Refusal::Behind { .. } => {
                ApiError::new(Code::Unavailable, Reason::CheckpointUnavailable, message)
            }
            Refusal::Rollback {
                signed_size,
                tree_size,
            } => ApiError::new(Code::FailedPrecondition, Reason::AuditRollback, message)
                .with("signed_size", signed_size.to_string())
                .with("tree_size", tree_size.to_string()),
            Refusal::Corrupt { index, .. } => {
                ApiError::new(Code::DataLoss, Reason::AuditTreeCorrupt, message)
                    .with("index", index.to_string())
                    .with("seq", index.saturating_add(1).to_string())
            }
        }
    }
}

/// What to do at a confirmed size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The record is at that size already: serve it, sign nothing.
    Keep,
    /// Sign the verified range (its size and root).
    Sign(CompactRange),
}

pub struct Rules {
    state: SignerState,
    signed: Option<Signed>,
    verified: CompactRange,
    /// Whether the stored tree at the record's size was checked against the record.
    signed_checked: bool,
}

impl Rules {
    /// The rules at start, over the record read from disk (if this node ever signed).
    pub fn new(signed: Option<Signed>) -> Self {
        let verified = signed
            .as_ref()
            .map(|s| s.frontier.clone())
            .unwrap_or_default();
        Rules {
            state: SignerState::Verifying,
            signed_checked: signed.is_none(),
            signed,
            verified,
        }
    }

    pub fn state(&self) -> &SignerState {
        &self.state
    }

    /// The largest checkpoint signed.
    pub fn signed(&self) -> Option<&Signed> {
        self.signed.as_ref()
    }

    /// The tree recomputed from the event records so far.
    pub fn verified(&self) -> &CompactRange {
        &self.verified
    }

    /// The refusal the current state means, if any.
    pub fn refusal(&self) -> Option<Refusal> {
        match &self.state {
            SignerState::Ready => None,
            SignerState::Verifying => Some(Refusal::Verifying),
            SignerState::Rollback {
                signed_size,
                tree_size,
            } => Some(Refusal::Rollback {
                signed_size: *signed_size,
                tree_size: *tree_size,
            }),
            SignerState::Corrupt { index, what } => Some(Refusal::Corrupt {
                index: *index,
                what: what.clone(),
            }),
        }
    }

    /// The store holds `tree_size` leaves now. Returns the record whose stored tree still has
    /// to be checked (once), or refuses: corrupt stays corrupt, and a tree below the record is
    /// a rollback until it has caught up.
    pub fn observe(&mut self, tree_size: u64) -> Result<Option<CompactRange>, Refusal> {
        if let SignerState::Corrupt { index, what } = &self.state {
            return Err(Refusal::Corrupt {
                index: *index,
                what: what.clone(),
            });
        }
        let signed_size = self.signed.as_ref().map_or(0, |s| s.tree_size);
        if tree_size < signed_size {
            self.state = SignerState::Rollback {
                signed_size,
                tree_size,
            };
            return Err(Refusal::Rollback {
                signed_size,
                tree_size,
            });
        }
        if matches!(self.state, SignerState::Rollback { .. }) {
            self.state = SignerState::Verifying;
        }
        if tree_size < self.verified.size() {
            // Leaves verified but never signed are gone (a rollback below what was verified,
            // above the record): verify again from the record.
            self.verified = self
                .signed
                .as_ref()
                .map(|s| s.frontier.clone())
                .unwrap_or_default();
            self.state = SignerState::Verifying;
        }
        Ok(match (&self.signed, self.signed_checked) {
            (Some(signed), false) => Some(signed.frontier.clone()),
            _ => None,
        })
    }

    /// The stored tree at the record's size is the one signed.
    pub fn signed_checked(&mut self) {
        self.signed_checked = true;
    }

    /// `range` was verified, extending the verified range, while the store held `tree_size`
    /// leaves: caught up, a verifying signer is ready.
    pub fn advanced(&mut self, range: CompactRange, tree_size: u64) {
        if matches!(self.state, SignerState::Corrupt { .. }) || range.size() < self.verified.size()
        {
            return;
        }
        self.verified = range;
        if self.state == SignerState::Verifying
            && self.signed_checked
            && tree_size <= self.verified.size()
        {
            self.state = SignerState::Ready;
        }
    }

    /// A fault: corrupt, for good. Returns whether it is the first (the one to log).
    pub fn fault(&mut self, fault: Fault) -> bool {
        if matches!(self.state, SignerState::Corrupt { .. }) {
            return false;
        }
        self.state = SignerState::Corrupt {
            index: fault.index,
            what: fault.what,
        };
        true
    }

    /// What may be signed now that a barrier confirmed `confirmed_size` current.
    pub fn plan(&self, confirmed_size: u64) -> Result<Plan, Refusal> {
        if let Some(refusal) = self.refusal() {
            return Err(refusal);
        }
        let size = self.verified.size();
        if size < confirmed_size {
            return Err(Refusal::Behind {
                verified: size,
                confirmed: confirmed_size,
            });
        }
        if size == 0 {
            return Err(Refusal::Empty);
        }
        match &self.signed {
            Some(signed) if size < signed.tree_size => Err(Refusal::Rollback {
                signed_size: signed.tree_size,
                tree_size: size,
            }),
            Some(signed) if size == signed.tree_size && self.verified.root() != signed.root => {
                Err(Refusal::Corrupt {
                    index: 0,
                    what: format!(
                        "the verified root at the signed size {size} is not the signed one"
                    ),
                })
            }
            Some(signed) if size == signed.tree_size => Ok(Plan::Keep),
            _ => Ok(Plan::Sign(self.verified.clone())),
        }
    }

    /// `signed` was written to the record: it is the largest signed now.
    pub fn recorded(&mut self, signed: Signed) {
        if self
            .signed
            .as_ref()
            .is_none_or(|s| s.tree_size < signed.tree_size)
        {
            self.signed = Some(signed);
        }
    }
}

#[cfg(test)]
mod tests {
    use warrant_identity::audit::merkle;

    use super::*;

    fn range(size: u64) -> CompactRange {
        let mut range = CompactRange::new();
        for i in 0..size {
            range
                .push(merkle::leaf_hash(&i.to_be_bytes()))
                .expect("push");
        }
        range
    }

    fn signed_at(size: u64) -> Signed {
        let frontier = range(size);
        Signed {
            note: String::new(),
            tree_size: size,
            root: frontier.root(),
            frontier,
            signed_at_unix_ms: 0,
        }
    }

    /// Drives the rules as the signer does, with verification standing in as "the leaves are
    /// the ones `range` gives".
    fn caught_up(rules: &mut Rules, tree_size: u64) {
        if rules.observe(tree_size).expect("observed").is_some() {
            rules.signed_checked();
        }
        rules.advanced(range(tree_size), tree_size);
    }

    #[test]
    fn a_fresh_node_signs_only_a_confirmed_non_empty_tree() {
        let mut rules = Rules::new(None);
        assert_eq!(rules.plan(0), Err(Refusal::Verifying));
        caught_up(&mut rules, 0);
        assert_eq!(rules.state(), &SignerState::Ready);
        assert_eq!(rules.plan(0), Err(Refusal::Empty));
        caught_up(&mut rules, 3);
        assert_eq!(rules.plan(3), Ok(Plan::Sign(range(3))));
        assert_eq!(
            rules.plan(4),
            Err(Refusal::Behind {
                verified: 3,
                confirmed: 4
            })
        );
        rules.recorded(signed_at(3));
        assert_eq!(rules.plan(3), Ok(Plan::Keep));
        // A smaller signature recorded late never replaces the larger one.
        rules.recorded(signed_at(2));
        assert_eq!(rules.signed().map(|s| s.tree_size), Some(3));
    }

    #[test]
    fn a_tree_below_the_record_is_a_rollback_until_it_caught_up() {
        let mut rules = Rules::new(Some(signed_at(8)));
        let rollback = Refusal::Rollback {
            signed_size: 8,
            tree_size: 5,
        };
        assert_eq!(rules.observe(5), Err(rollback.clone()));
        assert_eq!(rules.plan(5), Err(rollback.clone()));
        assert_eq!(rules.refusal(), Some(rollback));
        // Caught up: verifying (the stored tree at 8 is checked once), then ready.
        assert_eq!(rules.observe(8), Ok(Some(range(8))));
        assert_eq!(rules.state(), &SignerState::Verifying);
        rules.signed_checked();
        rules.advanced(range(9), 9);
        assert_eq!(rules.state(), &SignerState::Ready);
        assert_eq!(rules.plan(9), Ok(Plan::Sign(range(9))));
    }

    #[test]
    fn another_root_at_the_signed_size_is_never_planned() {
        let mut forged = signed_at(4);
        forged.root = [9u8; 32];
        let mut rules = Rules::new(Some(forged));
        rules.signed_checked();
        rules.observe(4).expect("observed");
        rules.advanced(range(4), 4);
        assert!(matches!(rules.plan(4), Err(Refusal::Corrupt { .. })));
    }

    #[test]
    fn a_fault_is_final_and_reported_once() {
        let mut rules = Rules::new(None);
        caught_up(&mut rules, 4);
        let fault = Fault {
            index: 2,
            what: "flipped".to_string(),
        };
        assert!(rules.fault(fault.clone()));
        assert!(!rules.fault(Fault { index: 3, ..fault }));
        assert!(matches!(
            rules.observe(4),
            Err(Refusal::Corrupt { index: 2, .. })
        ));
        rules.advanced(range(5), 5);
        assert!(matches!(
            rules.plan(5),
            Err(Refusal::Corrupt { index: 2, .. })
        ));
    }

    #[test]
    fn refusals_map_to_their_reasons() {
        let cases = [
            (Refusal::Verifying, Reason::CheckpointUnavailable),
            (Refusal::Empty, Reason::CheckpointUnavailable),
            (
                Refusal::Rollback {
                    signed_size: 2,
                    tree_size: 1,
                },
                Reason::AuditRollback,
            ),
            (
                Refusal::Corrupt {
                    index: u64::MAX,
                    what: String::new(),
                },
                Reason::AuditTreeCorrupt,
            ),
        ];
        for (refusal, reason) in cases {
            let error = ApiError::from(refusal);
            assert_eq!(error.reason, reason);
            assert_eq!(error.code, reason.status());
        }
    }
}
