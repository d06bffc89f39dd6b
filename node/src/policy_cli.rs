//! `warrant policy …` (Cedar policy versions: validate, publish, activate, roll back, shadow,
//! list, get, diff, the shadow report and the schema) and `warrant authorize` (one decision
//! about a tool call, recorded as a receipt). Each talks gRPC to one node, with the CLI's TLS
//! settings and credential, and prints text or, with `-o json`, one JSON document. A refused
//! call prints its status, reason code and message (and, for an invalid policy, the line and
//! column of every error) and exits non-zero; so does `validate` for an invalid file, after
//! printing its errors. A DENY is an answer, not a failure: `authorize` prints it and exits 0;
//! scripts read the first word (ALLOW or DENY) or, in JSON, `allowed`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tonic::{Status, transport::Channel};
use warrant_proto::{
    api::{
        self, authz_service_client::AuthzServiceClient, policy_service_client::PolicyServiceClient,
    },
    log,
};

use crate::client::{AdminAuth, authed};

/// Pages `policy list` reads at most (each holds the server's page of versions).
const LIST_PAGES_MAX: usize = 1000;

pub use crate::client::Output;

/// The node, the credential and the output format every command takes.
#[derive(Args, Clone, Debug)]
pub struct Common {
    #[command(flatten)]
    pub auth: AdminAuth,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Check a policy file against the schema; changes nothing.
    Validate {
        #[command(flatten)]
        common: Common,
        file: PathBuf,
        /// A caller attribute the policies may read, as name:type (string, long or bool).
        #[arg(long = "attribute")]
        attributes: Vec<String>,
    },
    /// Publish a policy file as a new version (not yet active).
    Publish {
        #[command(flatten)]
        common: Common,
        file: PathBuf,
        #[arg(long, default_value = "")]
        description: String,
        /// A caller attribute the policies may read, as name:type (string, long or bool).
        #[arg(long = "attribute")]
        attributes: Vec<String>,
    },
    /// Make a published version the one every decision uses.
    Activate {
        #[command(flatten)]
        common: Common,
        version: u32,
    },
    /// Activate the version active before the current one.
    Rollback {
        #[command(flatten)]
        common: Common,
    },
    /// Mark a version shadow: evaluated beside the active one and recorded, not enforced
    /// (0 clears it).
    Shadow {
        #[command(flatten)]
        common: Common,
        version: u32,
    },
    /// List every published version.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Show a version's text (the active one when none is given).
    Get {
        #[command(flatten)]
        common: Common,
        version: Option<u32>,
    },
    /// Compare two versions: the policy ids added, removed and changed, and a line diff.
    Diff {
        #[command(flatten)]
        common: Common,
        from: u32,
        to: u32,
    },
    /// The receipts whose shadow decision differs from the enforced one.
    ShadowReport {
        #[command(flatten)]
        common: Common,
        /// The first seq to scan (default: the first).
        #[arg(long)]
        from: Option<u64>,
        /// The last seq to scan (default: the applied seq).
        #[arg(long)]
        to: Option<u64>,
        /// Receipts per answer (default: the server's).
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Print the Cedar schema policies are validated against.
    Schema {
        #[command(flatten)]
        common: Common,
        /// A caller attribute the policies may read, as name:type (string, long or bool).
        #[arg(long = "attribute")]
        attributes: Vec<String>,
    },
}

/// `warrant authorize`: may the agent holding --token call --tool on --service now?
#[derive(Args, Clone, Debug)]
pub struct AuthorizeArgs {
    #[command(flatten)]
    pub common: Common,
    /// The access token the agent presented (opaque: taken as is, even after a '-').
    #[arg(long, allow_hyphen_values = true)]
    pub token: String,
    #[arg(long)]
    pub service: String,
    #[arg(long)]
    pub tool: String,
    /// A caller attribute, name=value (true/false a bool, an integer a long, else a string),
    /// or name:type=value to say which (string, long or bool).
    #[arg(long = "attr")]
    pub attributes: Vec<String>,
    /// Decide on the node at once and commit the receipt after the reply (ASYNC).
    #[arg(long = "async")]
    pub asynchronous: bool,
}

pub async fn run(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Validate {
            common,
            file,
            attributes,
        } => validate(&common, &file, &attributes).await,
        PolicyCommand::Publish {
            common,
            file,
            description,
            attributes,
        } => publish(&common, &file, description, &attributes).await,
        PolicyCommand::Activate { common, version } => {
            let request = api::ActivatePolicyRequest {
                version,
                ..Default::default()
            };
            let reply = policy_client(&common)
                .await?
                .activate(req(&common, request)?)
                .await;
            print_activation(&common, "activate", reply)
        }
        PolicyCommand::Rollback { common } => {
            let request = api::RollbackPolicyRequest::default();
            let reply = policy_client(&common)
                .await?
                .rollback(req(&common, request)?)
                .await;
            print_activation(&common, "rollback", reply)
        }
        PolicyCommand::Shadow { common, version } => {
            let request = api::SetShadowPolicyRequest {
                version,
                ..Default::default()
            };
            let reply = policy_client(&common)
                .await?
                .set_shadow(req(&common, request)?)
                .await;
            print_activation(&common, "shadow", reply)
        }
        PolicyCommand::List { common } => list(&common).await,
        PolicyCommand::Get { common, version } => get(&common, version.unwrap_or(0)).await,
        PolicyCommand::Diff { common, from, to } => diff(&common, from, to).await,
        PolicyCommand::ShadowReport {
            common,
            from,
            to,
            limit,
        } => shadow_report(&common, from.unwrap_or(0), to.unwrap_or(0), limit).await,
        PolicyCommand::Schema { common, attributes } => schema(&common, &attributes).await,
    }
}

