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
