//! The node's signing keys in memory: the current one, which signs new tokens, and those it
//! replaced in this process's lifetime, which still sign again the tokens a retried request
//! committed before a rotation. A leaf: the service context holds this set, and key rotation
//! changes it.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
};

use warrant_token::NodeSigningKey;

/// Earlier keys remembered for re-signing retried issuances; older ones are forgotten.
pub const PREVIOUS_KEYS_MAX: usize = 8;

pub struct SigningKeys {
    current: RwLock<Arc<NodeSigningKey>>,
    previous: RwLock<BTreeMap<String, Arc<NodeSigningKey>>>,
}

impl SigningKeys {
    pub fn new(key: Arc<NodeSigningKey>) -> Self {
        Self {
            current: RwLock::new(key),
            previous: RwLock::default(),
        }
    }

    pub fn current(&self) -> Arc<NodeSigningKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The key named `key_id`, if this node holds it.
    pub fn by_id(&self, key_id: &str) -> Option<Arc<NodeSigningKey>> {
        let current = self.current();
        if current.key_id() == key_id {
            return Some(current);
        }
        self.previous
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key_id)
            .cloned()
    }

    /// Makes `key` current and returns the key it replaced.
    pub fn install(&self, key: Arc<NodeSigningKey>) -> Arc<NodeSigningKey> {
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|e| e.into_inner()),
            key,
        );
        let mut previous = self.previous.write().unwrap_or_else(|e| e.into_inner());
        if PREVIOUS_KEYS_MAX <= previous.len() {
            previous.clear();
        }
        previous.insert(old.key_id().to_string(), old.clone());
        old
    }
}
