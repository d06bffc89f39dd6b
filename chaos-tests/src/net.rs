//! The cluster's network: one Linux bridge in the host namespace and one network namespace per
//! node, joined to the bridge by a veth pair, plus the network nemeses (isolation, one-way
//! partitions) as nftables rules inside the namespaces.
//!
//! Addresses: node `id` is `10.77.<subnet>.<id>/24`, the host (the test process, i.e. every
//! client) is `10.77.<subnet>.254` on the bridge. Faults only ever cut node-to-node traffic, so
//! clients always reach every node, as in Jepsen.
//!
//! Every namespace holds, from creation on, a table `inet chaos_track` whose only rule reads the
//! conntrack state. The kernel turns connection tracking on in a namespace only when some rule
//! needs it (a fresh namespace's `nf_conntrack_count` stays 0 under traffic). Without this
//! table, a connection `from` opened before [`Net::one_way`] is picked up mid-stream once the
//! rule appears: `from`'s packets are dropped, so their entries never confirm, and the first
//! packet `to` sends on it (a reply, even an ACK) confirms an entry with `to` as originator;
//! from then on `from`'s packets pass as replies and the connection is back. The test
//! `one_way_loses_what_the_sender_starts_and_keeps_what_the_receiver_starts` fails that way
//! without this table. The faults themselves live in the table `inet chaos`, which
//! [`Net::heal`] deletes.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Linux interface names hold at most 15 bytes (IFNAMSIZ - 1).
const MAX_IFNAME_LEN: usize = 15;
/// Longest tag that keeps `wc<tag>-<subnet>-<id>` within [`MAX_IFNAME_LEN`].
pub const MAX_TAG_LEN: usize = 4;
/// Every name this module creates starts with this, so leftovers are recognisable.
const NAME_PREFIX: &str = "wc";
/// First two octets of every address on a [`Net`].
const NETWORK_PREFIX: [u8; 2] = [10, 77];
const PREFIX_LEN: u8 = 24;
/// The host's (the clients') last octet on the bridge.
const HOST_OCTET: u8 = 254;
/// Node ids are the last octet of their address: 1 to 253 (0 is the network, 254 the host, 255
/// broadcast).
const MAX_NODE_ID: u64 = 253;
/// The node's end of its veth pair, inside its namespace.
const NODE_IFNAME: &str = "eth0";
/// Table holding the faults; deleted whole by `heal`.
const FAULT_TABLE: &str = "chaos";
/// Bound on the wait for the veths and bridge to report carrier after creation.
const LINK_UP_TIMEOUT: Duration = Duration::from_secs(5);
const LINK_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// With br_netfilter on, bridged IPv4/IPv6/ARP frames pass the host's netfilter hooks, where a
/// host firewall's forward chain could drop them.
const BRIDGE_NF_SYSCTLS: [&str; 3] = [
    "/proc/sys/net/bridge/bridge-nf-call-iptables",
    "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
    "/proc/sys/net/bridge/bridge-nf-call-arptables",
];

/// Turns on connection tracking in a namespace for its whole life (see the module docs): a
/// rule that reads the ct state and changes nothing.
const TRACK_SCRIPT: &str = "add table inet chaos_track
add chain inet chaos_track input { type filter hook input priority filter; policy accept; }
add rule inet chaos_track input ct state new counter
";

/// The fault table's base chains; `add` is idempotent, so every fault starts with this.
const FAULT_CHAINS_SCRIPT: &str = "add table inet chaos
add chain inet chaos input { type filter hook input priority filter; policy accept; }
add chain inet chaos output { type filter hook output priority filter; policy accept; }
";

/// Deletes the fault table whether or not it exists (nft 1.0.6 has no `destroy`).
const HEAL_SCRIPT: &str = "add table inet chaos
delete table inet chaos
";

