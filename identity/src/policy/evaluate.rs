//! Compiling a stored version and evaluating a request against it: the entities and the context
//! Cedar sees, built from the rows the caller looked up.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    str::FromStr,
};

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid, Policy,
    PolicyId, PolicySet, Request, RestrictedExpression, Schema,
};
use warrant_proto::{
    log::{self, PolicyAttributeType, caller_attribute::Value},
    state::{AgentRow, HumanRow},
};

use super::{
    BUILT_IN_POLICY_ID, PolicyAction, PolicyPrincipal, PolicyRequest, PolicyVerdict, schema,
    validate,
};

/// The built-in policy every evaluation adds: what the delegation grants is permitted.
const BUILT_IN_POLICY: &str = "permit(principal, action, resource);";
/// The pseudo policy id of errors in building the request (fail closed like a policy error).
const REQUEST_ERROR_ID: &str = "warrant.request";

/// A version ready to evaluate.
pub(super) struct Compiled {
    schema: Schema,
    /// The published policies plus the built-in.
    policies: PolicySet,
    /// The declared caller attributes and their types, by name.
    attributes: BTreeMap<String, PolicyAttributeType>,
    authorizer: Authorizer,
    types: Types,
}

/// The schema's entity type names, parsed once per compiled version: Cedar parses a type name
/// with its full grammar, which would otherwise dominate a small set's evaluation.
struct Types {
    human: EntityTypeName,
    agent: EntityTypeName,
    service: EntityTypeName,
    tool: EntityTypeName,
    delegation: EntityTypeName,
    action: EntityTypeName,
}

impl Types {
    fn new() -> Result<Self, String> {
        let parse = |name: &str| {
            EntityTypeName::from_str(name)
                .map_err(|error| format!("entity type {name} does not parse: {error}"))
        };
        Ok(Self {
            human: parse("Human")?,
            agent: parse("Agent")?,
            service: parse("Service")?,
            tool: parse("Tool")?,
            delegation: parse("Delegation")?,
            action: parse("Action")?,
        })
    }
}

