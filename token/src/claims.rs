//! Reading JWT headers and claims the same strict way in access tokens, client assertions and
//! id_tokens: each is a JSON object without duplicate members (RFC 8725 §2.6), strings are
//! strings, times are NumericDates (non-negative integers no later than [`UNIX_TIME_MAX`]), `aud`
//! is a string or an array of strings, and the validity window is checked with the same leeway
//! rules everywhere.

use std::{collections::BTreeMap, fmt};

use serde::{
    Deserialize, Deserializer,
    de::{MapAccess, Visitor},
};
use serde_json::Value;

use crate::limits::UNIX_TIME_MAX;

/// A header or claim that is absent or has the wrong shape; each caller maps it to its own error.
pub(crate) enum ClaimError {
    Missing(String),
    Malformed(String),
    Expired(String),
    NotYetValid(String),
}

pub(crate) type Claims = BTreeMap<String, Value>;

/// Parses a JSON object, refusing duplicate members and anything that is not an object.
pub(crate) fn parse_object(bytes: &[u8], what: &str) -> Result<Claims, ClaimError> {
    serde_json::from_slice::<StrictObject>(bytes)
        .map(|object| object.0)
        .map_err(|e| {
            ClaimError::Malformed(format!(
                "{what} is not a JSON object without duplicate members: {e}"
            ))
        })
}

struct StrictObject(BTreeMap<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrictVisitor;
        impl<'de> Visitor<'de> for StrictVisitor {
            type Value = StrictObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictObject, A::Error> {
                let mut members = BTreeMap::new();
                while let Some((name, value)) = map.next_entry::<String, Value>()? {
                    if members.contains_key(&name) {
                        return Err(serde::de::Error::custom(format!(
                            "duplicate member {name:?}"
                        )));
                    }
                    members.insert(name, value);
                }
                Ok(StrictObject(members))
            }
        }
        deserializer.deserialize_map(StrictVisitor)
    }
}

pub(crate) fn optional_string(claims: &Claims, name: &str) -> Result<Option<String>, ClaimError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(ClaimError::Malformed(format!(
            "claim {name} is not a string"
        ))),
    }
}

pub(crate) fn string(claims: &Claims, name: &str) -> Result<String, ClaimError> {
    optional_string(claims, name)?
        .ok_or_else(|| ClaimError::Missing(format!("claim {name} is missing")))
}

/// A NumericDate. Strings, fractions, negatives and overflowing numbers are malformed.
pub(crate) fn optional_time(claims: &Claims, name: &str) -> Result<Option<u64>, ClaimError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(value) if value <= UNIX_TIME_MAX => Ok(Some(value)),
            _ => Err(ClaimError::Malformed(format!(
                "claim {name} is not a time in 0..={UNIX_TIME_MAX}"
            ))),
        },
        Some(_) => Err(ClaimError::Malformed(format!(
            "claim {name} is not a number"
        ))),
    }
}

pub(crate) fn time(claims: &Claims, name: &str) -> Result<u64, ClaimError> {
    optional_time(claims, name)?
        .ok_or_else(|| ClaimError::Missing(format!("claim {name} is missing")))
}

/// `aud`: a string or an array of strings.
pub(crate) fn audiences(claims: &Claims) -> Result<Vec<String>, ClaimError> {
    match claims.get("aud") {
        None => Err(ClaimError::Missing("claim aud is missing".to_string())),
        Some(Value::String(aud)) => Ok(vec![aud.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(aud) => Ok(aud.clone()),
                _ => Err(ClaimError::Malformed("aud holds a non-string".to_string())),
            })
            .collect(),
        Some(_) => Err(ClaimError::Malformed(
            "aud is neither a string nor an array of strings".to_string(),
        )),
    }
}

/// The validity window at `now`: expired once `exp + leeway <= now`; not yet valid while `nbf` or
/// `iat` is more than `leeway` ahead. (RFC 8725 §3.10's exact boundary, tested with an injected
/// clock in `jwt`.)
pub(crate) fn check_window(
    exp: u64,
    iat: u64,
    nbf: Option<u64>,
    now: u64,
    leeway_s: u64,
) -> Result<(), ClaimError> {
    if exp.saturating_add(leeway_s) <= now {
        return Err(ClaimError::Expired(format!(
            "it expired at {exp} (now {now}, leeway {leeway_s} s)"
        )));
    }
    for (name, at) in [("nbf", nbf), ("iat", Some(iat))] {
        if let Some(at) = at
            && now.saturating_add(leeway_s) < at
        {
            return Err(ClaimError::NotYetValid(format!(
                "{name} {at} is in the future (now {now}, leeway {leeway_s} s)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_members_are_malformed() {
        let duplicate = parse_object(br#"{"sub":"alice","sub":"admin"}"#, "payload");
        assert!(matches!(duplicate, Err(ClaimError::Malformed(_))));
        assert!(parse_object(br#"{"sub":"alice"}"#, "payload").is_ok());
    }
}
