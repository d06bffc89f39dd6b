//! Signed notes (C2SP signed-note) and the checkpoints they carry (C2SP tlog-checkpoint): the
//! text a node signs for the audit log, in the format stock transparency tools read.
//!
//! A checkpoint body is `<origin>\n<tree size>\n<base64 root>\n`, optionally followed by
//! extension lines. A note is a text ending in a newline, a blank line, then one line per
//! signature: `— <key name> <base64(key id ‖ Ed25519 signature)>` (an em dash, U+2014, and a
//! space first). The key id is the first 4 bytes of SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public
//! key); a verifier key is written `<name>+<8 hex key id>+<base64(0x01 ‖ public key)>`.
//! Base64 is the standard alphabet with padding, strict. Everything is bounded and parsed
//! strictly before any signature is checked.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};

use crate::{NodeSigningKey, ed25519};

/// The largest note read or written, in bytes.
pub const NOTE_BYTES_MAX: usize = 64 * 1024;
/// The most signatures a note may carry (C2SP signed-note: verifiers accept at least 16).
pub const NOTE_SIGNATURES_MAX: usize = 16;
/// The longest key name, in bytes.
pub const KEY_NAME_LEN_MAX: usize = 512;
/// The longest verifier key text: a name, `+`, 8 hex digits, `+`, 44 base64 characters.
pub const VERIFIER_KEY_LEN_MAX: usize = KEY_NAME_LEN_MAX + 54;

/// Signed-note's signature type byte for Ed25519.
const ED25519_TYPE: u8 = 0x01;
/// What starts every signature line.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// A signed-note key id: the first 4 bytes of a hash of the key's name, type and public key.
pub type KeyId = [u8; 4];

/// Why a note, a checkpoint or a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("note is {len} bytes; allowed: at most {max}")]
    TooLarge { len: usize, max: usize },
    #[error("note is not valid UTF-8 (from byte {offset})")]
    NotUtf8 { offset: usize },
    #[error("note has a control character at byte {offset}; only newline is allowed")]
    ControlCharacter { offset: usize },
    #[error("note text is empty")]
    EmptyText,
    #[error("note text does not end with a newline")]
    TextNotTerminated,
    #[error("note has no blank line between its text and its signatures")]
    NoSeparator,
    #[error("note has no signature line after its blank line")]
    NoSignatures,
    #[error("note has {count} signatures; allowed: at most {max}")]
    TooManySignatures { count: usize, max: usize },
    #[error("signature line {line}: {reason}")]
    MalformedSignature { line: usize, reason: String },
    #[error("key name {name:?} is invalid: {reason}")]
    InvalidKeyName { name: String, reason: String },
    #[error("verifier key is invalid: {0}")]
    InvalidVerifierKey(String),
    #[error("checkpoint is invalid: {0}")]
    InvalidCheckpoint(String),
    #[error("the signature by known key {key} does not verify")]
    BadSignature { key: String },
    #[error("no signature by a known key; signed by: {}", signer_list(.signers))]
    NoKnownSignature { signers: Vec<String> },
    #[error("note {index} has another text than note 0; only notes of the same text merge")]
    TextsDiffer { index: usize },
    #[error("no notes to merge")]
    NothingToMerge,
}

fn signer_list(signers: &[String]) -> String {
    if signers.is_empty() {
        return "nobody".to_string();
    }
    signers.join(", ")
}

/// A parsed checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: [u8; 32],
    /// The lines after the root, if any, without their newlines.
    pub extensions: Vec<String>,
}

/// The checkpoint origin of the log of the cluster whose issuer is `issuer`: the issuer
/// without its `https://` or `http://` and without trailing `/`, then `/audit`
/// (`https://warrant.example/` gives `warrant.example/audit`).
pub fn checkpoint_origin(issuer: &str) -> String {
    let bare = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))
        .unwrap_or(issuer);
    format!("{}/audit", bare.trim_end_matches('/'))
}

/// The key name node `node_id` signs checkpoints of `origin` under: `<origin>#node-<id>`.
pub fn node_key_name(origin: &str, node_id: u64) -> String {
    format!("{origin}#node-{node_id}")
}

/// The checkpoint body of the tree of `size` leaves whose root is `root`, refused when
/// `origin` is not one non-empty line.
pub fn checkpoint_body(origin: &str, size: u64, root: &[u8; 32]) -> Result<String, NoteError> {
    let body = format!("{origin}\n{size}\n{}\n", STANDARD.encode(root));
    parse_checkpoint(&body)?;
    Ok(body)
}

