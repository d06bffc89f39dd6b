//! Signing-key rotation under load, against a real three-node cluster: four clients issue tokens
//! through different nodes without pause while `warrant key rotate` (the CLI, as a child
//! process) rotates node 1's key and then node 2's. No issuance may fail; tokens signed before
//! and after each rotation must all verify, in Warrant and in PyJWT from the JWKS published after
//! the rotations (a retired key stays listed while tokens it signed are unexpired); and the log
//! must record the retirements.

mod support;

use std::{collections::BTreeSet, time::Duration};

use support::{
    AgentCredential, Node, cluster::Cluster, install_pyjwt, jwt_header, pyjwt_verify_all,
};
use tokio::sync::watch;
use warrant_proto::{api, log::event::Kind};

const AUD: &str = "https://calendar.example/mcp";
/// Concurrent issuing clients; client i issues through node (i mod 3) + 1.
const CLIENTS: usize = 4;
/// Issues every client makes between phases (before the first rotation, between the two, and
/// after the second): the run stops after a bounded number of issues.
const ISSUES_PER_PHASE: usize = 8;
/// How long a phase may take to see its issues.
const PHASE_WAIT_MAX: Duration = Duration::from_secs(120);

fn node_of_client(client: usize) -> u64 {
    (client % 3) as u64 + 1
}

/// The kid of the key `node` signs with now, from its key file.
fn current_kid(node: &Node) -> String {
    warrant_api::NodeSigningKey::from_pkcs8(&node.signing_key_pkcs8())
        .expect("the node's key file holds a signing key")
        .key_id()
        .to_string()
}

/// Runs `warrant key rotate` against `node` and returns (new kid, retired kid) from its output.
async fn rotate_with_cli(node: &Node, admin_token: &str) -> (String, String) {
    let endpoint = node.addr();
    let admin_token = admin_token.to_string();
    let output = tokio::task::spawn_blocking(move || {
        support::warrant_command()
            .args(["key", "rotate", "--endpoint", &endpoint, "--admin-token"])
            .arg(&admin_token)
            .arg("--ca")
            .arg(support::Certs::shared().ca_file())
            .output()
            .expect("run warrant key rotate")
    })
    .await
    .expect("join the CLI");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "warrant key rotate failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    // "rotated: new key <kid> signs from now on; key <kid> is retired (seq N)"
    let words: Vec<&str> = stdout.split_whitespace().collect();
    let kids: Vec<String> = words
        .windows(2)
        .filter(|pair| pair[0] == "key")
        .map(|pair| pair[1].to_string())
        .collect();
    let [new_kid, retired_kid] = <[String; 2]>::try_from(kids)
        .unwrap_or_else(|kids| panic!("want two kids in the CLI output, got {kids:?}: {stdout}"));
    assert_ne!(new_kid, retired_kid);
    (new_kid, retired_kid)
}

/// Waits until every client has issued at least `at_least[i]` tokens.
async fn wait_for_issues(progress: &mut watch::Receiver<Vec<usize>>, at_least: &[usize]) {
    let reached = tokio::time::timeout(
        PHASE_WAIT_MAX,
        progress.wait_for(|counts| counts.iter().zip(at_least).all(|(n, want)| want <= n)),
    )
    .await
    .map(|waited| waited.is_ok());
    match reached {
        Ok(true) => {}
        Ok(false) => panic!("every client stopped before reaching {at_least:?}"),
        Err(_) => panic!(
            "the clients did not reach {at_least:?} within {PHASE_WAIT_MAX:?}: {:?}",
            *progress.borrow()
        ),
    }
}

