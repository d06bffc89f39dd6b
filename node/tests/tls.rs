//! TLS against the real binary: plaintext and strangers are refused, the peer listener serves
//! members only (each as the node its certificate names), certificates reload from disk
//! without a restart, and `WARRANT_CONFIG` starts a node as the README says.

mod support;

use std::{path::Path, time::Duration};

use tonic::{Code, transport::Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_types::StatusExt;
use warrant_proto::{
    log,
    raft::{ForwardRequest, ReadIndexRequest, raft_service_client::RaftServiceClient},
};

use support::{Certs, Node, READY_POLL_INTERVAL, READY_WAIT_MAX};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A health check through `endpoint`: Ok when the node answered at all.
async fn health(endpoint: Endpoint) -> Result<(), String> {
    let channel = endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CONNECT_TIMEOUT)
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(|_| ())
        .map_err(|status| format!("check: {status:?}"))
}

/// Waits (bounded by [`READY_WAIT_MAX`]) until a health check through a fresh `endpoint()`
/// is answered; fails with `what` and the last error otherwise.
async fn served_within_ready_wait(endpoint: impl Fn() -> Endpoint, what: &str) {
    let deadline = tokio::time::Instant::now() + READY_WAIT_MAX;
    loop {
        match health(endpoint()).await {
            Ok(()) => return,
            Err(why) => assert!(
                tokio::time::Instant::now() < deadline,
                "{what} within {READY_WAIT_MAX:?}: {why}"
            ),
        }
        tokio::time::sleep(READY_POLL_INTERVAL).await;
    }
}