/// Compiles a stored version's text (validated when it was published). Err when it no longer
/// compiles (only a Cedar upgrade could cause it): the caller fails closed on every request.
pub(super) fn compile(text: &str, attributes: &[log::PolicyAttribute]) -> Result<Compiled, String> {
    let schema = schema::schema(attributes)?;
    let named = validate::parse_named(text).map_err(|errors| {
        let first = errors.first().map(|it| it.message.as_str()).unwrap_or("");
        format!("the stored text no longer compiles: {first}")
    })?;
    let mut policies = named.policies;
    let built_in = Policy::parse(Some(PolicyId::new(BUILT_IN_POLICY_ID)), BUILT_IN_POLICY)
        .map_err(|error| format!("the built-in policy does not parse: {error}"))?;
    policies
        .add(built_in)
        .map_err(|error| format!("the built-in policy cannot be added: {error}"))?;
    let attributes = attributes
        .iter()
        .map(|it| {
            let ty =
                PolicyAttributeType::try_from(it.r#type).unwrap_or(PolicyAttributeType::String);
            (it.name.clone(), ty)
        })
        .collect();
    Ok(Compiled {
        schema,
        policies,
        attributes,
        authorizer: Authorizer::new(),
        types: Types::new()?,
    })
}

impl Compiled {
    pub(super) fn policy_count(&self) -> usize {
        self.policies.num_of_policies()
    }

    pub(super) fn evaluate(&self, request: &PolicyRequest<'_>) -> PolicyVerdict {
        let (entities, cedar_request) = match self.cedar_request(request) {
            Ok(it) => it,
            Err(message) => return failed(format!("{REQUEST_ERROR_ID}: {message}")),
        };
        let response = self
            .authorizer
            .is_authorized(&cedar_request, &self.policies, &entities);
        let diagnostics = response.diagnostics();
        let mut determining_policy_ids: Vec<String> =
            diagnostics.reason().map(ToString::to_string).collect();
        determining_policy_ids.sort_unstable();
        let mut errors: Vec<String> = diagnostics
            .errors()
            .map(|error| match error {
                cedar_policy::AuthorizationError::PolicyEvaluationError(error) => {
                    format!("{}: {}", error.policy_id(), error.inner())
                }
            })
            .collect();
        errors.sort_unstable();
        PolicyVerdict {
            allowed: response.decision() == Decision::Allow && errors.is_empty(),
            determining_policy_ids,
            errors,
        }
    }

    /// The entities and the request Cedar evaluates, both checked against the schema.
    fn cedar_request(&self, request: &PolicyRequest<'_>) -> Result<(Entities, Request), String> {
        let types = &self.types;
        let mut entities = EntityStore::new(types);
        let principal = match request.principal {
            PolicyPrincipal::Agent(agent) => entities.agent(agent)?,
            PolicyPrincipal::Human(human) => entities.human(human)?,
        };
        let service_uid = uid(&types.service, &request.service.service_id);
        entities.insert(
            service_uid.clone(),
            [("audience", string(&request.service.audience))],
            [],
        )?;
        let tool_uid = uid(
            &types.tool,
            &format!("{}/{}", request.service.service_id, request.tool),
        );
        entities.insert(
            tool_uid.clone(),
            [("name", string(request.tool))],
            [service_uid],
        )?;
        let context = self.context(request, &mut entities)?;
        let action = uid(&types.action, action_name(request.action));
        let cedar_request = Request::new(principal, action, tool_uid, context, Some(&self.schema))
            .map_err(|error| error.to_string())?;
        let entities = Entities::from_entities(entities.into_entities(), Some(&self.schema))
            .map_err(|error| error.to_string())?;
        Ok((entities, cedar_request))
    }

    /// The context record the schema declares, adding the entities it names to `entities`.
    fn context(
        &self,
        request: &PolicyRequest<'_>,
        entities: &mut EntityStore<'_>,
    ) -> Result<Context, String> {
        let mut pairs = vec![
            (
                "depth",
                long(u64::from(request.delegation.map_or(0, |it| {
                    it.created.as_ref().map_or(0, |created| created.depth)
                }))),
            ),
            ("task", string(request.task)),
            (
                "scopes",
                RestrictedExpression::new_set(request.scopes.iter().map(|it| string(it))),
            ),
            ("time", long(request.time_unix_s)),
            ("attributes", self.caller_attributes(request.attributes)?),
        ];
        let mut chain = Vec::with_capacity(request.agent_chain.len());
        for agent in request.agent_chain {
            chain.push(RestrictedExpression::new_entity_uid(entities.agent(agent)?));
        }
        pairs.push(("chain", RestrictedExpression::new_set(chain)));
        if let Some(human) = request.on_behalf_of {
            pairs.push(("human", entity(entities.human(human)?)));
        }
        if let Some(grantee) = request.grantee {
            pairs.push(("grantee", entity(entities.agent(grantee)?)));
        }
        if let Some(created) = request.delegation.and_then(|it| it.created.as_ref()) {
            let delegation_uid = uid(&self.types.delegation, &created.delegation_id);
            entities.insert(
                delegation_uid.clone(),
                [
                    ("depth", long(u64::from(created.depth))),
                    ("task", string(&created.task)),
                ],
                [],
            )?;
            pairs.push(("delegation", entity(delegation_uid)));
        }
        Context::from_pairs(
            pairs
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value)),
        )
        .map_err(|error| error.to_string())
    }

    /// The declared attributes the call gave, as a record; an undeclared one is left out (the
    /// version cannot read it), a declared one of the wrong type fails the request.
    fn caller_attributes(
        &self,
        attributes: &[log::CallerAttribute],
    ) -> Result<RestrictedExpression, String> {
        let mut fields = BTreeMap::new();
        for attribute in attributes {
            let Some(declared) = self.attributes.get(&attribute.name) else {
                continue;
            };
            let value = match (declared, &attribute.value) {
                (PolicyAttributeType::String, Some(Value::StringValue(it))) => string(it),
                (PolicyAttributeType::Long, Some(Value::LongValue(it))) => {
                    RestrictedExpression::new_long(*it)
                }
                (PolicyAttributeType::Bool, Some(Value::BoolValue(it))) => {
                    RestrictedExpression::new_bool(*it)
                }
                (declared, _) => {
                    return Err(format!(
                        "caller attribute {} is declared {} but the call gives {}",
                        attribute.name,
                        declared.as_str_name(),
                        value_kind(attribute.value.as_ref())
                    ));
                }
            };
            if fields.insert(attribute.name.clone(), value).is_some() {
                return Err(format!(
                    "caller attribute {} is given twice",
                    attribute.name
                ));
            }
        }
        RestrictedExpression::new_record(fields).map_err(|error| error.to_string())
    }
}

