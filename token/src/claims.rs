//! Reading JWT claims the same strict way in access tokens, client assertions and id_tokens:
//! strings are strings, times are NumericDates (non-negative integers no later than
//! [`UNIX_TIME_MAX`]), `aud` is a string or an array of strings, and the validity window is
//! checked with the same leeway rules everywhere.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::jwt::UNIX_TIME_MAX;

/// A claim that is absent or has the wrong shape; each caller maps it to its own error.
pub(crate) enum ClaimError {
    Missing(String),
    Malformed(String),
    Expired(String),
    NotYetValid(String),
}

pub(crate) type Claims = BTreeMap<String, Value>;

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
