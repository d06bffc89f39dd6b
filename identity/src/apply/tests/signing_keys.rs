//! Publishing and retiring signing keys.

use super::*;

// PublishSigningKey.

#[test]
fn publish_signing_key_accepts() {
    let mut replica = Replica::new();
    let (accepted, event) = check_accepted(&mut replica, signing_key("k1", 1).by(node(1)));
    let published = log::SigningKeyPublished {
        key_id: "k1".to_owned(),
        node_id: 1,
        algorithm: SigningAlgorithm::Ed25519 as i32,
        public_key: vec![1; 32],
    };
    assert_eq!(
        event.kind,
        Some(EventKind::SigningKeyPublished(published.clone()))
    );
    let row = SigningKeyRow {
        key: Some(published),
        published_seq: accepted.seq,
        published_unix_ms: T1,
        ..Default::default()
    };
    assert_eq!(
        query::signing_key(&replica.state, "k1").unwrap(),
        Some(row.clone())
    );
    check_accepted(&mut replica, signing_key("k0", 2).by(admin()));
    let key_ids: Vec<String> = query::signing_keys(&replica.state, 10)
        .unwrap()
        .into_iter()
        .map(|it| it.key.unwrap().key_id)
        .collect();
    assert_eq!(key_ids, ["k0", "k1"]);
}

#[test]
fn republishing_an_identical_key_is_a_no_op() {
    let mut replica = Replica::world();
    // Another node restarting and republishing k1 sends the same content under its own key.
    let again = signing_key("k1", 1).by(admin());
    check_unchanged(&mut replica, again);
}

#[test]
fn publish_signing_key_rejections() {
    use RejectReason::*;
    let with = |change: fn(&mut log::PublishSigningKey)| {
        let mut body = signing_key("k2", 2);
        change(&mut body);
        body.by(node(1))
    };
    let cases: Vec<(Command, RejectReason, String)> = vec![
        (with(|it| it.key_id = "k 2".to_owned()), InvalidCommand, "key_id contains ' ' at byte 1; allowed: 1 to 128 printable ASCII characters ('!' to '~', no spaces)".to_owned()),
        (with(|it| it.algorithm = 0), InvalidCommand, "algorithm is SIGNING_ALGORITHM_UNSPECIFIED; allowed: SIGNING_ALGORITHM_ED25519".to_owned()),
        (with(|it| it.algorithm = 7), InvalidCommand, "algorithm is 7; allowed: SIGNING_ALGORITHM_ED25519".to_owned()),
        (with(|it| it.public_key = vec![2; 33]), InvalidCommand, "public_key is 33 bytes long; allowed: exactly 32 bytes (an Ed25519 public key)".to_owned()),
        (signing_key("k2", 2).by(agent_actor("bot")), PermissionDenied, "only a node or an admin may publish signing keys".to_owned()),
        (signing_key("k2", 2).by(human_actor("alice")), PermissionDenied, "only a node or an admin may publish signing keys".to_owned()),
        (signing_key("k1", 9).by(node(1)), SigningKeyConflict, "signing key k1 is already published with different content".to_owned()),
        (
            log::PublishSigningKey { node_id: 2, ..signing_key("k1", 1) }.by(admin()),
            SigningKeyConflict,
            "signing key k1 is already published with different content".to_owned(),
        ),
        (log::PublishSigningKey { node_id: 2, ..signing_key("k2", 2) }.by(node(1)), PermissionDenied, "node 1 may publish only its own keys, not node 2's".to_owned()),
    ];
    for (command, reason, message) in cases {
        check_rejected(Replica::world(), command, reason, &message);
    }
}

// RetireSigningKey.

#[test]
fn a_retired_key_is_kept_until_its_last_token_expires() {
    let bot = || agent_actor("bot");
    let cases: Vec<(Vec<Command>, u64)> = vec![
        (vec![], 0),
        (
            vec![
                log::IssueToken {
                    ttl_seconds: 3_600,
                    ..issue("j1", "bot", &["send"])
                }
                .by(bot()),
                issue("j2", "bot", &["send"]).by(bot()),
            ],
            T0_S + 3_600,
        ),
        // A human's session token is signed by the key too.
        (
            vec![
                issue("j1", "bot", &["send"]).by(bot()),
                log::StartSession {
                    ttl_seconds: 7_200,
                    ..human_session("hs1", "alice", "hj")
                }
                .by(human_actor("alice")),
            ],
            T0_S + 7_200,
        ),
    ];
    for (set_up, keep_until_unix_s) in cases {
        let mut replica = Replica::world();
        replica.set_up(set_up);
        let (accepted, event) = check_accepted(&mut replica, retire("k1").by(node(1)));
        assert_eq!(
            event.kind,
            Some(EventKind::SigningKeyRetired(log::SigningKeyRetired {
                key_id: "k1".to_owned(),
                node_id: 1,
                keep_until_unix_s,
            }))
        );
        let row = query::signing_key(&replica.state, "k1")
            .expect("the store reads")
            .expect("k1 is published");
        assert_eq!((row.retired, row.retired_seq), (true, accepted.seq));
        // Retiring it again changes nothing.
        check_unchanged(&mut replica, retire("k1").by(admin()));
    }
}

#[test]
fn retire_signing_key_rejections() {
    use RejectReason::*;
    let node_2 = Actor {
        id: "2".to_owned(),
        ..node(1)
    };
    let retire_k1 = || retire("k1").by(node(1));
    let cases: Vec<(Vec<Command>, Command, RejectReason, &str)> = vec![
        (
            vec![retire_k1()],
            issue("j1", "bot", &["send"]).by(agent_actor("bot")),
            SigningKeyRetired,
            "signing key k1 is retired; allowed: the node's current key",
        ),
        (
            vec![retire_k1()],
            human_session("hs1", "alice", "hj").by(human_actor("alice")),
            SigningKeyRetired,
            // One issuance rule for both paths: the message names what is allowed.
            "signing key k1 is retired; allowed: the node's current key",
        ),
        (
            vec![],
            retire("k1").by(node_2),
            PermissionDenied,
            "only an admin or node 1 may retire its key k1",
        ),
        (
            vec![],
            retire("k1").by(agent_actor("bot")),
            PermissionDenied,
            "only an admin or node 1 may retire its key k1",
        ),
        (
            vec![],
            retire("k9").by(node(1)),
            SigningKeyNotFound,
            "signing key k9 is not published",
        ),
    ];
    for (set_up, command, reason, message) in cases {
        let mut replica = Replica::world();
        replica.set_up(set_up);
        check_rejected(replica, command, reason, message);
    }
}