fn https(addr: &str) -> Endpoint {
    Endpoint::from_shared(format!("https://{addr}")).expect("endpoint")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_and_clients_trusting_another_ca_are_refused() {
    let node = Node::start().await;
    assert!(
        health(Endpoint::from_shared(format!("http://{}", node.addr())).expect("endpoint"))
            .await
            .is_err(),
        "a plaintext client must not be served by a TLS node"
    );
    let other = Certs::make(&format!("other-ca-{}", std::process::id()));
    let stranger = https(&node.addr())
        .tls_config(other.client_tls())
        .expect("TLS settings");
    let refused = health(stranger).await.expect_err("another CA's client");
    assert!(refused.contains("connect"), "{refused}");
    // The same node answers a client trusting its CA.
    health(node.endpoint()).await.expect("the node's own CA");
    // Plaintext HTTP gets no HTTP answer from the TLS HTTP port either.
    let http = std::net::TcpStream::connect(node.http_addr()).expect("connect");
    http.set_read_timeout(Some(CONNECT_TIMEOUT))
        .expect("timeout");
    let mut reply = String::new();
    use std::io::{Read, Write};
    let mut http = http;
    http.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let _ = http.read_to_string(&mut reply);
    assert!(
        !reply.starts_with("HTTP/"),
        "plaintext HTTP answered: {reply}"
    );
}

/// A command that would register `mallory` as the admin, were it ever committed.
fn forged_forward(target: u64, source: u64) -> ForwardRequest {
    ForwardRequest {
        target_node_id: target,
        source_node_id: source,
        hops: 1,
        command: Some(log::Command {
            idempotency_key: "forged".into(),
            request_digest: vec![7; 32],
            actor: Some(log::Actor {
                kind: log::PrincipalKind::Admin as i32,
                id: "admin".into(),
                on_behalf_of: vec![],
            }),
            kind: Some(log::command::Kind::RegisterHuman(log::RegisterHuman {
                human_id: "mallory".into(),
                ..Default::default()
            })),
            ..Default::default()
        }),
    }
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_rpcs_are_served_only_to_members_as_the_node_their_certificate_names() {
    let node = Node::start().await;
    let before = node.digest().await;
    let certs = Certs::shared();

    // The public port does not serve peer RPCs at all.
    let status = RaftServiceClient::new(node.channel())
        .forward(forged_forward(1, 2))
        .await
        .expect_err("Forward on the public port");
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    assert_eq!(reason(&status), "METHOD_NOT_FOUND");

    // The peer port: no client certificate, no connection.
    let anonymous = https(&node.peer_addr())
        .tls_config(certs.client_tls().domain_name("node-1.warrant.internal"))
        .expect("TLS settings");
    health(anonymous)
        .await
        .expect_err("a peer connection without a certificate");

    // A certificate from the CA that names no node: refused before the body is read.
    let client = peer_client(&node, None).await;
    let status = client
        .clone()
        .read_index(ReadIndexRequest {
            target_node_id: 1,
            source_node_id: 2,
        })
        .await
        .expect_err("ReadIndex with a client certificate");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(reason(&status), "PEER_UNAUTHENTICATED");

    // Node 3's certificate, claiming to be node 2.
    let status = peer_client(&node, Some(3))
        .await
        .forward(forged_forward(1, 2))
        .await
        .expect_err("node 3 posing as node 2");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(reason(&status), "PEER_UNAUTHENTICATED");

    // A node dialling "node 2" at this address finds node 1's certificate and refuses it.
    let misdirected = https(&node.peer_addr())
        .tls_config(
            certs
                .client_tls_as(Some(2))
                .domain_name("node-2.warrant.internal"),
        )
        .expect("TLS settings");
    let refused = health(misdirected)
        .await
        .expect_err("the wrong node's cert");
    assert!(refused.contains("connect"), "{refused}");

    assert_eq!(
        node.digest().await,
        before,
        "a refused peer RPC changed state"
    );
}

/// A client of `node`'s peer listener presenting node `as_node`'s certificate (`None`: the
/// client certificate, which names no node).
async fn peer_client(
    node: &Node,
    as_node: Option<u64>,
) -> RaftServiceClient<tonic::transport::Channel> {
    let channel = https(&node.peer_addr())
        .tls_config(
            Certs::shared()
                .client_tls_as(as_node)
                .domain_name("node-1.warrant.internal"),
        )
        .expect("TLS settings")
        .connect_timeout(CONNECT_TIMEOUT)
        .connect()
        .await
        .expect("connect to the peer listener");
    RaftServiceClient::new(channel)
}

/// Copies `from` over `to` the way an operator's tooling should: write a temporary file, then
/// rename it into place.
fn replace(from: &Path, to: &Path) {
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).expect("copy");
    std::fs::rename(&tmp, to).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_swapped_on_disk_is_picked_up_without_a_restart() {
    // The node's own copies of the shared material, so swapping them touches no other test.
    let shared = Certs::shared();
    let own = tempfile::tempdir().expect("temp dir");
    let (cert, key) = shared.node_files(1);
    let files = [
        (shared.ca_file(), own.path().join("ca.pem")),
        (cert, own.path().join("node.pem")),
        (key, own.path().join("node-key.pem")),
    ];
    for (from, to) in &files {
        std::fs::copy(from, to).expect("copy");
    }
    let mut tls = toml::Table::new();
    for (key, (_, path)) in ["ca_file", "cert_file", "key_file"].iter().zip(&files) {
        tls.insert(key.to_string(), path.display().to_string().into());
    }
    let mut extra = toml::Table::new();
    extra.insert("tls".into(), toml::Value::Table(tls));
    let node = Node::start_with(extra).await;
    let pid = node.pid();

    let renewed = Certs::make(&format!("renewed-ca-{}", std::process::id()));
    let trusting_renewed = || {
        https(&node.addr())
            .tls_config(renewed.client_tls())
            .expect("TLS settings")
    };
    health(trusting_renewed())
        .await
        .expect_err("the renewed CA does not sign the node's certificate yet");
    let (cert, key) = renewed.node_files(1);
    replace(&key, &files[2].1);
    replace(&cert, &files[1].1);
    replace(&renewed.ca_file(), &files[0].1);

    served_within_ready_wait(trusting_renewed, "the renewed certificate was not served").await;
    assert_eq!(node.pid(), pid, "the node was not restarted");
    health(node.endpoint())
        .await
        .expect_err("the old CA no longer signs what the node presents");
}

/// The README documents `WARRANT_CONFIG` for `warrant server`; a node started that way, with the
/// CLI's own variables exported beside it, must start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warrant_config_starts_a_node_beside_the_clis_variables() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = Certs::shared();
    let (cert, key) = certs.node_files(1);
    let port = |l: std::net::TcpListener| l.local_addr().expect("addr").port();
    let listen = port(std::net::TcpListener::bind("127.0.0.1:0").expect("bind"));
    let peer = port(std::net::TcpListener::bind("127.0.0.1:0").expect("bind"));
    let config = format!(
        "node_id = 1\ndata_dir = {data:?}\nlisten_addr = \"127.0.0.1:{listen}\"\n\
         peer_listen_addr = \"127.0.0.1:{peer}\"\nadmin_token = \"test-admin-0123456789abcdef\"\n\
         init_single_node = true\n[tls]\nca_file = {ca:?}\ncert_file = {cert:?}\nkey_file = {key:?}\n",
        data = dir.path().join("data"),
        ca = certs.ca_file(),
    );
    let path = dir.path().join("warrant.toml");
    std::fs::write(&path, config).expect("write config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warrant"))
        .arg("server")
        .env("WARRANT_CONFIG", &path)
        .env("WARRANT_CLI_ADMIN_TOKEN", "the-cli's-token-not-the-node's")
        .env("WARRANT_CLI_CA", certs.ca_file())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).expect("log"))
        .spawn()
        .expect("spawn warrant server");
    let endpoint = support::tls_endpoint(&format!("127.0.0.1:{listen}"));
    let deadline = tokio::time::Instant::now() + READY_WAIT_MAX;
    let started = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break Err(format!("exited with {exit}"));
        }
        if health(endpoint.clone()).await.is_ok() {
            break Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            break Err("no answer".to_string());
        }
        tokio::time::sleep(READY_POLL_INTERVAL).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    assert!(started.is_ok(), "{started:?}\n{log}");
}

