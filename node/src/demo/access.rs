//! The demo's access decisions: the calendar service asks Warrant about the researcher's tool
//! calls, alice's organisation narrows them with a Cedar policy, and every answer is a receipt
//! in the log.

use tonic::transport::Channel;
use warrant_proto::{
    api::{
        self, authz_service_client::AuthzServiceClient, policy_service_client::PolicyServiceClient,
    },
    log::{self, AccessDecision, AccessDenyReason, caller_attribute::Value},
};

use super::authed;
use warrant_proto::log::event::Kind;

/// The demo's policy: the board's calendar is off limits to agents, whatever they were granted.
const BOARD_POLICY: &str = r#"@id("board-calendar-is-private")
forbid(principal, action == Action::"call", resource == Tool::"calendar/read_events")
when { context.attributes has calendar && context.attributes.calendar == "board" };
"#;

/// Node 3 decides two calls under the delegation alone, node 1 publishes and activates the
/// board policy, and node 3 decides again: the same call on another calendar is now refused.
pub(super) async fn decide_calls(
    one: &Channel,
    three: &Channel,
    admin: &str,
    token: &str,
) -> anyhow::Result<()> {
    let mut authz = AuthzServiceClient::new(three.clone());
    let (allowed, _) = authorize(&mut authz, admin, token, "read_events", "board").await?;
    anyhow::ensure!(
        allowed,
        "a call within the delegation was refused with no policy"
    );
    let (allowed, _) = authorize(&mut authz, admin, token, "create_event", "team").await?;
    anyhow::ensure!(
        !allowed,
        "a tool outside the delegation's scopes was allowed"
    );
    let mut policies = PolicyServiceClient::new(one.clone());
    let published = policies
        .publish(authed(
            admin,
            api::PublishPolicyRequest {
                text: BOARD_POLICY.into(),
                description: "agents stay out of the board's calendar".into(),
                attributes: vec![log::PolicyAttribute {
                    name: "calendar".into(),
                    r#type: log::PolicyAttributeType::String as i32,
                }],
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    let activated = policies
        .activate(authed(
            admin,
            api::ActivatePolicyRequest {
                version: published.version,
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    println!(
        "node 1: published and activated   policy v{} {:?} (seq {})",
        activated.active_version, published.policy_ids, activated.seq
    );
    let (allowed, _) = authorize(&mut authz, admin, token, "read_events", "board").await?;
    anyhow::ensure!(
        !allowed,
        "the board policy did not refuse the board's calendar"
    );
    let (allowed, _) = authorize(&mut authz, admin, token, "read_events", "team").await?;
    anyhow::ensure!(allowed, "the board policy refused another calendar");
    Ok(())
}

/// Node 3 decides the researcher's call once more, after alice revoked her grant. Returns the
/// receipt's seq.
pub(super) async fn decide_after_revoke(
    three: &Channel,
    admin: &str,
    token: &str,
) -> anyhow::Result<u64> {
    let mut authz = AuthzServiceClient::new(three.clone());
    let (allowed, seq) = authorize(&mut authz, admin, token, "read_events", "team").await?;
    anyhow::ensure!(!allowed, "a call under a revoked delegation was allowed");
    Ok(seq)
}

/// Asks about one call on the calendar service (SYNC: the receipt is committed before the
/// answer) and prints the decision; true for ALLOW, and the receipt's seq.
async fn authorize(
    authz: &mut AuthzServiceClient<Channel>,
    admin: &str,
    token: &str,
    tool: &str,
    calendar: &str,
) -> anyhow::Result<(bool, u64)> {
    let reply = authz
        .authorize(authed(
            admin,
            api::AuthorizeRequest {
                token: token.into(),
                service_id: "calendar".into(),
                tool: tool.into(),
                attributes: vec![log::CallerAttribute {
                    name: "calendar".into(),
                    value: Some(Value::StringValue(calendar.into())),
                }],
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    let decision = reply.decision.unwrap_or_default();
    let allowed = decision.decision == AccessDecision::Allow as i32;
    let why = if allowed {
        String::new()
    } else {
        let reason = AccessDenyReason::try_from(decision.deny_reason)
            .map(|it| it.as_str_name().trim_start_matches("ACCESS_DENY_REASON_"))
            .unwrap_or("?");
        match decision.determining_policy_ids.as_slice() {
            [] => format!(" {reason}"),
            ids => format!(" {reason} {ids:?}"),
        }
    };
    println!(
        "node 3: calendar asks {:<12} {:<13} {}{why} (receipt seq {}, policy v{})",
        tool,
        format!("calendar={calendar}"),
        if allowed { "ALLOW" } else { "DENY" },
        reply.receipt_seq,
        decision.policy_version
    );
    Ok((allowed, reply.receipt_seq))
}

/// One line about an access event (policies, decisions, refusals).
pub(super) fn describe(kind: &Kind) -> String {
    match kind {
        Kind::PolicyPublished(e) => {
            format!("PolicyPublished v{} policies={:?}", e.version, e.policy_ids)
        }
        Kind::PolicyActivated(e) => format!(
            "PolicyActivated v{} (was v{}){}",
            e.version,
            e.previous_version,
            if e.rollback { " rollback" } else { "" }
        ),
        Kind::ShadowPolicySet(e) => format!("ShadowPolicySet v{}", e.version),
        Kind::AccessDecided(e) => format!(
            "AccessDecided {} {} {}/{} for {} policy=v{} by {:?}",
            warrant_proto::log::AccessDecision::try_from(e.decision)
                .map(|d| d.as_str_name().trim_start_matches("ACCESS_DECISION_"))
                .unwrap_or("?"),
            e.principal_id,
            e.service_id,
            e.tool,
            e.on_behalf_of_human_id,
            e.policy_version,
            e.determining_policy_ids
        ),
        Kind::CommandRejected(e) => format!(
            "CommandRejected {} {}",
            e.command_kind,
            warrant_proto::log::RejectReason::try_from(e.reason)
                .map(|r| r.as_str_name())
                .unwrap_or("?")
        ),
        Kind::AuthFailuresRecorded(e) => format!(
            "AuthFailures {} x{} reason={}",
            e.claimed_id, e.count, e.reason
        ),
        other => format!("{other:?}"),
    }
}
