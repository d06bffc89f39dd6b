//! The node's own signing key.
//!
//! Each node generates an Ed25519 key on first start and keeps it in its data directory, mode
//! 0600. The private key never enters the log; the public key is published through it (a
//! `PublishSigningKey` command), so every node can verify every node's tokens.
//!
//! The key id is the RFC 7638 JWK thumbprint of the public key.

use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{Ed25519KeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

const KEY_FILE: &str = "signing-key.p8";

/// A node's Ed25519 signing key.
pub struct NodeSigningKey {
    key_id: String,
    public_key: [u8; 32],
    /// Parsed once: parsing the PKCS#8 document on every signature (as jsonwebtoken's
    /// `EncodingKey` does) doubled the cost of signing a token.
    key_pair: Ed25519KeyPair,
}

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("read signing key {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("write signing key {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("signing key {path} is not a valid Ed25519 PKCS#8 key")]
    Invalid { path: String },
    #[error("signing key {path} is readable by others (mode {mode:o}); allowed: 0600")]
    Permissions { path: String, mode: u32 },
    #[error("generate signing key: {0}")]
    Generate(String),
}

impl NodeSigningKey {
    /// Loads the key from `data_dir`, generating and saving one on first start.
    pub fn load_or_generate(data_dir: &Path) -> Result<Self, SigningKeyError> {
        Self::load_or_generate_file(&data_dir.join(KEY_FILE))
    }

    /// Loads an Ed25519 key from the PKCS#8 file at `path` (which must be mode 0600),
    /// generating and saving one there when there is none: the token signing key, and any
    /// other key a node keeps beside it (its audit checkpoint key).
    pub fn load_or_generate_file(path: &Path) -> Result<Self, SigningKeyError> {
        let path = path.to_path_buf();
        let path_text = path.display().to_string();
        let pkcs8 = match fs::read(&path) {
            Ok(bytes) => {
                let mode = fs::metadata(&path)
                    .map_err(|source| SigningKeyError::Read {
                        path: path_text.clone(),
                        source,
                    })?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(SigningKeyError::Permissions {
                        path: path_text,
                        mode: mode & 0o777,
                    });
                }
                bytes
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|e| SigningKeyError::Generate(e.to_string()))?;
                let bytes = document.as_ref().to_vec();
                write_private(&path, &bytes).map_err(|source| SigningKeyError::Write {
                    path: path_text.clone(),
                    source,
                })?;
                bytes
            }
            Err(source) => {
                return Err(SigningKeyError::Read {
                    path: path_text,
                    source,
                });
            }
        };
        Self::from_pkcs8(&pkcs8).ok_or(SigningKeyError::Invalid { path: path_text })
    }

    /// Generates a new key and makes it the one `data_dir` holds (temp file, fsync, rename, fsync
    /// of the directory), replacing the previous one. The caller publishes the new public key
    /// through the log first, so no token is ever signed by a key that is not in JWKS.
    pub fn rotate(data_dir: &Path) -> Result<Self, SigningKeyError> {
        let path = data_dir.join(KEY_FILE);
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|e| SigningKeyError::Generate(e.to_string()))?;
        let key = Self::from_pkcs8(document.as_ref())
            .ok_or_else(|| SigningKeyError::Generate("generated key did not parse".to_string()))?;
        write_private(&path, document.as_ref()).map_err(|source| SigningKeyError::Write {
            path: path.display().to_string(),
            source,
        })?;
        Ok(key)
    }

    /// A key from PKCS#8 bytes, or `None` if they are not an Ed25519 key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Option<Self> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).ok()?;
        let public_key: [u8; 32] = pair.public_key().as_ref().try_into().ok()?;
        Some(NodeSigningKey {
            key_id: jwk_thumbprint(&public_key),
            public_key,
            key_pair: pair,
        })
    }

    /// A fresh key that lives only in memory (benchmarks and tests).
    pub fn generate_ephemeral() -> Result<Self, SigningKeyError> {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|e| SigningKeyError::Generate(e.to_string()))?;
        Self::from_pkcs8(document.as_ref())
            .ok_or_else(|| SigningKeyError::Generate("generated key did not parse".to_string()))
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    pub(crate) fn key_pair(&self) -> &Ed25519KeyPair {
        &self.key_pair
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key: SHA-256 over the canonical JWK members in
/// lexicographic order, base64url without padding.
pub fn jwk_thumbprint(public_key: &[u8; 32]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public_key)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Writes `bytes` to `path` mode 0600 so that a crash leaves the old file or the new one, never
/// a mix: a temporary file, fsync, rename over `path`, fsync of the directory. Key files and
/// the audit signer's record share it.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) => fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own under the system temp dir, removed when dropped.
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "warrant-token-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create temp dir");
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_key_file_is_generated_once_private_and_loaded_back() {
        let dir = TempDir::new("key-file");
        let path = dir.0.join("audit-key.pk8");
        let first = NodeSigningKey::load_or_generate_file(&path).expect("generate");
        let mode = fs::metadata(&path).expect("written").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = NodeSigningKey::load_or_generate_file(&path).expect("load");
        assert_eq!(again.public_key(), first.public_key());
        let token_key = NodeSigningKey::load_or_generate(&dir.0).expect("token key");
        assert_ne!(
            token_key.public_key(),
            first.public_key(),
            "a file of its own"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            NodeSigningKey::load_or_generate_file(&path),
            Err(SigningKeyError::Permissions { mode: 0o644, .. })
        ));
        fs::write(&path, b"not a key").expect("overwrite");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(
            NodeSigningKey::load_or_generate_file(&path),
            Err(SigningKeyError::Invalid { .. })
        ));
    }
}
