//! Known answers from the signed-note reference (the PeterNeumann and EnochRoot keys and
//! notes of golang.org/x/mod/sumdb/note), round trips, tampering (tamper case 3: a flipped
//! signature, a swapped key id, a changed text) and the limits.

use base64::{Engine, engine::general_purpose::STANDARD};

use super::*;

const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
/// The reference signer key's material: 0x01 ‖ the Ed25519 seed.
const PETER_SEED_B64: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

/// The Ed25519 key of `seed`, through a PKCS#8 v1 document (its fixed 16-byte prefix, then
/// the seed), as the node loads its keys.
fn key_from_seed(seed: &[u8; 32]) -> NodeSigningKey {
    let mut pkcs8 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    pkcs8.extend_from_slice(seed);
    NodeSigningKey::from_pkcs8(&pkcs8).expect("an Ed25519 seed")
}

fn peter_key() -> NodeSigningKey {
    let typed = STANDARD.decode(PETER_SEED_B64).expect("base64");
    let seed: [u8; 32] = typed[1..].try_into().expect("32-byte seed");
    key_from_seed(&seed)
}

fn vkey(text: &str) -> VerifierKey {
    parse_verifier_key(text).expect("a valid verifier key")
}

#[test]
fn the_reference_key_parses_to_its_id_and_back() {
    let peter = vkey(PETER_VKEY);
    assert_eq!(peter.name(), "PeterNeumann");
    assert_eq!(peter.key_id(), [0xc7, 0x4f, 0x20, 0xa3]);
    assert_eq!(key_id("PeterNeumann", peter.public_key()), peter.key_id());
    assert_eq!(peter.to_string(), PETER_VKEY);
    assert_eq!(peter.label(), "PeterNeumann+c74f20a3");
    assert_eq!(peter_key().public_key(), peter.public_key());
    assert_eq!(
        verifier_key("PeterNeumann", peter.public_key()).expect("valid name"),
        PETER_VKEY
    );
    assert_eq!(vkey(ENOCH_VKEY).key_id(), [0xaf, 0x0c, 0xfe, 0x78]);
}

#[test]
fn signing_reproduces_the_reference_note_byte_for_byte() {
    let note = sign(TEXT, "PeterNeumann", &peter_key()).expect("sign");
    assert_eq!(note, format!("{TEXT}\n{PETER_SIG}"));
    let opened = open(&note, &[vkey(PETER_VKEY)]).expect("open");
    assert_eq!(opened.body, TEXT);
    assert_eq!(opened.verified, vec![vkey(PETER_VKEY)]);
    assert!(opened.unverified.is_empty());
}

#[test]
fn unknown_signers_are_ignored_and_known_ones_checked() {
    let both = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    let (peter, enoch) = (vkey(PETER_VKEY), vkey(ENOCH_VKEY));
    let opened = open(&both, std::slice::from_ref(&peter)).expect("peter signed");
    assert_eq!(opened.verified, vec![peter.clone()]);
    assert_eq!(opened.unverified.len(), 1);
    assert_eq!(opened.unverified[0].label(), "EnochRoot+af0cfe78");
    let opened = open(&both, &[enoch.clone(), peter.clone()]).expect("both signed");
    assert_eq!(opened.verified, vec![peter.clone(), enoch]);
    assert_eq!(
        open(&both, &[]).expect_err("no known key").to_string(),
        "no signature by a known key; signed by: PeterNeumann+c74f20a3, EnochRoot+af0cfe78"
    );
    let twice = format!("{TEXT}\n{PETER_SIG}{PETER_SIG}");
    assert_eq!(open(&twice, &[peter]).expect("twice").verified.len(), 1);
}