/// The README's commands run TLS end to end: `warrant demo` says so and succeeds, and the
/// cluster it is built on (`warrant local-cluster`, the same code) answers TLS clients that
/// trust its CA and refuses plaintext on every listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_commands_run_tls_and_refuse_plaintext() {
    let demo = support::warrant_command()
        .arg("demo")
        .output()
        .expect("run warrant demo");
    let stdout = String::from_utf8_lossy(&demo.stdout);
    assert!(
        demo.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    assert!(stdout.contains("(TLS; peers on mutual TLS)"), "{stdout}");

    let dir = tempfile::tempdir().expect("temp dir");
    let base = support::free_port_run(9);
    let mut cluster = support::warrant_command()
        .arg("local-cluster")
        .arg("--dir")
        .arg(dir.path())
        .args(["--base-port", &base.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).expect("log"))
        .spawn()
        .expect("spawn warrant local-cluster");
    let ca = dir.path().join("tls/ca.pem");
    let deadline = tokio::time::Instant::now() + READY_WAIT_MAX;
    let up = loop {
        if let Some(exit) = cluster.try_wait().expect("wait") {
            break Err(format!("local-cluster exited with {exit}"));
        }
        if let Ok(pem) = std::fs::read(&ca) {
            let tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem));
            let endpoint = https(&format!("127.0.0.1:{base}"))
                .tls_config(tls)
                .expect("TLS settings");
            if health(endpoint).await.is_ok() {
                break Ok(());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            break Err("not up in time".to_string());
        }
        tokio::time::sleep(READY_POLL_INTERVAL).await;
    };
    let probes = if up.is_ok() {
        // Node n: gRPC base+3(n-1), HTTP the next port, peers the one after.
        let mut refused = Vec::new();
        for port in (0..9).map(|i| base + i) {
            let plain =
                Endpoint::from_shared(format!("http://127.0.0.1:{port}")).expect("endpoint");
            refused.push((port, health(plain).await.is_err()));
        }
        refused
    } else {
        Vec::new()
    };
    // Only the process this test started, and it stops its own children.
    let pid = nix::unistd::Pid::from_raw(cluster.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let exit = tokio::task::spawn_blocking(move || cluster.wait())
        .await
        .expect("join")
        .expect("wait for local-cluster");
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    assert!(up.is_ok(), "{up:?}\n{log}");
    for (port, refused) in probes {
        assert!(refused, "port {port} answered a plaintext client");
    }
    assert!(exit.success(), "local-cluster stopped with {exit}\n{log}");
}