fn plus(counts: &[usize], n: usize) -> Vec<usize> {
    counts.iter().map(|c| c + n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotating_keys_under_load_fails_no_issuance_and_every_token_verifies_everywhere() {
    let work = tempfile::tempdir().expect("temp dir");
    let pythonpath = work.path().join("site");
    let pip = std::thread::spawn({
        let pythonpath = pythonpath.clone();
        move || install_pyjwt(&pythonpath)
    });

    let cluster = Cluster::start(3).await;
    let admin_token = cluster.admin_token().to_string();
    let n1 = cluster.node(1);
    n1.register_human("owner").await;
    n1.register_service("calendar", AUD, &["read_events"]).await;
    let agents: Vec<AgentCredential> = (0..CLIENTS)
        .map(|i| AgentCredential::new(&format!("issuer-{i}")))
        .collect();
    for agent in &agents {
        n1.register_agent(&agent.agent_id, "owner", &agent.secret)
            .await;
    }
    cluster.converged().await;
    let node1_kid_before = current_kid(n1);
    let node2_kid_before = current_kid(cluster.node(2));

    // The clients: each issues through its node until told to stop, reporting progress.
    let (progress_tx, mut progress) = watch::channel(vec![0usize; CLIENTS]);
    let (stop_tx, stop) = watch::channel(false);
    let mut clients = Vec::new();
    for (i, agent) in agents.iter().cloned().enumerate() {
        let mut tokens = cluster.node(node_of_client(i)).tokens();
        let progress_tx = progress_tx.clone();
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut issued = Vec::new();
            let mut failures = Vec::new();
            while !*stop.borrow() {
                let request = api::IssueRequest {
                    audience: AUD.into(),
                    scopes: vec!["read_events".into()],
                    ttl_seconds: 900,
                    ..Default::default()
                };
                match tokens.issue(agent.request(request)).await {
                    Ok(reply) => issued.push(reply.into_inner()),
                    Err(status) => failures.push(format!(
                        "client {i}: {:?} {}: {}",
                        status.code(),
                        support::error_reason(&status),
                        status.message()
                    )),
                }
                progress_tx.send_modify(|counts| counts[i] += 1);
            }
            (issued, failures)
        }));
    }
    drop(progress_tx);

    wait_for_issues(&mut progress, &[ISSUES_PER_PHASE; CLIENTS]).await;
    let (node1_new, node1_retired) = rotate_with_cli(n1, &admin_token).await;
    assert_eq!(
        node1_retired, node1_kid_before,
        "the CLI retired another key"
    );
    assert_eq!(
        current_kid(n1),
        node1_new,
        "node 1's key file is not the new key"
    );
    let counts = progress.borrow().clone();
    wait_for_issues(&mut progress, &plus(&counts, ISSUES_PER_PHASE)).await;
    let (node2_new, node2_retired) = rotate_with_cli(cluster.node(2), &admin_token).await;
    assert_eq!(
        node2_retired, node2_kid_before,
        "the CLI retired another key"
    );
    let counts = progress.borrow().clone();
    wait_for_issues(&mut progress, &plus(&counts, ISSUES_PER_PHASE)).await;
    stop_tx.send(true).expect("the clients listen");

    let mut tokens = Vec::new();
    let mut failures = Vec::new();
    for client in clients {
        let (issued, failed) = client.await.expect("a client task");
        tokens.extend(issued);
        failures.extend(failed);
    }
    assert!(
        failures.is_empty(),
        "{} issuances failed during the rotations:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Tokens signed by the old and the new key of both rotated nodes, and by node 3's key.
    let kids: BTreeSet<String> = tokens
        .iter()
        .map(|t| {
            jwt_header(&t.access_token)["kid"]
                .as_str()
                .expect("a kid")
                .to_string()
        })
        .collect();
    eprintln!(
        "{} tokens issued by {CLIENTS} clients across two rotations; kids {kids:?}",
        tokens.len()
    );
    let node3_kid = current_kid(cluster.node(3));
    for (what, kid) in [
        ("node 1's old key", &node1_kid_before),
        ("node 1's new key", &node1_new),
        ("node 2's old key", &node2_kid_before),
        ("node 2's new key", &node2_new),
        ("node 3's key", &node3_kid),
    ] {
        assert!(
            kids.contains(kid),
            "no token signed by {what} {kid}: {kids:?}"
        );
    }
    assert_eq!(kids.len(), 5, "unexpected kids: {kids:?}");

    // Every token verifies in Warrant, LINEARIZABLE, on a node other than the one that issued it.
    cluster.converged().await;
    for (n, token) in tokens.iter().enumerate() {
        let verifier = cluster.node((n % 3) as u64 + 1);
        let verified = verifier.verify(&token.access_token, AUD).await;
        assert!(
            verified.active,
            "token {} (kid {}) does not verify on node {}: {}",
            token.jti,
            jwt_header(&token.access_token)["kid"],
            verifier.node_id(),
            verified.reason_message
        );
        assert_eq!(verified.jti, token.jti);
    }

    // The log holds the retirements, each after the key's publication.
    let events = n1.all_events().await;
    let retired: BTreeSet<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::SigningKeyRetired(r)) => Some(r.key_id.clone()),
            _ => None,
        })
        .collect();
    let published: BTreeSet<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::SigningKeyPublished(p)) => Some(p.key_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        retired,
        BTreeSet::from([node1_kid_before.clone(), node2_kid_before.clone()]),
        "SigningKeyRetired events"
    );
    for kid in [&node1_new, &node2_new, &node1_kid_before, &node2_kid_before] {
        assert!(published.contains(kid), "no SigningKeyPublished for {kid}");
    }

    // PyJWT, from the JWKS every node publishes after the rotations, verifies every token: the
    // retired keys are still listed, their tokens being unexpired.
    let (status, jwks) = cluster.node(3).http_get("/.well-known/jwks.json");
    assert_eq!(status, 200, "JWKS: {jwks}");
    for id in [1, 2] {
        let (status, other) = cluster.node(id).http_get("/.well-known/jwks.json");
        assert_eq!(status, 200);
        let parse = |body: &str| -> serde_json::Value { serde_json::from_str(body).expect("JWKS") };
        assert_eq!(
            parse(&other),
            parse(&jwks),
            "node {id} publishes another JWKS"
        );
    }
    pip.join().expect("pip install thread");
    let access_tokens: Vec<String> = tokens.iter().map(|t| t.access_token.clone()).collect();
    let results = pyjwt_verify_all(
        &pythonpath,
        work.path(),
        &jwks,
        &access_tokens,
        AUD,
        n1.issuer(),
    );
    let refused: Vec<String> = tokens
        .iter()
        .zip(&results)
        .filter_map(|(token, result)| {
            result.as_ref().err().map(|why| {
                format!(
                    "{} (kid {}): {why}",
                    token.jti,
                    jwt_header(&token.access_token)["kid"]
                )
            })
        })
        .collect();
    assert!(
        refused.is_empty(),
        "PyJWT refused {} of {} tokens:\n{}",
        refused.len(),
        tokens.len(),
        refused.join("\n")
    );
    for (token, result) in tokens.iter().zip(&results) {
        let claims = result.as_ref().expect("verified above");
        assert_eq!(claims["jti"], token.jti.as_str());
        assert_eq!(claims["aud"], AUD);
    }
}