/// A verdict that denies because the request could not be evaluated.
pub(super) fn failed(error: String) -> PolicyVerdict {
    PolicyVerdict {
        allowed: false,
        determining_policy_ids: Vec::new(),
        errors: vec![error],
    }
}

fn value_kind(value: Option<&Value>) -> &'static str {
    match value {
        Some(Value::StringValue(_)) => "a string",
        Some(Value::LongValue(_)) => "a long",
        Some(Value::BoolValue(_)) => "a bool",
        None => "no value",
    }
}

fn action_name(action: PolicyAction) -> &'static str {
    match action {
        PolicyAction::Call => "call",
        PolicyAction::Issue => "issue",
        PolicyAction::Delegate => "delegate",
    }
}

/// The entities of one request, each once (a principal may also be in the chain), in uid
/// order.
struct EntityStore<'t> {
    types: &'t Types,
    entities: BTreeMap<String, Entity>,
}

impl<'t> EntityStore<'t> {
    fn new(types: &'t Types) -> Self {
        Self {
            types,
            entities: BTreeMap::new(),
        }
    }

    fn agent(&mut self, agent: &AgentRow) -> Result<EntityUid, String> {
        let agent_uid = uid(&self.types.agent, &agent.agent_id);
        let owner = uid(&self.types.human, &agent.owner_human_id);
        self.insert(agent_uid.clone(), [("kind", string(&agent.kind))], [owner])?;
        Ok(agent_uid)
    }

    fn human(&mut self, human: &HumanRow) -> Result<EntityUid, String> {
        let human_uid = uid(&self.types.human, &human.human_id);
        self.insert(human_uid.clone(), [("email", string(&human.email))], [])?;
        Ok(human_uid)
    }

    fn insert<const A: usize, const P: usize>(
        &mut self,
        entity_uid: EntityUid,
        attributes: [(&str, RestrictedExpression); A],
        parents: [EntityUid; P],
    ) -> Result<(), String> {
        let key = entity_uid.to_string();
        if self.entities.contains_key(&key) {
            return Ok(());
        }
        // Cedar takes hash collections; it only looks them up, so their order reaches nothing.
        let attributes: HashMap<String, RestrictedExpression> = attributes
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        let parents: HashSet<EntityUid> = parents.into_iter().collect();
        let entity =
            Entity::new(entity_uid, attributes, parents).map_err(|error| error.to_string())?;
        self.entities.insert(key, entity);
        Ok(())
    }

    fn into_entities(self) -> impl Iterator<Item = Entity> {
        self.entities.into_values()
    }
}

fn uid(type_name: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name.clone(), EntityId::new(id))
}

fn string(value: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(value.to_owned())
}

fn long(value: u64) -> RestrictedExpression {
    RestrictedExpression::new_long(i64::try_from(value).unwrap_or(i64::MAX))
}

fn entity(entity_uid: EntityUid) -> RestrictedExpression {
    RestrictedExpression::new_entity_uid(entity_uid)
}