/// Every TLS file is padded to this size, so a swapped file has the size of the one it replaces.
const PADDED_FILE_BYTES: usize = 8 * 1024;

/// Writes `pem` padded with newlines to [`PADDED_FILE_BYTES`] at `to`, modified at `mtime`,
/// through a temporary file renamed into place (a rename keeps the temporary's mtime), so the
/// reload poll, which watches sizes and modification times, sees no change at any moment.
fn write_unseen(pem: &[u8], to: &Path, mtime: std::time::SystemTime) {
    assert!(
        pem.len() < PADDED_FILE_BYTES,
        "{} is too big to pad",
        to.display()
    );
    let mut padded = pem.to_vec();
    padded.resize(PADDED_FILE_BYTES, b'\n');
    let tmp = to.with_extension("new");
    std::fs::write(&tmp, &padded).expect("write");
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .and_then(|f| f.set_modified(mtime))
        .expect("set the modification time");
    std::fs::rename(&tmp, to).expect("rename");
}

/// SIGHUP reloads by itself: the files are swapped keeping their sizes and modification times,
/// so the file watch sees nothing, and the node serves the new certificate only once signalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_what_the_file_watch_cannot_see() {
    let shared = Certs::shared();
    let own = tempfile::tempdir().expect("temp dir");
    let (cert, key) = shared.node_files(1);
    let mtime = std::time::SystemTime::now() - Duration::from_secs(3600);
    let files = [
        (shared.ca_file(), own.path().join("ca.pem")),
        (cert, own.path().join("node.pem")),
        (key, own.path().join("node-key.pem")),
    ];
    let mut tls = toml::Table::new();
    for (name, (from, to)) in ["ca_file", "cert_file", "key_file"].iter().zip(&files) {
        write_unseen(&std::fs::read(from).expect("read"), to, mtime);
        tls.insert(name.to_string(), to.display().to_string().into());
    }
    let mut extra = toml::Table::new();
    extra.insert("tls".into(), toml::Value::Table(tls));
    let node = Node::start_with(extra).await;

    let renewed = Certs::make(&format!("hup-ca-{}", std::process::id()));
    let (new_cert, new_key) = renewed.node_files(1);
    for (from, (_, to)) in [renewed.ca_file(), new_cert, new_key].iter().zip(&files) {
        write_unseen(&std::fs::read(from).expect("read"), to, mtime);
    }
    let trusting_renewed = || {
        https(&node.addr())
            .tls_config(renewed.client_tls())
            .expect("TLS settings")
    };
    // Three polls of the file watch: it must not have noticed (this waits to show that
    // something does not happen; there is no condition to wait on instead).
    tokio::time::sleep(warrant_api::transport::tls::TLS_RELOAD_POLL * 3).await;
    health(trusting_renewed())
        .await
        .expect_err("the file watch reloaded files whose size and mtime did not change");
    node.signal(nix::sys::signal::Signal::SIGHUP);
    served_within_ready_wait(trusting_renewed, "SIGHUP did not reload").await;
}
