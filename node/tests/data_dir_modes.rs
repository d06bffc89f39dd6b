//! The data directory is the node's alone: after a start, some writes and a snapshot, every
//! directory under it is 0700 and every file 0600 (the signing key, RocksDB's files, the
//! generation pointer, snapshots), whatever the umask the test runs with. A data directory an
//! operator left world-readable is narrowed at the next start.

mod support;

use std::{
    fs::{self, Permissions},
    os::unix::fs::PermissionsExt,
    path::Path,
};

use support::Node;
use warrant_proto::api;

const AUDIENCE: &str = "https://calendar.example/mcp";

/// Every path under `root` (itself included) whose mode is not 0700 (directories) or 0600
/// (files), with its mode in octal, and how many files were looked at.
fn too_open(root: &Path) -> (Vec<String>, usize) {
    let mut wrong = Vec::new();
    let mut n_files = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = fs::symlink_metadata(&path).expect("stat");
        let mode = metadata.permissions().mode() & 0o777;
        if metadata.is_dir() {
            if mode != 0o700 {
                wrong.push(format!("{} {mode:o}", path.display()));
            }
            for entry in fs::read_dir(&path).expect("read dir") {
                pending.push(entry.expect("dir entry").path());
            }
        } else {
            n_files += 1;
            if mode != 0o600 {
                wrong.push(format!("{} {mode:o}", path.display()));
            }
        }
    }
    (wrong, n_files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_directory_is_0700_and_every_file_0600() {
    let mut node = Node::start().await;
    node.issue_calendar_token(AUDIENCE, &["read_events"]).await;
    let compacted = node
        .cluster()
        .compact(node.admin(api::CompactRequest {}))
        .await
        .expect("Compact")
        .into_inner();
    assert!(0 < compacted.snapshot_index);
    let data_dir = node.data_dir();
    let snapshots = fs::read_dir(data_dir.join("snapshots"))
        .expect("the snapshot directory")
        .count();
    assert!(0 < snapshots, "no snapshot file was written");

    let (wrong, n_files) = too_open(&data_dir);
    assert!(n_files >= 10, "only {n_files} files: not the data dir?");
    assert!(wrong.is_empty(), "too open: {wrong:#?}");

    // Left world-readable by hand, it is narrowed at the next start.
    fs::set_permissions(&data_dir, Permissions::from_mode(0o755)).expect("chmod");
    node.restart().await;
    let (wrong, _) = too_open(&data_dir);
    assert!(wrong.is_empty(), "too open after a restart: {wrong:#?}");
}
