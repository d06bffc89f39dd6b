//! The key that hides secrets in request digests. A leaf: it imports nothing from this crate.
//!
//! A command's request digest lets apply tell a retry (same idempotency key, same digest) from a
//! different request under a reused key, and the log keeps it for years. A request that carries
//! a client secret is digested with the secret replaced: by its plain SHA-256 before, which let
//! anyone who reads the log (an auditor, a backup, a snapshot) test guesses at the secret offline
//! for the cost of a hash. Now it is replaced by HMAC-SHA256 under this key.
//!
//! The key must be the same on every node: apply compares digests made by whichever node each
//! attempt reached, so a per-node key would refuse a retry sent to another node as a reused key.
//! It must not be in the log. So it is derived from the admin token, which every member holds
//! (any node authenticates the admin) and the log never carries, through HMAC with a label of its
//! own: the derived key reveals nothing about the token, and nothing else uses it. Changing the
//! admin token changes the key; a retry of a secret-bearing command (RegisterAgent with a secret,
//! AddCredential) that straddles the change is then refused as IDEMPOTENCY_KEY_REUSED, never
//! applied twice.

use aws_lc_rs::hmac;

/// What the digest key is derived for, so it is never the key of anything else.
const DERIVATION_LABEL: &[u8] = b"warrant request-digest secret key v1";

/// The cluster's key for secrets in request digests. Cheap to clone.
#[derive(Clone)]
pub struct DigestKey {
    key: hmac::Key,
}

impl DigestKey {
    /// The key derived from `admin_token`, the same on every member.
    pub fn from_admin_token(admin_token: &str) -> Self {
        let root = hmac::Key::new(hmac::HMAC_SHA256, admin_token.as_bytes());
        let derived = hmac::sign(&root, DERIVATION_LABEL);
        DigestKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    /// A secret's place in a request digest: HMAC-SHA256 under the key, hex; empty for none.
    pub fn secret(&self, secret: &str) -> String {
        if secret.is_empty() {
            return String::new();
        }
        hex::encode(hmac::sign(&self.key, secret.as_bytes()).as_ref())
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    const SECRET: &str = "a-client-secret-of-24-chars";

    #[test]
    fn every_node_of_a_cluster_digests_a_secret_alike() {
        let node_1 = DigestKey::from_admin_token("admin-token-1");
        let node_2 = DigestKey::from_admin_token("admin-token-1");
        assert_eq!(node_1.secret(SECRET), node_2.secret(SECRET));
        assert_ne!(
            node_1.secret(SECRET),
            node_1.secret("another-secret-of-24-chars")
        );
        assert_eq!(node_1.secret(""), "");
    }

    /// Before, a secret's place held its plain SHA-256: whoever read the log could check a guess.
    #[test]
    fn the_digest_cannot_be_computed_without_the_cluster_key() {
        let key = DigestKey::from_admin_token("admin-token-1");
        let digest = key.secret(SECRET);
        assert_eq!(digest.len(), 64);
        assert_ne!(digest, hex::encode(Sha256::digest(SECRET.as_bytes())));
        // Nor with the admin token itself as the key: the key is derived, for this use alone.
        let with_token = hmac::Key::new(hmac::HMAC_SHA256, b"admin-token-1");
        let keyed_by_token = hex::encode(hmac::sign(&with_token, SECRET.as_bytes()).as_ref());
        assert_ne!(digest, keyed_by_token);
        // Another cluster, another key.
        let other = DigestKey::from_admin_token("admin-token-2");
        assert_ne!(digest, other.secret(SECRET));
    }
}
