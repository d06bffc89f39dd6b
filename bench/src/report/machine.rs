//! The machine a run measured: CPU, cores, memory, kernel, compiler, and the data disk.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    /// Cores this process may run on.
    pub cores: usize,
    pub ram_gib: f64,
    pub kernel: String,
    pub os: String,
    pub rustc: String,
    /// The filesystem and device of the run directory (node data, etcd data, the fdatasync
    /// anchor's file), from /proc/mounts.
    pub data_disk: String,
}

const UNKNOWN: &str = "unknown";

impl Machine {
    /// This machine, with `data_dir` the directory the nodes write to.
    pub fn detect(data_dir: &Path) -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        let data_dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.into());
        Machine {
            cpu_model: cpu_model(&read("/proc/cpuinfo")).unwrap_or_else(|| UNKNOWN.into()),
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            ram_gib: mem_total_kib(&read("/proc/meminfo"))
                .map_or(0.0, |kib| kib as f64 / 1_048_576.0),
            kernel: non_empty(read("/proc/sys/kernel/osrelease").trim()),
            os: os_name(&read("/etc/os-release")).unwrap_or_else(|| UNKNOWN.into()),
            rustc: rustc.unwrap_or_else(|| UNKNOWN.into()),
            data_disk: mount_of(&read("/proc/mounts"), &data_dir.display().to_string())
                .unwrap_or_else(|| UNKNOWN.into()),
        }
    }

    /// One line for the report.
    pub fn summary(&self) -> String {
        format!(
            "{} cores of {}, {:.0} GiB RAM, {}, kernel {}, {}; data disk {}",
            self.cores,
            self.cpu_model,
            self.ram_gib,
            self.os,
            self.kernel,
            self.rustc,
            self.data_disk
        )
    }
}

fn non_empty(text: &str) -> String {
    if text.is_empty() {
        UNKNOWN.into()
    } else {
        text.into()
    }
}

/// The first `model name` of /proc/cpuinfo.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

/// `MemTotal` of /proc/meminfo, in KiB.
pub fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let value = line.strip_prefix("MemTotal:")?.trim();
        value.strip_suffix("kB")?.trim().parse().ok()
    })
}

/// `PRETTY_NAME` of /etc/os-release, unquoted.
pub fn os_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        let value = line.strip_prefix("PRETTY_NAME=")?;
        Some(value.trim().trim_matches('"').to_string())
    })
}

/// `<fstype> on <device>` of the mount in /proc/mounts holding `path` (the longest mount point
/// that is `path` or one of its ancestors).
pub fn mount_of(mounts: &str, path: &str) -> Option<String> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = fields.next()?;
            let point = fields.next()?;
            let fstype = fields.next()?;
            let holds = path == point
                || point == "/"
                || path
                    .strip_prefix(point)
                    .is_some_and(|rest| rest.starts_with('/'));
            holds.then_some((point.len(), format!("{fstype} on {device}")))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, mount)| mount)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_proc_files() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("processor\t: 0\n"), None);
        assert_eq!(
            mem_total_kib("MemTotal:       24684092 kB\nMemFree: 1 kB\n"),
            Some(24_684_092)
        );
        assert_eq!(
            os_name("NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")
                .as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn the_longest_enclosing_mount_wins() {
        let mounts =
            "/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n/dev/vdb /tmpdata xfs rw 0 0\n";
        assert_eq!(
            mount_of(mounts, "/tmp/run-1").as_deref(),
            Some("tmpfs on tmpfs")
        );
        assert_eq!(
            mount_of(mounts, "/tmpdata").as_deref(),
            Some("xfs on /dev/vdb")
        );
        // /tmpx is not under /tmp.
        assert_eq!(
            mount_of(mounts, "/tmpx/a").as_deref(),
            Some("ext4 on /dev/vda")
        );
    }
}
