//! Which trace a batch's apply belongs to.
//!
//! openraft applies a committed entry on its own state-machine task, far from the proposer that
//! handed it in, and nothing of the caller's span travels with the entry. So the leader's
//! proposer registers each traced batch here (by a hash of its encoded bytes) while it waits for
//! it, and the state machine looks the batches it applies up: their apply span becomes a child
//! of the batch's replication-wait span. Followers register nothing and trace no apply.
//!
//! Nothing here touches what is applied: a lookup that finds nothing only means no span.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex},
};

use openraft::EntryPayload;

use crate::types::Entry;

/// Batches registered at once: at least the proposer's batches in flight (it asserts so). A
/// batch beyond it goes untraced rather than growing the list.
pub(crate) const TRACED_BATCHES_MAX: usize = 2;

/// The traced batches in flight on this node. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct ApplyTraces {
    batches: Arc<Mutex<Vec<(u64, tracing::Span)>>>,
}

/// A registered batch; dropping it unregisters the batch.
pub(crate) struct Registered {
    traces: ApplyTraces,
    key: u64,
}

impl ApplyTraces {
    /// Registers the batch encoded as `payload`, proposed under `span`. Returns `None` (and
    /// registers nothing) when `span` is not recorded by OpenTelemetry: with traces off, apply
    /// pays nothing.
    pub(crate) fn register(&self, payload: &[u8], span: &tracing::Span) -> Option<Registered> {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        if !span.context().span().span_context().is_valid() {
            return None;
        }
        let key = key_of(payload);
        let mut batches = self.lock();
        if TRACED_BATCHES_MAX <= batches.len() {
            return None;
        }
        batches.push((key, span.clone()));
        Some(Registered {
            traces: self.clone(),
            key,
        })
    }

    /// The span to apply `entries` in: a child of the first traced batch's span, linked to the
    /// other traced ones; disabled when none of them is traced.
    pub(crate) fn apply_span(&self, entries: &[Entry]) -> tracing::Span {
        let batches = self.lock();
        if batches.is_empty() {
            return tracing::Span::none();
        }
        let mut parents = entries.iter().filter_map(|entry| match &entry.payload {
            EntryPayload::Normal(payload) => {
                let key = key_of(&payload.0);
                batches.iter().find(|(k, _)| *k == key).map(|(_, s)| s)
            }
            _ => None,
        });
        let Some(first) = parents.next() else {
            return tracing::Span::none();
        };
        let span = tracing::info_span!(parent: first, "raft.apply", entries = entries.len());
        for other in parents {
            span.follows_from(other);
        }
        span
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, tracing::Span)>> {
        self.batches.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut batches = self.traces.lock();
        if let Some(at) = batches.iter().position(|(k, _)| *k == self.key) {
            batches.swap_remove(at);
        }
    }
}

/// Identifies a batch by its bytes within this process (the proposer's copy and the one
/// openraft reads back from the log are equal bytes, not the same allocation).
fn key_of(payload: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    payload.hash(&mut hasher);
    hasher.finish()
}
