//! A node's life as a process: systemd notifications, children that die with their parent,
//! and a rolling restart (SIGTERM, drain, leadership hand-over) under load that no Verify LOCAL
//! call notices. Every process signalled is one this test started, by its pid.

mod support;

use std::{
    io::BufRead,
    os::unix::net::UnixDatagram,
    process::{Child, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use support::{AgentCredential, cluster::Cluster, warrant_command};
use tonic::{Code, transport::Channel};
use warrant_proto::api::{
    self, Consistency, ReadOptions, token_service_client::TokenServiceClient,
};

const AUDIENCE: &str = "https://calendar.example/mcp";
/// How long a local cluster or a demo may take to bring its three nodes up.
const UP_WAIT_MAX: Duration = Duration::from_secs(120);
/// How long children may take to stop once their parent died: a graceful stop is bounded by
/// `warrant_api::STOP_WAIT_MAX`.
const ORPHAN_WAIT_MAX: Duration = Duration::from_secs(60);
/// How long a node may take to exit after SIGTERM.
const EXIT_WAIT_MAX: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);
/// Verify LOCAL clients and Issue writers in the rolling restart.
const VERIFIERS: usize = 4;
const WRITERS: usize = 3;
/// Successful writes each phase must see after its last event, so that load really runs.
const WRITES_AFTER_EVENT: usize = 20;

// ---------------------------------------------------------------------------------------------
// Processes, from /proc
// ---------------------------------------------------------------------------------------------

/// A process as /proc/<pid>/stat describes it: its parent and its start time (which tells a
/// reused pid from the process this test saw).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Proc {
    pid: i32,
    ppid: i32,
    start_time: u64,
    zombie: bool,
}

fn proc_stat(pid: i32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces or parentheses itself.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Proc {
        pid,
        zombie: fields.first()? == &"Z",
        ppid: fields.get(1)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

fn children_of(parent: u32) -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(proc_stat)
        .filter(|p| p.ppid == parent as i32 && !p.zombie)
        .collect()
}

/// Whether the process this test saw still runs (a zombie no longer does).
fn still_runs(seen: &Proc) -> bool {
    proc_stat(seen.pid).is_some_and(|now| now.start_time == seen.start_time && !now.zombie)
}

/// A process this test started, SIGKILLed and reaped if the test ends (or fails) while it runs.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn lines_of(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Reads `lines` until one contains `wanted`; panics with what was read if none does in time.
fn wait_for_line(lines: &std::sync::mpsc::Receiver<String>, wanted: &str, what: &str) {
    let deadline = Instant::now() + UP_WAIT_MAX;
    let mut seen = String::new();
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(wait) {
            Ok(line) if line.contains(wanted) => return,
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
            }
            Err(e) => panic!("{what} never printed {wanted:?} ({e}); it printed:\n{seen}"),
        }
    }
}

/// SIGKILLs `parent` (only it), reaps it, and asserts that none of `children` outlives it for
/// long.
fn kill_parent_and_expect_no_orphans(mut parent: Started, children: &[Proc], what: &str) {
    nix::sys::signal::kill(Pid::from_raw(parent.0.id() as i32), Signal::SIGKILL)
        .expect("SIGKILL the parent");
    parent.0.wait().expect("reap the parent");
    let deadline = Instant::now() + ORPHAN_WAIT_MAX;
    loop {
        let running: Vec<&Proc> = children.iter().filter(|c| still_runs(c)).collect();
        if running.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            // Leave nothing behind even when failing: these are the processes it started.
            for child in &running {
                let _ = nix::sys::signal::kill(Pid::from_raw(child.pid), Signal::SIGKILL);
            }
            panic!(
                "{what}: {} of its children still ran {ORPHAN_WAIT_MAX:?} after it was killed: {running:?}",
                running.len()
            );
        }
        std::thread::sleep(POLL);
    }
}

#[test]
fn a_killed_local_cluster_leaves_no_node_running() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base_port = support::free_port_run(9);
    let mut parent = warrant_command()
        .arg("local-cluster")
        .arg("--dir")
        .arg(dir.path())
        .args(["--base-port", &base_port.to_string()])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start warrant local-cluster");
    let lines = lines_of(&mut parent);
    let parent = Started(parent);
    wait_for_line(&lines, "local cluster is up", "warrant local-cluster");
    let children = children_of(parent.0.id());
    assert_eq!(children.len(), 3, "three nodes, as children: {children:?}");
    kill_parent_and_expect_no_orphans(parent, &children, "warrant local-cluster");
}

