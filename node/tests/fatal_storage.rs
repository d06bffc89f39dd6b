//! A node whose disk fills up reports NOT_SERVING and exits non-zero, so that its supervisor
//! restarts it, instead of staying up and SERVING while it can neither commit nor apply.
//!
//! Method: the node's data directory is a size-limited tmpfs mounted for this test (mounting
//! needs root; without it the test says so and passes as skipped). With the node serving and a
//! health watch open, a file takes the rest of the tmpfs, and writes go on until one needs the
//! disk and fails. Raft's core then stops on the storage error: the watch must see NOT_SERVING,
//! and the process must exit with a failure status, both within a bound.

mod support;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use support::Node;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use warrant_proto::api;

/// Room for a fresh node (its RocksDB files, the signing key, a few writes): the filler takes
/// whatever is left.
const TMPFS_BYTES: u64 = 64 * 1024 * 1024;
/// The filler writes in pages: tmpfs allocates them whole.
const FILL_CHUNK_BYTES: usize = 4096;
/// How often a full disk is tried again for space the node has freed.
const REFILL_INTERVAL: Duration = Duration::from_millis(5);
/// Writers sending registrations at once.
const N_WRITERS: usize = 16;
/// "No space left on device".
const ENOSPC: i32 = 28;
/// From the disk filling to the process's exit: writes until one fails, the drain of open
/// connections (5 s at most) and Raft's shutdown.
const EXIT_WAIT_MAX: Duration = Duration::from_secs(60);

/// A tmpfs mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_bytes: u64) -> Result<Tmpfs, String> {
        let dir = tempfile::Builder::new()
            .prefix("warrant-full-disk-")
            .tempdir()
            .map_err(|e| format!("create the mount point: {e}"))?;
        let output = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_bytes},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(self.dir.path()).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            // Still busy (a process that has not let go): detach it, so nothing is left behind.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Keeps `path` growing until `stop`: whenever the node frees space (RocksDB deletes a WAL it
/// has flushed, a snapshot lets the log be purged), the filler takes it, so the disk stays full
/// as it would with another process filling it. Returns the bytes written.
fn fill_until(path: &Path, stop: &AtomicBool) -> u64 {
    let mut file = std::fs::File::create(path).expect("create the filler");
    let chunk = [0x5a_u8; FILL_CHUNK_BYTES];
    let mut n_bytes = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match file.write(&chunk) {
            Ok(n) => n_bytes += n as u64,
            Err(e) if e.raw_os_error() == Some(ENOSPC) => {
                std::thread::sleep(REFILL_INTERVAL);
            }
            Err(e) => panic!("fill {}: {e}", path.display()),
        }
    }
    n_bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_turns_the_node_not_serving_and_exits_non_zero() {
    let tmpfs = match Tmpfs::mount(TMPFS_BYTES) {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            eprintln!("SKIPPED: needs a tmpfs mount (run as root): {why}");
            return;
        }
    };
    let data_dir: PathBuf = tmpfs.path().join("data");
    let mut extra = toml::Table::new();
    extra.insert("data_dir".into(), data_dir.display().to_string().into());
    // The smallest memtables, so the write-ahead logs RocksDB preallocates for them (and writes
    // into after the disk is full) run out sooner.
    extra.insert(
        "storage_cache_mib".into(),
        toml::Value::Integer(warrant_raft::STORAGE_CACHE_MIB_MIN as i64),
    );
    let mut node = Node::start_with(extra).await;
    node.register_human("before-the-disk-fills").await;

    // --- a health watch, open before the disk fills
    let mut watch = HealthClient::new(node.channel())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("Watch")
        .into_inner();
    let first = watch.message().await.expect("a status").expect("a status");
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let statuses = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(Some(update)) = watch.message().await {
            seen.push(update.status);
        }
        seen
    });

    // --- the disk fills, and writes go on until the node gives up
    let stop_filling = Arc::new(AtomicBool::new(false));
    let filler = {
        let path = tmpfs.path().join("filler");
        let stop = stop_filling.clone();
        std::thread::spawn(move || fill_until(&path, &stop))
    };
    // Concurrent writers fill the log faster: RocksDB writes into space it preallocated for its
    // write-ahead logs until that runs out.
    let writers: Vec<_> = (0..N_WRITERS)
        .map(|writer| {
            let identity = node.identity();
            let admin_auth = node.admin_auth();
            tokio::spawn(async move {
                for i in 0.. {
                    let request = api::RegisterHumanRequest {
                        human_id: format!("after-{writer}-{i}"),
                        display_name: format!("Human {writer} {i}"),
                        email: format!("after-{writer}-{i}@example.com"),
                        ..Default::default()
                    };
                    // Fails once an append meets the full disk; the node's exit ends this.
                    let _ = identity
                        .clone()
                        .register_human(support::with_auth(Some(&admin_auth), request))
                        .await;
                }
            })
        })
        .collect();
    let exit = node.wait_exit(EXIT_WAIT_MAX).await;
    for writer in writers {
        writer.abort();
    }
    stop_filling.store(true, Ordering::Relaxed);
    let n_filled = filler.join().expect("the filler");
    eprintln!("the filler took {n_filled} bytes");
    let exit = exit.unwrap_or_else(|| {
        panic!(
            "the node still runs {EXIT_WAIT_MAX:?} after its disk filled\n{}",
            node.stderr_tail()
        )
    });
    // 1 is `main` returning the error: an orderly exit, not a crash.
    assert_eq!(exit.code(), Some(1), "the node exited with {exit}");
    let statuses = statuses.await.expect("the watch task");
    assert!(
        statuses.contains(&(ServingStatus::NotServing as i32)),
        "the watch saw {statuses:?}, never NOT_SERVING"
    );
    let stderr = node.stderr_tail();
    assert!(stderr.contains("fatal error"), "{stderr}");
}
