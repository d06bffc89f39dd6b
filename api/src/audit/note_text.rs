//! The checkpoint text: a C2SP `tlog-checkpoint` body with C2SP `signed-note` Ed25519
//! signatures, as far as the signer needs it (build a body, sign it, name the key, and open a
//! note against a pinned verifier key).
//!
//! `warrant_token::note` (helper H1, issue 11) is the crate-wide implementation of the same
//! format; this module is the signer's one door to it, so that when it lands every function
//! here becomes a call into it and nothing else in `audit` changes.

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};
use warrant_identity::audit::merkle::Hash;

/// The largest note opened: a checkpoint is three short lines and a few signatures.
pub const NOTE_BYTES_MAX: usize = 64 * 1024;
/// The most signature lines a note may carry.
pub const NOTE_SIGNATURES_MAX: usize = 16;

/// Ed25519 in signed-note's algorithm byte.
const ALG_ED25519: u8 = 0x01;

/// What a note says, once its signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    pub origin: String,
    pub tree_size: u64,
    pub root: Hash,
}

/// Why a note was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("the note is malformed: {0}")]
    Malformed(String),
    #[error("the verifier key is malformed: {0}")]
    VerifierKey(String),
    #[error("no signature by {0} with its key id")]
    NoSignature(String),
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
}

/// Whether `name` may be a note's origin or key name: printable, no space, no `+`.
pub fn is_note_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_graphic() && c != '+')
}

/// `<origin>\n<size>\n<base64 root>\n`: the same bytes on every node for the same tree.
pub fn checkpoint_body(origin: &str, tree_size: u64, root: &Hash) -> String {
    format!("{origin}\n{tree_size}\n{}\n", STANDARD.encode(root))
}

/// The 4-byte key id: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key), first 4 bytes.
pub fn key_id(key_name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(key_name.as_bytes());
    hasher.update([b'\n', ALG_ED25519]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// `<name>+<8 hex key id>+<base64(0x01 ‖ public key)>`.
pub fn verifier_key(key_name: &str, public_key: &[u8; 32]) -> String {
    let mut key = vec![ALG_ED25519];
    key.extend_from_slice(public_key);
    format!(
        "{key_name}+{}+{}",
        hex::encode(key_id(key_name, public_key)),
        STANDARD.encode(key)
    )
}

/// The note: `body`, a blank line, and one signature line by `key_name`.
pub fn sign(
    body: &str,
    key_name: &str,
    public_key: &[u8; 32],
    signer: impl FnOnce(&[u8]) -> [u8; 64],
) -> String {
    let mut blob = key_id(key_name, public_key).to_vec();
    blob.extend_from_slice(&signer(body.as_bytes()));
    format!("{body}\n\u{2014} {key_name} {}\n", STANDARD.encode(blob))
}

/// Opens `note` with the pinned `verifier`: its signature line by that key must verify, then
/// the body must be a checkpoint.
pub fn open(note: &str, verifier: &str) -> Result<Opened, NoteError> {
    if NOTE_BYTES_MAX < note.len() {
        return Err(NoteError::Malformed(format!(
            "{} bytes; allowed: at most {NOTE_BYTES_MAX}",
            note.len()
        )));
    }
    let (name, id, public_key) = parse_verifier_key(verifier)?;
    let split = note
        .find("\n\n")
        .ok_or_else(|| NoteError::Malformed("no blank line after the body".to_string()))?;
    let (body, signatures) = (&note[..=split], &note[split + 2..]);
    let Some(signatures) = signatures.strip_suffix('\n') else {
        return Err(NoteError::Malformed("no final newline".to_string()));
    };
    let lines: Vec<&str> = signatures.split('\n').collect();
    if NOTE_SIGNATURES_MAX < lines.len() {
        return Err(NoteError::Malformed(format!(
            "{} signatures; allowed: at most {NOTE_SIGNATURES_MAX}",
            lines.len()
        )));
    }
    let mut found = None;
    for line in lines {
        let Some((line_name, blob)) = line
            .strip_prefix("\u{2014} ")
            .and_then(|rest| rest.split_once(' '))
        else {
            return Err(NoteError::Malformed(format!("signature line {line:?}")));
        };
        let blob = STANDARD
            .decode(blob)
            .map_err(|_| NoteError::Malformed(format!("signature of {line_name} is not base64")))?;
        if line_name == name && blob.len() == 68 && blob[..4] == id {
            found = Some(blob);
        }
    }
    let blob = found.ok_or_else(|| NoteError::NoSignature(name.to_string()))?;
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(body.as_bytes(), &blob[4..])
        .map_err(|_| NoteError::BadSignature(name.to_string()))?;
    parse_body(body)
}

/// A verifier key's name, key id and public key; the id must be the one the key gives.
fn parse_verifier_key(verifier: &str) -> Result<(&str, [u8; 4], [u8; 32]), NoteError> {
    // The name has no '+' and the id is hex; base64 may hold '+'.
    let mut parts = verifier.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::VerifierKey("not name+id+key".to_string()));
    };
    let key = STANDARD
        .decode(key)
        .map_err(|_| NoteError::VerifierKey("key is not base64".to_string()))?;
    let Some((&ALG_ED25519, public_key)) = key.split_first() else {
        return Err(NoteError::VerifierKey("not an Ed25519 key".to_string()));
    };
    let public_key = <[u8; 32]>::try_from(public_key)
        .map_err(|_| NoteError::VerifierKey("not 32 key bytes".to_string()))?;
    let expected = key_id(name, &public_key);
    if !is_note_name(name) || hex::encode(expected) != id {
        return Err(NoteError::VerifierKey(
            "the key id is not the key's".to_string(),
        ));
    }
    Ok((name, expected, public_key))
}

