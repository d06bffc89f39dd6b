//! The node's audit key: the Ed25519 key that signs its checkpoints, and the names a note
//! verifier knows it by.
//!
//! It is a key of its own (`<data dir>/audit-key.pk8`, mode 0600, generated on first start by
//! the same file code as the token signing key), never rotated by `key rotate`: a monitor pins
//! one verifier key per node for as long as the log lives, while token keys come and go.

use std::path::Path;

use warrant_token::{
    NodeSigningKey,
    note::{self, NoteError, VerifierKey},
    signing_key::SigningKeyError,
};

/// The key file, in the data directory.
pub const AUDIT_KEY_FILE: &str = "audit-key.pk8";

/// A node's checkpoint signing key with its origin, key name and verifier key.
pub struct AuditKey {
    key: NodeSigningKey,
    origin: String,
    verifier: VerifierKey,
    verifier_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    #[error("audit key: {0}")]
    File(#[from] SigningKeyError),
    #[error(
        "the issuer {issuer:?} gives a checkpoint key name a signed note cannot carry: {source}"
    )]
    Name { issuer: String, source: NoteError },
}

impl AuditKey {
    /// Loads the node's audit key from `data_dir`, generating it on first start.
    pub fn load_or_generate(
        data_dir: &Path,
        issuer: &str,
        node_id: u64,
    ) -> Result<Self, AuditKeyError> {
        let key = NodeSigningKey::load_or_generate_file(&data_dir.join(AUDIT_KEY_FILE))?;
        Self::new(key, issuer, node_id)
    }

    /// `key` as node `node_id`'s audit key in the cluster of `issuer`.
    pub fn new(key: NodeSigningKey, issuer: &str, node_id: u64) -> Result<Self, AuditKeyError> {
        let origin = note::checkpoint_origin(issuer);
        let name = note::node_key_name(&origin, node_id);
        // The body's first line must be one line too; the key name check covers it (no
        // whitespace, no control character).
        let verifier =
            VerifierKey::new(&name, key.public_key()).map_err(|source| AuditKeyError::Name {
                issuer: issuer.to_string(),
                source,
            })?;
        Ok(AuditKey {
            key,
            origin,
            verifier_key: verifier.to_string(),
            verifier,
        })
    }

    /// The note of `body` signed by this key.
    pub fn sign(&self, body: &str) -> Result<String, NoteError> {
        note::sign(body, self.verifier.name(), &self.key)
    }

    /// The first line of every checkpoint body: `<issuer host and path>/audit`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `<origin>#node-<id>`: the name on this node's signature lines.
    pub fn key_name(&self) -> &str {
        self.verifier.name()
    }

    /// This key as a note reader trusts it.
    pub fn verifier(&self) -> &VerifierKey {
        &self.verifier
    }

    /// `<key name>+<hex key id>+<base64(0x01 ‖ public key)>`, what monitors pin.
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn origin_and_key_name_follow_the_issuer() {
        let key = NodeSigningKey::generate_ephemeral().expect("key");
        let key = AuditKey::new(key, "https://warrant.example/", 3).expect("names");
        assert_eq!(key.origin(), "warrant.example/audit");
        assert_eq!(key.key_name(), "warrant.example/audit#node-3");
        assert_eq!(
            note::parse_verifier_key(key.verifier_key()).expect("parses"),
            *key.verifier()
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
        assert_eq!(first.verifier(), again.verifier());
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
        assert!(matches!(error, AuditKeyError::Name { .. }), "{error}");
    }
}
