//! Disk guards for the fixtures: a load refuses to start, and stops, rather than fill the disk
//! the other processes on this machine share.

use std::{os::unix::fs::MetadataExt as _, path::Path};

use anyhow::Context as _;

/// The free space a load always leaves.
pub const FREE_FLOOR_BYTES: u64 = 6 << 30;
/// What one event is expected to take on disk with its tree and history rows, for the check
/// before a load (the real figure is measured and reported with each fixture): 10⁶ events of
/// the workload took 402 MB right after loading (write-ahead logs included), 242 MB settled.
pub const BYTES_PER_EVENT_ESTIMATE: u64 = 500;

/// Free bytes on the filesystem holding `path`, for an unprivileged writer.
pub fn free_bytes(path: &Path) -> anyhow::Result<u64> {
    let stat =
        nix::sys::statvfs::statvfs(path).with_context(|| format!("statvfs {}", path.display()))?;
    Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

/// Fails unless loading `events` events into `dir` leaves [`FREE_FLOOR_BYTES`] free.
pub fn ensure_room(dir: &Path, events: u64) -> anyhow::Result<()> {
    let free = free_bytes(dir)?;
    let need = events.saturating_mul(BYTES_PER_EVENT_ESTIMATE);
    anyhow::ensure!(
        need.saturating_add(FREE_FLOOR_BYTES) <= free,
        "{} has {} MiB free; {events} events need about {} MiB and {} MiB must stay free",
        dir.display(),
        free >> 20,
        need >> 20,
        FREE_FLOOR_BYTES >> 20
    );
    Ok(())
}

/// Fails once the filesystem holding `dir` has less than [`FREE_FLOOR_BYTES`] free.
pub fn ensure_floor(dir: &Path) -> anyhow::Result<()> {
    let free = free_bytes(dir)?;
    anyhow::ensure!(
        FREE_FLOOR_BYTES <= free,
        "stopped: {} has only {} MiB free (floor {} MiB)",
        dir.display(),
        free >> 20,
        FREE_FLOOR_BYTES >> 20
    );
    Ok(())
}

/// The bytes the files under `dir` occupy on disk (allocated blocks, as `du` counts).
pub fn size_of(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0_u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).with_context(|| format!("list {}", path.display()))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total += meta.blocks() * 512;
            }
        }
    }
    Ok(total)
}
