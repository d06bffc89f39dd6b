//! Frozen bytes of the log's record schema.
//!
//! ┌──────────────────────────────────────────────────────────────────────────────────────────┐
//! │ These bytes were encoded when each record shape was introduced. NEVER update them: a     │
//! │ failing case means a change would make old logs unreadable. Add a new case for a new      │
//! │ shape; remove one only when that version stops being supported.                          │
//! └──────────────────────────────────────────────────────────────────────────────────────────┘

use prost::Message;
use warrant_proto::log::{self, event::Kind};

fn actor() -> Option<log::Actor> {
    Some(log::Actor {
        kind: log::PrincipalKind::Admin as i32,
        id: "admin".into(),
        on_behalf_of: vec![],
    })
}

fn event(seq: u64, kind: Kind) -> log::Event {
    log::Event {
        seq,
        time_unix_ms: 1_764_000_000_000,
        log_index: 7,
        batch_position: 1,
        idempotency_key: format!("key-{seq}"),
        actor: actor(),
        kind: Some(kind),
    }
}

/// (name, value, frozen hex) for every v1 event kind.
fn cases() -> Vec<(&'static str, log::Event, &'static str)> {
    vec![
        (
            "v1_human_registered",
            event(
                1,
                Kind::HumanRegistered(log::HumanRegistered {
                    human_id: "alice".into(),
                    display_name: "Alice".into(),
                    email: "a@example.com".into(),
                    ..Default::default()
                }),
            ),
            V1_HUMAN_REGISTERED,
        ),
        (
            "v1_agent_registered",
            event(
                2,
                Kind::AgentRegistered(log::AgentRegistered {
                    agent_id: "alice-assistant".into(),
                    owner_human_id: "alice".into(),
                    kind: "assistant".into(),
                    description: "scheduling".into(),
                    credential_ids: vec!["secret-1".into()],
                }),
            ),
            V1_AGENT_REGISTERED,
        ),
        (
            "v1_service_registered",
            event(
                3,
                Kind::ServiceRegistered(log::ServiceRegistered {
                    service_id: "calendar".into(),
                    audience: "https://calendar.example/mcp".into(),
                    tools: vec![log::Tool {
                        name: "read_events".into(),
                        description: "List events".into(),
                    }],
                }),
            ),
            V1_SERVICE_REGISTERED,
        ),
        (
            "v1_token_issued",
            event(
                4,
                Kind::TokenIssued(log::TokenIssued {
                    jti: "0190c6a2-7e55-7cc0-8f4e-000000000001".into(),
                    subject: "alice-assistant".into(),
                    agent_id: "alice-assistant".into(),
                    audience: "https://calendar.example/mcp".into(),
                    scopes: vec!["read_events".into()],
                    issued_at_unix_s: 1_764_000_000,
                    expires_at_unix_s: 1_764_000_600,
                    key_id: "kid-1".into(),
                    ..Default::default()
                }),
            ),
            V1_TOKEN_ISSUED,
        ),
        (
            "v1_token_revoked",
            event(
                5,
                Kind::TokenRevoked(log::TokenRevoked {
                    jti: "0190c6a2-7e55-7cc0-8f4e-000000000001".into(),
                    reason: "compromised".into(),
                }),
            ),
            V1_TOKEN_REVOKED,
        ),
        (
            "v1_signing_key_published",
            event(
                6,
                Kind::SigningKeyPublished(log::SigningKeyPublished {
                    key_id: "kid-1".into(),
                    node_id: 1,
                    algorithm: log::SigningAlgorithm::Ed25519 as i32,
                    public_key: vec![0xab; 32],
                }),
            ),
            V1_SIGNING_KEY_PUBLISHED,
        ),
    ]
}

#[test]
fn frozen_events_decode_and_encode_to_the_same_bytes() {
    for (name, value, frozen_hex) in cases() {
        let encoded = hex::encode(value.encode_to_vec());
        if std::env::var_os("WARRANT_PRINT_FROZEN").is_some() {
            println!("{name}: {encoded}");
            continue;
        }
        let frozen = hex::decode(frozen_hex).unwrap_or_else(|e| panic!("{name}: bad hex: {e}"));
        let decoded = log::Event::decode(frozen.as_slice())
            .unwrap_or_else(|e| panic!("{name}: frozen bytes no longer decode: {e}"));
        assert_eq!(
            decoded, value,
            "{name}: frozen bytes decode to a different event"
        );
        assert_eq!(encoded, frozen_hex, "{name}: encoding changed");
    }
}

const V1_HUMAN_REGISTERED: &str = "08011080d0dfb4ab33180720012a056b65792d3132090801120561646d696e521d0a05616c6963651205416c6963651a0d61406578616d706c652e636f6d";
const V1_AGENT_REGISTERED: &str = "08021080d0dfb4ab33180720012a056b65792d3232090801120561646d696e5a390a0f616c6963652d617373697374616e741205616c6963651a09617373697374616e74220a7363686564756c696e672a087365637265742d31";
const V1_SERVICE_REGISTERED: &str = "08031080d0dfb4ab33180720012a056b65792d3332090801120561646d696e62440a0863616c656e646172121c68747470733a2f2f63616c656e6461722e6578616d706c652f6d63701a1a0a0b726561645f6576656e7473120b4c697374206576656e7473";
const V1_TOKEN_ISSUED: &str = "08041080d0dfb4ab33180720012a056b65792d3432090801120561646d696e6a86010a2430313930633661322d376535352d376363302d386634652d303030303030303030303031120f616c6963652d617373697374616e741a0f616c6963652d617373697374616e74221c68747470733a2f2f63616c656e6461722e6578616d706c652f6d63702a0b726561645f6576656e747330808292c90638d88692c90642056b69642d31";
const V1_TOKEN_REVOKED: &str = "08051080d0dfb4ab33180720012a056b65792d3532090801120561646d696e72330a2430313930633661322d376535352d376363302d386634652d303030303030303030303031120b636f6d70726f6d69736564";
const V1_SIGNING_KEY_PUBLISHED: &str = "08061080d0dfb4ab33180720012a056b65792d3632090801120561646d696e7a2d0a056b69642d31100118012220abababababababababababababababababababababababababababababababab";
