//! The Cedar schema generated from the identity model, plus the caller attributes a version
//! declares.
//!
//! The model part is static (it does not read state): a policy validated today still validates
//! after a service or an agent is registered, and the edge and apply validate against the same
//! schema without reading anything.

use std::collections::BTreeSet;

use cedar_policy::Schema;
use warrant_proto::log::{self, PolicyAttributeType};

use crate::limits::{self, FieldError, POLICY_ATTRIBUTES_MAX};

/// The entity types and actions, in Cedar's schema syntax. The context type is appended by
/// [`schema_text`], because its `attributes` record depends on the declared attributes.
const MODEL: &str = r#"// Warrant's identity model. Generated; every policy is validated against it in strict mode.
entity Human = { email: String };
// An agent's parent is the human who owns it.
entity Agent in [Human] = { kind: String };
entity Service = { audience: String };
// A tool's id is "<service_id>/<tool name>"; its parent is its service.
entity Tool in [Service] = { name: String };
entity Device = { platform: String };
entity Delegation = { depth: Long, task: String };

action call appliesTo { principal: [Agent], resource: [Tool], context: RequestContext };
action issue appliesTo { principal: [Agent], resource: [Tool], context: RequestContext };
action delegate appliesTo { principal: [Human, Agent], resource: [Tool], context: RequestContext };
"#;

/// The Cedar schema text for `attributes` (assumed to pass [`check_attributes`]; names are
/// quoted, so any name yields a well-formed schema).
pub(super) fn schema_text(attributes: &[log::PolicyAttribute]) -> String {
    let mut declared: Vec<(&str, &str)> = attributes
        .iter()
        .map(|it| (it.name.as_str(), cedar_type(it.r#type)))
        .collect();
    declared.sort_unstable();
    let fields: Vec<String> = declared
        .iter()
        .map(|(name, ty)| format!("  {}?: {ty},\n", quoted(name)))
        .collect();
    format!(
        "{MODEL}\n// Caller attributes declared by the published version (all optional: test them \
         with `has`).\ntype CallerAttributes = {{\n{}}};\n\n{CONTEXT}",
        fields.concat()
    )
}

/// The context every action gets.
const CONTEXT: &str = r#"type RequestContext = {
  // The human the principal acts for (the delegation's root); absent when an agent acts for itself.
  human?: Human,
  // The agents from the root delegation's grantee down to the principal.
  chain: Set<Agent>,
  // The delegation's depth; 0 without one.
  depth: Long,
  delegation?: Delegation,
  task: String,
  scopes: Set<String>,
  // Unix seconds: the batch stamp in apply, the serving node's clock for ASYNC decisions.
  time: Long,
  // delegate only: the agent receiving the grant.
  grantee?: Agent,
  attributes: CallerAttributes,
};
"#;

fn cedar_type(ty: i32) -> &'static str {
    match PolicyAttributeType::try_from(ty) {
        Ok(PolicyAttributeType::Long) => "Long",
        Ok(PolicyAttributeType::Bool) => "Bool",
        // Unspecified never passes `check_attributes`; String is the harmless reading.
        _ => "String",
    }
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.escape_default())
}

/// Compiles the schema for `attributes`. Err only if the generated text does not compile, which
/// only a bug (or a Cedar upgrade) causes: callers fail closed on it.
pub(super) fn schema(attributes: &[log::PolicyAttribute]) -> Result<Schema, String> {
    Schema::from_cedarschema_str(&schema_text(attributes))
        .map(|(schema, _warnings)| schema)
        .map_err(|error| format!("the generated schema does not compile: {error}"))
}

/// The declared attributes' rules: at most [`POLICY_ATTRIBUTES_MAX`], each a Cedar identifier of
/// at most [`limits::ATTRIBUTE_NAME_LEN_MAX`] bytes with a type, names unique.
pub fn check_attributes(attributes: &[log::PolicyAttribute]) -> Result<(), FieldError> {
    if POLICY_ATTRIBUTES_MAX < attributes.len() {
        return Err(FieldError::new(
            "attributes",
            format!("has {} entries", attributes.len()),
            format!("at most {POLICY_ATTRIBUTES_MAX}"),
        ));
    }
    let mut names = BTreeSet::new();
    for (idx, attribute) in attributes.iter().enumerate() {
        let field = format!("attributes[{idx}].name");
        limits::validate_attribute_name(&field, &attribute.name)?;
        if !names.insert(attribute.name.as_str()) {
            return Err(FieldError::new(
                field,
                format!("repeats {}", attribute.name),
                "attribute names unique within the version",
            ));
        }
        match PolicyAttributeType::try_from(attribute.r#type) {
            Ok(PolicyAttributeType::String | PolicyAttributeType::Long)
            | Ok(PolicyAttributeType::Bool) => {}
            Ok(PolicyAttributeType::Unspecified) | Err(_) => {
                return Err(FieldError::new(
                    format!("attributes[{idx}].type"),
                    format!("is {}", attribute.r#type),
                    "POLICY_ATTRIBUTE_TYPE_STRING, _LONG or _BOOL",
                ));
            }
        }
    }
    Ok(())
}
