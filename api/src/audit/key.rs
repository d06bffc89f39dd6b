//! The node's audit key: the Ed25519 key that signs its checkpoints, and the names a note
//! verifier knows it by.
//!
//! It is a key of its own (`<data dir>/audit-key.pk8`, mode 0600, generated on first start by
//! the same file code as the token signing key), never rotated by `key rotate`: a monitor pins
//! one verifier key per node for as long as the log lives, while token keys come and go.

use std::path::Path;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use warrant_token::signing_key::{SigningKeyError, load_or_generate_pkcs8};

use super::note_text;

/// The key file, in the data directory.
pub const AUDIT_KEY_FILE: &str = "audit-key.pk8";

/// A node's checkpoint signing key with its origin, key name and verifier key.
pub struct AuditKey {
    key_pair: Ed25519KeyPair,
    public_key: [u8; 32],
    origin: String,
    key_name: String,
    verifier_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    #[error("audit key: {0}")]
    File(#[from] SigningKeyError),
    #[error(
        "the issuer {issuer:?} gives the checkpoint origin {origin:?}, which a signed note \
         cannot carry; allowed: no spaces, no '+', no control characters"
    )]
    Origin { issuer: String, origin: String },
}

impl AuditKey {
    /// Loads the node's audit key from `data_dir`, generating it on first start.
    pub fn load_or_generate(
        data_dir: &Path,
        issuer: &str,
        node_id: u64,
    ) -> Result<Self, AuditKeyError> {
        let path = data_dir.join(AUDIT_KEY_FILE);
        let pkcs8 = load_or_generate_pkcs8(&path)?;
        Self::from_pkcs8(&pkcs8, issuer, node_id)?.ok_or_else(|| {
            AuditKeyError::File(SigningKeyError::Invalid {
                path: path.display().to_string(),
            })
        })
    }

    /// The key from PKCS#8 bytes (`Ok(None)` when they are not an Ed25519 key).
    pub fn from_pkcs8(
        pkcs8: &[u8],
        issuer: &str,
        node_id: u64,
    ) -> Result<Option<Self>, AuditKeyError> {
        let origin = origin(issuer);
        if !note_text::is_note_name(&origin) {
            return Err(AuditKeyError::Origin {
                issuer: issuer.to_string(),
                origin,
            });
        }
        let Ok(key_pair) = Ed25519KeyPair::from_pkcs8(pkcs8) else {
            return Ok(None);
        };
        let Ok(public_key) = <[u8; 32]>::try_from(key_pair.public_key().as_ref()) else {
            return Ok(None);
        };
        let key_name = key_name(&origin, node_id);
        let verifier_key = note_text::verifier_key(&key_name, &public_key);
        Ok(Some(AuditKey {
            key_pair,
            public_key,
            origin,
            key_name,
            verifier_key,
        }))
    }

    /// The Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut signature = [0u8; 64];
        signature.copy_from_slice(self.key_pair.sign(message).as_ref());
        signature
    }

    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// The first line of every checkpoint body: `<issuer host and path>/audit`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `<origin>#node-<id>`: the name on this node's signature lines.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// `<key name>+<hex key id>+<base64(0x01 ‖ public key)>`, what monitors pin.
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }
}

/// The checkpoint origin of a cluster: its issuer without the scheme and trailing slashes, plus
/// `/audit` (`https://warrant.example/` → `warrant.example/audit`). Every node of a cluster
/// derives the same one, so their bodies are byte-identical at the same size.
pub fn origin(issuer: &str) -> String {
    let bare = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))
        .unwrap_or(issuer)
        .trim_end_matches('/');
    format!("{bare}/audit")
}

/// The key name of node `node_id`'s audit key.
pub fn key_name(origin: &str, node_id: u64) -> String {
    format!("{origin}#node-{node_id}")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn origin_and_key_name_follow_the_issuer() {
        assert_eq!(origin("https://warrant.example/"), "warrant.example/audit");
        assert_eq!(origin("http://127.0.0.1:8080"), "127.0.0.1:8080/audit");
        assert_eq!(origin("warrant.example//"), "warrant.example/audit");
        assert_eq!(
            key_name("warrant.example/audit", 3),
            "warrant.example/audit#node-3"
        );
    }

    #[test]
    fn the_key_is_generated_once_private_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = AuditKey::load_or_generate(dir.path(), "https://w.example", 1).expect("key");
        let path = dir.path().join(AUDIT_KEY_FILE);
        let mode = std::fs::metadata(&path).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = AuditKey::load_or_generate(dir.path(), "https://w.example", 1).expect("key");
        assert_eq!(first.public_key(), again.public_key());
        assert_eq!(first.verifier_key(), again.verifier_key());
        assert!(first.verifier_key().starts_with("w.example/audit#node-1+"));
        // Its own file, beside (not instead of) the token signing key.
        assert!(!dir.path().join("signing-key.p8").exists());
    }

    #[test]
    fn a_key_file_readable_by_others_or_not_a_key_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(AUDIT_KEY_FILE);
        std::fs::write(&path, b"not a key").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let error = AuditKey::load_or_generate(dir.path(), "https://w.example", 1)
            .err()
            .expect("refused");
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = AuditKey::load_or_generate(dir.path(), "https://w.example", 1)
            .err()
            .expect("refused");
        assert!(error.to_string().contains("0600"), "{error}");
    }

    #[test]
    fn an_issuer_no_note_can_name_is_refused() {
        let error = AuditKey::load_or_generate(
            tempfile::tempdir().expect("tempdir").path(),
            "https://a b.example",
            1,
        )
        .err()
        .expect("refused");
        assert!(matches!(error, AuditKeyError::Origin { .. }), "{error}");
    }
}
