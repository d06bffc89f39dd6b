//! Token scenarios: an agent issuing for itself, a sub-agent issuing under a depth-2 delegation,
//! Verify at a chosen consistency, and a 90/10 Verify/Issue mix.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt, future::BoxFuture, stream};
use tonic::{metadata::AsciiMetadataValue, transport::Channel};
use warrant_proto::api::{self, Consistency, token_service_client::TokenServiceClient};

use super::{
    auth::{bearer, with_auth},
    fixture::Fixture,
};
use crate::load::Operation;

/// Lifetime of the scenarios' tokens: longer than any run, so pre-issued tokens stay valid.
pub const TOKEN_TTL_S: u32 = 3600;
/// Most tokens [`verify`] pre-issues: each is kept in memory for the run.
pub const VERIFY_TOKENS_MAX: usize = 100_000;
/// Issuances in flight while pre-issuing; enough to hide round trips without a burst.
const PRE_ISSUE_CONCURRENCY: usize = 16;
/// Of every this many [`mixed`] calls, one issues and the rest verify.
const MIXED_ISSUE_EVERY: u64 = 10;

/// `Issue` by one agent, for itself or under a delegation it holds.
struct IssueOp {
    authorization: AsciiMetadataValue,
    request: api::IssueRequest,
}

impl IssueOp {
    fn new(f: &Fixture, as_b_delegated: bool) -> IssueOp {
        let (agent, delegation_id) = if as_b_delegated {
            (&f.agent_b, f.child_delegation_id.clone())
        } else {
            (&f.agent_a, String::new())
        };
        IssueOp {
            authorization: agent.authorization(),
            request: api::IssueRequest {
                audience: f.audience.clone(),
                scopes: f.scopes.clone(),
                ttl_seconds: TOKEN_TTL_S,
                delegation_id,
                ..Default::default()
            },
        }
    }

    /// One issuance: the token.
    fn issue(&self, channel: &Channel) -> BoxFuture<'static, Result<String, tonic::Status>> {
        let mut client = TokenServiceClient::new(channel.clone());
        let request = with_auth(&self.authorization, self.request.clone());
        Box::pin(async move { Ok(client.issue(request).await?.into_inner().access_token) })
    }
}

impl Operation for IssueOp {
    fn call(
        &self,
        channel: &Channel,
        _worker: usize,
        _n: u64,
    ) -> BoxFuture<'static, Result<(), tonic::Status>> {
        let issued = self.issue(channel);
        Box::pin(async move { issued.await.map(drop) })
    }
}

/// Agent A issues a token for itself.
pub fn issue_self(f: &Fixture) -> Arc<dyn Operation> {
    Arc::new(IssueOp::new(f, false))
}

/// Agent B issues under the depth-2 delegation (a token for the human, acted on by B for A).
pub fn issue_delegated(f: &Fixture) -> Arc<dyn Operation> {
    Arc::new(IssueOp::new(f, true))
}

/// `Verify` of pre-issued tokens, each call the next one, as the admin for the fixture's
/// audience. An answer of active=false is an error: these tokens are all valid.
struct VerifyOp {
    authorization: AsciiMetadataValue,
    audience: String,
    consistency: Consistency,
    tokens: Arc<Vec<String>>,
    next: AtomicUsize,
}

impl Operation for VerifyOp {
    fn call(
        &self,
        channel: &Channel,
        _worker: usize,
        _n: u64,
    ) -> BoxFuture<'static, Result<(), tonic::Status>> {
        let token = &self.tokens[self.next.fetch_add(1, Ordering::Relaxed) % self.tokens.len()];
        let request = api::VerifyRequest {
            token: token.clone(),
            audience: self.audience.clone(),
            read: Some(api::ReadOptions {
                consistency: self.consistency as i32,
                at_least_seq: 0,
                as_of: None,
            }),
        };
        let mut client = TokenServiceClient::new(channel.clone());
        let request = with_auth(&self.authorization, request);
        Box::pin(async move {
            let verified = client.verify(request).await?.into_inner();
            if verified.active {
                Ok(())
            } else {
                Err(tonic::Status::internal(format!(
                    "a valid token verified inactive: {}",
                    verified.reason_message
                )))
            }
        })
    }
}

/// `tokens` distinct tokens agent A issues for itself through `leader` (for the fixture's
/// scopes), for the read scenarios to present in turn.
pub(super) async fn pre_issue(
    f: &Fixture,
    leader: &Channel,
    tokens: usize,
) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(
        (1..=VERIFY_TOKENS_MAX).contains(&tokens),
        "{tokens} tokens asked for; allowed: 1 to {VERIFY_TOKENS_MAX}"
    );
    let issuer = IssueOp::new(f, false);
    stream::iter(0..tokens)
        .map(|_| issuer.issue(leader))
        .buffer_unordered(PRE_ISSUE_CONCURRENCY)
        .try_collect()
        .await
        .context("pre-issue the tokens to present")
}

async fn verify_op(
    f: &Fixture,
    leader: &Channel,
    consistency: Consistency,
    tokens: usize,
) -> anyhow::Result<VerifyOp> {
    Ok(VerifyOp {
        authorization: bearer(&f.admin_token)?,
        audience: f.audience.clone(),
        consistency,
        tokens: Arc::new(pre_issue(f, leader, tokens).await?),
        next: AtomicUsize::new(0),
    })
}

/// Pre-issues `tokens` distinct tokens through `leader`; each call verifies the next one with
/// `consistency`.
pub async fn verify(
    f: &Fixture,
    leader: &Channel,
    consistency: Consistency,
    tokens: usize,
) -> anyhow::Result<Arc<dyn Operation>> {
    Ok(Arc::new(verify_op(f, leader, consistency, tokens).await?))
}

/// Nine LOCAL verifications, then one issuance by agent A, by `n`.
struct MixedOp {
    verify: VerifyOp,
    issue: IssueOp,
}

impl Operation for MixedOp {
    fn call(
        &self,
        channel: &Channel,
        worker: usize,
        n: u64,
    ) -> BoxFuture<'static, Result<(), tonic::Status>> {
        if n % MIXED_ISSUE_EVERY == MIXED_ISSUE_EVERY - 1 {
            self.issue.call(channel, worker, n)
        } else {
            self.verify.call(channel, worker, n)
        }
    }
}

/// 90 % Verify LOCAL, 10 % [`issue_self`], deterministic by `n`.
pub async fn mixed(
    f: &Fixture,
    leader: &Channel,
    tokens: usize,
) -> anyhow::Result<Arc<dyn Operation>> {
    Ok(Arc::new(MixedOp {
        verify: verify_op(f, leader, Consistency::Local, tokens).await?,
        issue: IssueOp::new(f, false),
    }))
}

/// Agent A issues one token through `channel` (for [`super::reach`]): the token and its jti.
pub(super) async fn issue_one(
    f: &Fixture,
    channel: &Channel,
) -> anyhow::Result<api::IssueResponse> {
    let op = IssueOp::new(f, false);
    let request = with_auth(&op.authorization, op.request.clone());
    Ok(TokenServiceClient::new(channel.clone())
        .issue(request)
        .await
        .context("Issue")?
        .into_inner())
}