async fn channel(common: &Common) -> anyhow::Result<Channel> {
    common.auth.channel().await
}

async fn policy_client(common: &Common) -> anyhow::Result<PolicyServiceClient<Channel>> {
    Ok(PolicyServiceClient::new(channel(common).await?))
}

fn req<T>(common: &Common, message: T) -> anyhow::Result<tonic::Request<T>> {
    Ok(authed(&common.auth.authorization()?, message))
}

pub use crate::client::refused;

fn answer<T>(what: &str, reply: Result<tonic::Response<T>, Status>) -> anyhow::Result<T> {
    reply
        .map(tonic::Response::into_inner)
        .map_err(|status| refused(what, &status))
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `name:type` as a declared policy attribute.
pub fn parse_attribute(text: &str) -> anyhow::Result<log::PolicyAttribute> {
    let (name, kind) = text
        .split_once(':')
        .with_context(|| format!("attribute {text:?} is not name:type"))?;
    Ok(log::PolicyAttribute {
        name: name.to_string(),
        r#type: attribute_type(kind)
            .with_context(|| format!("attribute {text:?}: {kind:?} is not string, long or bool"))?
            as i32,
    })
}

fn attribute_type(kind: &str) -> Option<log::PolicyAttributeType> {
    match kind.to_ascii_lowercase().as_str() {
        "string" => Some(log::PolicyAttributeType::String),
        "long" => Some(log::PolicyAttributeType::Long),
        "bool" => Some(log::PolicyAttributeType::Bool),
        _ => None,
    }
}

fn parse_attributes(texts: &[String]) -> anyhow::Result<Vec<log::PolicyAttribute>> {
    texts.iter().map(|text| parse_attribute(text)).collect()
}

fn attribute_json(attribute: &log::PolicyAttribute) -> Value {
    let kind = log::PolicyAttributeType::try_from(attribute.r#type)
        .map_or("UNKNOWN", |kind| kind.as_str_name())
        .trim_start_matches("POLICY_ATTRIBUTE_TYPE_")
        .to_ascii_lowercase();
    json!({ "name": attribute.name, "type": kind })
}

fn read_policy(file: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))
}

