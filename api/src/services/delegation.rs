//! `warrant.v1.DelegationService`: grants from humans to agents and from agents to sub-agents.
//! Attenuation (narrower scopes, audiences and expiry; the depth cap; no cycles) is decided in
//! apply against committed state; this layer only shapes the request.

use std::sync::Arc;

use tonic::{Code, Request, Response, Status};
use warrant_identity::{limits, query};
use warrant_proto::{
    api::{self, delegation_service_server::DelegationService},
    log, state,
};

use crate::{
    auth::Caller,
    context::{Context, command},
    error::{ApiError, Reason},
    storage::storage,
    validate,
};

pub struct DelegationApi {
    pub context: Arc<Context>,
}

#[tonic::async_trait]
impl DelegationService for DelegationApi {
    async fn create_delegation(
        &self,
        request: Request<api::CreateDelegationRequest>,
    ) -> Result<Response<api::CreateDelegationResponse>, Status> {
        let caller = self.context.caller(request.metadata()).await?;
        let mut request = request.into_inner();
        validate::optional_idempotency_key(&request.idempotency_key)?;
        check_create(&request)?;
        let max_depth = self.max_depth(&request).await?;
        let key = std::mem::take(&mut request.idempotency_key);
        let kind = log::command::Kind::CreateDelegation(log::CreateDelegation {
            delegation_id: uuid::Uuid::now_v7().to_string(),
            parent_delegation_id: request.parent_delegation_id.clone(),
            grantee_agent_id: request.grantee_agent_id.clone(),
            scopes: request.scopes.clone(),
            audiences: request.audiences.clone(),
            task: request.task.clone(),
            expires_at_unix_s: request.expires_at_unix_s,
            max_depth,
            grantor_human_id: request.grantor_human_id.clone(),
            budget: request.budget.clone(),
        });
        let accepted = self
            .context
            .commit(command(&caller, &key, "CreateDelegation", &request, kind))
            .await?;
        let created = accepted
            .delegation_created
            .ok_or_else(|| ApiError::internal("accepted delegation carries no grant"))?;
        Ok(Response::new(api::CreateDelegationResponse {
            delegation: Some(delegation_reply(
                state::DelegationRow {
                    created: Some(created),
                    created_seq: accepted.seq,
                    ..Default::default()
                },
                // Nothing is spent under a grant just made.
                &state::BudgetUsageRow::default(),
            )),
            seq: accepted.seq,
        }))
    }

    async fn get_delegation(
        &self,
        request: Request<api::GetDelegationRequest>,
    ) -> Result<Response<api::Delegation>, Status> {
        let caller = self.context.caller(request.metadata()).await?;
        caller.require_reusable_credential()?;
        let request = request.into_inner();
        limits::validate_id("delegation_id", &request.delegation_id).map_err(ApiError::from)?;
        let reader = self
            .context
            .read_view(validate::read_options(request.read.as_ref())?)
            .await?;
        let not_found = || {
            ApiError::new(
                Code::NotFound,
                Reason::DelegationNotFound,
                format!("delegation {} does not exist", request.delegation_id),
            )
        };
        let row = query::delegation(&reader, &request.delegation_id)
            .map_err(storage)?
            .ok_or_else(not_found)?;
        let created = row.created.clone().unwrap_or_default();
        let party = match &caller {
            // Every operator role reads the projections (auditors included).
            Caller::Admin | Caller::Operator { .. } => true,
            Caller::Human { human_id, .. } => *human_id == created.root_human_id,
            Caller::Agent { agent_id, .. } => created.agent_chain.contains(agent_id),
        };
        // Someone outside the chain learns nothing, not even that the delegation exists.
        if !party {
            return Err(not_found().into());
        }
        let usage = query::budget_usage(&reader, &request.delegation_id).map_err(storage)?;
        Ok(Response::new(delegation_reply(row, &usage)))
    }
}