/// The three lines of a checkpoint body, strictly: a decimal size without leading zeros, a
/// 32-byte base64 root. Extension lines are not used by Warrant and are refused.
fn parse_body(body: &str) -> Result<Opened, NoteError> {
    let malformed = |what: &str| NoteError::Malformed(format!("checkpoint body: {what}"));
    let lines: Vec<&str> = body.trim_end_matches('\n').split('\n').collect();
    let [origin, size, root] = lines.as_slice() else {
        return Err(malformed("not three lines"));
    };
    if size.is_empty()
        || !size.bytes().all(|b| b.is_ascii_digit())
        || (size.len() > 1 && size.starts_with('0'))
    {
        return Err(malformed("the size is not a decimal number"));
    }
    let tree_size = size
        .parse()
        .map_err(|_| malformed("the size is too large"))?;
    let root = STANDARD
        .decode(root)
        .ok()
        .and_then(|r| Hash::try_from(r.as_slice()).ok())
        .ok_or_else(|| malformed("the root is not 32 base64 bytes"))?;
    Ok(Opened {
        origin: origin.to_string(),
        tree_size,
        root,
    })
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::{rand::SystemRandom, signature::Ed25519KeyPair, signature::KeyPair};

    use super::*;

    fn key() -> (Ed25519KeyPair, [u8; 32]) {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("generate");
        let pair = Ed25519KeyPair::from_pkcs8(document.as_ref()).expect("parse");
        let public: [u8; 32] = pair.public_key().as_ref().try_into().expect("32 bytes");
        (pair, public)
    }

    fn signed(pair: &Ed25519KeyPair, public: &[u8; 32], name: &str) -> String {
        let body = checkpoint_body("w.example/audit", 42, &[7u8; 32]);
        sign(&body, name, public, |m| {
            pair.sign(m).as_ref().try_into().expect("64 bytes")
        })
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_key() {
        let (pair, public) = key();
        let note = signed(&pair, &public, "w.example/audit#node-1");
        assert!(note.starts_with("w.example/audit\n42\n"));
        assert!(note.contains("\n\n\u{2014} w.example/audit#node-1 "));
        let opened = open(&note, &verifier_key("w.example/audit#node-1", &public)).expect("open");
        assert_eq!(
            opened,
            Opened {
                origin: "w.example/audit".to_string(),
                tree_size: 42,
                root: [7u8; 32]
            }
        );
    }

    /// Tamper case 3: a flipped signature byte, or a swapped key id, is refused.
    #[test]
    fn a_flipped_signature_or_a_swapped_key_id_is_refused() {
        let (pair, public) = key();
        let name = "w.example/audit#node-1";
        let vkey = verifier_key(name, &public);
        let note = signed(&pair, &public, name);
        let (head, line) = note.rsplit_once(' ').expect("signature");
        let mut blob = STANDARD.decode(line.trim_end()).expect("base64");
        blob[10] ^= 0x01;
        let flipped = format!("{head} {}\n", STANDARD.encode(&blob));
        assert_eq!(
            open(&flipped, &vkey),
            Err(NoteError::BadSignature(name.to_string()))
        );
        let mut blob = STANDARD.decode(line.trim_end()).expect("base64");
        blob[0] ^= 0x01;
        let swapped = format!("{head} {}\n", STANDARD.encode(&blob));
        assert_eq!(
            open(&swapped, &vkey),
            Err(NoteError::NoSignature(name.to_string()))
        );
        // Another key's note does not open with this key, even under the same name.
        let (other_pair, other_public) = key();
        let other = signed(&other_pair, &other_public, name);
        assert!(open(&other, &vkey).is_err());
        // A flipped body byte breaks the signature.
        let body_flipped = note.replacen("\n42\n", "\n43\n", 1);
        assert_eq!(
            open(&body_flipped, &vkey),
            Err(NoteError::BadSignature(name.to_string()))
        );
    }

    #[test]
    fn malformed_notes_and_keys_are_refused() {
        let (pair, public) = key();
        let name = "w.example/audit#node-1";
        let vkey = verifier_key(name, &public);
        for note in [
            "",
            "\n\n",
            "a\n1\nAA==\n\n",
            &"x".repeat(NOTE_BYTES_MAX + 1),
        ] {
            assert!(open(note, &vkey).is_err(), "{note:?}");
        }
        let body = "w.example/audit\n042\nAA==\n";
        let note = sign(body, name, &public, |m| {
            pair.sign(m).as_ref().try_into().expect("64")
        });
        assert!(matches!(open(&note, &vkey), Err(NoteError::Malformed(_))));
        let wrong_id = vkey.replacen('+', "+0", 1);
        assert!(matches!(
            open(&signed(&pair, &public, name), &wrong_id),
            Err(NoteError::VerifierKey(_))
        ));
    }
}
