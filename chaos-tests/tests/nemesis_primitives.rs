//! The nemeses' building blocks against the real kernel: namespaces, bridge and nftables faults
//! ([`Net`]), the tmpfs disk ([`SmallDisk`]) and libfaketime's skew ([`skew_env`]).
//!
//! Needs root, iproute2, nftables, python3 and libfaketime. Every test that builds a `Net` uses
//! a subnet of its own, so they run in parallel.

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use warrant_chaos::clock::skew_env;
use warrant_chaos::disk::SmallDisk;
use warrant_chaos::net::Net;

const TAG: &str = "np";
const NODES: [u64; 3] = [1, 2, 3];
const PORT: u16 = 7400;
/// How long a client waits for a TCP handshake; a dropped SYN fails by this timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long a client waits for an echo before calling the message lost.
const REPLY_TIMEOUT: Duration = Duration::from_millis(1000);
/// The echo server's delay before answering "slow": long enough to install a fault meanwhile,
/// shorter than [`REPLY_TIMEOUT`].
const SLOW_REPLY_DELAY: Duration = Duration::from_millis(600);
/// Bound on any one line from a helper process (python's start-up included).
const LINE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a condition expected to become true (a healed path, a process ending).
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
const SKEW_S: i64 = 30;
const SKEW_TOLERANCE_S: i64 = 2;
const DISK_MIB: u64 = 4;
const MIB: u64 = 1024 * 1024;
/// One page: the smallest write a full tmpfs must refuse.
const PAGE_BYTES: usize = 4096;

/// Listens on 0.0.0.0:port and echoes every line back as "echo <line>", one thread per
/// connection; the line "slow" is echoed after argv[2] seconds. Prints "ready" once listening.
const ECHO_SERVER: &str = r#"
import socket, sys, threading, time
def serve(conn):
    try:
        with conn:
            for line in conn.makefile("rb"):
                if line == b"slow\n":
                    time.sleep(float(sys.argv[2]))
                conn.sendall(b"echo " + line)
    except OSError:
        pass  # a peer cut by a fault resets or times out: not this server's concern
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", int(sys.argv[1])))
server.listen(16)
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

/// Connects to argv[1]:argv[2] and prints "connected" or "connect-failed <error>"; then, for
/// every line on stdin, sends it and prints the echo or "lost".
const ECHO_CLIENT: &str = r#"
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
connect_timeout, reply_timeout = float(sys.argv[3]), float(sys.argv[4])
try:
    conn = socket.create_connection((host, port), timeout=connect_timeout)
except OSError as error:
    print("connect-failed", type(error).__name__, error, flush=True)
    sys.exit(2)
print("connected", flush=True)
conn.settimeout(reply_timeout)
for line in sys.stdin:
    conn.sendall(line.encode())
    reply = b""
    try:
        while not reply.endswith(b"\n"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            reply += chunk
        print(reply.decode().strip() or "closed", flush=True)
    except OSError:
        print("lost", flush=True)
"#;

/// A helper process whose stdout lines arrive on a channel, so every read has a bound. Killed
/// when dropped.
struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Helper {
    fn spawn(mut command: Command) -> Helper {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a helper process");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Helper {
            child,
            stdin,
            lines,
        }
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(LINE_TIMEOUT)
            .expect("the helper printed a line in time")
    }

    /// Sends `message` and returns the reply line ("echo <message>", or "lost").
    fn exchange(&mut self, message: &str) -> String {
        self.send(message);
        self.next_line()
    }

    /// Sends `message`; its reply is the next line.
    fn send(&mut self, message: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is piped");
        writeln!(stdin, "{message}").expect("write to the helper");
        stdin.flush().expect("flush to the helper");
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_echo_server(net: &Net, id: u64) -> Helper {
    let mut command = net.command(id, "python3");
    command.args([
        "-c",
        ECHO_SERVER,
        &PORT.to_string(),
        &SLOW_REPLY_DELAY.as_secs_f64().to_string(),
    ]);
    let server = Helper::spawn(command);
    assert_eq!(server.next_line(), "ready", "echo server in node {id}");
    server
}

fn start_servers(net: &Net) -> Vec<Helper> {
    NODES.iter().map(|&id| start_echo_server(net, id)).collect()
}

/// A client in node `from`'s namespace connected (or not) to node `to`'s echo server.
fn client(net: &Net, from: u64, to: u64) -> (Helper, String) {
    let mut command = net.command(from, "python3");
    command.args([
        "-c",
        ECHO_CLIENT,
        &net.node_ip(to).to_string(),
        &PORT.to_string(),
        &CONNECT_TIMEOUT.as_secs_f64().to_string(),
        &REPLY_TIMEOUT.as_secs_f64().to_string(),
    ]);
    let helper = Helper::spawn(command);
    let status = helper.next_line();
    (helper, status)
}

/// Whether node `from` can open a connection to node `to` and get an echo back.
fn node_reaches(net: &Net, from: u64, to: u64) -> bool {
    let (mut helper, status) = client(net, from, to);
    if status != "connected" {
        assert!(
            status.contains("Timeout") || status.contains("timed out"),
            "a cut path times out rather than being refused: {status}"
        );
        return false;
    }
    let reply = helper.exchange("ping");
    reply == "echo ping"
}

fn host_reaches(ip: Ipv4Addr) -> bool {
    let address = SocketAddr::from((ip, PORT));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) else {
        return false;
    };
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .expect("set a read timeout");
    if stream.write_all(b"ping\n").is_err() {
        return false;
    }
    let mut reply = String::new();
    let read = BufReader::new(&mut stream).read_line(&mut reply);
    read.is_ok() && reply == "echo ping\n"
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "{what} within {CONVERGE_TIMEOUT:?}"
        );
        thread::sleep(POLL_INTERVAL);
    }
}