impl DelegationApi {
    /// The grant's depth cap: the one requested, else 1 for a human's grant and the parent's cap
    /// for an agent's (read from the parent, which may have been committed a moment ago through
    /// another node: `resolve` catches up once).
    async fn max_depth(&self, request: &api::CreateDelegationRequest) -> Result<u32, ApiError> {
        let max_depth = match (request.max_depth, request.parent_delegation_id.as_str()) {
            (0, "") => 1,
            (0, parent_id) => {
                self.context
                    .resolve(
                        |reader| {
                            query::delegation(reader, parent_id)
                                .map_err(storage)?
                                .and_then(|row| row.created)
                                .map(|parent| parent.max_depth)
                                .ok_or_else(|| {
                                    ApiError::new(
                                        Code::NotFound,
                                        Reason::DelegationNotFound,
                                        format!("delegation {parent_id} does not exist"),
                                    )
                                })
                        },
                        |e| e.reason == Reason::DelegationNotFound,
                    )
                    .await?
            }
            (depth, _) => depth,
        };
        Ok(max_depth)
    }
}

/// Bounds the request's lists and depth before anything reads them. Every field of the command
/// built from it is checked once, in `Context::commit` (`warrant_identity::check`); attenuation
/// is apply's to decide.
fn check_create(request: &api::CreateDelegationRequest) -> Result<(), ApiError> {
    validate::list_len(
        "scopes",
        request.scopes.len(),
        1,
        limits::SCOPES_PER_TOKEN_MAX,
    )?;
    validate::list_len(
        "audiences",
        request.audiences.len(),
        1,
        limits::AUDIENCES_PER_DELEGATION_MAX,
    )?;
    validate::in_range(
        "max_depth",
        u64::from(request.max_depth),
        0,
        u64::from(limits::DELEGATION_DEPTH_MAX),
    )?;
    Ok(())
}

/// The budget's spending, per tool the budget names (zero for a tool not spent yet); unset for
/// a delegation without a budget.
fn budget_spent(
    budget: Option<&log::CallBudget>,
    usage: &state::BudgetUsageRow,
) -> Option<api::BudgetSpent> {
    let budget = budget?;
    let spent_on = |tool: &str| {
        usage
            .tools
            .iter()
            .find(|it| it.tool == tool)
            .map_or(0, |it| it.spent)
    };
    Some(api::BudgetSpent {
        total: usage.spent,
        tools: budget
            .tools
            .iter()
            .map(|it| api::ToolSpent {
                tool: it.tool.clone(),
                spent: spent_on(&it.tool),
            })
            .collect(),
    })
}

pub(crate) fn delegation_reply(
    row: state::DelegationRow,
    usage: &state::BudgetUsageRow,
) -> api::Delegation {
    let created = row.created.unwrap_or_default();
    let budget_spent = budget_spent(created.budget.as_ref(), usage);
    api::Delegation {
        delegation_id: created.delegation_id,
        parent_delegation_id: created.parent_delegation_id,
        root_human_id: created.root_human_id,
        grantor_id: created.grantor_id,
        grantee_agent_id: created.grantee_agent_id,
        scopes: created.scopes,
        audiences: created.audiences,
        task: created.task,
        expires_at_unix_s: created.expires_at_unix_s,
        max_depth: created.max_depth,
        depth: created.depth,
        agent_chain: created.agent_chain,
        revoked: row.revoked,
        created_seq: row.created_seq,
        budget: created.budget,
        budget_spent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_spent_lists_every_budgeted_tool_and_is_unset_without_a_budget() {
        let budget = log::CallBudget {
            total: 10,
            tools: vec![
                log::ToolBudget {
                    tool: "convert".to_string(),
                    limit: 3,
                },
                log::ToolBudget {
                    tool: "quote".to_string(),
                    limit: 5,
                },
            ],
        };
        let usage = state::BudgetUsageRow {
            spent: 4,
            tools: vec![state::ToolSpend {
                tool: "convert".to_string(),
                spent: 2,
            }],
        };
        let spent = budget_spent(Some(&budget), &usage).expect("a budget");
        assert_eq!(spent.total, 4);
        let tools: Vec<(&str, u64)> = spent
            .tools
            .iter()
            .map(|it| (it.tool.as_str(), it.spent))
            .collect();
        assert_eq!(tools, vec![("convert", 2), ("quote", 0)]);
        assert_eq!(budget_spent(None, &usage), None);
    }
}