#[test]
fn a_killed_demo_leaves_no_node_running() {
    let mut parent = warrant_command()
        .arg("demo")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start warrant demo");
    let demo_dir = std::env::temp_dir().join(format!("warrant-demo-{}", parent.id()));
    let lines = lines_of(&mut parent);
    let parent = Started(parent);
    // Printed once the three nodes serve, before the walk-through.
    wait_for_line(&lines, "== nodes 1, 2, 3 at", "warrant demo");
    let children = children_of(parent.0.id());
    assert_eq!(children.len(), 3, "three nodes, as children: {children:?}");
    kill_parent_and_expect_no_orphans(parent, &children, "warrant demo");
    let _ = std::fs::remove_dir_all(demo_dir);
}

// ---------------------------------------------------------------------------------------------
// systemd
// ---------------------------------------------------------------------------------------------

/// The datagrams received on `socket` until `done` holds for them, within a bound.
fn receive_until(socket: &UnixDatagram, seen: &mut Vec<String>, done: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + UP_WAIT_MAX;
    let mut buf = vec![0u8; 4096];
    while !done(seen) {
        assert!(Instant::now() < deadline, "notifications so far: {seen:?}");
        match socket.recv(&mut buf) {
            Ok(n) => seen.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_string),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("receive a notification: {e}"),
        }
    }
}

fn count(seen: &[String], line: &str) -> usize {
    seen.iter().filter(|l| *l == line).count()
}

