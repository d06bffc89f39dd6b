//! The node's checkpoint signer, shared by the services (`Context::checkpoints`).
//!
//! [`Core`] is the synchronous part, over any `StateRead`: a verification step, a signature
//! at a confirmed size (verify, plan, sign, persist, then remember), and proofs checked against
//! the verified tree. [`CheckpointSigner`] runs it for a Raft node: every signature follows a
//! LINEARIZABLE barrier, and every step runs on a blocking thread. One operation at a time
//! holds `work`, so the verified range only ever grows by steps taken in order.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use warrant_identity::{
    StateRead,
    audit::{merkle::CompactRange, tree},
};
use warrant_proto::api;
use warrant_raft::{RaftNode, ReadConsistency, StateReader};
use warrant_token::note;

use super::{
    anchor::ProofRefusal,
    key::AuditKey,
    record::{self, RecordError, Signed},
    rules::{Plan, Refusal, Rules, SignerState},
    verify::{self, VerifyError},
};
use crate::{
    error::ApiError,
    limits::{CHECKPOINT_SIGN_INTERVAL_MIN, VERIFY_LEAVES_PER_STEP},
};

/// The signer's synchronous part.
pub struct Core {
    key: Arc<AuditKey>,
    record_path: PathBuf,
    rules: Mutex<Rules>,
}

/// A failed step: refused by the rules, or the store failed to read.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("read the tree: {0}")]
    State(#[from] warrant_identity::StateError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("sign the checkpoint: {0}")]
    Note(String),
}

