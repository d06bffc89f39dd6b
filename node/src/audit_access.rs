//! `warrant audit access`: what an agent could do (for a human) at a point of the log, from
//! `AuditService.EffectiveAccess`, printed for a reader: the agent's and the owner's status, each
//! delegation with its chain, scopes, audiences, task and expiry and whether it was in force (or
//! why not), the sessions and devices, the policy versions, the point answered at and the
//! checkpoint the answer can be proven against. `-o json` prints the response as proto3 JSON.

use clap::Args;
use warrant_proto::{api, log};

use crate::{
    audit_client::{audit_client, format_time_ms, parse_time_ms, print_json, refused, req},
    audit_json,
    policy_cli::{Common, Output},
};

#[derive(Args, Clone, Debug)]
pub struct AccessArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long)]
    pub agent: String,
    /// Only the delegations from this human (default: every human's).
    #[arg(long)]
    pub human: Option<String>,
    /// Answer after the event at this seq.
    #[arg(long, conflicts_with = "at")]
    pub at_seq: Option<u64>,
    /// Answer at this time (RFC 3339 or unix ms).
    #[arg(long)]
    pub at: Option<String>,
}

pub async fn run(args: &AccessArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let point = match (&args.at_seq, &args.at) {
        (Some(seq), _) => Some(api::as_of::Point::Seq(*seq)),
        (None, Some(at)) => Some(api::as_of::Point::TimeUnixMs(parse_time_ms(at)?)),
        (None, None) => None,
    };
    let request = api::EffectiveAccessRequest {
        agent_id: args.agent.clone(),
        human_id: args.human.clone().unwrap_or_default(),
        as_of: point.map(|point| api::AsOf { point: Some(point) }),
        read: None,
    };
    let reply = audit_client(common)
        .await?
        .effective_access(req(common, request)?)
        .await
        .map_err(|status| refused("access", &status))?
        .into_inner();
    match common.output {
        Output::Json => print_json(&audit_json::to_json(
            &reply,
            "warrant.v1.EffectiveAccessResponse",
        )?),
        Output::Table => {
            print_access(&reply);
            Ok(())
        }
    }
}

fn status_name(status: i32) -> &'static str {
    match api::PrincipalStatus::try_from(status) {
        Ok(api::PrincipalStatus::Active) => "active",
        Ok(api::PrincipalStatus::Disabled) => "disabled",
        _ => "unknown",
    }
}

fn or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

fn print_access(r: &api::EffectiveAccessResponse) {
    println!(
        "answered at seq {} ({})",
        r.answered_at_seq,
        format_time_ms(r.answered_at_unix_ms)
    );
    match &r.agent {
        Some(a) => println!(
            "agent {}: {} (kind {}, credentials {})",
            a.agent_id,
            status_name(a.status),
            a.kind,
            or_none(&a.credential_ids)
        ),
        None => println!("agent: not registered at this point"),
    }
    match &r.owner {
        Some(h) => println!("owner {}: {}", h.human_id, status_name(h.status)),
        None => println!("owner: not known at this point"),
    }
    println!("delegations ({}):", r.delegations.len());
    for d in &r.delegations {
        print_delegation(d);
    }
    print_sessions(&r.sessions);
    println!("devices ({}):", r.devices.len());
    for d in &r.devices {
        println!(
            "  {} ({}, {}) of {}: {}",
            d.device_id,
            d.name,
            d.platform,
            d.owner_human_id,
            status_name(d.status)
        );
    }
    let version = |v: u32| {
        if v == 0 {
            "none".to_string()
        } else {
            v.to_string()
        }
    };
    println!(
        "policy: active version {}, shadow version {}",
        version(r.active_policy_version),
        version(r.shadow_policy_version)
    );
    if r.truncated {
        println!("(lists cut at the server's limit: narrow with --human)");
    }
    match &r.checkpoint {
        Some(c) => println!(
            "checkpoint: size {} signed by node {} (prove the events with `warrant audit verify`)",
            c.tree_size, c.node_id
        ),
        None => println!("checkpoint: none"),
    }
}

fn print_sessions(sessions: &[api::EffectiveSession]) {
    println!("sessions ({}):", sessions.len());
    for s in sessions {
        let state = match (s.in_force, s.ended) {
            (true, _) => "in force".to_string(),
            (false, true) => "ended".to_string(),
            (false, false) => format!("expired {}", format_time_ms(s.expires_at_unix_s * 1000)),
        };
        let kind = log::PrincipalKind::try_from(s.principal_kind)
            .map_or("UNKNOWN", |k| k.as_str_name())
            .trim_start_matches("PRINCIPAL_KIND_")
            .to_ascii_lowercase();
        println!(
            "  {} of {kind} {} on device {}: {state} (started at seq {})",
            s.session_id,
            s.principal_id,
            if s.device_id.is_empty() {
                "-"
            } else {
                &s.device_id
            },
            s.started_seq
        );
    }
}

fn print_delegation(e: &api::EffectiveDelegation) {
    let Some(d) = &e.delegation else {
        return;
    };
    let state = if e.in_force {
        "IN FORCE".to_string()
    } else {
        format!("not in force: {}", e.not_in_force_reason)
    };
    println!("  {} from {}: {state}", d.delegation_id, d.root_human_id);
    let chain: Vec<String> = e
        .chain
        .iter()
        .map(|c| {
            format!(
                "{} ({} → {})",
                c.delegation_id, c.grantor_id, c.grantee_agent_id
            )
        })
        .collect();
    println!("    chain     : {}", chain.join(" ⇒ "));
    println!("    scopes    : {}", or_none(&d.scopes));
    println!("    audiences : {}", or_none(&d.audiences));
    if !d.task.is_empty() {
        println!("    task      : {}", d.task);
    }
    println!(
        "    expires   : {}{}",
        format_time_ms(d.expires_at_unix_s.saturating_mul(1000)),
        if d.revoked { " (revoked)" } else { "" }
    );
}
