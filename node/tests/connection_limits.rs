//! Connection limits against the real `warrant` binary (issue 12): the HTTP listener's
//! header-read timeout, the peer listener's connection cap, and what server reflection on the
//! public port lists and describes (v1 and v1alpha).
//!
//! Each wait is bounded by a read timeout or a deadline, never a sleep. The one test that must
//! show something does *not* happen (an established peer connection keeps its permit past the
//! handshake timeout) waits that timeout out on purpose and says so.

mod support;

use std::{
    io::{Read, Write},
    time::{Duration, Instant},
};

use support::{Certs, Node, error_reason, tls_client, tls_endpoint};
use tokio::{io::AsyncReadExt, net::TcpStream};
use tonic::{Status, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use warrant_api::{
    limits::{HTTP_HEADER_READ_TIMEOUT, PEER_CONNECTIONS_MAX},
    transport::incoming::TLS_HANDSHAKE_TIMEOUT,
};

/// How much earlier than `HTTP_HEADER_READ_TIMEOUT` the close may come: the server starts its
/// timer when it starts reading, a moment after the client's handshake ends.
const HEADER_TIMEOUT_SLACK: Duration = Duration::from_secs(1);
/// How long the header-read test waits for the close before calling the connection held open.
const HEADER_TIMEOUT_CLOSE_WAIT_MAX: Duration = Duration::from_secs(30);
/// How soon a connection over the cap must be closed: "as it is accepted", so well inside the
/// handshake timeout that would otherwise close it.
const OVER_CAP_CLOSE_WAIT_MAX: Duration = Duration::from_secs(3);
/// How long after the idle connections close a new one may take to be accepted.
const ACCEPT_AGAIN_WAIT_MAX: Duration = Duration::from_secs(5);
/// How often a new connection is tried while waiting for the cap to free up.
const ACCEPT_AGAIN_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// A test connection's connect and call timeout.
const CALL_WAIT_MAX: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// HTTP header-read timeout
// ---------------------------------------------------------------------------------------------

/// A client that completes the TLS handshake, sends half a request head and then nothing is
/// closed by the server once `HTTP_HEADER_READ_TIMEOUT` has passed, not before and not never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_request_head_is_closed_after_the_header_read_timeout() {
    let node = Node::start().await;
    let addr = node.http_addr();
    let (took, received) = tokio::task::spawn_blocking(move || send_incomplete_head(&addr))
        .await
        .expect("the slow client ran")
        .unwrap_or_else(|problem| panic!("{problem}"));
    assert!(
        HTTP_HEADER_READ_TIMEOUT - HEADER_TIMEOUT_SLACK <= took,
        "closed after {took:?}, before the header-read timeout ({HTTP_HEADER_READ_TIMEOUT:?})"
    );
    let head = String::from_utf8_lossy(&received);
    eprintln!("closed {took:?} after the half head; the server sent {head:?}");
    assert!(
        received.is_empty() || head.starts_with("HTTP/1.1 408"),
        "the server answered an incomplete head with something other than a close or 408: {head:?}"
    );
    // The timeout closes slow clients, not the listener: a whole request is still answered.
    let (status, _) = node.http_get("/healthz");
    assert_eq!(status, 200, "/healthz after the slow client");
}

/// A TLS connection to `addr` (trusting the test CA), handshake done, reads bounded by
/// [`HEADER_TIMEOUT_CLOSE_WAIT_MAX`].
fn tls_connected(
    addr: &str,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>, String> {
    let mut tcp = std::net::TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(HEADER_TIMEOUT_CLOSE_WAIT_MAX))
        .map_err(|e| format!("set a read timeout: {e}"))?;
    let mut tls = tls_client("127.0.0.1");
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp)
            .map_err(|e| format!("TLS handshake: {e}"))?;
    }
    Ok(rustls::StreamOwned::new(tls, tcp))
}

