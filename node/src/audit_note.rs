//! The C2SP signed-note and tlog-checkpoint formats as the offline verifier reads them: parse a
//! checkpoint note, parse a pinned verifier key, and check a note's signatures against pinned
//! keys. It reads only what the C2SP texts define (body, blank line, `— <name> <base64(key id ‖
//! signature)>` lines; key id = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[..4]), so a note any
//! conforming signer wrote verifies here, and a note this accepts verifies in any conforming
//! verifier.

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use sha2::{Digest as _, Sha256};

/// The largest note read: a checkpoint is a few hundred bytes; anything this long is not one.
pub const NOTE_BYTES_MAX: usize = 64 * 1024;
/// The most signature lines read from one note.
pub const NOTE_SIGNATURES_MAX: usize = 16;
/// The signed-note algorithm byte of Ed25519.
const ALG_ED25519: u8 = 0x01;
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// A verifier key as `<name>+<hex key id>+<base64(0x01 ‖ public key)>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    pub name: String,
    pub key_id: [u8; 4],
    pub public_key: [u8; 32],
}

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: [u8; 4],
    pub signature: Vec<u8>,
}

/// A parsed tlog-checkpoint note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointNote {
    /// The signed text: every body line with its newline.
    pub body: String,
    pub origin: String,
    pub tree_size: u64,
    pub root: [u8; 32],
    pub signatures: Vec<NoteSignature>,
}

/// What checking a note against the pinned keys found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    /// The key names whose signatures verified (at least one).
    Verified(Vec<String>),
    /// A signature line named a pinned key (name and key id) and did not verify.
    Invalid { key_name: String },
    /// No signature line is by a pinned key: the names that did sign.
    NoPinnedKey { signed_by: Vec<String> },
}

/// The key id signed-note gives an Ed25519 key named `name`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut hash = Sha256::new();
    hash.update(name.as_bytes());
    hash.update([b'\n', ALG_ED25519]);
    hash.update(public_key);
    let digest = hash.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Parses `<name>+<hex key id>+<base64(0x01 ‖ key)>`, checking the id is the key's.
pub fn parse_verifier_key(text: &str) -> Result<VerifierKey, String> {
    let text = text.trim();
    // The name has no '+' (signed-note forbids it); the base64 key may.
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("{text:?} is not <name>+<key id>+<key>"));
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("verifier key name {name:?} is empty or has spaces"));
    }
    let id = hex::decode(id).map_err(|_| format!("key id {id:?} is not hex"))?;
    let id: [u8; 4] = id
        .try_into()
        .map_err(|_| "the key id is not 4 bytes".to_string())?;
    let key = STANDARD
        .decode(key)
        .map_err(|_| "the key is not base64".to_string())?;
    let (alg, public) = key.split_first().ok_or("the key is empty")?;
    if *alg != ALG_ED25519 {
        return Err(format!("key algorithm {alg:#04x} is not Ed25519 (0x01)"));
    }
    let public_key: [u8; 32] = public
        .try_into()
        .map_err(|_| "an Ed25519 key is 32 bytes".to_string())?;
    if key_id(name, &public_key) != id {
        return Err(format!(
            "key id {} is not the id of key {name}",
            hex::encode(id)
        ));
    }
    Ok(VerifierKey {
        name: name.to_string(),
        key_id: id,
        public_key,
    })
}

/// Splits a signed note at its blank line: the signed text (with its final newline) and the
/// signature lines, not yet verified.
pub fn split_note(text: &str) -> Result<(String, Vec<NoteSignature>), String> {
    if text.len() > NOTE_BYTES_MAX {
        return Err(format!("the note is over {NOTE_BYTES_MAX} bytes"));
    }
    let (body, signatures) = text
        .split_once("\n\n")
        .ok_or("the note has no blank line before its signatures")?;
    Ok((format!("{body}\n"), parse_signatures(signatures)?))
}

/// Parses a checkpoint note (body, blank line, signature lines), not yet checking signatures.
pub fn parse_checkpoint(text: &str) -> Result<CheckpointNote, String> {
    let (body, signatures) = split_note(text)?;
    let mut lines = body.lines();
    let origin = lines
        .next()
        .filter(|o| !o.is_empty())
        .ok_or("no origin line")?;
    let size = lines.next().ok_or("no tree size line")?;
    let tree_size: u64 = size
        .parse()
        .ok()
        .filter(|_| size == "0" || !size.starts_with('0'))
        .ok_or_else(|| format!("tree size {size:?} is not a decimal number"))?;
    let root = lines.next().ok_or("no root hash line")?;
    let root: [u8; 32] = STANDARD
        .decode(root)
        .ok()
        .and_then(|r| r.try_into().ok())
        .ok_or_else(|| format!("root {root:?} is not base64 of 32 bytes"))?;
    Ok(CheckpointNote {
        origin: origin.to_string(),
        body,
        tree_size,
        root,
        signatures,
    })
}

fn parse_signatures(text: &str) -> Result<Vec<NoteSignature>, String> {
    if !text.ends_with('\n') {
        return Err("the note does not end with a newline".into());
    }
    let mut signatures = Vec::new();
    for line in text.lines() {
        if signatures.len() == NOTE_SIGNATURES_MAX {
            return Err(format!(
                "the note has over {NOTE_SIGNATURES_MAX} signatures"
            ));
        }
        let rest = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or_else(|| format!("signature line {line:?} does not start with \"— \""))?;
        let (name, signature) = rest
            .split_once(' ')
            .ok_or_else(|| format!("signature line {line:?} has no signature"))?;
        let bytes = STANDARD
            .decode(signature)
            .map_err(|_| format!("the signature of {name} is not base64"))?;
        if bytes.len() < 5 {
            return Err(format!("the signature of {name} is too short"));
        }
        let (id, signature) = bytes.split_at(4);
        signatures.push(NoteSignature {
            name: name.to_string(),
            key_id: [id[0], id[1], id[2], id[3]],
            signature: signature.to_vec(),
        });
    }
    if signatures.is_empty() {
        return Err("the note has no signature".into());
    }
    Ok(signatures)
}