/// Parses a checkpoint body strictly: at least three lines (a non-empty origin, the tree size
/// in decimal without leading zeros, the root as standard base64 of 32 bytes), then extension
/// lines, none empty; every line ends with a newline.
pub fn parse_checkpoint(body: &str) -> Result<Checkpoint, NoteError> {
    let bad = |reason: String| NoteError::InvalidCheckpoint(reason);
    if body.len() > NOTE_BYTES_MAX {
        return Err(bad(format!(
            "{} bytes; allowed: at most {NOTE_BYTES_MAX}",
            body.len()
        )));
    }
    if let Some(offset) = control_character(body) {
        return Err(bad(format!(
            "control character at byte {offset}; only newline is allowed"
        )));
    }
    let Some(content) = body.strip_suffix('\n') else {
        return Err(bad("does not end with a newline".into()));
    };
    let lines: Vec<&str> = content.split('\n').collect();
    let [origin, size, root, extensions @ ..] = lines.as_slice() else {
        return Err(bad(format!(
            "{} lines; a checkpoint has at least 3 (origin, tree size, root hash)",
            lines.len()
        )));
    };
    if origin.is_empty() {
        return Err(bad("the origin line is empty".into()));
    }
    let size = parse_decimal(size).map_err(|reason| bad(format!("tree size {size:?} {reason}")))?;
    let root = STANDARD
        .decode(root)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| bad(format!("root {root:?} is not standard base64 of 32 bytes")))?;
    if let Some(empty) = extensions.iter().position(|line| line.is_empty()) {
        return Err(bad(format!("extension line {} is empty", empty + 1)));
    }
    Ok(Checkpoint {
        origin: origin.to_string(),
        size,
        root,
        extensions: extensions.iter().map(|line| line.to_string()).collect(),
    })
}

/// A u64 in decimal: digits only, no sign, no leading zero (but "0" itself).
fn parse_decimal(text: &str) -> Result<u64, &'static str> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a decimal number");
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err("has a leading zero");
    }
    text.parse().map_err(|_| "is larger than 2^64 - 1")
}

/// The signed-note key id of the Ed25519 key `public_key` named `name`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> KeyId {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ED25519_TYPE]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The verifier key text of the Ed25519 key `public_key` named `name`.
pub fn verifier_key(name: &str, public_key: &[u8; 32]) -> Result<String, NoteError> {
    Ok(VerifierKey::new(name, public_key)?.to_string())
}

/// A key whose signatures a reader trusts: a name and an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: KeyId,
    public_key: [u8; 32],
}

