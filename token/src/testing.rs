//! What the token tests share: a fresh Ed25519 key, claim sets changed one claim at a time, and
//! the stable code a refusal names.

use std::fmt;

use aws_lc_rs::{rand::SystemRandom, signature::Ed25519KeyPair};
use serde_json::Value;

pub(crate) fn ed25519_key_pair() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("generate key");
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse generated key")
}

/// `claims` with `name` set to `value`.
pub(crate) fn with_claim(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

/// `claims` without `name`.
pub(crate) fn without_claim(mut claims: Value, name: &str) -> Value {
    claims
        .as_object_mut()
        .expect("claims are an object")
        .remove(name);
    claims
}

/// A refusal that names a stable code (`ASSERTION_*`, `ID_TOKEN_*`).
pub(crate) trait Refusal {
    fn code(&self) -> &'static str;
}

/// The code of the refusal `result` must be.
pub(crate) fn reason<T: fmt::Debug, E: Refusal>(result: Result<T, E>) -> &'static str {
    result.expect_err("the token must be refused").code()
}