/// Checks `note`'s signatures against `pinned`. Signature lines by other keys are skipped, as
/// signed-note verifiers do; a line by a pinned key (name and id) must verify.
pub fn check_signatures(note: &CheckpointNote, pinned: &[VerifierKey]) -> SignatureCheck {
    check_note_signatures(&note.body, &note.signatures, pinned)
}

/// [`check_signatures`] for any signed note's text and signature lines.
pub fn check_note_signatures(
    body: &str,
    signatures: &[NoteSignature],
    pinned: &[VerifierKey],
) -> SignatureCheck {
    let mut verified = Vec::new();
    for signature in signatures {
        let Some(key) = pinned
            .iter()
            .find(|k| k.name == signature.name && k.key_id == signature.key_id)
        else {
            continue;
        };
        let public = UnparsedPublicKey::new(&ED25519, &key.public_key);
        if public
            .verify(body.as_bytes(), &signature.signature)
            .is_err()
        {
            return SignatureCheck::Invalid {
                key_name: key.name.clone(),
            };
        }
        verified.push(key.name.clone());
    }
    if verified.is_empty() {
        return SignatureCheck::NoPinnedKey {
            signed_by: signatures.iter().map(|s| s.name.clone()).collect(),
        };
    }
    SignatureCheck::Verified(verified)
}

#[cfg(test)]
pub mod testing {
    //! Signing notes in tests, with a fresh Ed25519 key.

    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    use base64::{Engine as _, engine::general_purpose::STANDARD};

    pub struct TestSigner {
        pub name: String,
        pair: Ed25519KeyPair,
    }

    impl TestSigner {
        pub fn new(name: &str) -> TestSigner {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
                .expect("generate a key");
            TestSigner {
                name: name.to_string(),
                pair: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("load the key"),
            }
        }

        fn public(&self) -> [u8; 32] {
            self.pair
                .public_key()
                .as_ref()
                .try_into()
                .expect("32-byte key")
        }

        pub fn verifier_key(&self) -> String {
            let public = self.public();
            let id = super::key_id(&self.name, &public);
            let mut key = vec![0x01];
            key.extend_from_slice(&public);
            format!("{}+{}+{}", self.name, hex::encode(id), STANDARD.encode(key))
        }

        /// The signature line of `body`.
        pub fn sign_line(&self, body: &str) -> String {
            let mut bytes = super::key_id(&self.name, &self.public()).to_vec();
            bytes.extend_from_slice(self.pair.sign(body.as_bytes()).as_ref());
            format!("\u{2014} {} {}\n", self.name, STANDARD.encode(bytes))
        }

        /// A checkpoint note of `origin`, `size` and `root`, signed by this key.
        pub fn checkpoint(&self, origin: &str, size: u64, root: &[u8; 32]) -> String {
            let body = format!("{origin}\n{size}\n{}\n", STANDARD.encode(root));
            format!("{body}\n{}", self.sign_line(&body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{testing::TestSigner, *};

    #[test]
    fn a_signed_checkpoint_parses_and_verifies_with_its_key_only() {
        let signer = TestSigner::new("warrant.test/audit#node-1");
        let other = TestSigner::new("warrant.test/audit#node-2");
        let note = signer.checkpoint("warrant.test/audit", 7, &[9; 32]);
        let parsed = parse_checkpoint(&note).expect("parses");
        assert_eq!(parsed.tree_size, 7);
        assert_eq!(parsed.root, [9; 32]);
        assert_eq!(parsed.origin, "warrant.test/audit");
        let key = parse_verifier_key(&signer.verifier_key()).expect("key parses");
        assert_eq!(
            check_signatures(&parsed, &[key]),
            SignatureCheck::Verified(vec![signer.name.clone()])
        );
        let other_key = parse_verifier_key(&other.verifier_key()).expect("key parses");
        assert!(matches!(
            check_signatures(&parsed, &[other_key]),
            SignatureCheck::NoPinnedKey { .. }
        ));
    }

    /// The example of golang.org/x/mod/sumdb/note, the signed-note reference implementation.
    #[test]
    fn the_reference_implementations_example_note_verifies() {
        let key = parse_verifier_key(
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        )
        .expect("the reference key parses");
        let note = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n\
                    \n\
                    \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        let (body, signatures) = split_note(note).expect("the note parses");
        assert_eq!(
            check_note_signatures(&body, &signatures, std::slice::from_ref(&key)),
            SignatureCheck::Verified(vec!["PeterNeumann".to_string()])
        );
        let tampered = body.replace("answer", "Answer");
        assert_eq!(
            check_note_signatures(&tampered, &signatures, &[key]),
            SignatureCheck::Invalid {
                key_name: "PeterNeumann".to_string()
            }
        );
    }

    #[test]
    fn a_verifier_key_with_a_wrong_id_is_refused() {
        let signer = TestSigner::new("n");
        let key = signer.verifier_key();
        let mut parts: Vec<&str> = key.split('+').collect();
        parts[1] = "00000000";
        assert!(parse_verifier_key(&parts.join("+")).is_err());
    }
}
