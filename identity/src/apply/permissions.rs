//! Who may do what: the questions handlers ask of a [`Caller`], and the refusals for the common
//! rules. Every permission is decided here against committed state, never only at the edge, so
//! no path into the log skips a rule.

use warrant_proto::log::{OperatorRole, PrincipalKind, RejectReason};

use super::context::{Caller, Context, Refusal, reject};

impl Caller<'_> {
    /// The bootstrap admin (which `operators::resolve` lets through only while no operator
    /// exists) or an operator with the admin role.
    pub(super) fn is_admin(self) -> bool {
        matches!(
            self,
            Caller::Admin | Caller::Operator(_, OperatorRole::Admin)
        )
    }

    /// An admin, or an operator with the operator role: running the cluster (signing keys).
    pub(super) fn may_operate(self) -> bool {
        self.is_admin() || matches!(self, Caller::Operator(_, OperatorRole::Operator))
    }

    /// Whether the caller is human `human_id`.
    pub(super) fn is_human(self, human_id: &str) -> bool {
        matches!(self, Caller::Human(id) if id == human_id)
    }

    /// Whether the caller is agent `agent_id`.
    pub(super) fn is_agent(self, agent_id: &str) -> bool {
        matches!(self, Caller::Agent(id) if id == agent_id)
    }

    /// Whether the caller is node `node_id`.
    pub(super) fn is_node(self, node_id: u64) -> bool {
        matches!(self, Caller::Node(id) if id == node_id.to_string())
    }

    /// Whether the caller is a node, any node.
    pub(super) fn is_a_node(self) -> bool {
        matches!(self, Caller::Node(_))
    }

    /// Whether the caller is the principal of kind `kind` (a `PrincipalKind` value) named `id`,
    /// as sessions record their principal.
    pub(super) fn is_principal(self, kind: i32, id: &str) -> bool {
        match PrincipalKind::try_from(kind) {
            Ok(PrincipalKind::Human) => self.is_human(id),
            Ok(PrincipalKind::Agent) => self.is_agent(id),
            _ => false,
        }
    }
}

/// Registration is an admin act. The API layer checks this too; apply checks it again so that no
/// path into the log can skip it.
pub(super) fn require_admin(context: &Context<'_>, what: &str) -> Result<(), Refusal> {
    if context.caller.is_admin() {
        return Ok(());
    }
    Err(reject(
        RejectReason::PermissionDenied,
        format!("only an admin may {what}"),
    ))
}

/// Running the cluster (marking a signing key compromised) is for admins and operators.
pub(super) fn require_operator(context: &Context<'_>, what: &str) -> Result<(), Refusal> {
    if context.caller.may_operate() {
        return Ok(());
    }
    Err(reject(
        RejectReason::PermissionDenied,
        format!("only an admin or an operator may {what}"),
    ))
}

/// What only a node records (what it decided or saw): ASYNC receipts, auth-failure aggregates.
pub(super) fn require_node(context: &Context<'_>, what: &str) -> Result<(), Refusal> {
    if context.caller.is_a_node() {
        return Ok(());
    }
    Err(reject(
        RejectReason::PermissionDenied,
        format!("only a node may {what}"),
    ))
}

/// An admin, or the human `owner_human_id` acting for themself.
pub(super) fn require_admin_or_owner(
    context: &Context<'_>,
    owner_human_id: &str,
    what: &str,
) -> Result<(), Refusal> {
    if context.caller.is_admin() || context.caller.is_human(owner_human_id) {
        return Ok(());
    }
    Err(reject(
        RejectReason::PermissionDenied,
        format!("only an admin or human {owner_human_id} may {what}"),
    ))
}
