//! Directories and files only the node's own user may read: 0700 and 0600, whatever the umask.
//! A leaf: it imports nothing from this crate.
//!
//! The data directory holds the whole identity state, the audit trail, the Raft log and (beside
//! them) the node's signing key; the process umask is the operator's, often 022, which would make
//! all of it world-readable. Every directory and file this crate creates goes through here.
//! RocksDB creates its own files with mode 0644 less the umask and offers no option for it, so
//! its files are protected by the 0700 directories around them (and made 0600 by the binary's
//! umask, `warrant server` sets 077).

use std::{
    fs::{self, DirBuilder, File, OpenOptions, Permissions},
    io,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::Path,
};

/// The mode of every directory the node creates.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// The mode of every file the node creates.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates `path` and any missing parents with mode 0700, and narrows `path` itself to 0700 if
/// it existed with a wider mode (a data directory an operator made by hand).
pub fn create_private_dir_all(path: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(path)?;
    fs::set_permissions(path, Permissions::from_mode(PRIVATE_DIR_MODE))
}

/// Creates (or truncates) the file `path` for writing, with mode 0600.
pub(crate) fn create_private_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path)?;
    // The mode above applies only to a file created now; one left by a crash keeps its own.
    file.set_permissions(Permissions::from_mode(PRIVATE_FILE_MODE))?;
    Ok(file)
}

/// Narrows an existing file to 0600 (e.g. a copy, which takes its source's mode).
pub(crate) fn make_private(path: &Path) -> io::Result<()> {
    fs::set_permissions(path, Permissions::from_mode(PRIVATE_FILE_MODE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn directories_and_files_are_private_whatever_existed() {
        let root = tempfile::tempdir().expect("temp dir");
        let nested = root.path().join("a/b");
        create_private_dir_all(&nested).expect("create");
        assert_eq!(mode(&root.path().join("a")), PRIVATE_DIR_MODE);
        assert_eq!(mode(&nested), PRIVATE_DIR_MODE);
        // A directory that existed world-readable is narrowed.
        let open = root.path().join("open");
        fs::create_dir(&open).expect("mkdir");
        fs::set_permissions(&open, Permissions::from_mode(0o755)).expect("chmod");
        create_private_dir_all(&open).expect("again");
        assert_eq!(mode(&open), PRIVATE_DIR_MODE);
        // So is a file.
        let file = open.join("f");
        fs::write(&file, b"x").expect("write");
        fs::set_permissions(&file, Permissions::from_mode(0o644)).expect("chmod");
        drop(create_private_file(&file).expect("create file"));
        assert_eq!(mode(&file), PRIVATE_FILE_MODE);
        let new_file = open.join("g");
        drop(create_private_file(&new_file).expect("create file"));
        assert_eq!(mode(&new_file), PRIVATE_FILE_MODE);
    }
}