#[test]
fn tampered_notes_are_refused() {
    // Tamper case 3, and a changed text.
    let peter = vkey(PETER_VKEY);
    let note = format!("{TEXT}\n{PETER_SIG}");
    let flipped_signature = format!(
        "{}ABCD{}",
        &note[..TEXT.len() + 60],
        &note[TEXT.len() + 60..]
    );
    let mut swapped_id = STANDARD
        .decode(PETER_SIG.trim_end().rsplit(' ').next().expect("base64"))
        .expect("base64");
    swapped_id[..4].copy_from_slice(&vkey(ENOCH_VKEY).key_id());
    let swapped_id = format!(
        "{TEXT}\n\u{2014} PeterNeumann {}\n",
        STANDARD.encode(&swapped_id)
    );
    let renamed = format!(
        "{TEXT}\n{}",
        PETER_SIG.replace("PeterNeumann", "PeterNeuman")
    );
    let cases: Vec<(&str, String, NoteError)> = vec![
        (
            "changed text",
            note.replace("cryptography", "cryptographY"),
            NoteError::BadSignature {
                key: "PeterNeumann+c74f20a3".into(),
            },
        ),
        (
            "flipped signature",
            flipped_signature,
            NoteError::BadSignature {
                key: "PeterNeumann+c74f20a3".into(),
            },
        ),
        (
            "swapped key id",
            swapped_id,
            NoteError::NoKnownSignature {
                signers: vec!["PeterNeumann+af0cfe78".into()],
            },
        ),
        (
            "other name, same id",
            renamed,
            NoteError::NoKnownSignature {
                signers: vec!["PeterNeuman+c74f20a3".into()],
            },
        ),
    ];
    for (what, tampered, expected) in cases {
        assert_eq!(
            open(&tampered, std::slice::from_ref(&peter)),
            Err(expected),
            "{what}"
        );
    }
}

/// (what, note, refusal): notes malformed in one way each, refused before any signature is
/// checked (after the reference implementation's bad messages).
fn malformed_notes() -> Vec<(&'static str, Vec<u8>, NoteError)> {
    let sig_base64 = PETER_SIG.trim_end().rsplit(' ').next().expect("base64");
    let malformed = |line: usize, reason: &str| NoteError::MalformedSignature {
        line,
        reason: reason.into(),
    };
    vec![
        ("text only", TEXT.into(), NoteError::NoSeparator),
        (
            "blank line, no signature",
            format!("{TEXT}\n").into(),
            NoteError::NoSignatures,
        ),
        (
            "last line unterminated",
            format!("{TEXT}\n{}", PETER_SIG.trim_end()).into(),
            malformed(1, "it does not end with a newline"),
        ),
        (
            "control character",
            format!("\x01{TEXT}\n{PETER_SIG}").into(),
            NoteError::ControlCharacter { offset: 0 },
        ),
        (
            "carriage return",
            format!("{}\r\n\n{PETER_SIG}", TEXT.trim_end()).into(),
            NoteError::ControlCharacter {
                offset: TEXT.len() - 1,
            },
        ),
        (
            "not UTF-8",
            [
                b"\xff".as_slice(),
                format!("{TEXT}\n{PETER_SIG}").as_bytes(),
            ]
            .concat(),
            NoteError::NotUtf8 { offset: 0 },
        ),
        (
            "name with a space",
            format!("{TEXT}\n\u{2014} Bad Name {sig_base64}\n").into(),
            malformed(1, "the signature is not standard base64"),
        ),
        (
            "name with a plus",
            format!("{TEXT}\n\u{2014} a+b {sig_base64}\n").into(),
            malformed(1, "key name \"a+b\" is invalid: it contains '+'"),
        ),
        (
            "a line that is not a signature",
            format!("{TEXT}\n{PETER_SIG}Unexpected line.\n").into(),
            malformed(2, "it does not start with an em dash (U+2014) and a space"),
        ),
        (
            "hyphen for em dash",
            format!("{TEXT}\n- PeterNeumann {sig_base64}\n").into(),
            malformed(1, "it does not start with an em dash (U+2014) and a space"),
        ),
        (
            "no signature after the name",
            format!("{TEXT}\n\u{2014} PeterNeumann\n").into(),
            malformed(1, "no space between the key name and the signature"),
        ),
        (
            "unpadded base64",
            format!("{TEXT}\n{}\n", PETER_SIG.trim_end().trim_end_matches('=')).into(),
            malformed(1, "the signature is not standard base64"),
        ),
        (
            "only a key id",
            format!("{TEXT}\n\u{2014} PeterNeumann x08gow==\n").into(),
            malformed(1, "the signature is only a key id"),
        ),
        (
            "shorter than a key id",
            format!("{TEXT}\n\u{2014} PeterNeumann x08g\n").into(),
            malformed(
                1,
                "the signature is 3 bytes; it starts with a 4-byte key id",
            ),
        ),
    ]
}

