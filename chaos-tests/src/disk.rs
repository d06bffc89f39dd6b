//! The disk-full nemesis: a node's data directory on a small tmpfs that a filler file can fill
//! to the last byte, and empty again.

use std::fs::{self, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::statvfs::statvfs;

/// The filler's name inside the mounted directory.
const FILLER_NAME: &str = ".chaos-filler";
/// Size of each write while filling. A multiple of the page size, so the filler ends on a page
/// boundary and no partly used page is left for anyone else to write into.
const FILL_CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("a SmallDisk needs at least 1 MiB")]
    ZeroSize,
    #[error("could not create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mount -t tmpfs -o {options} tmpfs {path} failed: {source}")]
    Mount {
        path: PathBuf,
        options: String,
        #[source]
        source: Errno,
    },
    #[error("statvfs({path}) failed: {source}")]
    Statvfs {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("writing the filler {path} failed: {source}")]
    Fill {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the filler {path} grew past the filesystem's {capacity} bytes without ENOSPC: is it on the tmpfs?"
    )]
    FillerUnbounded { path: PathBuf, capacity: u64 },
    #[error("removing the filler {path} failed: {source}")]
    Free {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A tmpfs of a fixed size mounted at a directory; dropping it detaches the mount.
#[derive(Debug)]
pub struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size_mib` MiB at `dir`, creating `dir` if absent. Whatever `dir`
    /// held is hidden until the disk is dropped, so mount before the node writes there.
    pub fn mount(dir: &Path, size_mib: u64) -> Result<SmallDisk, DiskError> {
        if size_mib == 0 {
            return Err(DiskError::ZeroSize);
        }
        fs::create_dir_all(dir).map_err(|source| DiskError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let options = format!("size={size_mib}m");
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(options.as_str()),
        )
        .map_err(|source| DiskError::Mount {
            path: dir.to_owned(),
            options,
            source,
        })?;
        Ok(SmallDisk {
            dir: dir.to_owned(),
        })
    }

    /// The mounted directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the filler until the filesystem says ENOSPC, leaving no byte free; returns how
    /// many bytes this call added. Calling it again tops the filler up (e.g. after the node
    /// deleted files).
    pub fn fill(&self) -> Result<u64, DiskError> {
        let path = self.filler_path();
        let fill_error = |source| DiskError::Fill {
            path: path.clone(),
            source,
        };
        let capacity = self.total_bytes()?;
        let mut filler = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(fill_error)?;
        let chunk = vec![0xA5_u8; FILL_CHUNK_BYTES];
        let mut written: u64 = 0;
        loop {
            match filler.write(&chunk) {
                Ok(0) => break,
                Ok(count) => written += count as u64,
                Err(error) if error.raw_os_error() == Some(Errno::ENOSPC as i32) => break,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(fill_error(error)),
            }
            // A tmpfs says ENOSPC by `capacity`; more means the filler is somewhere else.
            if written > capacity {
                return Err(DiskError::FillerUnbounded { path, capacity });
            }
        }
        Ok(written)
    }

    /// Removes the filler (if any): the space is free again at once.
    pub fn free(&self) -> Result<(), DiskError> {
        let path = self.filler_path();
        match fs::remove_file(&path) {
            Err(error) if error.kind() != ErrorKind::NotFound => Err(DiskError::Free {
                path,
                source: error,
            }),
            _ => Ok(()),
        }
    }

    /// Bytes in use on the filesystem (the filler's included).
    pub fn used_bytes(&self) -> Result<u64, DiskError> {
        let stats = self.statvfs()?;
        Ok((stats.blocks() - stats.blocks_free()) * stats.fragment_size())
    }

    /// Bytes still free (tmpfs reserves none for root, so this is what anyone can write).
    pub fn free_bytes(&self) -> Result<u64, DiskError> {
        let stats = self.statvfs()?;
        Ok(stats.blocks_available() * stats.fragment_size())
    }

    /// The filesystem's size.
    pub fn total_bytes(&self) -> Result<u64, DiskError> {
        let stats = self.statvfs()?;
        Ok(stats.blocks() * stats.fragment_size())
    }

    fn statvfs(&self) -> Result<nix::sys::statvfs::Statvfs, DiskError> {
        statvfs(&self.dir).map_err(|source| DiskError::Statvfs {
            path: self.dir.clone(),
            source,
        })
    }

    fn filler_path(&self) -> PathBuf {
        self.dir.join(FILLER_NAME)
    }
}

impl Drop for SmallDisk {
    /// Lazy detach: the mount disappears from the tree now, and its memory is released once
    /// no process (a still-running node) holds a file on it.
    fn drop(&mut self) {
        if let Err(errno) = umount2(&self.dir, MntFlags::MNT_DETACH) {
            eprintln!(
                "warrant-chaos disk: umount2({}, MNT_DETACH) failed: {errno}",
                self.dir.display()
            );
        }
    }
}
