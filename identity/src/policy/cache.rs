//! The process-wide cache of compiled versions, and the lookups of the active and shadow ones.
//!
//! Compiling is a pure function of the stored text and attributes, so a hit and a miss give the
//! same set: caching changes how fast apply decides, never what. Keyed by content (SHA-256 of
//! the text and the attributes), not by version, so the edge's dry runs and two clusters in one
//! test process cannot confuse each other.

use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};
use warrant_proto::log;

use super::{CompiledPolicy, evaluate};
use crate::{
    keys, query,
    state::{StateError, StateRead},
};

/// Most compiled versions kept: the active and shadow ones of a few clusters, plus the one being
/// published.
const CACHE_ENTRIES_MAX: usize = 8;

type CacheKey = [u8; 32];

/// Most recently used first.
static CACHE: Mutex<Vec<(CacheKey, Arc<CompiledPolicy>)>> = Mutex::new(Vec::new());

/// The compiled set for `text` and `attributes`, from the cache when it is there.
pub(super) fn compiled(text: &str, attributes: &[log::PolicyAttribute]) -> Arc<CompiledPolicy> {
    let key = cache_key(text, attributes);
    if let Some(hit) = lookup(&key) {
        return hit;
    }
    // Compiled outside the lock: a thousand policies take a while, and another thread may want
    // another version meanwhile. Two threads compiling the same one at once both get equal sets.
    let compiled = Arc::new(CompiledPolicy {
        inner: evaluate::compile(text, attributes),
    });
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if !cache.iter().any(|(it, _)| *it == key) {
        cache.insert(0, (key, Arc::clone(&compiled)));
        cache.truncate(CACHE_ENTRIES_MAX);
    }
    compiled
}

fn lookup(key: &CacheKey) -> Option<Arc<CompiledPolicy>> {
    // A panic elsewhere while holding the lock leaves the list intact (every change to it is
    // one call), so a poisoned lock is safe to keep using.
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    let position = cache.iter().position(|(it, _)| it == key)?;
    let entry = cache.remove(position);
    let hit = Arc::clone(&entry.1);
    cache.insert(0, entry);
    Some(hit)
}

/// SHA-256 over the text and the attributes, each framed by its length so no two inputs share
/// a key.
fn cache_key(text: &str, attributes: &[log::PolicyAttribute]) -> CacheKey {
    let mut hasher = Sha256::new();
    hasher.update((text.len() as u64).to_be_bytes());
    hasher.update(text.as_bytes());
    hasher.update((attributes.len() as u64).to_be_bytes());
    for attribute in attributes {
        hasher.update((attribute.name.len() as u64).to_be_bytes());
        hasher.update(attribute.name.as_bytes());
        hasher.update(attribute.r#type.to_be_bytes());
    }
    hasher.finalize().into()
}

/// See [`super::active`].
pub(super) fn active(
    state: &dyn StateRead,
) -> Result<Option<(u32, Arc<CompiledPolicy>)>, StateError> {
    let activation = query::policy_activation(state)?;
    version(state, activation.active_version)
}

/// See [`super::shadow`].
pub(super) fn shadow(
    state: &dyn StateRead,
) -> Result<Option<(u32, Arc<CompiledPolicy>)>, StateError> {
    let activation = query::policy_activation(state)?;
    version(state, activation.shadow_version)
}

/// Version `version` compiled; `None` for 0. The activation row naming a version never
/// published is a corrupt store.
fn version(
    state: &dyn StateRead,
    version: u32,
) -> Result<Option<(u32, Arc<CompiledPolicy>)>, StateError> {
    if version == 0 {
        return Ok(None);
    }
    let Some(published) = query::policy_version(state, version)?.and_then(|row| row.published)
    else {
        return Err(StateError::corrupt(
            keys::POLICY_ACTIVATION,
            format!("names policy version {version}, which was never published"),
        ));
    };
    Ok(Some((
        version,
        compiled(&published.text, &published.attributes),
    )))
}
