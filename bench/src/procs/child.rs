//! One child process in its own process group, with its output in a log file.
//!
//! The pid of every child not yet reaped is kept in a process-wide set, so a Ctrl-C handler can
//! kill exactly the processes this benchmark started ([`kill_all_started`]) and nothing else.

use std::{
    collections::BTreeSet,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::Mutex,
    time::Duration,
};

use anyhow::Context as _;
use nix::{sys::signal::Signal, unistd::Pid};

use super::POLL_INTERVAL;

/// Pids of the children started and not yet reaped.
static STARTED: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// A running (or exited, not yet reaped) child process.
pub struct Spawned {
    /// What the process is, for messages: `warrant-2`, `etcd-1`.
    pub name: String,
    pub log_path: PathBuf,
    child: Option<Child>,
    pid: i32,
}

impl Spawned {
    /// Starts `command` in a new process group (so a terminal's Ctrl-C reaches only this
    /// benchmark, which then stops its children itself), stdin closed, stdout and stderr
    /// appended to `log_path`.
    pub fn spawn(name: &str, mut command: Command, log_path: &Path) -> anyhow::Result<Spawned> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("open {}", log_path.display()))?;
        command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("clone the log file")?)
            .stderr(log);
        let mut registry = STARTED.lock().unwrap_or_else(|e| e.into_inner());
        let child = command
            .spawn()
            .with_context(|| format!("start {name} ({:?})", command.get_program()))?;
        let pid = i32::try_from(child.id()).context("pid out of range")?;
        registry.insert(pid);
        Ok(Spawned {
            name: name.to_string(),
            log_path: log_path.to_path_buf(),
            child: Some(child),
            pid,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// The exit status, once the process has exited (and is then reaped).
    pub fn exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        let Some(child) = self.child.as_mut() else {
            anyhow::bail!("{} was already reaped", self.name);
        };
        let status = child.try_wait().context("wait for a child")?;
        if status.is_some() {
            self.reaped();
        }
        Ok(status)
    }

    /// SIGKILLs the process group this child leads (only ours: its pgid is its pid) and reaps
    /// the child. Does nothing when it was already reaped.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
            let _ = child.wait();
            forget(self.pid);
        }
    }

    /// SIGTERMs the process, waits up to `wait` for it to exit, then SIGKILLs it.
    pub async fn terminate(&mut self, wait: Duration) {
        if self.child.is_none() {
            return;
        }
        let _ = nix::sys::signal::kill(Pid::from_raw(self.pid), Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            if !matches!(self.exited(), Ok(None)) {
                return;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        eprintln!(
            "{} did not stop within {wait:?} of SIGTERM; killing it",
            self.name
        );
        self.kill();
    }

    fn reaped(&mut self) {
        self.child = None;
        forget(self.pid);
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

fn forget(pid: i32) {
    STARTED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&pid);
}

/// SIGKILLs the process group of every child started and not yet reaped; returns how many.
/// For a Ctrl-C handler: the children are not reaped (the benchmark exits right after).
pub fn kill_all_started() -> usize {
    let started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    for pid in started.iter() {
        let _ = nix::sys::signal::killpg(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    started.len()
}

/// How many started children are not yet reaped.
pub fn started_count() -> usize {
    STARTED.lock().unwrap_or_else(|e| e.into_inner()).len()
}
