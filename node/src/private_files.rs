//! The process umask: 077, so that nothing the binary writes is readable by other users.
//!
//! The node's own directories and files are made 0700 and 0600 where they are created
//! (`warrant_raft::create_private_dir_all` and its siblings), but RocksDB creates its files with
//! mode 0644 less the umask and has no option for it. The operator's umask (often 022) would
//! leave the state, the audit trail and the Raft log world-readable were a directory ever
//! widened; with 077 they are 0600 like the rest.

use nix::sys::stat::{Mode, umask};

/// Sets the process umask to 077. Call first in `main`, before any thread or file exists.
pub fn restrict_umask() {
    // The previous mask is of no use: nothing restores it.
    let _previous = umask(Mode::from_bits_truncate(0o077));
}