#[test]
fn systemd_hears_ready_watchdog_and_stopping_and_the_log_has_one_start_and_one_stop_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    let config = dir.path().join("warrant.toml");
    std::fs::write(
        &config,
        format!(
            "node_id = 1\ndata_dir = {:?}\nlisten_addr = \"127.0.0.1:0\"\n\
             peer_listen_addr = \"127.0.0.1:0\"\ninit_single_node = true\n\
             admin_token = \"a-long-enough-admin-token\"\ninsecure_plaintext = true\n\
             issuer = \"https://warrant.lifecycle.test\"\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .expect("write the config");
    let stderr_path = dir.path().join("stderr.log");
    let child = warrant_command()
        .arg("server")
        .arg("--config")
        .arg(&config)
        .env("NO_COLOR", "1")
        .env("NOTIFY_SOCKET", &socket_path)
        // 200 ms: a ping every 100 ms.
        .env("WATCHDOG_USEC", "200000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr log"))
        .spawn()
        .expect("start warrant server");
    let mut child = Started(child);

    let mut seen = Vec::new();
    receive_until(&socket, &mut seen, |seen| {
        let ready = seen.iter().position(|l| l == "READY=1");
        ready.is_some_and(|at| count(&seen[at..], "WATCHDOG=1") >= 3)
    });
    let ready = seen.iter().position(|l| l == "READY=1").expect("READY=1");
    // A one-member cluster that is initialised is ready once it serves.
    assert_eq!(
        seen.get(ready + 1).map(String::as_str),
        Some("STATUS=serving"),
        "{seen:?}"
    );
    assert_eq!(count(&seen, "READY=1"), 1, "{seen:?}");
    assert_eq!(count(&seen, "STOPPING=1"), 0, "{seen:?}");

    nix::sys::signal::kill(Pid::from_raw(child.0.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    receive_until(&socket, &mut seen, |seen| {
        seen.iter().any(|l| l == "STOPPING=1")
    });
    // Keep reading, as systemd does: a full socket would block the node's notifications.
    let deadline = Instant::now() + EXIT_WAIT_MAX;
    let mut buf = vec![0u8; 4096];
    let exit = loop {
        if let Some(exit) = child.0.try_wait().expect("wait for the node") {
            break exit;
        }
        if Instant::now() >= deadline {
            panic!("the node did not exit within {EXIT_WAIT_MAX:?} of SIGTERM");
        }
        if let Ok(n) = socket.recv(&mut buf) {
            seen.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_string),
            );
        }
    };
    let stderr = std::fs::read_to_string(&stderr_path).expect("read stderr");
    assert_eq!(exit.code(), Some(0), "exit {exit}\n{stderr}");
    for message in ["server: started ", "server: stopping ", "server: stopped "] {
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(message)).collect();
        assert_eq!(lines.len(), 1, "one {message:?} line:\n{stderr}");
        for field in [
            "version=",
            "node_id=1",
            "cluster_id=https://warrant.lifecycle.test",
        ] {
            assert!(lines[0].contains(field), "{field} in {:?}", lines[0]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rolling restart
// ---------------------------------------------------------------------------------------------

/// What the load saw.
#[derive(Default)]
struct Seen {
    /// When each successful Issue was answered, across all writers.
    writes: Vec<Instant>,
    verified: u64,
    /// Verify calls answered UNAVAILABLE, and so sent again to the next endpoint.
    verify_moved: u64,
    /// Verify calls that failed otherwise, or said the token is not active: none allowed.
    verify_failures: Vec<String>,
    write_errors: Vec<String>,
}

fn local() -> ReadOptions {
    ReadOptions {
        consistency: Consistency::Local as i32,
        at_least_seq: 0,
        as_of: None,
    }
}

/// Whether a call failed before any node served it, so that a client may send it to another
/// node: what gRPC's transparent retry covers (gRFC A6) and what grpc-go and grpc-java report
/// as UNAVAILABLE. tonic reports three cases separately: UNAVAILABLE itself (a refused
/// connection); a request still queued on a connection that closed before it was written
/// (hyper's "canceled", as CANCELLED); and a stream the server refused with its graceful
/// GOAWAY (an h2 GOAWAY error with NO_ERROR, as INTERNAL: the server processed no stream past
/// the GOAWAY's last stream id).
fn never_served(status: &tonic::Status) -> bool {
    if status.code() == Code::Unavailable {
        return true;
    }
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_canceled)
        {
            return true;
        }
        if error.downcast_ref::<h2::Error>().is_some_and(|e| {
            e.is_go_away() && e.is_remote() && e.reason() == Some(h2::Reason::NO_ERROR)
        }) {
            return true;
        }
        source = error.source();
    }
    false
}

/// Verifies `token` LOCAL in a loop, moving to the next endpoint only when the call was not
/// served ([`never_served`]: what a client-side balancer does), until `stop`.
async fn verify_forever(
    channels: Vec<Channel>,
    first: usize,
    token: String,
    admin_auth: String,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) {
    let mut at = first;
    while !stop.load(Ordering::Relaxed) {
        let request = api::VerifyRequest {
            token: token.clone(),
            audience: AUDIENCE.to_string(),
            read: Some(local()),
        };
        let answer = TokenServiceClient::new(channels[at].clone())
            .verify(support::with_auth(Some(&admin_auth), request))
            .await;
        let mut seen = seen.lock().expect("the load record");
        match answer {
            Ok(response) if response.get_ref().active => seen.verified += 1,
            Ok(response) => seen.verify_failures.push(format!(
                "node index {at}: not active: {:?}",
                response.get_ref()
            )),
            Err(status) if never_served(&status) => {
                seen.verify_moved += 1;
                at = (at + 1) % channels.len();
            }
            Err(status) => seen
                .verify_failures
                .push(format!("node index {at}: {status:?}")),
        }
    }
}

/// Issues tokens in a loop as `agent`, moving to the next endpoint on any error, until `stop`.
async fn issue_forever(
    channels: Vec<Channel>,
    first: usize,
    agent: AgentCredential,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) {
    let mut at = first;
    while !stop.load(Ordering::Relaxed) {
        let request = api::IssueRequest {
            audience: AUDIENCE.to_string(),
            scopes: vec!["read_events".to_string()],
            ttl_seconds: 600,
            ..Default::default()
        };
        let answer = TokenServiceClient::new(channels[at].clone())
            .issue(agent.request(request))
            .await;
        let mut seen = seen.lock().expect("the load record");
        match answer {
            Ok(_) => seen.writes.push(Instant::now()),
            Err(status) => {
                let error = format!(
                    "node index {at}: {:?} ({}): {}",
                    status.code(),
                    support::error_reason(&status),
                    status.message()
                );
                seen.write_errors.push(error);
                at = (at + 1) % channels.len();
            }
        }
    }
}

/// The longest time without a successful write around `[from, to]`: the largest gap between
/// consecutive successes that overlaps the window.
fn longest_pause(writes: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut sorted = writes.to_vec();
    sorted.sort();
    sorted
        .windows(2)
        .filter(|w| w[1] >= from && w[0] <= to)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

/// Waits until at least `n` writes succeeded after `after`.
async fn writes_resumed(seen: &Mutex<Seen>, after: Instant, n: usize, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (done, errors) = {
            let seen = seen.lock().expect("the load record");
            let done = seen.writes.iter().filter(|t| **t > after).count();
            let errors = seen
                .write_errors
                .iter()
                .rev()
                .take(5)
                .cloned()
                .collect::<Vec<_>>();
            (done, errors)
        };
        if done >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: only {done} writes within 60 s; last errors: {errors:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

fn lines_with<'a>(log: &'a str, message: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(message)).collect()
}

/// One restart of the rolling restart: which node, whether it led, and the write pause.
struct Restart {
    node_id: u64,
    was_leader: bool,
    pause: Duration,
}

/// SIGTERMs node `id`, checks its clean exit and its stop lines, starts it again and waits
/// until it serves and writes flow.
async fn restart_gracefully(cluster: &mut Cluster, id: u64, seen: &Mutex<Seen>) -> Restart {
    let was_leader = cluster.leader().await == id;
    let from = Instant::now();
    let node = cluster.node_mut(id);
    node.signal(Signal::SIGTERM);
    let exit = node.wait_exit(EXIT_WAIT_MAX).await;
    let log = node.stderr_tail();
    let exit = exit.unwrap_or_else(|| panic!("node {id} still runs after SIGTERM\n{log}"));
    assert_eq!(exit.code(), Some(0), "node {id} exited with {exit}\n{log}");
    assert_eq!(lines_with(&log, "server: stopped ").len(), 1, "{log}");
    if was_leader {
        let handed = lines_with(&log, "handed leadership over");
        assert_eq!(handed.len(), 1, "the leader handed over:\n{log}");
    }
    node.start_again().await;
    cluster.converged().await;
    let to = Instant::now();
    writes_resumed(
        seen,
        to,
        WRITES_AFTER_EVENT,
        &format!("after restarting node {id}"),
    )
    .await;
    let pause = longest_pause(&seen.lock().expect("the load record").writes, from, to);
    Restart {
        node_id: id,
        was_leader,
        pause,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_fails_no_local_verify_and_hands_leadership_over() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let setup = cluster.node(leader);
    setup.register_human("alice").await;
    setup
        .register_service("calendar", AUDIENCE, &["read_events"])
        .await;
    let agents: Vec<AgentCredential> = (0..WRITERS)
        .map(|i| AgentCredential::new(&format!("writer-{i}")))
        .collect();
    for agent in &agents {
        setup
            .register_agent(&agent.agent_id, "alice", &agent.secret)
            .await;
    }
    let token = setup
        .issue(&agents[0], AUDIENCE, &["read_events"])
        .await
        .access_token;
    cluster.converged().await;

    let channels: Vec<Channel> = (1..=3)
        .map(|id| cluster.node(id).endpoint().connect_lazy())
        .collect();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let admin_auth = cluster.node(1).admin_auth();
    let mut load = Vec::new();
    for i in 0..VERIFIERS {
        load.push(tokio::spawn(verify_forever(
            channels.clone(),
            i % 3,
            token.clone(),
            admin_auth.clone(),
            seen.clone(),
            stop.clone(),
        )));
    }
    for (i, agent) in agents.iter().enumerate() {
        load.push(tokio::spawn(issue_forever(
            channels.clone(),
            i % 3,
            agent.clone(),
            seen.clone(),
            stop.clone(),
        )));
    }
    writes_resumed(
        &seen,
        Instant::now(),
        WRITES_AFTER_EVENT,
        "before the restarts",
    )
    .await;

    // --- rolling restart: the followers, then the leader
    let mut order: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    order.push(leader);
    let mut restarts = Vec::new();
    for id in order {
        restarts.push(restart_gracefully(&mut cluster, id, &seen).await);
    }
    let (verify_failures, verified, moved) = {
        let seen = seen.lock().expect("the load record");
        (
            seen.verify_failures.clone(),
            seen.verified,
            seen.verify_moved,
        )
    };

    // --- an unannounced SIGKILL of the leader, for comparison
    let leader = cluster.leader().await;
    let killed_at = Instant::now();
    cluster.node_mut(leader).kill();
    writes_resumed(&seen, killed_at, WRITES_AFTER_EVENT, "after the SIGKILL").await;
    let resumed = Instant::now();
    let kill_pause = longest_pause(
        &seen.lock().expect("the load record").writes,
        killed_at,
        resumed,
    );
    cluster.node_mut(leader).start_again().await;
    cluster.converged().await;

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.expect("a load task");
    }
    let seen = seen.lock().expect("the load record");
    for restart in &restarts {
        eprintln!(
            "rolling restart: node {} (leader: {}): longest write pause {} ms",
            restart.node_id,
            restart.was_leader,
            restart.pause.as_millis()
        );
    }
    let longest = restarts.iter().max_by_key(|r| r.pause).expect("restarts");
    eprintln!(
        "rolling restart: longest write pause {} ms (node {}, leader: {}); \
         {verified} Verify LOCAL calls answered, {moved} moved to another node on UNAVAILABLE, \
         {} failed",
        longest.pause.as_millis(),
        longest.node_id,
        longest.was_leader,
        verify_failures.len()
    );
    eprintln!(
        "unannounced SIGKILL of leader {leader}: write pause {} ms (writes resumed within {} ms)",
        kill_pause.as_millis(),
        (resumed - killed_at).as_millis()
    );
    eprintln!(
        "writes: {} succeeded, {} errors (moved to the next node); last errors: {:?}",
        seen.writes.len(),
        seen.write_errors.len(),
        seen.write_errors.iter().rev().take(5).collect::<Vec<_>>()
    );
    assert!(
        restarts.iter().any(|r| r.was_leader),
        "the leader was among the restarted nodes"
    );
    assert!(verified > 0, "Verify LOCAL load ran");
    assert!(
        verify_failures.is_empty(),
        "{} Verify LOCAL calls failed during the rolling restart: {:?}",
        verify_failures.len(),
        &verify_failures[..verify_failures.len().min(10)]
    );
}
