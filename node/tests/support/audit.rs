//! Helpers of the audit tests: reads as of a point, checkpoints and their notes (split, merged,
//! signatures checked with the key in the node's data dir), exports, the CLI, data-dir copies,
//! and starting a node that cannot reach its peers.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use tonic::Status;
use warrant_proto::api::{self, Consistency, ReadOptions};

use super::{Certs, Node, Ready, warrant_command};

/// How long a node may take to catch up after a restart.
pub const CATCH_UP_WAIT_MAX: Duration = Duration::from_secs(60);
/// The node's audit key file in its data dir.
pub const AUDIT_KEY_FILE: &str = "audit-key.pk8";
/// The node's persisted signed checkpoint, relative to its data dir.
pub const SIGNED_CHECKPOINT_FILE: &str = "audit/signed-checkpoint";

pub fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    u64::try_from(since.as_millis()).expect("a time in ms fits in u64")
}

/// Waits (bounded) until the wall clock is past `ms`, so the next event is stamped later.
pub async fn wait_clock_past(ms: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while now_ms() <= ms {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the clock does not move"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// LINEARIZABLE, as of the state after the event at `seq`.
pub fn as_of_seq(seq: u64) -> ReadOptions {
    as_of(api::as_of::Point::Seq(seq))
}

/// LINEARIZABLE, as of every event stamped at or before `ms`.
pub fn as_of_time(ms: u64) -> ReadOptions {
    as_of(api::as_of::Point::TimeUnixMs(ms))
}

fn as_of(point: api::as_of::Point) -> ReadOptions {
    ReadOptions {
        consistency: Consistency::Linearizable as i32,
        at_least_seq: 0,
        as_of: Some(api::AsOf { point: Some(point) }),
    }
}

pub fn local() -> ReadOptions {
    ReadOptions {
        consistency: Consistency::Local as i32,
        at_least_seq: 0,
        as_of: None,
    }
}

/// The node's checkpoint (`fresh`: one signed now).
pub async fn checkpoint(
    node: &Node,
    fresh: bool,
    read: Option<ReadOptions>,
) -> Result<api::Checkpoint, Status> {
    node.audit()
        .get_checkpoint(node.admin(api::GetCheckpointRequest { read, fresh }))
        .await
        .map(tonic::Response::into_inner)
}

/// The reason code of a refusal.
pub fn reason(status: &Status) -> String {
    use tonic_types::StatusExt as _;
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

/// A note's signed text (with its final newline) and its signature lines.
pub fn split_note(note: &str) -> (String, Vec<String>) {
    let (body, signatures) = note.split_once("\n\n").expect("a signed note");
    (
        format!("{body}\n"),
        signatures.lines().map(String::from).collect(),
    )
}

/// One note of `body` carrying every signature line of `notes` (all of that body).
pub fn merge_notes(notes: &[&str]) -> String {
    let (body, _) = split_note(notes[0]);
    let mut merged = format!("{body}\n");
    for note in notes {
        let (other, lines) = split_note(note);
        assert_eq!(other, body, "notes of different bodies cannot be merged");
        for line in lines {
            merged.push_str(&line);
            merged.push('\n');
        }
    }
    merged
}

/// A verifier key's name, key id and Ed25519 public key.
pub fn parse_verifier_key(key: &str) -> (String, [u8; 4], [u8; 32]) {
    let mut parts = key.splitn(3, '+');
    let name = parts.next().expect("a name").to_string();
    let id: [u8; 4] = hex::decode(parts.next().expect("a key id"))
        .expect("hex")
        .try_into()
        .expect("4 bytes");
    let raw = STANDARD
        .decode(parts.next().expect("a key"))
        .expect("base64");
    assert_eq!(raw[0], 0x01, "an Ed25519 verifier key");
    (name, id, raw[1..].try_into().expect("32 bytes"))
}

/// Whether `line` is a valid signature of `body` by `key` (name and key id matching).
pub fn signature_verifies(body: &str, line: &str, key: &str) -> bool {
    let (name, id, public) = parse_verifier_key(key);
    let Some(rest) = line.strip_prefix("\u{2014} ") else {
        return false;
    };
    let Some((signer, signature)) = rest.split_once(' ') else {
        return false;
    };
    let Ok(bytes) = STANDARD.decode(signature) else {
        return false;
    };
    signer == name
        && bytes.len() == 68
        && bytes[..4] == id
        && UnparsedPublicKey::new(&ED25519, &public)
            .verify(body.as_bytes(), &bytes[4..])
            .is_ok()
}

/// The public half of the audit key the node keeps in its data dir.
pub fn audit_public_key(node: &Node) -> [u8; 32] {
    let pkcs8 = fs::read(node.data_dir().join(AUDIT_KEY_FILE)).expect("read the node's audit key");
    let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).expect("an Ed25519 PKCS#8 key");
    pair.public_key().as_ref().try_into().expect("32 bytes")
}

/// Streams the node's export (from seq 1 to `to_seq`, 0: its tree size) into `path`.
pub async fn export_to(node: &Node, path: &Path, to_seq: u64) {
    let request = api::ExportRequest {
        from_seq: 0,
        to_seq,
        read: None,
    };
    let mut stream = node
        .audit()
        .export(node.admin(request))
        .await
        .expect("Export")
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.expect("an export chunk") {
        bytes.extend_from_slice(&chunk.jsonl);
    }
    fs::write(path, bytes).expect("write the export");
}

/// The export's event lines and its checkpoint line, parsed.
pub fn export_lines(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .expect("read the export")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

pub fn write_lines(path: &Path, lines: &[serde_json::Value]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    fs::write(path, text).expect("write the export");
}

/// Runs the CLI as an operator would: the admin token and the cluster CA from its environment.
pub fn warrant(args: &[&str], admin_token: &str) -> (bool, String, String) {
    let output = warrant_command()
        .args(args)
        .env("WARRANT_CLI_ADMIN_TOKEN", admin_token)
        .env("WARRANT_CLI_CA", Certs::shared().ca_file())
        .output()
        .expect("run warrant");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Copies the directory tree `from` to `to` (which must not exist).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create the copy");
    for entry in fs::read_dir(from).expect("read the directory") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// Replaces the (stopped) node's data dir with a copy of `saved`.
pub fn restore_data_dir(node: &Node, saved: &Path) {
    assert!(node.pid().is_none(), "stop the node first");
    let data = node.data_dir();
    fs::remove_dir_all(&data).expect("remove the data dir");
    copy_dir(saved, &data);
}

/// A scratch path beside the node's files.
pub fn scratch(node: &Node, name: &str) -> PathBuf {
    node.data_dir()
        .parent()
        .expect("the node's directory")
        .join(name)
}

impl Node {
    /// Starts a stopped node again and waits only until its process answers, not until it
    /// serves in a cluster: its peers may be down.
    pub async fn start_again_alone(&mut self) {
        self.ready = Ready::Listening;
        let port = self.port;
        self.launch(Some(port)).await;
        self.ready = Ready::Serving;
    }
}

/// Installs `cryptography` (Ed25519) from PyPI into `dir`, for the independent verifier.
pub fn install_cryptography(dir: &Path) {
    super::pip_install(dir, "cryptography>=42");
}
