//! Request digests of commands that carry client secrets, across a real three-node cluster. The
//! secret enters the digest keyed by a key every member derives alike (from the admin token), so
//! a retry of the same request through another node replays the first outcome, and the same
//! idempotency key with another secret is refused as reused. A per-node key would fail the first
//! half; a digest without the secret would pass the second half wrongly.

mod support;

use support::{cluster::Cluster, error_reason};
use warrant_proto::api;

fn register_bot(secret: &str) -> api::RegisterAgentRequest {
    api::RegisterAgentRequest {
        idempotency_key: "register-bot-1".into(),
        agent_id: "bot".into(),
        owner_human_id: "owner".into(),
        kind: "assistant".into(),
        description: "agent bot".into(),
        client_secret: secret.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_bearing_retry_through_another_node_replays_and_another_secret_does_not() {
    let cluster = Cluster::start(3).await;
    let (n1, n2, n3) = (cluster.node(1), cluster.node(2), cluster.node(3));
    n1.register_human("owner").await;
    let secret = hex::encode(rand::random::<[u8; 16]>());

    let first = n1
        .identity()
        .register_agent(n1.admin(register_bot(&secret)))
        .await
        .expect("RegisterAgent")
        .into_inner();
    let retried = n2
        .identity()
        .register_agent(n2.admin(register_bot(&secret)))
        .await
        .expect("RegisterAgent retried through node 2")
        .into_inner();
    assert_eq!(retried.seq, first.seq, "the retry was not a replay");

    let other_secret = hex::encode(rand::random::<[u8; 16]>());
    let reused = n3
        .identity()
        .register_agent(n3.admin(register_bot(&other_secret)))
        .await
        .expect_err("the same key with another secret");
    assert_eq!(
        error_reason(&reused),
        "IDEMPOTENCY_KEY_REUSED",
        "{reused:?}"
    );
}
