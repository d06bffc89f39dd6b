//! Frozen bytes of the audit log's signed state: the persisted `SignedCheckpointRecord` and the
//! checkpoint note text itself (C2SP tlog-checkpoint in a C2SP signed-note), signed by a fixed
//! test key. Ed25519 signatures are deterministic, so the note is the same bytes every run.
//!
//! ┌──────────────────────────────────────────────────────────────────────────────────────────┐
//! │ NEVER update these: a failing case means monitors holding old checkpoints, or a node's   │
//! │ persisted record, would no longer read. Add a new case for a new shape.                   │
//! └──────────────────────────────────────────────────────────────────────────────────────────┘

use prost::Message;
use warrant_proto::state;
use warrant_token::NodeSigningKey;
use warrant_token::note;

/// The RFC 6962 reference root of its eight test leaves.
const ROOT_HEX: &str = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328";
const ORIGIN: &str = "warrant.example/audit";

fn root() -> [u8; 32] {
    let bytes = hex::decode(ROOT_HEX).expect("hex");
    bytes.try_into().expect("32 bytes")
}

/// The fixed test key: seed 0x5a × 32, as a PKCS#8 v1 document.
fn test_key() -> NodeSigningKey {
    let mut pkcs8 = hex::decode("302e020100300506032b657004220420").expect("hex");
    pkcs8.extend_from_slice(&[0x5a; 32]);
    NodeSigningKey::from_pkcs8(&pkcs8).expect("an Ed25519 key")
}

fn key_name() -> String {
    note::node_key_name(ORIGIN, 1)
}

fn print_mode() -> bool {
    std::env::var_os("WARRANT_PRINT_FROZEN").is_some()
}

#[test]
fn frozen_checkpoint_note_is_signed_and_opens_the_same() {
    let key = test_key();
    let body = note::checkpoint_body(ORIGIN, 8, &root()).expect("body");
    let signed = note::sign(&body, &key_name(), &key).expect("sign");
    let vkey = note::verifier_key(&key_name(), key.public_key()).expect("vkey");
    if print_mode() {
        println!("V1_CHECKPOINT_NOTE: {signed:?}");
        println!("V1_VERIFIER_KEY: {vkey:?}");
        return;
    }
    assert_eq!(signed, V1_CHECKPOINT_NOTE, "the note text changed");
    assert_eq!(vkey, V1_VERIFIER_KEY, "the verifier key text changed");
    let verifier = note::parse_verifier_key(V1_VERIFIER_KEY).expect("frozen key parses");
    let opened = note::open(V1_CHECKPOINT_NOTE, &[verifier]).expect("frozen note opens");
    let checkpoint = note::parse_checkpoint(&opened.body).expect("frozen checkpoint parses");
    assert_eq!(checkpoint.origin, ORIGIN);
    assert_eq!(checkpoint.size, 8);
    assert_eq!(checkpoint.root, root());
    assert!(checkpoint.extensions.is_empty());
}

#[test]
fn frozen_signed_checkpoint_record_decodes_and_encodes_to_the_same_bytes() {
    let record = state::SignedCheckpointRecord {
        note: V1_CHECKPOINT_NOTE.into(),
        tree_size: 8,
        root_hash: root().to_vec(),
        frontier: vec![root().to_vec()],
        signed_at_unix_ms: 1_764_000_000_000,
    };
    let encoded = hex::encode(record.encode_to_vec());
    if print_mode() {
        println!("V1_SIGNED_CHECKPOINT_RECORD: {encoded}");
        return;
    }
    let frozen = hex::decode(V1_SIGNED_CHECKPOINT_RECORD).expect("hex");
    let decoded = state::SignedCheckpointRecord::decode(frozen.as_slice())
        .unwrap_or_else(|e| panic!("frozen bytes no longer decode: {e}"));
    assert_eq!(decoded, record, "frozen bytes decode to a different record");
    assert_eq!(encoded, V1_SIGNED_CHECKPOINT_RECORD, "encoding changed");
}

const V1_CHECKPOINT_NOTE: &str = "warrant.example/audit\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n\u{2014} warrant.example/audit#node-1 M69rx8cU+vBCvi6O612nOH8DuunMemZVCKHSG36SB5sLzwjIhN9xBhdz95d/WILZ3unHX1cdtR0Y49Wt98XbmALsiwA=\n";
const V1_VERIFIER_KEY: &str =
    "warrant.example/audit#node-1+33af6bc7+AQ11UHVOCACl0jfu9YJgNXZrmz5aFYaKlAqyiZWHiOOw";
const V1_SIGNED_CHECKPOINT_RECORD: &str = "0ac40177617272616e742e6578616d706c652f61756469740a380a58636e616561634757616d74565a79334164375a6f717564676a71744c306c677a2b4e77372f52675179673d0a0ae280942077617272616e742e6578616d706c652f6175646974236e6f64652d31204d363972783863552b7642437669364f3631326e4f48384475756e4d656d5a56434b4853473336534235734c7a776a49684e39784268647a3935642f57494c5a33756e48583163647452305934395774393858626d414c736977413d0a10081a205dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff460432822205dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff46043282880d0dfb4ab33";
