//! The one Ed25519 signer and the one verifier of this crate: raw RFC 8032 signatures over
//! bytes. Compact JWS (access tokens, client assertions) signs `header.payload` with them,
//! signed notes (audit checkpoints) the note text.

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};

/// The Ed25519 signature of `message` by `key_pair`. The key pair is parsed once by its owner;
/// parsing PKCS#8 per call cost as much as the signature itself.
pub(crate) fn sign(key_pair: &Ed25519KeyPair, message: &[u8]) -> Vec<u8> {
    key_pair.sign(message).as_ref().to_vec()
}

/// Whether `signature` is an Ed25519 signature by `public_key` (raw 32 bytes) over `message`.
pub(crate) fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}