impl VerifierKey {
    /// The key `public_key` under `name`, refused when the name is not a valid key name.
    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Self, NoteError> {
        check_key_name(name)?;
        Ok(Self {
            name: name.to_string(),
            key_id: key_id(name, public_key),
            public_key: *public_key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// `name+hexid`, how messages name the key.
    pub fn label(&self) -> String {
        label(&self.name, self.key_id)
    }
}

impl fmt::Display for VerifierKey {
    /// The verifier key text, `<name>+<hex key id>+<base64(0x01 ‖ public key)>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut typed = Vec::with_capacity(33);
        typed.push(ED25519_TYPE);
        typed.extend_from_slice(&self.public_key);
        write!(f, "{}+{}", self.label(), STANDARD.encode(typed))
    }
}

fn label(name: &str, key_id: KeyId) -> String {
    let hex: String = key_id.iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}+{hex}")
}

/// Parses a verifier key text strictly: a valid name, exactly 8 lowercase hex digits, and
/// standard base64 of 0x01 (Ed25519) and 32 bytes, whose key id must be the one given.
pub fn parse_verifier_key(text: &str) -> Result<VerifierKey, NoteError> {
    let bad = |reason: String| NoteError::InvalidVerifierKey(reason);
    if text.len() > VERIFIER_KEY_LEN_MAX {
        return Err(bad(format!(
            "{} bytes; allowed: at most {VERIFIER_KEY_LEN_MAX}",
            text.len()
        )));
    }
    let Some((name, rest)) = text.split_once('+') else {
        return Err(bad("no '+' after the key name".into()));
    };
    let Some((id_hex, key_b64)) = rest.split_once('+') else {
        return Err(bad("no '+' after the key id".into()));
    };
    let given = parse_key_id(id_hex)
        .ok_or_else(|| bad(format!("key id {id_hex:?} is not 8 lowercase hex digits")))?;
    let typed = STANDARD
        .decode(key_b64)
        .map_err(|_| bad("the key is not standard base64".into()))?;
    let public_key = match typed.split_first() {
        Some((&ED25519_TYPE, key)) => <[u8; 32]>::try_from(key)
            .map_err(|_| bad(format!("an Ed25519 key is 32 bytes; got {}", key.len())))?,
        Some((other, _)) => {
            return Err(bad(format!(
                "signature type {other:#04x} is not Ed25519 (0x01)"
            )));
        }
        None => return Err(bad("the key is empty".into())),
    };
    let key = VerifierKey::new(name, &public_key)?;
    if key.key_id != given {
        return Err(bad(format!(
            "key id {id_hex} is not the key's; its id is {}",
            key.label()
        )));
    }
    Ok(key)
}

fn parse_key_id(hex: &str) -> Option<KeyId> {
    let digits = hex.as_bytes();
    if digits.len() != 8
        || !digits
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let value = u32::from_str_radix(hex, 16).ok()?;
    Some(value.to_be_bytes())
}

/// A key name is non-empty, at most [`KEY_NAME_LEN_MAX`] bytes, and has no space, no `+`
/// and no control character.
fn check_key_name(name: &str) -> Result<(), NoteError> {
    let reason = if name.is_empty() {
        "it is empty".to_string()
    } else if name.len() > KEY_NAME_LEN_MAX {
        format!("{} bytes; allowed: at most {KEY_NAME_LEN_MAX}", name.len())
    } else if name.chars().any(char::is_whitespace) {
        "it contains a space".to_string()
    } else if name.contains('+') {
        "it contains '+'".to_string()
    } else if name.chars().any(char::is_control) {
        "it contains a control character".to_string()
    } else {
        return Ok(());
    };
    Err(NoteError::InvalidKeyName {
        name: name.chars().take(64).collect(),
        reason,
    })
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: KeyId,
    /// The signature proper, after the key id.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The line, newline included.
    pub fn line(&self) -> String {
        let mut bytes = Vec::with_capacity(4 + self.signature.len());
        bytes.extend_from_slice(&self.key_id);
        bytes.extend_from_slice(&self.signature);
        format!(
            "{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(bytes)
        )
    }

    /// `name+hexid`.
    pub fn label(&self) -> String {
        label(&self.name, self.key_id)
    }
}

/// Signs `body` (a note text: non-empty, ending with a newline, no control character but
/// newline) with `key` under `name`, giving the note: `body`, a blank line, one signature.
pub fn sign(body: &str, name: &str, key: &NodeSigningKey) -> Result<String, NoteError> {
    check_key_name(name)?;
    check_text(body)?;
    let signature = NoteSignature {
        name: name.to_string(),
        key_id: key_id(name, key.public_key()),
        signature: ed25519::sign(key.key_pair(), body.as_bytes()),
    };
    compose(body, &[signature])
}

/// `body`, a blank line and the `signatures`' lines, within [`NOTE_BYTES_MAX`].
fn compose(body: &str, signatures: &[NoteSignature]) -> Result<String, NoteError> {
    let mut note = format!("{body}\n");
    for signature in signatures {
        note.push_str(&signature.line());
    }
    if note.len() > NOTE_BYTES_MAX {
        return Err(NoteError::TooLarge {
            len: note.len(),
            max: NOTE_BYTES_MAX,
        });
    }
    Ok(note)
}

/// A note text is non-empty, ends with a newline and has no control character but newline.
fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() {
        return Err(NoteError::EmptyText);
    }
    if let Some(offset) = control_character(text) {
        return Err(NoteError::ControlCharacter { offset });
    }
    if !text.ends_with('\n') {
        return Err(NoteError::TextNotTerminated);
    }
    Ok(())
}

/// The offset of the first ASCII control character other than newline.
fn control_character(text: &str) -> Option<usize> {
    text.bytes().position(|b| b < 0x20 && b != b'\n')
}

/// A note split into its text and signature lines; no signature checked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedNote {
    /// The note text, its final newline included, the blank line not.
    pub body: String,
    pub signatures: Vec<NoteSignature>,
}

