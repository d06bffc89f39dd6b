//! Interoperability: a token issued by the real binary verifies in PyJWT, an independent
//! implementation, using only the node's published JWKS. The test installs PyJWT (with
//! `cryptography` for EdDSA) from PyPI into its own temporary directory.

#![allow(clippy::unwrap_used)]

mod support;

use std::{path::Path, process::Command};

use serde_json::Value;
use support::{Node, tamper_signature};

const AUDIENCE: &str = "https://calendar.example/mcp";
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/verify_with_pyjwt.py"
);

/// Installs PyJWT into `dir` and returns it, for PYTHONPATH.
fn install_pyjwt(dir: &Path) {
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(dir)
        .arg("pyjwt[crypto]>=2.8")
        .status()
        .expect("run pip");
    assert!(status.success(), "pip could not install pyjwt[crypto]");
}

/// Runs the PyJWT verifier; returns its exit success and stdout.
fn pyjwt_verify(
    pythonpath: &Path,
    work: &Path,
    jwks: &str,
    token: &str,
    issuer: &str,
) -> (bool, String, String) {
    let jwks_path = work.join("jwks.json");
    let token_path = work.join("token.txt");
    std::fs::write(&jwks_path, jwks).unwrap();
    std::fs::write(&token_path, token).unwrap();
    let output = Command::new("python3")
        .arg(SCRIPT)
        .arg(&jwks_path)
        .arg(&token_path)
        .arg(AUDIENCE)
        .arg(issuer)
        .env("PYTHONPATH", pythonpath)
        .output()
        .expect("run python3");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warrant_token_verifies_in_pyjwt_from_the_jwks_alone() {
    let work = tempfile::tempdir().unwrap();
    let pythonpath = work.path().join("site");
    install_pyjwt(&pythonpath);

    let node = Node::start().await;
    let issued = node
        .issue_calendar_token(AUDIENCE, &["read_events", "create_event"])
        .await;
    let (status, jwks) = node.http_get("/.well-known/jwks.json");
    assert_eq!(status, 200, "JWKS: {jwks}");

    let (ok, stdout, stderr) = pyjwt_verify(
        &pythonpath,
        work.path(),
        &jwks,
        &issued.access_token,
        node.issuer(),
    );
    assert!(ok, "PyJWT rejected a Warrant token: {stderr}");
    let verified: Value = serde_json::from_str(stdout.trim()).expect("verifier prints JSON");
    assert_eq!(verified["typ"], "at+jwt");
    let claims = &verified["claims"];
    assert_eq!(claims["sub"], "alice-assistant");
    assert_eq!(claims["client_id"], "alice-assistant");
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["scope"], "read_events create_event");
    assert_eq!(claims["jti"], issued.jti.as_str());

    // PyJWT must also refuse what Warrant refuses: a wrong issuer, and a tampered signature.
    let (ok, _, _) = pyjwt_verify(
        &pythonpath,
        work.path(),
        &jwks,
        &issued.access_token,
        "https://evil.example",
    );
    assert!(!ok, "PyJWT accepted a token for the wrong issuer");
    let tampered = tamper_signature(&issued.access_token);
    let (ok, _, _) = pyjwt_verify(&pythonpath, work.path(), &jwks, &tampered, node.issuer());
    assert!(!ok, "PyJWT accepted a tampered token");
}