async fn validate(common: &Common, file: &PathBuf, attributes: &[String]) -> anyhow::Result<()> {
    let request = api::ValidatePolicyRequest {
        text: read_policy(file)?,
        attributes: parse_attributes(attributes)?,
    };
    let reply = policy_client(common)
        .await?
        .validate(req(common, request)?)
        .await;
    let reply = answer("validate", reply)?;
    let errors: Vec<Value> = reply
        .errors
        .iter()
        .map(|e| json!({ "line": e.line, "column": e.column, "policy_id": e.policy_id, "message": e.message }))
        .collect();
    match common.output {
        Output::Json => print_json(&json!({
            "valid": reply.valid,
            "policy_ids": reply.policy_ids,
            "errors": errors,
        }))?,
        Output::Table if reply.valid => println!(
            "{}: valid; policies: {}",
            file.display(),
            reply.policy_ids.join(", ")
        ),
        Output::Table => {
            println!("{}: invalid", file.display());
            for e in &reply.errors {
                let id = if e.policy_id.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", e.policy_id)
                };
                println!("  line {}, column {}: {}{id}", e.line, e.column, e.message);
            }
        }
    }
    anyhow::ensure!(reply.valid, "{} is not a valid policy set", file.display());
    Ok(())
}

async fn publish(
    common: &Common,
    file: &PathBuf,
    description: String,
    attributes: &[String],
) -> anyhow::Result<()> {
    let request = api::PublishPolicyRequest {
        idempotency_key: String::new(),
        text: read_policy(file)?,
        description,
        attributes: parse_attributes(attributes)?,
    };
    let reply = policy_client(common)
        .await?
        .publish(req(common, request)?)
        .await;
    let reply = answer("publish", reply)?;
    match common.output {
        Output::Json => print_json(&json!({
            "version": reply.version,
            "seq": reply.seq,
            "policy_ids": reply.policy_ids,
        })),
        Output::Table => {
            println!(
                "published version {} (seq {}); policies: {}; activate it with `warrant policy activate {}`",
                reply.version,
                reply.seq,
                reply.policy_ids.join(", "),
                reply.version
            );
            Ok(())
        }
    }
}

fn print_activation(
    common: &Common,
    what: &str,
    reply: Result<tonic::Response<api::PolicyActivationResponse>, Status>,
) -> anyhow::Result<()> {
    let reply = answer(what, reply)?;
    match common.output {
        Output::Json => print_json(&json!({
            "active_version": reply.active_version,
            "shadow_version": reply.shadow_version,
            "seq": reply.seq,
        })),
        Output::Table => {
            let shadow = match reply.shadow_version {
                0 => "none".to_string(),
                v => v.to_string(),
            };
            let active = match reply.active_version {
                0 => "none".to_string(),
                v => v.to_string(),
            };
            println!(
                "active version {active}, shadow version {shadow} (seq {})",
                reply.seq
            );
            Ok(())
        }
    }
}

fn version_json(v: &api::PolicyVersion) -> Value {
    let mut value = json!({
        "version": v.version,
        "description": v.description,
        "attributes": v.attributes.iter().map(attribute_json).collect::<Vec<_>>(),
        "policy_ids": v.policy_ids,
        "published_seq": v.published_seq,
        "published_unix_ms": v.published_unix_ms,
        "active": v.active,
        "shadow": v.shadow,
        "text_sha256": v.text_sha256_hex,
    });
    if !v.text.is_empty() {
        value["text"] = json!(v.text);
    }
    value
}

async fn list(common: &Common) -> anyhow::Result<()> {
    let mut client = policy_client(common).await?;
    let mut versions = Vec::new();
    let (mut active, mut shadow, mut after_version) = (0, 0, 0);
    for _ in 0..LIST_PAGES_MAX {
        let request = api::ListPoliciesRequest {
            after_version,
            ..Default::default()
        };
        let page = answer("list", client.list(req(common, request)?).await)?;
        versions.extend(page.versions);
        (active, shadow) = (page.active_version, page.shadow_version);
        if page.next_after_version == 0 {
            break;
        }
        after_version = page.next_after_version;
    }
    if let Output::Json = common.output {
        return print_json(&json!({
            "active_version": active,
            "shadow_version": shadow,
            "versions": versions.iter().map(version_json).collect::<Vec<_>>(),
        }));
    }
    println!(
        "{:<8} {:<7} {:>10} {:<9} DESCRIPTION",
        "VERSION", "STATE", "SEQ", "POLICIES"
    );
    for v in &versions {
        let state = match (v.active, v.shadow) {
            (true, _) => "active",
            (_, true) => "shadow",
            _ => "",
        };
        println!(
            "{:<8} {:<7} {:>10} {:<9} {}",
            v.version,
            state,
            v.published_seq,
            v.policy_ids.len(),
            v.description
        );
    }
    Ok(())
}

