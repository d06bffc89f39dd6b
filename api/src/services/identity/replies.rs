//! Projection rows as the API's replies, and how each kind of principal is looked up by id: what
//! reads, read-backs after a write and lists share.

use tonic::Code;
use warrant_identity::{StateError, StateRead, query};
use warrant_proto::{
    api::{self, ReadOptions},
    state,
};

use crate::{
    context::Context,
    error::{ApiError, Reason},
    storage::storage,
    validate,
};

/// A principal's reply, built from its projection row and looked up by its id.
pub(crate) trait ReadBack: Sized {
    /// The principal's kind, as messages name it.
    const WHAT: &'static str;
    /// The reason a lookup of an unknown id fails with.
    const NOT_FOUND: Reason;
    type Row;
    fn lookup(state: &dyn StateRead, id: &str) -> Result<Option<Self::Row>, StateError>;
    fn reply(row: Self::Row) -> Self;
}

/// The principal named `id`, read at the client's consistency, as of the point it names if any.
pub(super) async fn get<T: ReadBack>(
    context: &Context,
    read: Option<&ReadOptions>,
    id: &str,
) -> Result<T, ApiError> {
    let view = context.read_view(validate::read_options(read)?).await?;
    T::lookup(&view, id)
        .map_err(storage)?
        .map(T::reply)
        .ok_or_else(|| {
            let when = match view.as_of() {
                Some(as_of) => format!(" at seq {}", as_of.seq),
                None => String::new(),
            };
            ApiError::new(
                Code::NotFound,
                T::NOT_FOUND,
                format!("{} {id} is not registered{when}", T::WHAT),
            )
        })
}

impl ReadBack for api::Human {
    const WHAT: &'static str = "human";
    const NOT_FOUND: Reason = Reason::HumanNotFound;
    type Row = state::HumanRow;

    fn lookup(state: &dyn StateRead, id: &str) -> Result<Option<state::HumanRow>, StateError> {
        query::human(state, id)
    }

    fn reply(row: state::HumanRow) -> api::Human {
        let federated = row.federated.unwrap_or_default();
        api::Human {
            human_id: row.human_id,
            display_name: row.display_name,
            email: row.email,
            status: principal_status(row.status),
            created_seq: row.created_seq,
            federated_issuer: federated.issuer,
            federated_subject: federated.subject,
            has_password: !row.password_argon2id.is_empty(),
        }
    }
}

impl ReadBack for api::Agent {
    const WHAT: &'static str = "agent";
    const NOT_FOUND: Reason = Reason::AgentNotFound;
    type Row = state::AgentRow;

    fn lookup(state: &dyn StateRead, id: &str) -> Result<Option<state::AgentRow>, StateError> {
        query::agent(state, id)
    }

    fn reply(row: state::AgentRow) -> api::Agent {
        api::Agent {
            agent_id: row.agent_id,
            owner_human_id: row.owner_human_id,
            kind: row.kind,
            description: row.description,
            status: principal_status(row.status),
            credential_ids: row
                .credentials
                .into_iter()
                .map(|c| c.credential_id)
                .collect(),
            created_seq: row.created_seq,
            device_id: row.device_id,
        }
    }
}

impl ReadBack for api::Service {
    const WHAT: &'static str = "service";
    const NOT_FOUND: Reason = Reason::ServiceNotFound;
    type Row = state::ServiceRow;

    fn lookup(state: &dyn StateRead, id: &str) -> Result<Option<state::ServiceRow>, StateError> {
        query::service(state, id)
    }

    fn reply(row: state::ServiceRow) -> api::Service {
        api::Service {
            service_id: row.service_id,
            audience: row.audience,
            tools: row
                .tools
                .into_iter()
                .map(|t| api::Tool {
                    name: t.name,
                    description: t.description,
                })
                .collect(),
            status: principal_status(row.status),
            created_seq: row.created_seq,
        }
    }
}

impl ReadBack for api::Device {
    const WHAT: &'static str = "device";
    const NOT_FOUND: Reason = Reason::DeviceNotFound;
    type Row = state::DeviceRow;

    fn lookup(state: &dyn StateRead, id: &str) -> Result<Option<state::DeviceRow>, StateError> {
        query::device(state, id)
    }

    fn reply(row: state::DeviceRow) -> api::Device {
        api::Device {
            device_id: row.device_id,
            owner_human_id: row.owner_human_id,
            name: row.name,
            platform: row.platform,
            status: principal_status(row.status),
            created_seq: row.created_seq,
        }
    }
}

/// A projection row's status as the API names it.
fn principal_status(status: i32) -> i32 {
    use warrant_proto::api::PrincipalStatus;
    match state::Status::try_from(status) {
        Ok(state::Status::Active) => PrincipalStatus::Active as i32,
        Ok(state::Status::Disabled) => PrincipalStatus::Disabled as i32,
        _ => PrincipalStatus::Unspecified as i32,
    }
}