/// Connects over TLS, sends an incomplete request head, and reads until the server closes:
/// (how long after the head was sent it closed, what it sent first), or why it did not close
/// within [`HEADER_TIMEOUT_CLOSE_WAIT_MAX`].
fn send_incomplete_head(addr: &str) -> Result<(Duration, Vec<u8>), String> {
    let mut stream = tls_connected(addr)?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .and_then(|()| stream.flush())
        .map_err(|e| format!("send half a head: {e}"))?;
    let sent = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let Some(left) = HEADER_TIMEOUT_CLOSE_WAIT_MAX.checked_sub(sent.elapsed()) else {
            return Err(format!(
                "still open {HEADER_TIMEOUT_CLOSE_WAIT_MAX:?} after the half head"
            ));
        };
        stream
            .sock
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(|e| format!("set a read timeout: {e}"))?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok((sent.elapsed(), received)),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "still open {:?} after the half head (read timed out)",
                    sent.elapsed()
                ));
            }
            // A close without close_notify, or a reset: closed either way.
            Err(_) => return Ok((sent.elapsed(), received)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The peer listener's connection cap
// ---------------------------------------------------------------------------------------------

/// With `PEER_CONNECTIONS_MAX` idle connections open on the peer port, one more is closed as it
/// is accepted, and the public port still answers; once they close, a member's connection is
/// accepted again (before the handshake timeout could have freed their permits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_listener_closes_connections_over_its_cap_until_others_close() {
    let node = Node::start().await;
    let peer_addr = node.peer_addr();
    let opened = Instant::now();
    let mut idle = Vec::with_capacity(PEER_CONNECTIONS_MAX);
    for _ in 0..PEER_CONNECTIONS_MAX {
        idle.push(
            TcpStream::connect(&peer_addr)
                .await
                .expect("connect to the peer port"),
        );
    }
    let mut over = TcpStream::connect(&peer_addr)
        .await
        .expect("the kernel accepts the TCP connection over the cap");
    let closed_after = closed_within(&mut over, OVER_CAP_CLOSE_WAIT_MAX)
        .await
        .unwrap_or_else(|problem| panic!("connection {}: {problem}", PEER_CONNECTIONS_MAX + 1));
    assert!(
        opened.elapsed() < TLS_HANDSHAKE_TIMEOUT,
        "the idle connections were open {:?}: the handshake timeout may have freed their permits",
        opened.elapsed()
    );
    // They were accepted before the one over the cap, so had any been closed its end of stream
    // would already be here.
    for (index, stream) in idle.iter().enumerate() {
        assert_still_open(stream, &format!("idle connection {index}"));
    }
    assert_public_port_serves(&node, "with the peer port full").await;
    eprintln!("connection over the cap closed after {closed_after:?}");

    drop(idle);
    let accepted_after = accepted_again_within(&peer_addr, ACCEPT_AGAIN_WAIT_MAX)
        .await
        .unwrap_or_else(|problem| panic!("after closing the idle connections: {problem}"));
    assert!(
        opened.elapsed() < TLS_HANDSHAKE_TIMEOUT,
        "accepted again only {:?} after the idle connections opened: their handshakes may have \
         timed out rather than their closes freeing the cap",
        opened.elapsed()
    );
    eprintln!("a member's connection accepted {accepted_after:?} after the idle ones closed");
    assert_public_port_serves(&node, "after the peer port freed up").await;
}

/// `PEER_CONNECTIONS_MAX` members' connections, their TLS handshakes done, keep their permits
/// for as long as they are open: past the handshake timeout one more is still closed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn established_peer_connections_hold_their_permits_for_their_life() {
    let node = Node::start().await;
    let peer_addr = node.peer_addr();
    let mut members = Vec::with_capacity(PEER_CONNECTIONS_MAX);
    for index in 0..PEER_CONNECTIONS_MAX {
        let channel = member_endpoint(&peer_addr)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("member connection {index}: {e}"));
        members.push(channel);
    }
    // Proving a permit is *not* released needs time to pass: the handshake timeout, and a
    // second beyond it, is when a permit held only through the handshake would be gone.
    tokio::time::sleep(TLS_HANDSHAKE_TIMEOUT + Duration::from_secs(1)).await;
    let mut over = TcpStream::connect(&peer_addr)
        .await
        .expect("the kernel accepts the TCP connection over the cap");
    closed_within(&mut over, OVER_CAP_CLOSE_WAIT_MAX)
        .await
        .unwrap_or_else(|problem| panic!("connection over established members: {problem}"));
    assert_public_port_serves(&node, "with the peer port full of members").await;
    drop(members);
    accepted_again_within(&peer_addr, ACCEPT_AGAIN_WAIT_MAX)
        .await
        .unwrap_or_else(|problem| panic!("after the members closed: {problem}"));
}

/// How long `stream` took to reach end of stream (or a reset), or why it did not within `max`.
async fn closed_within(stream: &mut TcpStream, max: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let mut buf = [0u8; 64];
    match tokio::time::timeout(max, stream.read(&mut buf)).await {
        Err(_) => Err(format!("still open after {max:?}")),
        Ok(Ok(0)) => Ok(start.elapsed()),
        Ok(Ok(n)) => Err(format!("the server sent {n} bytes instead of closing")),
        Ok(Err(_)) => Ok(start.elapsed()),
    }
}