/// `ip netns add` on a fresh machine makes /run/netns a shared mount; concurrent first calls can
/// race on that, so namespaces are added one at a time within this process.
static NETNS_ADD_LOCK: Mutex<()> = Mutex::new(());

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("could not run `{command}`: {source}")]
    Io {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("net tag {tag:?} must be 1 to {MAX_TAG_LEN} lowercase ASCII letters or digits")]
    InvalidTag { tag: String },
    #[error("node id {id} must be 1 to {MAX_NODE_ID}: it is the last octet of the node's address")]
    InvalidNodeId { id: u64 },
    #[error("node id {id} is given twice")]
    DuplicateNode { id: u64 },
    #[error("node {id} is not on net {net}")]
    UnknownNode { id: u64, net: String },
    #[error("a one-way partition needs two different nodes, got {id} twice")]
    SameNode { id: u64 },
    #[error("interface {interface} was not up within {timeout:?} (operstate {operstate:?})")]
    LinkDown {
        interface: String,
        operstate: String,
        timeout: Duration,
    },
    #[error("could not turn off {path}: {source}")]
    Sysctl {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// A bridge and one namespace per node; dropping it deletes them all.
#[derive(Debug)]
pub struct Net {
    tag: String,
    subnet: u8,
    node_ids: Vec<u64>,
}

impl Net {
    /// Creates the bridge (10.77.`subnet`.254/24) and, per node, a namespace with lo up and its
    /// end of a veth pair at 10.77.`subnet`.`id`/24. Leftovers with the same names (from a run
    /// that crashed) are deleted first. `subnet` must be unique among the nets alive on the
    /// machine: it is in every name and address. Returns once every link is up.
    pub fn create(tag: &str, subnet: u8, node_ids: &[u64]) -> Result<Net, NetError> {
        validate_tag(tag)?;
        validate_node_ids(node_ids)?;
        let net = Net {
            tag: tag.to_owned(),
            subnet,
            node_ids: node_ids.to_vec(),
        };
        net.remove_all();
        allow_bridged_forwarding()?;
        // From here on an error drops `net`, which deletes whatever was created.
        net.create_bridge()?;
        for &id in node_ids {
            net.create_node(id)?;
        }
        net.wait_links_up()?;
        Ok(net)
    }

    /// The ids given to [`Net::create`].
    pub fn node_ids(&self) -> &[u64] {
        &self.node_ids
    }

    /// The node's address.
    ///
    /// # Panics
    /// If `id` is not on this net (a caller's bug, like an index out of bounds).
    pub fn node_ip(&self, id: u64) -> Ipv4Addr {
        self.assert_node(id);
        let octet = u8::try_from(id).expect("node ids are validated to be at most 253");
        self.ip(octet)
    }

    /// The host's (the clients') address on the bridge.
    pub fn host_ip(&self) -> Ipv4Addr {
        self.ip(HOST_OCTET)
    }

    /// The node's namespace, as `ip netns` names it.
    ///
    /// # Panics
    /// If `id` is not on this net.
    pub fn ns_name(&self, id: u64) -> String {
        self.assert_node(id);
        self.node_name(id)
    }

    /// The bridge's interface name in the host namespace.
    pub fn bridge_name(&self) -> String {
        format!("{NAME_PREFIX}{}-{}", self.tag, self.subnet)
    }

    /// The host's end of the node's veth pair.
    ///
    /// # Panics
    /// If `id` is not on this net.
    pub fn host_veth_name(&self, id: u64) -> String {
        self.assert_node(id);
        self.node_name(id)
    }

    /// A command running `program` inside the node's namespace (`ip netns exec <ns> program`);
    /// add arguments, environment and stdio to it as usual. `ip netns exec` execs the program
    /// in its own process, so the spawned child's pid is the program's: signal it by pid
    /// (SIGKILL, SIGSTOP) directly.
    ///
    /// # Panics
    /// If `id` is not on this net.
    pub fn command(&self, id: u64, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(tool("ip"));
        command
            .args(["netns", "exec"])
            .arg(self.ns_name(id))
            .arg(program);
        command
    }

    /// Drops all traffic between node `id` and every other node, both ways, with rules in
    /// `id`'s namespace. Traffic with the host is untouched. Connections already open between
    /// them hang (their packets are dropped) until the applications or TCP give up.
    pub fn isolate(&self, id: u64) -> Result<(), NetError> {
        self.check_node(id)?;
        let others: Vec<String> = self
            .node_ids
            .iter()
            .filter(|&&other| other != id)
            .map(|&other| self.node_ip(other).to_string())
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        let peers = others.join(", ");
        let script = format!(
            "{FAULT_CHAINS_SCRIPT}add rule inet {FAULT_TABLE} input ip saddr {{ {peers} }} drop
add rule inet {FAULT_TABLE} output ip daddr {{ {peers} }} drop
"
        );
        self.nft(id, &script)
    }

    /// Loses what `from` sends to `to` while `to` still reaches `from`. TCP needs both
    /// directions, so the rule (in `to`'s namespace) works per connection: packets from `from`
    /// are dropped unless conntrack files them as replies, i.e. connections `from` opens to
    /// `to` are dead (including those open before the call: they are tracked since the
    /// namespace was created) while connections `to` opens to `from` work both ways.
    pub fn one_way(&self, from: u64, to: u64) -> Result<(), NetError> {
        self.check_node(from)?;
        self.check_node(to)?;
        if from == to {
            return Err(NetError::SameNode { id: from });
        }
        let sender = self.node_ip(from);
        // Packets conntrack cannot place (invalid) are dropped too: only what is clearly a
        // reply to `to` gets through.
        let script = format!(
            "{FAULT_CHAINS_SCRIPT}add rule inet {FAULT_TABLE} input ip saddr {sender} ct state invalid drop
add rule inet {FAULT_TABLE} input ip saddr {sender} ct direction original drop
"
        );
        self.nft(to, &script)
    }

    /// Removes every fault from every namespace. Tries them all; returns the first error.
    pub fn heal(&self) -> Result<(), NetError> {
        let mut first_error = None;
        for &id in &self.node_ids {
            if let Err(error) = self.nft(id, HEAL_SCRIPT) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn ip(&self, last_octet: u8) -> Ipv4Addr {
        let [a, b] = NETWORK_PREFIX;
        Ipv4Addr::new(a, b, self.subnet, last_octet)
    }

    /// Namespace and host veth share a name: `wc<tag>-<subnet>-<id>`.
    fn node_name(&self, id: u64) -> String {
        format!("{NAME_PREFIX}{}-{}-{id}", self.tag, self.subnet)
    }

    fn assert_node(&self, id: u64) {
        assert!(
            self.node_ids.contains(&id),
            "node {id} is not on net {}",
            self.bridge_name()
        );
    }

    fn check_node(&self, id: u64) -> Result<(), NetError> {
        if self.node_ids.contains(&id) {
            Ok(())
        } else {
            Err(NetError::UnknownNode {
                id,
                net: self.bridge_name(),
            })
        }
    }

    fn create_bridge(&self) -> Result<(), NetError> {
        let bridge = self.bridge_name();
        let address = format!("{}/{PREFIX_LEN}", self.host_ip());
        run(Command::new(tool("ip")).args(["link", "add", &bridge, "type", "bridge"]))?;
        run(Command::new(tool("ip")).args(["addr", "add", &address, "dev", &bridge]))?;
        run(Command::new(tool("ip")).args(["link", "set", &bridge, "up"]))?;
        Ok(())
    }

    fn create_node(&self, id: u64) -> Result<(), NetError> {
        let ns = self.node_name(id);
        let host_veth = self.node_name(id);
        let address = format!("{}/{PREFIX_LEN}", self.node_ip(id));
        {
            let _serialised = NETNS_ADD_LOCK
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            run(Command::new(tool("ip")).args(["netns", "add", &ns]))?;
        }
        run(Command::new(tool("ip")).args([
            "link",
            "add",
            &host_veth,
            "type",
            "veth",
            "peer",
            "name",
            NODE_IFNAME,
            "netns",
            &ns,
        ]))?;
        run(Command::new(tool("ip")).args([
            "link",
            "set",
            &host_veth,
            "master",
            &self.bridge_name(),
        ]))?;
        run(Command::new(tool("ip")).args(["link", "set", &host_veth, "up"]))?;
        run(Command::new(tool("ip")).args([
            "-n",
            &ns,
            "addr",
            "add",
            &address,
            "dev",
            NODE_IFNAME,
        ]))?;
        run(Command::new(tool("ip")).args(["-n", &ns, "link", "set", NODE_IFNAME, "up"]))?;
        run(Command::new(tool("ip")).args(["-n", &ns, "link", "set", "lo", "up"]))?;
        self.nft(id, TRACK_SCRIPT)
    }

    /// A host veth is up only once its peer in the namespace is; the bridge once a port is.
    fn wait_links_up(&self) -> Result<(), NetError> {
        let mut interfaces: Vec<String> =
            self.node_ids.iter().map(|&id| self.node_name(id)).collect();
        interfaces.push(self.bridge_name());
        let deadline = Instant::now() + LINK_UP_TIMEOUT;
        for interface in interfaces {
            loop {
                let operstate = read_operstate(&interface);
                if operstate == "up" {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(NetError::LinkDown {
                        interface,
                        operstate,
                        timeout: LINK_UP_TIMEOUT,
                    });
                }
                thread::sleep(LINK_POLL_INTERVAL);
            }
        }
        Ok(())
    }

    fn nft(&self, id: u64, script: &str) -> Result<(), NetError> {
        let mut command = Command::new(tool("ip"));
        command
            .args(["netns", "exec"])
            .arg(self.node_name(id))
            .arg(tool("nft"))
            .args(["-f", "-"]);
        run_with_input(&mut command, Some(script)).map(drop)
    }

    /// Deletes everything this net's names could refer to, whether this run or a crashed one
    /// made it; never fails (what cannot be deleted is reported on stderr).
    fn remove_all(&self) {
        for &id in &self.node_ids {
            let name = self.node_name(id);
            // Deleting the host end destroys the pair even if the namespace lives on.
            if interface_exists(&name) {
                warn_on_error(run(Command::new(tool("ip")).args(["link", "del", &name])));
            }
            if Path::new("/run/netns").join(&name).exists() {
                // A namespace with processes in it outlives its name: end them first.
                kill_processes_in(&name);
                warn_on_error(run(Command::new(tool("ip")).args(["netns", "del", &name])));
            }
        }
        let bridge = self.bridge_name();
        if interface_exists(&bridge) {
            warn_on_error(run(Command::new(tool("ip")).args(["link", "del", &bridge])));
        }
    }
}

impl Drop for Net {
    /// Deletes the veths, the namespaces (SIGKILLing any process still inside, since a
    /// namespace with processes cannot go away) and the bridge.
    fn drop(&mut self) {
        self.remove_all();
    }
}

fn validate_tag(tag: &str) -> Result<(), NetError> {
    let valid = !tag.is_empty()
        && tag.len() <= MAX_TAG_LEN
        && tag
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(NetError::InvalidTag {
            tag: tag.to_owned(),
        })
    }
}

fn validate_node_ids(node_ids: &[u64]) -> Result<(), NetError> {
    for (index, &id) in node_ids.iter().enumerate() {
        if !(1..=MAX_NODE_ID).contains(&id) {
            return Err(NetError::InvalidNodeId { id });
        }
        if node_ids[..index].contains(&id) {
            return Err(NetError::DuplicateNode { id });
        }
    }
    Ok(())
}

// The longest name, `wc<tag>-255-253`, fits an interface name: a change to the scheme cannot
// silently produce names the kernel rejects.
const _: () = assert!(NAME_PREFIX.len() + MAX_TAG_LEN + "-255-253".len() <= MAX_IFNAME_LEN);

/// If bridged frames go through the host's netfilter (br_netfilter on) and the host has any
/// forward chain (a firewall, Docker), turn that off so the host cannot drop node-to-node
/// traffic. Machine-wide and left off: other nets may be alive.
fn allow_bridged_forwarding() -> Result<(), NetError> {
    let enabled: Vec<&str> = BRIDGE_NF_SYSCTLS
        .into_iter()
        .filter(|path| fs::read_to_string(path).is_ok_and(|value| value.trim() == "1"))
        .collect();
    if enabled.is_empty() {
        return Ok(());
    }
    let ruleset = run(Command::new(tool("nft")).args(["list", "ruleset"]))?;
    if !ruleset.contains("hook forward") {
        return Ok(());
    }
    for path in enabled {
        fs::write(path, "0").map_err(|source| NetError::Sysctl {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(())
}

fn interface_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn read_operstate(interface: &str) -> String {
    let path = Path::new("/sys/class/net")
        .join(interface)
        .join("operstate");
    fs::read_to_string(path)
        .map(|state| state.trim().to_owned())
        .unwrap_or_else(|error| format!("unreadable: {error}"))
}

fn kill_processes_in(ns: &str) {
    let pids = match run(Command::new(tool("ip")).args(["netns", "pids", ns])) {
        Ok(pids) => pids,
        Err(error) => {
            eprintln!("warrant-chaos net: cleanup: {error}");
            return;
        }
    };
    for pid in pids
        .split_whitespace()
        .filter_map(|pid| pid.parse::<i32>().ok())
    {
        // ESRCH (already gone) is fine; anything else is worth a line on stderr.
        if let Err(errno) = kill(Pid::from_raw(pid), Signal::SIGKILL)
            && errno != nix::errno::Errno::ESRCH
        {
            eprintln!("warrant-chaos net: could not SIGKILL {pid} in {ns}: {errno}");
        }
    }
}

fn warn_on_error<T>(result: Result<T, NetError>) {
    if let Err(error) = result {
        eprintln!("warrant-chaos net: cleanup: {error}");
    }
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

fn run(command: &mut Command) -> Result<String, NetError> {
    run_with_input(command, None)
}

/// Runs `command` to completion, feeding it `input` on stdin; returns its stdout.
fn run_with_input(command: &mut Command, input: Option<&str>) -> Result<String, NetError> {
    let description = describe(command);
    let io_error = |source| NetError::Io {
        command: description.clone(),
        source,
    };
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_error)?;
    let written = match (input, child.stdin.take()) {
        // Dropping the pipe at the end of this arm closes it: the program sees end of input.
        (Some(text), Some(mut pipe)) => pipe.write_all(text.as_bytes()),
        _ => Ok(()),
    };
    // Waited for even if writing failed: a program that exits early says why on stderr.
    let output = child.wait_with_output().map_err(io_error)?;
    if !output.status.success() {
        return Err(NetError::Command {
            command: description,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    written.map_err(io_error)?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Where the system tool `name` is: the first match on `PATH`, then the sbin directories that a
/// plain user's `PATH` (and `env -i`) leaves out, where Debian puts `nft`; `name` itself when
/// none has it (the spawn then fails naming it).
fn tool(name: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN_DIRS.iter().map(std::path::PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| std::path::PathBuf::from(name))
}

/// The sbin directories [`tool`] also searches.
const SBIN_DIRS: [&str; 3] = ["/usr/sbin", "/sbin", "/usr/local/sbin"];
