//! Interoperability of the audit log: a three-node cluster's export, its nodes' checkpoints
//! (merged into one note) and the proofs its RPCs serve verify in an independent verifier,
//! `tests/interop/verify_audit.py`, written from RFC 9162 and the C2SP signed-note and
//! tlog-checkpoint specifications alone, with `cryptography` installed from PyPI for Ed25519.
//! And that verifier refuses what was tampered with.

#![allow(clippy::unwrap_used)]

mod support;

use std::{path::Path, process::Command};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use support::{
    audit::{checkpoint, export_lines, export_to, install_cryptography, merge_notes, write_lines},
    cluster::Cluster,
};
use warrant_proto::api;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/verify_audit.py");

/// Runs the independent verifier; returns its exit success and the JSON it printed.
fn python(pythonpath: &Path, args: &[&str]) -> (bool, Value) {
    let output = Command::new("python3")
        .arg(SCRIPT)
        .args(args)
        .env("PYTHONPATH", pythonpath)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "the verifier printed no JSON ({e}): {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), value)
}

fn b64(bytes: &[u8]) -> Value {
    STANDARD.encode(bytes).into()
}

/// Inclusion proofs of a few seqs and consistency proofs of a few sizes, all to `size`, as
/// served by `node`, in the verifier's JSON.
async fn proofs(node: &support::Node, size: u64) -> Value {
    let mut inclusion = Vec::new();
    for seq in [1, 2, size / 2, size - 1, size] {
        let request = api::ProveInclusionRequest {
            seq,
            tree_size: size,
            read: None,
        };
        let p = node
            .audit()
            .prove_inclusion(node.admin(request))
            .await
            .expect("ProveInclusion")
            .into_inner();
        assert_eq!(p.leaf_index, seq - 1);
        inclusion.push(json!({
            "leaf_index": p.leaf_index,
            "tree_size": p.tree_size,
            "leaf_hash": b64(&p.leaf_hash),
            "hashes": p.hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(),
            "root_hash": b64(&p.root_hash),
        }));
    }
    let mut consistency = Vec::new();
    for old_size in [1, 3, 4, size / 2, size - 1, size] {
        let request = api::ProveConsistencyRequest {
            old_size,
            new_size: size,
            read: None,
        };
        let p = node
            .audit()
            .prove_consistency(node.admin(request))
            .await
            .expect("ProveConsistency")
            .into_inner();
        consistency.push(json!({
            "old_size": p.old_size,
            "new_size": p.new_size,
            "hashes": p.hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(),
            "old_root": b64(&p.old_root),
            "new_root": b64(&p.new_root),
        }));
    }
    json!({ "inclusion": inclusion, "consistency": consistency })
}

/// `proofs` with one hash of the `kind` proof at `index` flipped (or, `drop`, removed).
fn tampered(proofs: &Value, kind: &str, index: usize, drop: bool) -> Value {
    let mut proofs = proofs.clone();
    let hashes = proofs[kind][index]["hashes"].as_array_mut().unwrap();
    assert!(!hashes.is_empty(), "a proof with hashes to tamper with");
    if drop {
        hashes.pop();
    } else {
        let mut hash = STANDARD.decode(hashes[0].as_str().unwrap()).unwrap();
        hash[0] ^= 0x01;
        hashes[0] = b64(&hash);
    }
    proofs
}

/// What a cluster serves, in files for the verifier.
struct Served {
    export: std::path::PathBuf,
    merged: std::path::PathBuf,
    proofs: Value,
    proofs_path: std::path::PathBuf,
    keys: Vec<String>,
    size: u64,
}

/// Writes, then node 2's export, the three nodes' fresh checkpoints merged into one note, and
/// node 2's proofs, into `work`.
async fn served(cluster: &Cluster, work: &Path) -> Served {
    let leader = cluster.leader().await;
    for i in 0..21 {
        cluster.node(leader).register_human(&format!("p-{i}")).await;
    }
    cluster.converged().await;
    let mut notes = Vec::new();
    let mut keys = Vec::new();
    for id in 1..=3 {
        let c = checkpoint(cluster.node(id), true, None)
            .await
            .expect("a fresh checkpoint");
        notes.push(c.note);
        keys.push(c.verifier_key);
    }
    let node = cluster.node(2);
    let export = work.join("export.jsonl");
    export_to(node, &export, 0).await;
    let size = export_lines(&export).len() as u64 - 1;
    let merged = work.join("merged.note");
    std::fs::write(
        &merged,
        merge_notes(&notes.iter().map(String::as_str).collect::<Vec<_>>()),
    )
    .unwrap();
    let proofs = proofs(node, size).await;
    let proofs_path = work.join("proofs.json");
    std::fs::write(&proofs_path, proofs.to_string()).unwrap();

    Served {
        export,
        merged,
        proofs,
        proofs_path,
        keys,
        size,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clusters_export_checkpoints_and_proofs_verify_in_an_independent_verifier() {
    let work = tempfile::tempdir().unwrap();
    let site = work.path().join("site");
    install_cryptography(&site);
    let (ok, selftest) = python(&site, &["--self-test"]);
    assert!(ok, "the verifier fails its own known answers: {selftest}");

    let cluster = Cluster::start(3).await;
    let Served {
        export,
        merged,
        proofs,
        proofs_path,
        keys,
        size,
    } = served(&cluster, work.path()).await;

    let mut args: Vec<&str> = vec!["--export", export.to_str().unwrap()];
    for key in &keys {
        args.extend(["--key", key.as_str()]);
    }
    args.extend(["--note", merged.to_str().unwrap(), "--require-all-keys"]);
    let with_proofs = |path: &Path| {
        let mut all = args.clone();
        all.extend(["--proofs", path.to_str().unwrap()]);
        all.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |all: &[String]| python(&site, &all.iter().map(String::as_str).collect::<Vec<_>>());

    let (ok, result) = run(&with_proofs(&proofs_path));
    assert!(
        ok,
        "the independent verifier refused Warrant's log: {result}"
    );
    assert_eq!(result["tree_size"], size);
    assert_eq!(result["inclusion_proofs"], 5);
    assert_eq!(result["consistency_proofs"], 6);
    assert_eq!(result["notes"][0]["signers"].as_array().unwrap().len(), 3);

    // What it must refuse: a flipped or a missing hash in either kind of proof…
    for (kind, index, drop) in [
        ("inclusion", 2, false),
        ("inclusion", 2, true),
        ("consistency", 1, false),
        ("consistency", 3, true),
    ] {
        let bad = work.path().join(format!("bad-{kind}-{drop}.json"));
        std::fs::write(&bad, tampered(&proofs, kind, index, drop).to_string()).unwrap();
        let (ok, result) = run(&with_proofs(&bad));
        assert!(
            !ok,
            "a tampered {kind} proof (drop {drop}) verified: {result}"
        );
    }
    // …and a record changed in the export.
    let mut lines = export_lines(&export);
    let mut record = STANDARD
        .decode(lines[3]["record"].as_str().unwrap())
        .unwrap();
    record[2] ^= 0x01;
    lines[3]["record"] = b64(&record);
    let flipped = work.path().join("flipped.jsonl");
    write_lines(&flipped, &lines);
    let mut all = with_proofs(&proofs_path);
    all[1] = flipped.to_str().unwrap().to_string();
    let (ok, result) = run(&all);
    assert!(!ok, "a flipped record verified: {result}");
}