#[test]
fn malformed_notes_are_refused_before_any_signature_is_checked() {
    let peter = [vkey(PETER_VKEY)];
    for (what, note, expected) in malformed_notes() {
        assert_eq!(open(&note, &peter), Err(expected), "{what}");
    }
}

#[test]
fn notes_are_bounded_in_size_and_signatures() {
    let peter = [vkey(PETER_VKEY)];
    let sixteen = format!("{TEXT}\n{}", PETER_SIG.repeat(NOTE_SIGNATURES_MAX));
    assert!(open(&sixteen, &peter).is_ok(), "16 signatures are accepted");
    let seventeen = format!("{TEXT}\n{}", PETER_SIG.repeat(NOTE_SIGNATURES_MAX + 1));
    assert_eq!(
        open(&seventeen, &peter),
        Err(NoteError::TooManySignatures { count: 17, max: 16 })
    );
    let long_text = format!("{}\n", "a".repeat(NOTE_BYTES_MAX));
    let huge = format!("{long_text}\n{PETER_SIG}");
    assert_eq!(
        open(&huge, &peter),
        Err(NoteError::TooLarge {
            len: huge.len(),
            max: NOTE_BYTES_MAX
        })
    );
    assert_eq!(
        sign(&long_text, "PeterNeumann", &peter_key()),
        Err(NoteError::TooLarge {
            len: huge.len(),
            max: NOTE_BYTES_MAX
        })
    );
}

#[test]
fn signing_refuses_bad_names_and_texts() {
    let key = peter_key();
    let name_error = |name: &str, reason: &str| NoteError::InvalidKeyName {
        name: name.into(),
        reason: reason.into(),
    };
    let long = "n".repeat(KEY_NAME_LEN_MAX + 1);
    let cases: Vec<(&str, &str, NoteError)> = vec![
        (TEXT, "", name_error("", "it is empty")),
        (TEXT, "a b", name_error("a b", "it contains a space")),
        (
            TEXT,
            "a\u{00a0}b",
            name_error("a\u{00a0}b", "it contains a space"),
        ),
        (TEXT, "a+b", name_error("a+b", "it contains '+'")),
        (
            TEXT,
            "a\u{7f}b",
            name_error("a\u{7f}b", "it contains a control character"),
        ),
        (
            TEXT,
            &long,
            name_error(&long[..64], "513 bytes; allowed: at most 512"),
        ),
        ("", "n", NoteError::EmptyText),
        ("no newline", "n", NoteError::TextNotTerminated),
        (
            "tab\there\n",
            "n",
            NoteError::ControlCharacter { offset: 3 },
        ),
    ];
    for (text, name, expected) in cases {
        assert_eq!(
            sign(text, name, &key),
            Err(expected),
            "{text:?} by {name:?}"
        );
    }
}