async fn get(common: &Common, version: u32) -> anyhow::Result<()> {
    let request = api::GetPolicyRequest {
        version,
        read: None,
    };
    let reply = policy_client(common)
        .await?
        .get(req(common, request)?)
        .await;
    let v = answer("get", reply)?;
    match common.output {
        Output::Json => print_json(&version_json(&v)),
        Output::Table => {
            let state = match (v.active, v.shadow) {
                (true, _) => ", active",
                (_, true) => ", shadow",
                _ => "",
            };
            println!(
                "// version {}{state}, published at seq {}; sha256 {}",
                v.version, v.published_seq, v.text_sha256_hex
            );
            if !v.description.is_empty() {
                println!("// {}", v.description);
            }
            print!("{}", v.text);
            if !v.text.ends_with('\n') {
                println!();
            }
            Ok(())
        }
    }
}

async fn diff(common: &Common, from: u32, to: u32) -> anyhow::Result<()> {
    let request = api::DiffPoliciesRequest {
        from_version: from,
        to_version: to,
        read: None,
    };
    let reply = policy_client(common)
        .await?
        .diff(req(common, request)?)
        .await;
    let d = answer("diff", reply)?;
    match common.output {
        Output::Json => print_json(&json!({
            "from_version": from,
            "to_version": to,
            "added_policy_ids": d.added_policy_ids,
            "removed_policy_ids": d.removed_policy_ids,
            "changed_policy_ids": d.changed_policy_ids,
            "unified_diff": d.unified_diff,
        })),
        Output::Table => {
            println!("added:   {}", d.added_policy_ids.join(", "));
            println!("removed: {}", d.removed_policy_ids.join(", "));
            println!("changed: {}", d.changed_policy_ids.join(", "));
            print!("{}", d.unified_diff);
            Ok(())
        }
    }
}

async fn shadow_report(common: &Common, from: u64, to: u64, limit: u32) -> anyhow::Result<()> {
    let request = api::ShadowReportRequest {
        from_seq: from,
        to_seq: to,
        limit,
        read: None,
    };
    let reply = policy_client(common)
        .await?
        .shadow_report(req(common, request)?)
        .await;
    let report = answer("shadow-report", reply)?;
    match common.output {
        Output::Json => print_json(&json!({
            "compared": report.compared,
            "next_seq": report.next_seq,
            "changes": report.changes.iter().map(|r| {
                json!({ "seq": r.seq, "receipt": r.decision.as_ref().map(receipt_json) })
            }).collect::<Vec<_>>(),
        })),
        Output::Table => {
            println!(
                "{} receipts with a shadow decision compared; {} would change; next seq {}",
                report.compared,
                report.changes.len(),
                report.next_seq
            );
            for change in &report.changes {
                let Some(d) = &change.decision else { continue };
                let shadow = d.shadow.as_ref().map_or("-".to_string(), |s| {
                    format!("{} under v{}", decision_name(s.decision), s.policy_version)
                });
                println!(
                    "  seq {:<8} {}/{} {} under v{} -> {shadow}",
                    change.seq,
                    d.service_id,
                    d.tool,
                    decision_name(d.decision),
                    d.policy_version
                );
            }
            Ok(())
        }
    }
}