fn assert_all_paths_up(net: &Net) {
    for &id in &NODES {
        assert!(host_reaches(net.node_ip(id)), "host reaches node {id}");
        for &other in NODES.iter().filter(|&&other| other != id) {
            assert!(
                node_reaches(net, id, other),
                "node {id} reaches node {other}"
            );
        }
    }
}

fn netns_list() -> String {
    let output = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("run ip netns list");
    assert!(output.status.success(), "ip netns list: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn interface_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

#[test]
fn host_reaches_every_node_and_nodes_reach_each_other() {
    let net = Net::create(TAG, 201, &NODES).expect("create the net");
    assert_eq!(net.host_ip(), Ipv4Addr::new(10, 77, 201, 254));
    assert_eq!(net.node_ip(2), Ipv4Addr::new(10, 77, 201, 2));
    let _servers = start_servers(&net);
    assert_all_paths_up(&net);
}

#[test]
fn command_spawns_the_program_itself_inside_the_namespace() {
    let net = Net::create(TAG, 202, &NODES).expect("create the net");
    let mut sleeper = net
        .command(1, "sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep in node 1");
    let pid = sleeper.id();
    // Until `ip netns exec` execs, the pid's name is still `ip`.
    let comm_path = format!("/proc/{pid}/comm");
    wait_until("the child execs sleep", || {
        fs::read_to_string(&comm_path).is_ok_and(|comm| comm.trim() == "sleep")
    });
    let child_ns = fs::read_link(format!("/proc/{pid}/ns/net")).expect("read the child's netns");
    let own_ns = fs::read_link("/proc/self/ns/net").expect("read our netns");
    let named_ns = fs::metadata(Path::new("/run/netns").join(net.ns_name(1)))
        .expect("stat the named namespace");
    assert_ne!(child_ns, own_ns, "the child is not in the host namespace");
    assert_eq!(
        child_ns.to_string_lossy(),
        format!("net:[{}]", named_ns.ino()),
        "the child is in node 1's namespace"
    );
    sleeper.kill().expect("SIGKILL the child by its pid");
    let status = sleeper.wait().expect("reap the child");
    assert!(!status.success(), "sleep 60 was killed, not finished");
}

#[test]
fn isolate_cuts_a_node_from_the_others_but_not_from_the_host() {
    let net = Net::create(TAG, 203, &NODES).expect("create the net");
    let _servers = start_servers(&net);
    assert_all_paths_up(&net);

    net.isolate(1).expect("isolate node 1");
    for &other in &[2, 3] {
        assert!(!node_reaches(&net, 1, other), "1 -> {other} is cut");
        assert!(!node_reaches(&net, other, 1), "{other} -> 1 is cut");
    }
    assert!(node_reaches(&net, 2, 3), "2 -> 3 is untouched");
    assert!(node_reaches(&net, 3, 2), "3 -> 2 is untouched");
    for &id in &NODES {
        assert!(
            host_reaches(net.node_ip(id)),
            "host still reaches node {id}"
        );
    }

    net.heal().expect("heal");
    assert_all_paths_up(&net);
}

#[test]
fn one_way_loses_what_the_sender_starts_and_keeps_what_the_receiver_starts() {
    let net = Net::create(TAG, 204, &NODES).expect("create the net");
    let _servers = start_servers(&net);
    // Opened before the fault: the conntrack direction must still be right for these.
    let (mut old_1_to_2, status) = client(&net, 1, 2);
    assert_eq!(status, "connected");
    assert_eq!(old_1_to_2.exchange("one"), "echo one");
    let (mut old_2_to_1, status) = client(&net, 2, 1);
    assert_eq!(status, "connected");
    assert_eq!(old_2_to_1.exchange("one"), "echo one");

    // 2 answers "slow" after the fault is in place, so the first packet on this connection
    // after the rule comes from 2, the receiver: were the connection not tracked from its
    // start, conntrack would take 2 for its originator and let 1's packets through as replies.
    old_1_to_2.send("slow");
    net.one_way(1, 2).expect("partition 1 -> 2");
    assert_eq!(old_1_to_2.next_line(), "echo slow", "2 still reaches 1");
    assert_eq!(
        old_1_to_2.exchange("two"),
        "lost",
        "1 cannot use a connection it opened"
    );
    assert!(!node_reaches(&net, 1, 2), "nor open a new one to 2");
    let (mut new_2_to_1, status) = client(&net, 2, 1);
    assert_eq!(status, "connected", "2 opens a connection to 1");
    assert_eq!(
        new_2_to_1.exchange("two"),
        "echo two",
        "bytes flow both ways"
    );
    assert_eq!(new_2_to_1.exchange("three"), "echo three");
    assert_eq!(
        old_2_to_1.exchange("two"),
        "echo two",
        "2's older connection works"
    );
    assert!(node_reaches(&net, 1, 3), "1 -> 3 is untouched");
    assert!(node_reaches(&net, 3, 2), "3 -> 2 is untouched");
    assert!(host_reaches(net.node_ip(2)), "host still reaches node 2");

    net.heal().expect("heal");
    assert_all_paths_up(&net);
}

#[test]
fn heal_removes_every_fault_at_once() {
    let net = Net::create(TAG, 205, &NODES).expect("create the net");
    let _servers = start_servers(&net);
    net.isolate(3).expect("isolate node 3");
    net.one_way(1, 2).expect("partition 1 -> 2");
    net.one_way(2, 1).expect("partition 2 -> 1");
    assert!(!node_reaches(&net, 1, 2), "1 -> 2 is cut");
    assert!(!node_reaches(&net, 2, 1), "2 -> 1 is cut");
    assert!(!node_reaches(&net, 3, 1), "3 -> 1 is cut");
    net.heal().expect("heal");
    assert_all_paths_up(&net);
    net.heal().expect("healing a healed net is a no-op");
}

#[test]
fn unknown_or_equal_nodes_are_errors() {
    let net = Net::create(TAG, 206, &NODES).expect("create the net");
    assert!(net.isolate(9).is_err(), "node 9 is not on the net");
    assert!(net.one_way(1, 9).is_err(), "node 9 is not on the net");
    assert!(
        net.one_way(2, 2).is_err(),
        "a node cannot be cut from itself"
    );
    assert!(Net::create("TooLong", 207, &NODES).is_err(), "tag too long");
    assert!(Net::create(TAG, 207, &[1, 254]).is_err(), "254 is the host");
    assert!(Net::create(TAG, 207, &[1, 1]).is_err(), "duplicate id");
}

#[test]
fn drop_deletes_everything_and_kills_what_runs_inside() {
    let net = Net::create(TAG, 208, &NODES).expect("create the net");
    let namespaces: Vec<String> = NODES.iter().map(|&id| net.ns_name(id)).collect();
    let mut links: Vec<String> = NODES.iter().map(|&id| net.host_veth_name(id)).collect();
    links.push(net.bridge_name());
    let listed = netns_list();
    for ns in &namespaces {
        assert!(
            listed.contains(ns.as_str()),
            "{ns} exists while the net lives"
        );
    }
    let mut sleeper = net
        .command(2, "sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep");

    drop(net);
    let listed = netns_list();
    for ns in &namespaces {
        assert!(!listed.contains(ns.as_str()), "{ns} is gone: {listed}");
    }
    for link in &links {
        assert!(!interface_exists(link), "{link} is gone");
    }
    wait_until("the process inside the namespace is killed", || {
        sleeper.try_wait().expect("poll the child").is_some()
    });
}

#[test]
fn create_replaces_the_leftovers_of_a_crashed_run() {
    let crashed = Net::create(TAG, 209, &NODES).expect("create the net");
    let bridge = crashed.bridge_name();
    std::mem::forget(crashed); // as if the process had died: nothing cleaned up
    assert!(interface_exists(&bridge), "the leftover bridge is there");
    let net = Net::create(TAG, 209, &NODES).expect("create over the leftovers");
    let _servers = start_servers(&net);
    assert!(host_reaches(net.node_ip(1)), "the new net works");
    drop(net);
    assert!(!interface_exists(&bridge), "and is deleted");
}

/// Writes a file of `bytes` bytes in `dir`; the error kind if that fails.
fn write_file(dir: &Path, name: &str, bytes: usize) -> Result<(), std::io::Error> {
    fs::write(dir.join(name), vec![1_u8; bytes])
}

fn is_mounted(dir: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/self/mounts").expect("read /proc/self/mounts");
    let dir = dir.to_string_lossy();
    mounts
        .lines()
        .any(|line| line.split_whitespace().nth(1) == Some(dir.as_ref()))
}

#[test]
fn small_disk_fills_to_enospc_and_frees() {
    let parent = tempfile::tempdir().expect("make a temp dir");
    let dir = parent.path().join("data");
    let disk = SmallDisk::mount(&dir, DISK_MIB).expect("mount the tmpfs");
    assert!(
        is_mounted(&dir),
        "the tmpfs is mounted at {}",
        dir.display()
    );
    assert_eq!(disk.total_bytes().expect("statvfs"), DISK_MIB * MIB);
    write_file(&dir, "before", PAGE_BYTES).expect("an empty disk takes a write");

    let written = disk.fill().expect("fill the disk");
    assert!(written > 0, "the filler took the space");
    assert_eq!(disk.free_bytes().expect("statvfs"), 0, "no byte left");
    assert_eq!(disk.used_bytes().expect("statvfs"), DISK_MIB * MIB);
    let error = write_file(&dir, "during", PAGE_BYTES).expect_err("a full disk refuses a write");
    assert_eq!(error.raw_os_error(), Some(nix::libc::ENOSPC), "{error}");
    assert_eq!(error.kind(), ErrorKind::StorageFull);

    disk.free().expect("remove the filler");
    assert!(disk.free_bytes().expect("statvfs") > 0);
    write_file(&dir, "after", PAGE_BYTES).expect("a freed disk takes a write");
    let mut content = Vec::new();
    fs::File::open(dir.join("after"))
        .and_then(|mut file| file.read_to_end(&mut content))
        .expect("read the file back");
    assert_eq!(content.len(), PAGE_BYTES);

    drop(disk);
    assert!(!is_mounted(&dir), "drop unmounts");
}

fn unix_now_s() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(now.as_secs()).expect("seconds fit an i64")
}

fn python_output(script: &str, env: &[(String, String)]) -> String {
    let output = Command::new("python3")
        .args(["-c", script])
        .envs(env.iter().map(|(key, value)| (key, value)))
        .output()
        .expect("run python3");
    assert!(output.status.success(), "python3: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn monotonic_s(env: &[(String, String)]) -> f64 {
    python_output("import time; print(time.monotonic())", env)
        .parse()
        .expect("python prints a float")
}

#[test]
fn skew_env_moves_the_wall_clock_and_not_the_monotonic_one() {
    for offset in [SKEW_S, -SKEW_S] {
        let env = skew_env(offset).expect("libfaketime is installed");
        let before = unix_now_s();
        let output = Command::new("date")
            .arg("+%s")
            .envs(env.iter().map(|(key, value)| (key, value)))
            .output()
            .expect("run date");
        let after = unix_now_s();
        assert!(output.status.success(), "date: {output:?}");
        let faked: i64 = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("date +%s prints seconds");
        let low = before + offset - SKEW_TOLERANCE_S;
        let high = after + offset + SKEW_TOLERANCE_S;
        assert!(
            (low..=high).contains(&faked),
            "offset {offset}: faked {faked} not within [{low}, {high}]"
        );

        // The monotonic clock seen under the skew lies between two unskewed readings.
        let real_before = monotonic_s(&[]);
        let skewed = monotonic_s(&env);
        let real_after = monotonic_s(&[]);
        assert!(
            (real_before..=real_after).contains(&skewed),
            "offset {offset}: monotonic {skewed} not within [{real_before}, {real_after}]"
        );
    }
}

/// The harness arms the failpoints the product has: the two lists are one list.
#[test]
fn the_harness_knows_every_crash_point_of_the_product() {
    assert_eq!(
        warrant_chaos::tiers::CRASH_POINTS,
        warrant_raft::chaos::CRASH_POINTS
    );
}