/// Splits `note` strictly: at most [`NOTE_BYTES_MAX`] bytes of UTF-8 with no control character
/// but newline; the text ends at the last blank line; then 1 to [`NOTE_SIGNATURES_MAX`] lines
/// `— <valid key name> <standard base64 of a 4-byte key id and at least 1 byte>`, each ending
/// with a newline.
pub fn parse(note: impl AsRef<[u8]>) -> Result<ParsedNote, NoteError> {
    let bytes = note.as_ref();
    if bytes.len() > NOTE_BYTES_MAX {
        return Err(NoteError::TooLarge {
            len: bytes.len(),
            max: NOTE_BYTES_MAX,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| NoteError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    if let Some(offset) = control_character(text) {
        return Err(NoteError::ControlCharacter { offset });
    }
    let Some(split) = text.rfind("\n\n") else {
        return Err(NoteError::NoSeparator);
    };
    let (body, block) = (&text[..split + 1], &text[split + 2..]);
    let Some(block) = block.strip_suffix('\n') else {
        if block.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        return Err(NoteError::MalformedSignature {
            line: block.split('\n').count(),
            reason: "it does not end with a newline".into(),
        });
    };
    let lines: Vec<&str> = block.split('\n').collect();
    if lines.len() > NOTE_SIGNATURES_MAX {
        return Err(NoteError::TooManySignatures {
            count: lines.len(),
            max: NOTE_SIGNATURES_MAX,
        });
    }
    let signatures = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            parse_signature_line(line).map_err(|reason| NoteError::MalformedSignature {
                line: i + 1,
                reason,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(ParsedNote {
        body: body.to_string(),
        signatures,
    })
}

fn parse_signature_line(line: &str) -> Result<NoteSignature, String> {
    let Some(rest) = line.strip_prefix(SIGNATURE_PREFIX) else {
        return Err("it does not start with an em dash (U+2014) and a space".into());
    };
    let Some((name, encoded)) = rest.split_once(' ') else {
        return Err("no space between the key name and the signature".into());
    };
    check_key_name(name).map_err(|e| e.to_string())?;
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|_| "the signature is not standard base64".to_string())?;
    let Some((key_id, signature)) = bytes.split_first_chunk::<4>() else {
        return Err(format!(
            "the signature is {} bytes; it starts with a 4-byte key id",
            bytes.len()
        ));
    };
    if signature.is_empty() {
        return Err("the signature is only a key id".into());
    }
    Ok(NoteSignature {
        name: name.to_string(),
        key_id: *key_id,
        signature: signature.to_vec(),
    })
}

/// A note at least one known key signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedNote {
    /// The note text, its final newline included: trust it only as far as `verified` goes.
    pub body: String,
    /// The known keys whose signature verified, in the note's order, each once.
    pub verified: Vec<VerifierKey>,
    /// The signatures by keys not in the list given, unchecked.
    pub unverified: Vec<NoteSignature>,
}

/// Parses `note` strictly ([`parse`]) and checks every signature whose key name and key id
/// are those of a key in `keys`; signatures by other keys are ignored (C2SP signed-note: even
/// one sharing a name or an id with a known key). Refused when a known key's signature does
/// not verify, or when no known key signed.
pub fn open(note: impl AsRef<[u8]>, keys: &[VerifierKey]) -> Result<OpenedNote, NoteError> {
    let ParsedNote { body, signatures } = parse(note)?;
    let mut verified: Vec<VerifierKey> = Vec::new();
    let mut unverified = Vec::new();
    let mut signers = Vec::new();
    for signature in signatures {
        signers.push(signature.label());
        let mut candidates = keys
            .iter()
            .filter(|key| key.name == signature.name && key.key_id == signature.key_id)
            .peekable();
        if candidates.peek().is_none() {
            unverified.push(signature);
            continue;
        }
        // Two trusted keys can share a name and a 32-bit id only by accident; either may sign.
        let Some(key) = candidates
            .find(|key| ed25519::verify(&key.public_key, body.as_bytes(), &signature.signature))
        else {
            return Err(NoteError::BadSignature {
                key: signature.label(),
            });
        };
        if !verified.contains(key) {
            verified.push(key.clone());
        }
    }
    if verified.is_empty() {
        return Err(NoteError::NoKnownSignature { signers });
    }
    Ok(OpenedNote {
        body,
        verified,
        unverified,
    })
}

/// One note with every signature of `notes`, which must have byte-identical texts (a
/// checkpoint of the same size signed by several nodes). Signatures are not checked; each
/// distinct one is kept once, sorted by key name, key id and bytes, so the result does not
/// depend on the order of `notes`. At most [`NOTE_SIGNATURES_MAX`] signatures.
pub fn merge<N: AsRef<[u8]>>(notes: &[N]) -> Result<String, NoteError> {
    let Some((first, rest)) = notes.split_first() else {
        return Err(NoteError::NothingToMerge);
    };
    let ParsedNote {
        body,
        mut signatures,
    } = parse(first)?;
    for (offset, note) in rest.iter().enumerate() {
        let parsed = parse(note)?;
        if parsed.body != body {
            return Err(NoteError::TextsDiffer { index: offset + 1 });
        }
        signatures.extend(parsed.signatures);
    }
    signatures.sort();
    signatures.dedup();
    if signatures.len() > NOTE_SIGNATURES_MAX {
        return Err(NoteError::TooManySignatures {
            count: signatures.len(),
            max: NOTE_SIGNATURES_MAX,
        });
    }
    compose(&body, &signatures)
}

#[cfg(test)]
mod tests;