#[test]
fn a_fresh_key_round_trips_and_other_keys_do_not_verify_it() {
    let key = NodeSigningKey::generate_ephemeral().expect("key");
    let other = NodeSigningKey::generate_ephemeral().expect("key");
    let name = "warrant.example/audit#node-1";
    let body = checkpoint_body("warrant.example/audit", 42, &[9; 32]).expect("body");
    let note = sign(&body, name, &key).expect("sign");
    let known = VerifierKey::new(name, key.public_key()).expect("key");
    let opened = open(&note, std::slice::from_ref(&known)).expect("open");
    assert_eq!(parse_checkpoint(&opened.body).expect("checkpoint").size, 42);
    let impostor = VerifierKey::new(name, other.public_key()).expect("key");
    assert!(matches!(
        open(&note, &[impostor]),
        Err(NoteError::NoKnownSignature { .. })
    ));
    assert_eq!(parse_verifier_key(&known.to_string()), Ok(known));
}

#[test]
fn mangled_verifier_keys_are_refused() {
    // Every proper substring and every one-byte change of the reference key (as the reference
    // implementation tests), and a wrong length and an unknown type with adjusted ids.
    let bytes = PETER_VKEY.as_bytes();
    for i in 0..=bytes.len() {
        for j in i + 1..=bytes.len() {
            if (i, j) != (0, bytes.len()) {
                let part = &PETER_VKEY[i..j];
                assert!(parse_verifier_key(part).is_err(), "{part:?}");
            }
        }
    }
    for i in 0..bytes.len() {
        let mut changed = bytes.to_vec();
        changed[i] += 1;
        let changed = String::from_utf8(changed).expect("ASCII");
        assert!(parse_verifier_key(&changed).is_err(), "{changed:?}");
    }
    let cases = [
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ];
    for case in cases {
        assert!(parse_verifier_key(case).is_err(), "{case}");
    }
    let long = format!(
        "{}+00000000+{}",
        "n".repeat(KEY_NAME_LEN_MAX),
        "A".repeat(60)
    );
    assert!(matches!(
        parse_verifier_key(&long),
        Err(NoteError::InvalidVerifierKey(reason)) if reason.contains("allowed: at most")
    ));
}

