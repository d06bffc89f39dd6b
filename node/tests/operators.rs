//! Named operators against the real binary: the bootstrap admin token registers the first
//! operator and is then refused; operators authenticate with client certificates and act within
//! their roles; every event after the first operator names the operator who caused it.

mod support;

use tonic::{Code, Request, transport::Channel};
use tonic_types::StatusExt;
use warrant_proto::{
    api::{
        self, audit_service_client::AuditServiceClient,
        cluster_service_client::ClusterServiceClient,
        identity_service_client::IdentityServiceClient, token_service_client::TokenServiceClient,
    },
    log::{OperatorRole, PrincipalKind},
};

use support::{AgentCredential, Certs, Node, linearizable};

/// A channel to `node` presenting operator `operator_id`'s client certificate.
async fn as_operator(node: &Node, operator_id: &str) -> Channel {
    support::tls_endpoint(&node.addr())
        .tls_config(Certs::shared().operator_tls(operator_id))
        .expect("TLS settings")
        .connect()
        .await
        .expect("connect with the operator's certificate")
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

fn operator_request(id: &str, role: OperatorRole) -> api::RegisterOperatorRequest {
    api::RegisterOperatorRequest {
        operator_id: id.to_string(),
        role: role as i32,
        display_name: format!("Operator {id}"),
        ..Default::default()
    }
}

fn human(id: &str) -> api::RegisterHumanRequest {
    api::RegisterHumanRequest {
        human_id: id.to_string(),
        display_name: format!("Human {id}"),
        email: format!("{id}@example.com"),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_act_within_their_roles_and_every_event_names_its_operator() {
    let node = Node::start().await;
    // Before any operator: the bootstrap admin sets the world up (a token to revoke later).
    let agent = AgentCredential::new("bot");
    node.register_human("alice").await;
    node.register_agent("bot", "alice", &agent.secret).await;
    node.register_service("mail", "https://mail.example/mcp", &["send"])
        .await;
    let token = node
        .issue(&agent, "https://mail.example/mcp", &["send"])
        .await;
    let first_seq = IdentityServiceClient::new(node.channel())
        .register_operator(node.admin(operator_request("root", OperatorRole::Admin)))
        .await
        .expect("the bootstrap admin registers the first operator")
        .into_inner()
        .seq;

    // From then on the bootstrap token is refused, even to register another operator.
    for status in [
        IdentityServiceClient::new(node.channel())
            .register_human(node.admin(human("mallory")))
            .await
            .expect_err("the bootstrap token after the first operator"),
        IdentityServiceClient::new(node.channel())
            .register_operator(node.admin(operator_request("second", OperatorRole::Admin)))
            .await
            .expect_err("a second operator by the bootstrap token"),
    ] {
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert_eq!(reason(&status), "BOOTSTRAP_TOKEN_RETIRED");
    }

    // root (admin) registers people and the other operators.
    let root = as_operator(&node, "root").await;
    IdentityServiceClient::new(root.clone())
        .register_human(Request::new(human("carol")))
        .await
        .expect("root registers a human");
    IdentityServiceClient::new(root.clone())
        .register_operator(Request::new(operator_request(
            "audit",
            OperatorRole::Auditor,
        )))
        .await
        .expect("root registers an operator");
    // And through the CLI, authenticated by root's certificate alone.
    let certs = Certs::shared();
    let output = support::warrant_command()
        .args(["operator", "add", "--endpoint", &node.addr()])
        .args(["--operator-id", "ops", "--role", "operator"])
        .arg("--ca")
        .arg(certs.ca_file())
        .arg("--cert")
        .arg(certs.dir.join("operator-root.pem"))
        .arg("--key")
        .arg(certs.dir.join("operator-root-key.pem"))
        .output()
        .expect("run warrant operator add");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The auditor reads, and may neither register nor revoke.
    let audit = as_operator(&node, "audit").await;
    let denied = IdentityServiceClient::new(audit.clone())
        .register_human(Request::new(human("dave")))
        .await
        .expect_err("an auditor registers");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let revoke = api::RevokeRequest {
        jti: token.jti.clone(),
        reason: "audit".to_string(),
        ..Default::default()
    };
    let denied = TokenServiceClient::new(audit.clone())
        .revoke(Request::new(revoke))
        .await
        .expect_err("an auditor revokes");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let events = AuditServiceClient::new(audit.clone())
        .list_events(Request::new(api::ListEventsRequest {
            from_seq: first_seq,
            limit: 100,
            read: Some(linearizable()),
        }))
        .await
        .expect("an auditor reads the audit trail")
        .into_inner()
        .events;

    // The operator role runs the cluster and registers no one.
    let ops = as_operator(&node, "ops").await;
    ClusterServiceClient::new(ops.clone())
        .compact(Request::new(api::CompactRequest {}))
        .await
        .expect("an operator compacts");
    let denied = IdentityServiceClient::new(ops)
        .register_human(Request::new(human("erin")))
        .await
        .expect_err("an operator registers");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    // Every event from the first operator's registration on names an operator, never admin.
    assert!(events.len() >= 4, "{events:?}");
    assert_eq!(
        events[0].actor.as_ref().map(|a| a.kind),
        Some(PrincipalKind::Admin as i32)
    );
    // The auditor's refused revocation is an audit fact too, naming the auditor.
    let mut refusals = 0;
    for event in &events[1..] {
        let actor = event.actor.clone().unwrap_or_default();
        assert_eq!(actor.kind, PrincipalKind::Operator as i32, "{event:?}");
        match &event.kind {
            Some(warrant_proto::log::event::Kind::CommandRejected(rejected)) => {
                refusals += 1;
                assert_eq!(actor.id, "audit", "{event:?}");
                assert_eq!(
                    rejected.reason,
                    warrant_proto::log::RejectReason::PermissionDenied as i32,
                    "{event:?}"
                );
            }
            _ => assert_eq!(actor.id, "root", "{event:?}"),
        }
    }
    assert_eq!(refusals, 1, "one refused revocation: {events:?}");
    // The digest the harness reads as the bootstrap admin is refused too; as root it answers.
    ClusterServiceClient::new(root)
        .digest(Request::new(api::DigestRequest {}))
        .await
        .expect("root reads the digest");
}