impl From<StepError> for ApiError {
    fn from(error: StepError) -> Self {
        match error {
            StepError::Refused(refusal) => refusal.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl Core {
    /// Reads the record strictly: a corrupt record is an error that names the file.
    pub fn open(key: Arc<AuditKey>, record_path: PathBuf) -> Result<Self, RecordError> {
        let signed = record::read(&record_path, &key)?;
        Ok(Core {
            key,
            record_path,
            rules: Mutex::new(Rules::new(signed)),
        })
    }

    fn rules(&self) -> MutexGuard<'_, Rules> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn key(&self) -> &AuditKey {
        &self.key
    }

    pub fn state(&self) -> SignerState {
        self.rules().state().clone()
    }

    /// The largest checkpoint signed, if any.
    pub fn signed(&self) -> Option<Signed> {
        self.rules().signed().cloned()
    }

    /// The verified tree's size.
    pub fn verified_size(&self) -> u64 {
        self.rules().verified().size()
    }

    /// One bounded verification step towards the store's current size. Returns whether the
    /// verified range reached it. A fault makes the signer corrupt, logged the first time.
    pub fn step(&self, state: &dyn StateRead) -> Result<bool, StepError> {
        let tree_size = tree::size(state)?;
        let (unchecked, from) = {
            let mut rules = self.rules();
            let unchecked = rules.observe(tree_size)?;
            (unchecked, rules.verified().clone())
        };
        if let Some(frontier) = unchecked {
            match verify::check_signed(state, &frontier) {
                Ok(()) => self.rules().signed_checked(),
                Err(e) => return Err(self.failed(e)),
            }
        }
        match verify::step(state, &from, tree_size, VERIFY_LEAVES_PER_STEP) {
            Ok(range) => {
                let done = tree_size <= range.size();
                self.rules().advanced(range, tree_size);
                Ok(done)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    fn failed(&self, error: VerifyError) -> StepError {
        match error {
            VerifyError::State(e) => StepError::State(e),
            VerifyError::Fault(fault) => {
                let mut rules = self.rules();
                if rules.fault(fault.clone()) {
                    tracing::error!(
                        index = fault.index,
                        seq = fault.index + 1,
                        what = %fault.what,
                        "the audit tree disagrees with the event records: this node signs and \
                         proves nothing more; restore it from a healthy member"
                    );
                }
                StepError::Refused(Refusal::Corrupt {
                    index: fault.index,
                    what: fault.what,
                })
            }
        }
    }

    /// Verifies up to at least `size` (the store must hold it), step by step.
    pub fn verify_to(&self, state: &dyn StateRead, size: u64) -> Result<(), StepError> {
        while self.verified_size() < size {
            if self.step(state)? && self.verified_size() < size {
                let verified = self.verified_size();
                return Err(Refusal::Behind {
                    verified,
                    confirmed: size,
                }
                .into());
            }
        }
        Ok(())
    }

    /// Signs the verified tree once it covers `confirmed_size`, the size a LINEARIZABLE barrier
    /// confirmed current, and persists the record before returning it. At the record's size the
    /// record is returned as it is. Returns the checkpoint and whether it is a new signature.
    pub fn sign(
        &self,
        state: &dyn StateRead,
        confirmed_size: u64,
        now_unix_ms: u64,
    ) -> Result<(Signed, bool), StepError> {
        self.verify_to(state, confirmed_size)?;
        let plan = self.rules().plan(confirmed_size)?;
        let range = match plan {
            Plan::Keep => {
                let signed = self.signed().ok_or(Refusal::Empty)?;
                return Ok((signed, false));
            }
            Plan::Sign(range) => range,
        };
        let root = range.root();
        let note = note::checkpoint_body(self.key.origin(), range.size(), &root)
            .and_then(|body| self.key.sign(&body))
            .map_err(|e| StepError::Note(e.to_string()))?;
        let signed = Signed {
            note,
            tree_size: range.size(),
            root,
            frontier: range,
            signed_at_unix_ms: now_unix_ms,
        };
        record::write(&self.record_path, &signed)?;
        self.rules().recorded(signed.clone());
        Ok((signed, true))
    }

    /// Runs `prove` against the verified tree, once it covers `size` (stepping there when
    /// `may_step`, else refusing). A fault it reports makes the signer corrupt: the stored tree
    /// lied to it.
    pub fn prove<T>(
        &self,
        state: &dyn StateRead,
        size: u64,
        may_step: bool,
        prove: impl FnOnce(&dyn StateRead, &CompactRange) -> Result<T, ProofRefusal>,
    ) -> Result<T, ApiError> {
        if let Some(refusal) = self.rules().refusal() {
            return Err(refusal.into());
        }
        if may_step {
            self.verify_to(state, size)?;
        }
        let verified = self.rules().verified().clone();
        if verified.size() < size {
            return Err(Refusal::Behind {
                verified: verified.size(),
                confirmed: size,
            }
            .into());
        }
        match prove(state, &verified) {
            Ok(proof) => Ok(proof),
            Err(ProofRefusal::Fault(fault)) => Err(self.failed(VerifyError::Fault(fault)).into()),
            Err(ProofRefusal::OutOfRange(what)) => Err(ApiError::new(
                tonic::Code::OutOfRange,
                crate::error::Reason::TreeSizeOutOfRange,
                what,
            )),
            Err(ProofRefusal::State(e)) => Err(crate::storage::storage(e)),
        }
    }

    /// The checkpoint `signed` as served.
    pub fn checkpoint(&self, signed: &Signed, node_id: u64, applied_seq: u64) -> api::Checkpoint {
        api::Checkpoint {
            note: signed.note.clone(),
            origin: self.key.origin().to_string(),
            tree_size: signed.tree_size,
            root_hash: signed.root.to_vec(),
            node_id,
            verifier_key: self.key.verifier_key().to_string(),
            applied_seq: applied_seq.max(signed.tree_size),
        }
    }
}

/// The signer of a running node.
pub struct CheckpointSigner {
    node: RaftNode,
    core: Arc<Core>,
    /// One verification or signature at a time; the instant of the last new signature.
    work: tokio::sync::Mutex<Option<Instant>>,
}

impl CheckpointSigner {
    /// The signer of `node`, over the record in `data_dir` (read strictly).
    pub fn open(
        node: RaftNode,
        key: Arc<AuditKey>,
        data_dir: &std::path::Path,
    ) -> Result<Self, RecordError> {
        Ok(CheckpointSigner {
            node,
            core: Arc::new(Core::open(key, record::record_path(data_dir))?),
            work: tokio::sync::Mutex::new(None),
        })
    }

    pub fn key(&self) -> &AuditKey {
        self.core.key()
    }

    pub fn state(&self) -> SignerState {
        self.core.state()
    }

    /// Whether the tree grew past the last checkpoint signed.
    pub fn grew(&self) -> bool {
        let signed = self.core.signed().map_or(0, |s| s.tree_size);
        signed < self.node.applied().seq
    }

    /// The latest checkpoint this node signed.
    pub fn latest(&self) -> Result<api::Checkpoint, ApiError> {
        if let Some(refusal) = self.core.rules().refusal() {
            return Err(refusal.into());
        }
        let signed = self.core.signed().ok_or(Refusal::Empty)?;
        Ok(self.serve(&signed))
    }

    fn serve(&self, signed: &Signed) -> api::Checkpoint {
        self.core
            .checkpoint(signed, self.node.node_id(), self.node.applied().seq)
    }

    /// One verification step on a blocking thread (the start verification is many of them,
    /// so stopping the node interrupts it between steps).
    pub async fn step(&self) -> Result<bool, ApiError> {
        let _one = self.work.lock().await;
        let core = self.core.clone();
        let reader = self.node.reader();
        blocking(move || core.step(&reader).map_err(ApiError::from)).await
    }

    /// A checkpoint signed now at the size a LINEARIZABLE barrier confirmed (or the record,
    /// when that is its size). Within CHECKPOINT_SIGN_INTERVAL_MIN of the last signature the
    /// latest is returned instead.
    pub async fn sign_fresh(&self) -> Result<api::Checkpoint, ApiError> {
        let mut last = self.work.lock().await;
        if last.is_some_and(|at| at.elapsed() < CHECKPOINT_SIGN_INTERVAL_MIN) {
            return self.latest();
        }
        self.sign_locked(&mut last).await
    }

    /// A checkpoint of at least `size` leaves: the latest when it is large enough, else one
    /// signed now (after the rest of the minimum interval, if a signature was that recent).
    pub async fn checkpoint_at_least(&self, size: u64) -> Result<api::Checkpoint, ApiError> {
        if let Ok(latest) = self.latest()
            && size <= latest.tree_size
        {
            return Ok(latest);
        }
        let mut last = self.work.lock().await;
        if let Some(at) = *last {
            tokio::time::sleep(CHECKPOINT_SIGN_INTERVAL_MIN.saturating_sub(at.elapsed())).await;
        }
        let checkpoint = self.sign_locked(&mut last).await?;
        if checkpoint.tree_size < size {
            return Err(Refusal::Behind {
                verified: checkpoint.tree_size,
                confirmed: size,
            }
            .into());
        }
        Ok(checkpoint)
    }

    async fn sign_locked(&self, last: &mut Option<Instant>) -> Result<api::Checkpoint, ApiError> {
        if self.core.state() == SignerState::Verifying {
            return Err(Refusal::Verifying.into());
        }
        // The rule that keeps a node whose whole data dir (record included) was rolled back
        // from signing below a size any node signed: those sizes were committed, so the read
        // index is at or past them, and the node signs only once it applied that far.
        let confirmed = self
            .node
            .read_barrier(ReadConsistency::Linearizable)
            .await?;
        let core = self.core.clone();
        let reader = self.node.reader();
        let now = now_unix_ms();
        let (signed, new) = blocking(move || {
            core.sign(&reader, confirmed.seq, now)
                .map_err(ApiError::from)
        })
        .await?;
        if new {
            *last = Some(Instant::now());
            tracing::debug!(tree_size = signed.tree_size, "checkpoint signed");
        }
        Ok(self.serve(&signed))
    }

    /// Runs `prove` on a blocking thread against the verified tree covering `size`. Proofs
    /// within the verified tree run side by side; one past it first verifies the leaves
    /// between, holding `work` like a signature.
    pub async fn prove<T: Send + 'static>(
        &self,
        size: u64,
        prove: impl FnOnce(&dyn StateRead, &CompactRange) -> Result<T, ProofRefusal> + Send + 'static,
    ) -> Result<T, ApiError> {
        let core = self.core.clone();
        let reader: StateReader = self.node.reader();
        if size <= core.verified_size() {
            return blocking(move || core.prove(&reader, size, false, prove)).await;
        }
        let _one = self.work.lock().await;
        blocking(move || core.prove(&reader, size, true, prove)).await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("audit tree task: {e}")))?
}

/// The wall clock, for the record's `signed_at_unix_ms` only (nothing is decided by it).
fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