async fn schema(common: &Common, attributes: &[String]) -> anyhow::Result<()> {
    let request = api::GetPolicySchemaRequest {
        attributes: parse_attributes(attributes)?,
    };
    let reply = policy_client(common)
        .await?
        .get_schema(req(common, request)?)
        .await;
    let schema = answer("schema", reply)?;
    match common.output {
        Output::Json => print_json(&json!({ "cedar_schema": schema.cedar_schema })),
        Output::Table => {
            print!("{}", schema.cedar_schema);
            Ok(())
        }
    }
}

fn decision_name(decision: i32) -> &'static str {
    match log::AccessDecision::try_from(decision) {
        Ok(log::AccessDecision::Allow) => "ALLOW",
        Ok(log::AccessDecision::Deny) => "DENY",
        _ => "UNSPECIFIED",
    }
}

fn deny_reason_name(reason: i32) -> String {
    log::AccessDenyReason::try_from(reason)
        .map_or("UNKNOWN", |r| r.as_str_name())
        .trim_start_matches("ACCESS_DENY_REASON_")
        .to_string()
}

/// A receipt as JSON: every field, enums by name.
pub fn receipt_json(d: &log::AccessDecided) -> Value {
    let mode = log::AccessMode::try_from(d.mode)
        .map_or("UNKNOWN", |m| m.as_str_name())
        .trim_start_matches("ACCESS_MODE_");
    let principal_kind = log::PrincipalKind::try_from(d.principal_kind)
        .map_or("UNKNOWN", |k| k.as_str_name())
        .trim_start_matches("PRINCIPAL_KIND_");
    json!({
        "decision_id": d.decision_id,
        "decision": decision_name(d.decision),
        "deny_reason": deny_reason_name(d.deny_reason),
        "token_invalid_reason": d.token_invalid_reason,
        "message": d.message,
        "principal_kind": principal_kind,
        "principal_id": d.principal_id,
        "on_behalf_of_human_id": d.on_behalf_of_human_id,
        "agent_chain": d.agent_chain,
        "service_id": d.service_id,
        "tool": d.tool,
        "determining_policy_ids": d.determining_policy_ids,
        "evaluation_errors": d.evaluation_errors,
        "policy_version": d.policy_version,
        "token_jti": d.token_jti,
        "delegation_id": d.delegation_id,
        "task": d.task,
        "attributes_digest": hex::encode(&d.attributes_digest),
        "serving_node_id": d.serving_node_id,
        "decided_at_seq": d.decided_at_seq,
        "decided_at_unix_ms": d.decided_at_unix_ms,
        "mode": mode,
        "shadow": d.shadow.as_ref().map(|s| json!({
            "policy_version": s.policy_version,
            "decision": decision_name(s.decision),
            "deny_reason": deny_reason_name(s.deny_reason),
            "determining_policy_ids": s.determining_policy_ids,
            "evaluation_errors": s.evaluation_errors,
        })),
        "requested_by": d.requested_by.as_ref().map(|a| json!({ "kind": a.kind, "id": a.id })),
    })
}

/// `name=value` (typed by its look) or `name:type=value` as a caller attribute.
pub fn parse_caller_attribute(text: &str) -> anyhow::Result<log::CallerAttribute> {
    use log::caller_attribute::Value as V;
    let (left, value) = text
        .split_once('=')
        .with_context(|| format!("--attr {text:?} is not name=value"))?;
    let (name, kind) = match left.split_once(':') {
        Some((name, kind)) => (
            name,
            Some(attribute_type(kind).with_context(|| {
                format!("--attr {text:?}: {kind:?} is not string, long or bool")
            })?),
        ),
        None => (left, None),
    };
    use log::PolicyAttributeType as T;
    let value = match kind {
        Some(T::String) => V::StringValue(value.to_string()),
        Some(T::Long) => V::LongValue(
            value
                .parse()
                .with_context(|| format!("--attr {text:?}: {value:?} is not a 64-bit integer"))?,
        ),
        Some(T::Bool) => V::BoolValue(
            value
                .parse()
                .with_context(|| format!("--attr {text:?}: {value:?} is not true or false"))?,
        ),
        Some(T::Unspecified) | None => match (value.parse::<i64>(), value) {
            (Ok(long), _) => V::LongValue(long),
            (_, "true") => V::BoolValue(true),
            (_, "false") => V::BoolValue(false),
            _ => V::StringValue(value.to_string()),
        },
    };
    Ok(log::CallerAttribute {
        name: name.to_string(),
        value: Some(value),
    })
}

