//! What the api crate's in-process tests share: a single-node config on loopback, starting a
//! node, the admin credential and the first write after the node elects itself.

#![allow(dead_code)] // Each test binary uses a subset of the helpers.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use tokio::sync::oneshot;
use tonic::{Code, Request, transport::Channel};
use warrant_api::{ApiConfig, Warrant, auth::pool::HashCounter};
use warrant_proto::api::{self, identity_service_client::IdentityServiceClient};

pub const ADMIN_TOKEN: &str = "api-test-admin-token-api-test-admin";
/// How long the test waits for anything that must happen; never a sleep to hope.
pub const WAIT_MAX: Duration = Duration::from_secs(30);

pub fn config(data_dir: &std::path::Path) -> ApiConfig {
    ApiConfig {
        node_id: 1,
        data_dir: data_dir.to_path_buf(),
        listen_addr: "127.0.0.1:0".parse().expect("an address"),
        peer_listen_addr: "127.0.0.1:0".parse().expect("an address"),
        http_listen_addr: None,
        advertise_addr: "127.0.0.1:0".to_owned(),
        peer_advertise_addr: "127.0.0.1:0".to_owned(),
        admin_token: ADMIN_TOKEN.to_owned(),
        issuer: "https://warrant.api.test".to_owned(),
        token_ttl_default_s: 300,
        clock_leeway_s: 5,
        init_single_node: true,
        snapshot_logs_since_last: 10_000,
        snapshot_logs_kept: 1_000,
        // Plaintext: the client is in-process.
        security: warrant_api::Security::InsecurePlaintext {
            peer_secrets: vec!["api-test-peer-secret-api-test-peer".to_owned()],
        },
        federation: vec![],
        allow_local_passwords: false,
        session_ttl_default_s: 3_600,
        storage_cache_mib: 64,
        audit_export: None,
    }
}

pub fn with_auth<T>(authorization: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", authorization.parse().expect("ASCII"));
    request
}

pub fn admin<T>(message: T) -> Request<T> {
    with_auth(&format!("Bearer {ADMIN_TOKEN}"), message)
}

pub fn human(human_id: &str) -> api::RegisterHumanRequest {
    api::RegisterHumanRequest {
        human_id: human_id.to_owned(),
        display_name: format!("Human {human_id}"),
        email: format!("{human_id}@example.com"),
        ..Default::default()
    }
}

/// A node running in this process, and a channel to it.
pub struct Started {
    pub channel: Channel,
    /// How many argon2 hashes the node's authenticator has run.
    pub hashes: HashCounter,
    /// Stops the node when sent (or dropped).
    pub stop: oneshot::Sender<()>,
}

/// Starts a single-node cluster on `data_dir` and connects to it.
pub async fn start(data_dir: &std::path::Path) -> Started {
    let (ready, started) = oneshot::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(Warrant::run(
        config(data_dir),
        async move {
            let _ = stopped.await;
        },
        move |warrant| {
            let _ = ready.send((warrant.local_addr, warrant.argon2_hashes.clone()));
        },
    ));
    let (addr, hashes): (SocketAddr, HashCounter) = tokio::time::timeout(WAIT_MAX, started)
        .await
        .expect("the node starts in time")
        .expect("the node starts");
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("a URI")
        .connect()
        .await
        .expect("connect");
    Started {
        channel,
        hashes,
        stop,
    }
}

/// Registers `human_id`, retrying (bounded) while the new node elects itself.
pub async fn first_write(identity: &mut IdentityServiceClient<Channel>, human_id: &str) {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        match identity.register_human(admin(human(human_id))).await {
            Ok(_) => return,
            Err(status) if Instant::now() < deadline && status.code() == Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("the first write failed: {status:?}"),
        }
    }
}
