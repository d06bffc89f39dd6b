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
    assert_eq!(unretired_key_ids(&replica), ["k0", "k1"]);
}

fn key_ids(rows: Vec<SigningKeyRow>) -> Vec<String> {
    rows.into_iter().map(|it| it.key.unwrap().key_id).collect()
}

fn unretired_key_ids(replica: &Replica) -> Vec<String> {
    key_ids(query::unretired_signing_keys(&replica.state, 10).unwrap())
}

/// More keys published and then retired than one JWKS lists (1,024). The key table keeps every
/// key ever published; a JWKS read of its first 1,024 rows in key id order missed the key in
/// force once the history was longer. The indexes list only keys in force.
#[test]
fn keys_in_force_are_listed_whatever_the_history() {
    const HISTORY: usize = 1_100;
    const LISTED_MAX: usize = 1_024;
    let mut replica = Replica::world();
    replica.set_up((0..HISTORY).flat_map(|i| {
        let key_id = format!("a-{i:04}");
        [
            signing_key(&key_id, 2).by(node(1)),
            retire(&key_id).by(node(1)),
        ]
    }));
    // k1 signs a token valid for an hour, is retired, and z-current replaces it.
    replica.set_up([
        log::IssueToken {
            ttl_seconds: 3_600,
            ..issue("j1", "bot", &["send"])
        }
        .by(agent_actor("bot")),
        retire("k1").by(node(1)),
        signing_key("z-current", 3).by(node(1)),
    ]);
    let published = replica
        .state
        .scan(keys::SIGNING_KEY_PREFIX, b"", usize::MAX)
        .unwrap();
    assert_eq!(published.len(), HISTORY + 2);
    assert!(LISTED_MAX < published.len());
    // Unretired first, then retired keys still kept, in the order of their last expiry.
    let in_force = |from_unix_s| {
        key_ids(query::signing_keys_in_force(&replica.state, from_unix_s, LISTED_MAX).unwrap())
    };
    assert_eq!(in_force(NOW_S), ["z-current", "k1"]);
    assert_eq!(in_force(T0_S + 3_600), ["z-current", "k1"]);
    assert_eq!(in_force(T0_S + 3_601), ["z-current"]);
    // The keys with no token left are not listed even from the start of time: none of them
    // ever signed one, so their last expiry is 0.
    assert_eq!(in_force(1).len(), 2);
    assert_eq!(
        in_force(0).len(),
        1 + LISTED_MAX,
        "the bound holds on each index"
    );
    assert_eq!(unretired_key_ids(&replica), ["z-current"]);
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
        // It moved from the unretired index to the retired one, at its last expiry.
        assert_eq!(unretired_key_ids(&replica), Vec::<String>::new());
        let kept = query::signing_keys_in_force(&replica.state, keep_until_unix_s, 10).unwrap();
        assert_eq!(key_ids(kept), ["k1"]);
        let after = keep_until_unix_s + 1;
        assert!(
            query::signing_keys_in_force(&replica.state, after, 10)
                .unwrap()
                .is_empty()
        );
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

// MarkSigningKeyCompromised.

/// k1 signed j1 (in force for an hour) and k2 is node 2's current key. Marking k1 compromised
/// takes it out of every listing at once, ends every token it signed and refuses new ones; k2
/// is untouched.
#[test]
fn a_compromised_key_is_listed_nowhere_and_nothing_it_signed_is_in_force() {
    let mut replica = Replica::world();
    replica.set_up([
        log::IssueToken {
            ttl_seconds: 3_600,
            ..issue("j1", "bot", &["send"])
        }
        .by(agent_actor("bot")),
        log::PublishSigningKey {
            node_id: 2,
            ..signing_key("k2", 2)
        }
        .by(admin()),
    ]);
    assert_eq!(token_validity(&replica, "j1"), Ok(()));
    let (accepted, event) = check_accepted(&mut replica, compromise("k1").by(admin()));
    assert_eq!(
        event.kind,
        Some(EventKind::SigningKeyCompromised(
            log::SigningKeyCompromised {
                key_id: "k1".to_owned(),
                node_id: 1,
                reason: "key file leaked".to_owned(),
            }
        ))
    );
    let row = query::signing_key(&replica.state, "k1").unwrap().unwrap();
    assert_eq!(
        (
            row.compromised,
            row.compromised_seq,
            row.retired,
            row.retired_seq
        ),
        (true, accepted.seq, true, accepted.seq)
    );
    assert_eq!(unretired_key_ids(&replica), ["k2"]);
    let listed = query::signing_keys_in_force(&replica.state, 0, 10).unwrap();
    assert_eq!(key_ids(listed), ["k2"]);
    assert_eq!(
        token_validity(&replica, "j1"),
        lapse(
            LapseKind::SigningKeyCompromised,
            format!(
                "its signing key k1 was marked compromised at seq {}",
                accepted.seq
            )
        )
    );
    check_rejected(
        replica.clone(),
        issue("j2", "bot", &["send"]).by(agent_actor("bot")),
        RejectReason::SigningKeyCompromised,
        "signing key k1 was marked compromised; allowed: a new key, after the node rotates",
    );
    // Marking it again, retiring it, or its node republishing it after a restart change nothing:
    // a compromised key never comes back.
    let again = log::MarkSigningKeyCompromised {
        reason: "found in a second leak".to_owned(),
        ..compromise("k1")
    };
    check_unchanged(&mut replica, again.by(admin()));
    check_unchanged(&mut replica, retire("k1").by(node(1)));
    // (By the admin: the same command by node 1 would replay its first outcome.)
    check_unchanged(&mut replica, signing_key("k1", 1).by(admin()));
    assert_eq!(
        key_ids(query::signing_keys_in_force(&replica.state, 0, 10).unwrap()),
        ["k2"]
    );
}

#[test]
fn a_retired_key_marked_compromised_leaves_the_retired_listing_and_keeps_its_retirement() {
    let mut replica = Replica::world();
    replica.set_up([
        issue("j1", "bot", &["send"]).by(agent_actor("bot")),
        retire("k1").by(node(1)),
    ]);
    let retired_seq = replica.seq();
    assert_eq!(
        key_ids(query::signing_keys_in_force(&replica.state, 0, 10).unwrap()),
        ["k1"]
    );
    let (accepted, _) = check_accepted(&mut replica, compromise("k1").by(admin()));
    let row = query::signing_key(&replica.state, "k1").unwrap().unwrap();
    assert_eq!(
        (row.retired_seq, row.compromised_seq),
        (retired_seq, accepted.seq)
    );
    assert!(
        query::signing_keys_in_force(&replica.state, 0, 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        token_validity(&replica, "j1").map_err(|lapse| lapse.kind),
        Err(LapseKind::SigningKeyCompromised)
    );
}

#[test]
fn mark_signing_key_compromised_rejections() {
    use RejectReason::*;
    let cases: Vec<(Command, RejectReason, &str)> = vec![
        // Not even the key's own node: marking is the operator's act, and is never undone.
        (
            compromise("k1").by(node(1)),
            PermissionDenied,
            "only an admin or an operator may mark a signing key compromised",
        ),
        (
            compromise("k1").by(agent_actor("bot")),
            PermissionDenied,
            "only an admin or an operator may mark a signing key compromised",
        ),
        (
            compromise("k1").by(human_actor("alice")),
            PermissionDenied,
            "only an admin or an operator may mark a signing key compromised",
        ),
        (
            compromise("k9").by(admin()),
            SigningKeyNotFound,
            "signing key k9 is not published",
        ),
        (
            log::MarkSigningKeyCompromised {
                key_id: "k 1".to_owned(),
                ..compromise("k1")
            }
            .by(admin()),
            InvalidCommand,
            "key_id contains ' ' at byte 1; allowed: 1 to 128 printable ASCII characters ('!' to '~', no spaces)",
        ),
    ];
    for (command, reason, message) in cases {
        check_rejected(Replica::world(), command, reason, message);
    }
}
