//! A process's memory, from `/proc/<pid>/status`.

use serde::{Deserialize, Serialize};

/// Resident memory of one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcMemory {
    /// VmRSS: resident now.
    pub rss_kib: u64,
    /// VmHWM: the peak resident size since the process started.
    pub hwm_kib: u64,
}

/// The memory of process `pid`, or `None` when it has gone or its status cannot be read.
pub fn of_pid(pid: u32) -> Option<ProcMemory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&status)
}

/// VmRSS and VmHWM from the text of a `/proc/<pid>/status` file.
pub fn parse_status(status: &str) -> Option<ProcMemory> {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(':')?.trim();
            value.strip_suffix("kB")?.trim().parse::<u64>().ok()
        })
    };
    Some(ProcMemory {
        rss_kib: field("VmRSS")?,
        hwm_kib: field("VmHWM")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rss_and_peak() {
        let status = "Name:\twarrant\nVmPeak:\t  900000 kB\nVmHWM:\t   81234 kB\nVmRSS:\t   70001 kB\nRssAnon:\t 5000 kB\n";
        assert_eq!(
            parse_status(status),
            Some(ProcMemory {
                rss_kib: 70_001,
                hwm_kib: 81_234
            })
        );
    }

    #[test]
    fn a_status_without_rss_is_none() {
        // Kernel threads and zombies have no Vm* lines.
        assert_eq!(
            parse_status("Name:\tkthreadd\nState:\tS (sleeping)\n"),
            None
        );
        // RssAnon must not be taken for VmRSS.
        assert_eq!(parse_status("VmHWM:\t1 kB\nRssAnon:\t5 kB\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = of_pid(std::process::id()).expect("our own status");
        assert!(0 < me.rss_kib && me.rss_kib <= me.hwm_kib, "{me:?}");
    }
}