/// Panics unless `stream` is open with nothing to read.
fn assert_still_open(stream: &TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    match stream.try_read(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok(0) => panic!("{what} was closed by the server"),
        Ok(n) => panic!("{what}: the server sent {n} bytes"),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// An endpoint for the peer port presenting node 2's certificate, as a member would.
fn member_endpoint(peer_addr: &str) -> tonic::transport::Endpoint {
    tls_endpoint(peer_addr)
        .tls_config(Certs::shared().client_tls_as(Some(2)))
        .expect("TLS settings")
        .connect_timeout(CALL_WAIT_MAX)
        .timeout(CALL_WAIT_MAX)
}

/// Tries a member's connection (TLS with a node certificate, then HTTP/2) until one succeeds:
/// how long that took, or the last failure once `max` has passed.
async fn accepted_again_within(peer_addr: &str, max: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        let error = match member_endpoint(peer_addr).connect().await {
            Ok(_channel) => return Ok(start.elapsed()),
            Err(e) => e,
        };
        if max <= start.elapsed() {
            return Err(format!("no connection accepted within {max:?}: {error:?}"));
        }
        tokio::time::sleep(ACCEPT_AGAIN_POLL_INTERVAL).await;
    }
}

/// Panics unless a fresh connection to the public port is accepted and health says SERVING.
async fn assert_public_port_serves(node: &Node, when: &str) {
    let channel = node
        .endpoint()
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to the public port {when}: {e}"));
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("health on the public port {when}: {e}"))
        .into_inner();
    assert_eq!(
        health.status,
        ServingStatus::Serving as i32,
        "health on the public port {when}"
    );
}

// ---------------------------------------------------------------------------------------------
// Server reflection on the public port
// ---------------------------------------------------------------------------------------------

/// What one reflection request was answered with.
enum Reflected {
    Services(Vec<String>),
    Files(Vec<prost_types::FileDescriptorProto>),
    Error(i32, String),
    Other(String),
}

/// Files by name only: a descriptor's bytes would drown a failure message.
impl std::fmt::Debug for Reflected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reflected::Services(services) => write!(f, "Services({services:?})"),
            Reflected::Files(files) => {
                let names: Vec<&str> = files.iter().map(|file| file.name()).collect();
                write!(f, "Files({names:?})")
            }
            Reflected::Error(code, message) => write!(f, "Error({code}, {message:?})"),
            Reflected::Other(other) => write!(f, "Other({other})"),
        }
    }
}

/// What a reflection request asks.
#[derive(Clone, Copy, Debug)]
enum Ask<'a> {
    ListServices,
    FileContainingSymbol(&'a str),
}

/// One reflection call in version `$version` (`v1` or `v1alpha`): the two are the same protocol
/// under two package names, with distinct generated types.
macro_rules! reflect_fn {
    ($name:ident, $version:ident) => {
        async fn $name(channel: Channel, ask: Ask<'_>) -> Result<Reflected, Status> {
            use tonic_reflection::pb::$version::{
                ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest,
                server_reflection_response::MessageResponse,
            };
            let message_request = match ask {
                Ask::ListServices => MessageRequest::ListServices(String::new()),
                Ask::FileContainingSymbol(symbol) => {
                    MessageRequest::FileContainingSymbol(symbol.to_string())
                }
            };
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(message_request),
            };
            let mut answers = ServerReflectionClient::new(channel)
                .server_reflection_info(tokio_stream::iter([request]))
                .await?
                .into_inner();
            let Some(answer) = answers.message().await? else {
                return Ok(Reflected::Other("no answer".into()));
            };
            Ok(match answer.message_response {
                Some(MessageResponse::ListServicesResponse(list)) => {
                    Reflected::Services(list.service.into_iter().map(|s| s.name).collect())
                }
                Some(MessageResponse::FileDescriptorResponse(files)) => {
                    Reflected::Files(decode_files(&files.file_descriptor_proto))
                }
                Some(MessageResponse::ErrorResponse(error)) => {
                    Reflected::Error(error.error_code, error.error_message)
                }
                other => Reflected::Other(format!("{other:?}")),
            })
        }
    };
}

reflect_fn!(reflect_v1, v1);
reflect_fn!(reflect_v1alpha, v1alpha);

async fn reflect(version: &str, channel: Channel, ask: Ask<'_>) -> Result<Reflected, Status> {
    match version {
        "v1" => reflect_v1(channel, ask).await,
        "v1alpha" => reflect_v1alpha(channel, ask).await,
        other => unreachable!("no reflection version {other}"),
    }
}

/// The public API's services, all of which reflection lists.
const PUBLIC_SERVICES: [&str; 7] = [
    "warrant.v1.IdentityService",
    "warrant.v1.SessionService",
    "warrant.v1.DelegationService",
    "warrant.v1.TokenService",
    "warrant.v1.ClusterService",
    "warrant.v1.AuditService",
    "grpc.health.v1.Health",
];
/// The peer service: served only on the peer listener, so the public port does not list it.
const PEER_SERVICE: &str = "warrant.raft.v1.RaftService";