#[test]
fn checkpoints_parse_strictly() {
    let root = STANDARD.encode([7u8; 32]);
    let ok = |origin: &str, size: u64, extensions: &[&str]| Checkpoint {
        origin: origin.into(),
        size,
        root: [7; 32],
        extensions: extensions.iter().map(|e| e.to_string()).collect(),
    };
    let bad = |reason: &str| Err(NoteError::InvalidCheckpoint(reason.into()));
    let cases: Vec<(String, Result<Checkpoint, NoteError>)> = vec![
        (
            format!("o.example/log\n8\n{root}\n"),
            Ok(ok("o.example/log", 8, &[])),
        ),
        (format!("o\n0\n{root}\n"), Ok(ok("o", 0, &[]))),
        (
            format!("o\n18446744073709551615\n{root}\next a\nb\n"),
            Ok(ok("o", u64::MAX, &["ext a", "b"])),
        ),
        (format!("o\n8\n{root}"), bad("does not end with a newline")),
        (
            "o\n8\n".into(),
            bad("2 lines; a checkpoint has at least 3 (origin, tree size, root hash)"),
        ),
        (format!("\n8\n{root}\n"), bad("the origin line is empty")),
        (
            format!("o\n08\n{root}\n"),
            bad("tree size \"08\" has a leading zero"),
        ),
        (
            format!("o\n+8\n{root}\n"),
            bad("tree size \"+8\" is not a decimal number"),
        ),
        (
            format!("o\n-8\n{root}\n"),
            bad("tree size \"-8\" is not a decimal number"),
        ),
        (
            format!("o\n 8\n{root}\n"),
            bad("tree size \" 8\" is not a decimal number"),
        ),
        (
            format!("o\n\n{root}\n"),
            bad("tree size \"\" is not a decimal number"),
        ),
        (
            format!("o\n18446744073709551616\n{root}\n"),
            bad("tree size \"18446744073709551616\" is larger than 2^64 - 1"),
        ),
        (
            "o\n8\nAAAA\n".into(),
            bad("root \"AAAA\" is not standard base64 of 32 bytes"),
        ),
        (
            format!("o\n8\n{}\n", root.trim_end_matches('=')),
            bad(&format!(
                "root {:?} is not standard base64 of 32 bytes",
                root.trim_end_matches('=')
            )),
        ),
        (
            format!("o\n8\n{root}\n\n"),
            bad("extension line 1 is empty"),
        ),
        (
            format!("o\n8\n{root}\nx\n\ny\n"),
            bad("extension line 2 is empty"),
        ),
        (
            format!("o\r\n8\n{root}\n"),
            bad("control character at byte 1; only newline is allowed"),
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(parse_checkpoint(&body), expected, "{body:?}");
    }
}

#[test]
fn checkpoint_bodies_and_origins_are_built_as_the_design_says() {
    let body = checkpoint_body("warrant.example/audit", 8, &[0; 32]).expect("body");
    assert_eq!(
        body,
        "warrant.example/audit\n8\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    );
    assert!(checkpoint_body("", 8, &[0; 32]).is_err());
    assert!(checkpoint_body("two\nlines", 8, &[0; 32]).is_err());
    let origins = [
        ("https://warrant.example", "warrant.example/audit"),
        ("https://warrant.example/", "warrant.example/audit"),
        (
            "http://id.example:8443/tenant//",
            "id.example:8443/tenant/audit",
        ),
        ("warrant.example", "warrant.example/audit"),
    ];
    for (issuer, origin) in origins {
        assert_eq!(checkpoint_origin(issuer), origin, "{issuer}");
    }
    assert_eq!(
        node_key_name("warrant.example/audit", 3),
        "warrant.example/audit#node-3"
    );
}

#[test]
fn merging_collects_every_signature_of_the_same_text() {
    let keys: Vec<NodeSigningKey> = (1..=3u8).map(|i| key_from_seed(&[i; 32])).collect();
    let names: Vec<String> = (1..=3)
        .map(|i| node_key_name("w.example/audit", i))
        .collect();
    let body = checkpoint_body("w.example/audit", 5, &[1; 32]).expect("body");
    let notes: Vec<String> = keys
        .iter()
        .zip(&names)
        .map(|(key, name)| sign(&body, name, key).expect("sign"))
        .collect();
    let merged = merge(&notes).expect("merge");
    let reversed: Vec<&String> = notes.iter().rev().collect();
    assert_eq!(
        merge(&reversed).expect("merge"),
        merged,
        "order does not matter"
    );
    let with_duplicate = [&notes[0], &notes[1], &notes[0], &notes[2], &merged];
    assert_eq!(
        merge(&with_duplicate).expect("merge"),
        merged,
        "duplicates collapse"
    );
    let verifiers: Vec<VerifierKey> = keys
        .iter()
        .zip(&names)
        .map(|(key, name)| VerifierKey::new(name, key.public_key()).expect("key"))
        .collect();
    let opened = open(&merged, &verifiers).expect("open");
    assert_eq!(opened.verified, verifiers);
    assert_eq!(opened.body, body);
    let other = sign(
        &checkpoint_body("w.example/audit", 6, &[1; 32]).expect("body"),
        &names[0],
        &keys[0],
    )
    .expect("sign");
    assert_eq!(
        merge(&[&notes[0], &notes[1], &other]),
        Err(NoteError::TextsDiffer { index: 2 })
    );
    assert_eq!(merge::<&str>(&[]), Err(NoteError::NothingToMerge));
    let many: Vec<String> = (0..=NOTE_SIGNATURES_MAX as u8)
        .map(|i| sign(&body, "n", &key_from_seed(&[100 + i; 32])).expect("sign"))
        .collect();
    assert_eq!(
        merge(&many),
        Err(NoteError::TooManySignatures { count: 17, max: 16 })
    );
}