pub async fn run_authorize(args: AuthorizeArgs) -> anyhow::Result<()> {
    let attributes = args
        .attributes
        .iter()
        .map(|text| parse_caller_attribute(text))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let audit = if args.asynchronous {
        api::AuditMode::Async
    } else {
        api::AuditMode::Sync
    };
    let request = api::AuthorizeRequest {
        idempotency_key: String::new(),
        token: args.token,
        service_id: args.service,
        tool: args.tool,
        attributes,
        read: None,
        audit: audit as i32,
    };
    let mut client = AuthzServiceClient::new(channel(&args.common).await?);
    let reply = client.authorize(req(&args.common, request)?).await;
    let reply = answer("authorize", reply)?;
    let receipt = reply.decision.clone().unwrap_or_default();
    let mode = api::AuditMode::try_from(reply.audit)
        .map_or("UNKNOWN", |m| m.as_str_name())
        .trim_start_matches("AUDIT_MODE_");
    match args.common.output {
        Output::Json => print_json(&json!({
            "allowed": reply.allowed,
            "audit": mode,
            "receipt_seq": reply.receipt_seq,
            "receipt_pending": reply.receipt_pending,
            "receipt": receipt_json(&receipt),
        })),
        Output::Table => {
            print_decision(&reply, &receipt, mode);
            Ok(())
        }
    }
}

fn print_decision(reply: &api::AuthorizeResponse, d: &log::AccessDecided, mode: &str) {
    let decision = if reply.allowed { "ALLOW" } else { "DENY" };
    let why = if reply.allowed {
        String::new()
    } else {
        format!(" {}: {}", deny_reason_name(d.deny_reason), d.message)
    };
    println!(
        "{decision}{why}\n  {}/{} for {} {}{} under policy version {}",
        d.service_id,
        d.tool,
        d.principal_id,
        if d.on_behalf_of_human_id.is_empty() {
            String::new()
        } else {
            format!("on behalf of {} ", d.on_behalf_of_human_id)
        },
        if d.delegation_id.is_empty() {
            String::new()
        } else {
            format!("(delegation {}, task {:?})", d.delegation_id, d.task)
        },
        d.policy_version
    );
    if !d.determining_policy_ids.is_empty() {
        println!("  determined by: {}", d.determining_policy_ids.join(", "));
    }
    let receipt = if reply.receipt_pending {
        "pending".to_string()
    } else {
        format!("seq {}", reply.receipt_seq)
    };
    println!("  receipt {} ({mode}): {receipt}", d.decision_id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_parse_by_type_or_by_look() {
        use log::caller_attribute::Value as V;
        let value = |text: &str| {
            parse_caller_attribute(text)
                .map(|a| (a.name, a.value))
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            value("amount=20000"),
            Ok(("amount".into(), Some(V::LongValue(20000))))
        );
        assert_eq!(
            value("ok=true"),
            Ok(("ok".into(), Some(V::BoolValue(true))))
        );
        assert_eq!(
            value("memo=a=b"),
            Ok(("memo".into(), Some(V::StringValue("a=b".into()))))
        );
        assert_eq!(
            value("code:string=007"),
            Ok(("code".into(), Some(V::StringValue("007".into()))))
        );
        assert_eq!(
            value("amount:long=lots"),
            Err("--attr \"amount:long=lots\": \"lots\" is not a 64-bit integer".into())
        );
        assert_eq!(
            value("amount"),
            Err("--attr \"amount\" is not name=value".into())
        );
        let declared = parse_attribute("amount:Long").expect("parses");
        assert_eq!(declared.r#type, log::PolicyAttributeType::Long as i32);
        assert!(parse_attribute("amount:float").is_err());
    }
}