/// Both reflection versions list the public services and health, not the peer service, and
/// describe `grpc.health.v1.Health` (so grpcurl can call it) but not the peer service. Before
/// the public port registered only the public descriptors, both listed
/// `warrant.raft.v1.RaftService` and described it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_and_v1alpha_list_the_public_services_and_describe_health() {
    let node = Node::start().await;
    let mut failures = Vec::new();
    for version in ["v1", "v1alpha"] {
        match reflect(version, node.channel(), Ask::ListServices).await {
            Ok(Reflected::Services(services)) => {
                for want in PUBLIC_SERVICES {
                    if !services.iter().any(|s| s == want) {
                        failures.push(format!("{version}: {want} not listed in {services:?}"));
                    }
                }
                if services.iter().any(|s| s == PEER_SERVICE) {
                    failures.push(format!("{version}: lists {PEER_SERVICE}: {services:?}"));
                }
            }
            other => failures.push(format!("{version}: list services answered {other:?}")),
        }
        let health = Ask::FileContainingSymbol("grpc.health.v1.Health");
        match reflect(version, node.channel(), health).await {
            Ok(Reflected::Files(files)) => {
                if !describes_service(&files, "grpc.health.v1", "Health") {
                    failures.push(format!(
                        "{version}: the files for grpc.health.v1.Health do not declare it"
                    ));
                }
            }
            other => failures.push(format!("{version}: describe health answered {other:?}")),
        }
        // Nor does the public port describe the peer contract.
        let peer = Ask::FileContainingSymbol(PEER_SERVICE);
        match reflect(version, node.channel(), peer).await {
            Err(status) if status.code() == tonic::Code::NotFound => {
                // A status a stream yields carries ErrorInfo too (grpc_edge, in the trailers).
                let reason = error_reason(&status);
                if reason != "SYMBOL_NOT_FOUND" {
                    failures.push(format!(
                        "{version}: describe {PEER_SERVICE}: NOT_FOUND with reason {reason:?}"
                    ));
                }
            }
            other => failures.push(format!(
                "{version}: describe {PEER_SERVICE} answered {other:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "reflection:\n{}", failures.join("\n"));
}

fn decode_files(files: &[Vec<u8>]) -> Vec<prost_types::FileDescriptorProto> {
    use prost::Message;
    files
        .iter()
        .map(|bytes| {
            prost_types::FileDescriptorProto::decode(bytes.as_slice())
                .expect("reflection returns encoded FileDescriptorProtos")
        })
        .collect()
}

/// Whether one of `files` is of `package` and declares `service`.
fn describes_service(
    files: &[prost_types::FileDescriptorProto],
    package: &str,
    service: &str,
) -> bool {
    files
        .iter()
        .any(|file| file.package() == package && file.service.iter().any(|s| s.name() == service))
}

/// A client that completes TLS on the public (HTTP/2) port and then sends nothing, not even
/// the connection preface, is closed after `HTTP2_SILENT_CLIENT_TIMEOUT`: it would otherwise
/// hold one of the listener's connection slots for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_http2_client_is_closed_after_the_silence_timeout() {
    let node = Node::start().await;
    let addr = node.addr();
    let took = tokio::task::spawn_blocking(move || silent_after_tls(&addr))
        .await
        .expect("the silent client ran")
        .unwrap_or_else(|problem| panic!("{problem}"));
    let timeout = warrant_api::limits::HTTP2_SILENT_CLIENT_TIMEOUT;
    assert!(
        timeout - HEADER_TIMEOUT_SLACK <= took,
        "closed after {took:?}, before the silence timeout ({timeout:?})"
    );
    assert_public_port_serves(&node, "after the silent client").await;
}

/// Completes a TLS handshake with `addr`, sends nothing, and returns how long the server took
/// to close, or why it did not within [`HEADER_TIMEOUT_CLOSE_WAIT_MAX`].
fn silent_after_tls(addr: &str) -> Result<Duration, String> {
    use std::io::Read;
    let mut stream = tls_connected(addr)?;
    let connected = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            // The server's own preface (SETTINGS) may come first; the close is what counts.
            Ok(0) => return Ok(connected.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(connected.elapsed());
            }
            Err(e) if connected.elapsed() >= HEADER_TIMEOUT_CLOSE_WAIT_MAX => {
                return Err(format!(
                    "still open after {HEADER_TIMEOUT_CLOSE_WAIT_MAX:?}: {e}"
                ));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "still open after {HEADER_TIMEOUT_CLOSE_WAIT_MAX:?}"
                ));
            }
            Err(e) => return Ok(connected.elapsed()).inspect(|_| eprintln!("closed with {e}")),
        }
    }
}
