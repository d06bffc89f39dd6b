//! Access tokens: RFC 9068 JWTs signed with EdDSA (Ed25519), and their strict verification.
//!
//! Verification parses before it trusts (rustls's "parse, don't validate"): the compact form
//! must have exactly three strict base64url segments; the header may name only `alg`, `typ` and
//! `kid`; `alg` must be `EdDSA` (the only algorithm bound to our keys); key sources in the token
//! (`jku`, `x5u`, `jwk`, `x5c`) are refused; the key comes only from the log's projection. The
//! signature is checked before any claim is interpreted, and JSON objects with duplicate members
//! are refused as malformed (RFC 8725 §2.6).

use std::fmt;

use serde::Serialize;
use serde_json::Value;
use warrant_proto::{api::TokenInvalidReason, log};

use crate::{
    claims::{self, ClaimError},
    compact::{self, SplitError},
    limits::KEY_ID_LEN_MAX,
    signing_key::NodeSigningKey,
};

/// Tokens longer than this are refused before parsing.
pub const TOKEN_LEN_MAX: usize = 8 * 1024;
/// The `typ` RFC 9068 requires of access tokens.
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// The `client_id` of a human's session token, which no agent holds: Warrant's own client.
pub const SESSION_CLIENT_ID: &str = "warrant";
/// The deepest `act` nesting parsed; deeper is malformed. Above identity's delegation depth cap.
pub const ACT_DEPTH_MAX: usize = 16;

/// The claims Warrant puts in an access token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub nbf: u64,
    pub jti: String,
    pub client_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// The session the token belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// RFC 8693 §4.1: the current actor, with the actors before it nested inside.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

/// One level of an RFC 8693 `act` claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// Nests `chain` (current actor first) into an `act` claim; `None` for an empty chain.
    pub fn from_chain(chain: &[String]) -> Option<Actor> {
        let (first, rest) = chain.split_first()?;
        Some(Actor {
            sub: first.clone(),
            act: Actor::from_chain(rest).map(Box::new),
        })
    }
}

impl AccessClaims {
    pub fn from_issued(issuer: &str, issued: &log::TokenIssued) -> Self {
        let non_empty = |value: &str| (!value.is_empty()).then(|| value.to_string());
        AccessClaims {
            iss: issuer.to_string(),
            sub: issued.subject.clone(),
            aud: issued.audience.clone(),
            exp: issued.expires_at_unix_s,
            iat: issued.issued_at_unix_s,
            nbf: issued.issued_at_unix_s,
            jti: issued.jti.clone(),
            client_id: client_id_of(issued).to_string(),
            scope: issued.scopes.join(" "),
            sid: non_empty(&issued.session_id),
            act: Actor::from_chain(&issued.actor_chain),
            delegation_id: non_empty(&issued.delegation_id),
            task: non_empty(&issued.task),
        }
    }
}

/// The `client_id` a logged issuance is signed with: its agent, or Warrant itself for a human's
/// session token.
pub fn client_id_of(issued: &log::TokenIssued) -> &str {
    if issued.agent_id.is_empty() {
        SESSION_CLIENT_ID
    } else {
        &issued.agent_id
    }
}

/// Why a token could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("sign token: {0}")]
pub struct SignError(String);

/// An access token's JOSE header. Members are in the order jsonwebtoken's `Header` writes them
/// (`typ`, `alg`, `kid`), so tokens stay byte-identical to the ones it signed before.
#[derive(Serialize)]
struct AccessHeader<'a> {
    typ: &'a str,
    alg: &'a str,
    kid: &'a str,
}

/// Signs `claims` with the node's key. Ed25519 signatures are deterministic, so signing the same
/// committed claims again yields the same token.
pub fn sign(key: &NodeSigningKey, claims: &AccessClaims) -> Result<String, SignError> {
    let header = AccessHeader {
        typ: ACCESS_TOKEN_TYPE,
        alg: "EdDSA",
        kid: key.key_id(),
    };
    let header = serde_json::to_vec(&header).map_err(|e| SignError(e.to_string()))?;
    let payload = serde_json::to_vec(claims).map_err(|e| SignError(e.to_string()))?;
    Ok(compact::sign_ed25519(&header, &payload, key.key_pair()))
}

/// Why a token is not valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub reason: TokenInvalidReason,
    pub message: String,
}

impl Invalid {
    fn new(reason: TokenInvalidReason, message: impl Into<String>) -> Self {
        Invalid {
            reason,
            message: message.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str_name(), self.message)
    }
}

/// The claims of a token whose signature and times checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedClaims {
    pub key_id: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub sid: Option<String>,
    /// The `act` chain, current actor first.
    pub actor_chain: Vec<String>,
    pub delegation_id: Option<String>,
    pub task: Option<String>,
}

/// What a verification is checked against.
pub struct Expectations<'a> {
    pub issuer: &'a str,
    /// The audience the caller expects, if it named one.
    pub audience: Option<&'a str>,
    pub now_unix_s: u64,
    pub leeway_s: u64,
}

/// Looks up the raw Ed25519 public key for a `kid`.
pub trait KeyLookup {
    /// A failure to look (storage), distinct from "no such key".
    type Error;

    fn public_key(&self, key_id: &str) -> Result<Option<[u8; 32]>, Self::Error>;
}

/// Verifies a compact JWS access token. `Ok(Err(_))` is an invalid token; `Err(_)` is a failure
/// to look up its key, which the caller reports as an error.
pub fn verify<L: KeyLookup + ?Sized>(
    token: &str,
    keys: &L,
    expect: &Expectations<'_>,
) -> Result<Result<VerifiedClaims, Invalid>, L::Error> {
    use TokenInvalidReason as R;
    let compact = match compact::split(token, "token", TOKEN_LEN_MAX) {
        Ok(compact) => compact,
        Err(SplitError::TooLarge(message)) => return Ok(Err(Invalid::new(R::TooLarge, message))),
        Err(SplitError::Malformed(message)) => {
            return Ok(Err(Invalid::new(R::Malformed, message)));
        }
    };
    let (header_bytes, payload_bytes, signature) =
        (&compact.header, &compact.payload, &compact.signature);
    let key_id = match check_header(header_bytes) {
        Ok(key_id) => key_id,
        Err(invalid) => return Ok(Err(invalid)),
    };
    let Some(public_key) = keys.public_key(&key_id)? else {
        return Ok(Err(Invalid::new(
            R::UnknownKey,
            "the token's kid names no key this cluster published",
        )));
    };
    if signature.len() != 64 {
        return Ok(Err(Invalid::new(
            R::BadSignature,
            format!(
                "signature is {} bytes; allowed: 64 (Ed25519)",
                signature.len()
            ),
        )));
    }
    if !compact::verify_ed25519(&public_key, compact.signing_input, signature) {
        return Ok(Err(Invalid::new(
            R::BadSignature,
            "the signature does not verify with the named key",
        )));
    }
    Ok(check_claims(payload_bytes, key_id, expect))
}

fn check_header(header_bytes: &[u8]) -> Result<String, Invalid> {
    use TokenInvalidReason as R;
    let header = claims::parse_object(header_bytes, "header")?;
    for name in header.keys() {
        match name.as_str() {
            "alg" | "typ" | "kid" => {}
            "jku" | "x5u" | "jwk" | "x5c" | "x5t" | "x5t#S256" => {
                return Err(Invalid::new(
                    R::KeySourceNotAllowed,
                    format!(
                        "header parameter {name:?} is not allowed: keys come only from the cluster's published keys"
                    ),
                ));
            }
            other => {
                return Err(Invalid::new(
                    R::Malformed,
                    format!("header parameter {other:?} is not allowed; allowed: alg, typ, kid"),
                ));
            }
        }
    }
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "EdDSA" => {}
        Some(Value::String(alg)) => {
            return Err(Invalid::new(
                R::AlgNotAllowed,
                format!("alg {alg:?} is not allowed; allowed: EdDSA"),
            ));
        }
        Some(_) => return Err(Invalid::new(R::Malformed, "alg is not a string")),
        None => return Err(Invalid::new(R::Malformed, "header has no alg")),
    }
    match header.get("typ") {
        Some(Value::String(typ))
            if typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
                || typ.eq_ignore_ascii_case("application/at+jwt") => {}
        Some(Value::String(typ)) => {
            return Err(Invalid::new(
                R::WrongTokenType,
                format!("typ {typ:?} is not an access token; allowed: at+jwt"),
            ));
        }
        Some(_) => return Err(Invalid::new(R::Malformed, "typ is not a string")),
        None => {
            return Err(Invalid::new(
                R::WrongTokenType,
                "header has no typ; allowed: at+jwt",
            ));
        }
    }
    match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= KEY_ID_LEN_MAX => {
            Ok(kid.clone())
        }
        Some(Value::String(kid)) => Err(Invalid::new(
            R::Malformed,
            format!("kid is {} bytes; allowed: 1 to {KEY_ID_LEN_MAX}", kid.len()),
        )),
        Some(_) => Err(Invalid::new(R::Malformed, "kid is not a string")),
        None => Err(Invalid::new(R::Malformed, "header has no kid")),
    }
}

fn check_claims(
    payload_bytes: &[u8],
    key_id: String,
    expect: &Expectations<'_>,
) -> Result<VerifiedClaims, Invalid> {
    use TokenInvalidReason as R;
    let claims = claims::parse_object(payload_bytes, "payload")?;
    let iss = claims::string(&claims, "iss")?;
    if iss != expect.issuer {
        return Err(Invalid::new(
            R::IssuerMismatch,
            format!(
                "iss {iss:?} is not this cluster's issuer {:?}",
                expect.issuer
            ),
        ));
    }
    let sub = claims::string(&claims, "sub")?;
    let jti = claims::string(&claims, "jti")?;
    let client_id = claims::string(&claims, "client_id")?;
    let aud = claims::audiences(&claims)?;
    if aud.is_empty() {
        return Err(Invalid::new(R::AudienceMismatch, "aud is empty"));
    }
    if let Some(expected) = expect.audience
        && !aud.iter().any(|a| a == expected)
    {
        return Err(Invalid::new(
            R::AudienceMismatch,
            format!("the token is not for audience {expected:?}"),
        ));
    }
    let exp = claims::time(&claims, "exp")?;
    let iat = claims::time(&claims, "iat")?;
    let nbf = claims::optional_time(&claims, "nbf")?;
    claims::check_window(exp, iat, nbf, expect.now_unix_s, expect.leeway_s)?;
    let scopes = claims::optional_string(&claims, "scope")?
        .map(|scope| {
            scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let actor_chain = match claims.get("act") {
        None => Vec::new(),
        Some(act) => parse_act(act)?,
    };
    Ok(VerifiedClaims {
        key_id,
        sub,
        aud,
        exp,
        iat,
        jti,
        client_id,
        scopes,
        sid: claims::optional_string(&claims, "sid")?,
        actor_chain,
        delegation_id: claims::optional_string(&claims, "delegation_id")?,
        task: claims::optional_string(&claims, "task")?,
    })
}

impl From<ClaimError> for Invalid {
    fn from(error: ClaimError) -> Self {
        use TokenInvalidReason as R;
        match error {
            ClaimError::Missing(message) => Invalid::new(R::MissingClaim, message),
            ClaimError::Malformed(message) => Invalid::new(R::Malformed, message),
            ClaimError::Expired(message) => Invalid::new(R::Expired, message),
            ClaimError::NotYetValid(message) => Invalid::new(R::NotYetValid, message),
        }
    }
}

/// Flattens a nested `act` claim into a chain, current actor first. Each level is an object with
/// a string `sub` and optionally a nested `act`; nesting deeper than [`ACT_DEPTH_MAX`] is
/// malformed. Iterative, so no input can exhaust the stack.
fn parse_act(act: &Value) -> Result<Vec<String>, Invalid> {
    let mut chain = Vec::new();
    let mut level = Some(act);
    while let Some(value) = level {
        if ACT_DEPTH_MAX <= chain.len() {
            return Err(Invalid::new(
                TokenInvalidReason::Malformed,
                format!("act is nested deeper than {ACT_DEPTH_MAX}"),
            ));
        }
        let Value::Object(object) = value else {
            return Err(Invalid::new(
                TokenInvalidReason::Malformed,
                "act is not an object",
            ));
        };
        match object.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => chain.push(sub.clone()),
            _ => {
                return Err(Invalid::new(
                    TokenInvalidReason::Malformed,
                    "act has no string sub",
                ));
            }
        }
        if let Some(name) = object
            .keys()
            .find(|it| !matches!(it.as_str(), "sub" | "act"))
        {
            return Err(Invalid::new(
                TokenInvalidReason::Malformed,
                format!("act has member {name:?}; allowed: sub, act"),
            ));
        }
        level = object.get("act");
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct OneKey(String, [u8; 32]);

    impl KeyLookup for OneKey {
        type Error = std::convert::Infallible;

        fn public_key(&self, key_id: &str) -> Result<Option<[u8; 32]>, Self::Error> {
            Ok((key_id == self.0).then_some(self.1))
        }
    }

    const ISSUER: &str = "https://warrant.test";
    const AUDIENCE: &str = "https://calendar.example/mcp";

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: ISSUER.into(),
            sub: "agent-a".into(),
            aud: AUDIENCE.into(),
            exp: 1_000_600,
            iat: 1_000_000,
            nbf: 1_000_000,
            jti: "jti-1".into(),
            client_id: "agent-a".into(),
            scope: "read_events create_event".into(),
            sid: None,
            act: None,
            delegation_id: None,
            task: None,
        }
    }

    /// The signer writes the compact form itself now; it must write exactly what jsonwebtoken
    /// wrote (Ed25519 is deterministic), so tokens signed before and after compare equal and a
    /// re-signed committed issuance is the same token.
    #[test]
    fn tokens_are_byte_identical_to_jsonwebtoken_encode() {
        use aws_lc_rs::{rand::SystemRandom, signature::Ed25519KeyPair};
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("generate key");
        let key = NodeSigningKey::from_pkcs8(pkcs8.as_ref()).expect("parse key");
        let reference_key = jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref());
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_string());
        header.kid = Some(key.key_id().to_string());
        let everything = AccessClaims {
            sid: Some("session-1".into()),
            act: Actor::from_chain(&["agent-b".into(), "agent-a".into()]),
            delegation_id: Some("delegation-1".into()),
            task: Some("book a \"room\" / été ✓ \u{7f}".into()),
            ..claims()
        };
        let minimal = AccessClaims {
            scope: String::new(),
            ..claims()
        };
        for claims in [claims(), everything, minimal] {
            let ours = sign(&key, &claims).expect("sign");
            let reference =
                jsonwebtoken::encode(&header, &claims, &reference_key).expect("reference encode");
            assert_eq!(ours, reference, "claims {claims:?}");
        }
    }

    #[test]
    fn the_act_chain_round_trips_nested() {
        let mut delegated = claims();
        delegated.sub = "human-h".into();
        delegated.client_id = "agent-b".into();
        delegated.act = Actor::from_chain(&["agent-b".to_string(), "agent-a".to_string()]);
        delegated.sid = Some("s1".into());
        delegated.delegation_id = Some("d2".into());
        let json = serde_json::to_value(&delegated).expect("serialise");
        assert_eq!(
            json["act"],
            serde_json::json!({"sub": "agent-b", "act": {"sub": "agent-a"}})
        );
        let verified = check(&delegated, 1_000_100).expect("valid");
        assert_eq!(verified.actor_chain, vec!["agent-b", "agent-a"]);
        assert_eq!(verified.sid.as_deref(), Some("s1"));
        assert_eq!(verified.delegation_id.as_deref(), Some("d2"));
    }

    #[test]
    fn act_nesting_is_bounded_and_shaped() {
        let mut act = serde_json::json!({"sub": "leaf"});
        for _ in 0..ACT_DEPTH_MAX {
            act = serde_json::json!({"sub": "x", "act": act});
        }
        assert_eq!(
            parse_act(&act).map_err(|it| it.reason),
            Err(TokenInvalidReason::Malformed)
        );
        let extra = serde_json::json!({"sub": "a", "iss": "x"});
        assert!(parse_act(&extra).is_err());
        let no_sub = serde_json::json!({"act": {"sub": "a"}});
        assert!(parse_act(&no_sub).is_err());
        assert_eq!(
            parse_act(&serde_json::json!({"sub": "a"})).expect("one level"),
            vec!["a"]
        );
    }

    /// Signs `claims`, then verifies at `now` with a leeway of 5 s.
    fn check(claims: &AccessClaims, now_unix_s: u64) -> Result<VerifiedClaims, TokenInvalidReason> {
        let key = NodeSigningKey::generate_ephemeral().expect("generate key");
        let token = sign(&key, claims).expect("sign");
        let keys = OneKey(key.key_id().to_string(), *key.public_key());
        let expect = Expectations {
            issuer: ISSUER,
            audience: Some(AUDIENCE),
            now_unix_s,
            leeway_s: 5,
        };
        let Ok(verdict) = verify(&token, &keys, &expect);
        verdict.map_err(|invalid| invalid.reason)
    }

    #[test]
    fn a_fresh_token_verifies_with_its_claims() {
        let verified = check(&claims(), 1_000_100).expect("valid");
        assert_eq!(verified.sub, "agent-a");
        assert_eq!(verified.aud, vec![AUDIENCE.to_string()]);
        assert_eq!(
            verified.scopes,
            vec!["read_events".to_string(), "create_event".to_string()]
        );
        assert_eq!((verified.iat, verified.exp), (1_000_000, 1_000_600));
    }

    #[test]
    fn expiry_is_exact_at_the_leeway_boundary() {
        // Row 19: with leeway 5 s, exp + 4 is still valid and exp + 5 is expired.
        assert!(check(&claims(), 1_000_604).is_ok());
        assert_eq!(
            check(&claims(), 1_000_605).err(),
            Some(TokenInvalidReason::Expired)
        );
    }

    #[test]
    fn not_before_and_issued_at_in_the_future_are_rejected() {
        assert_eq!(
            check(&claims(), 999_994).err(),
            Some(TokenInvalidReason::NotYetValid)
        );
        assert!(check(&claims(), 999_995).is_ok());
    }

    #[test]
    fn the_audience_must_match_when_the_caller_names_one() {
        let mut other = claims();
        other.aud = "https://other.example".into();
        assert_eq!(
            check(&other, 1_000_100).err(),
            Some(TokenInvalidReason::AudienceMismatch)
        );
    }

    #[test]
    fn the_issuer_must_be_ours() {
        let mut other = claims();
        other.iss = "https://evil.example".into();
        assert_eq!(
            check(&other, 1_000_100).err(),
            Some(TokenInvalidReason::IssuerMismatch)
        );
    }

    #[test]
    fn a_token_signed_by_an_unknown_key_names_no_published_key() {
        let signer = NodeSigningKey::generate_ephemeral().expect("generate key");
        let published = NodeSigningKey::generate_ephemeral().expect("generate key");
        let token = sign(&signer, &claims()).expect("sign");
        let keys = OneKey(published.key_id().to_string(), *published.public_key());
        let expect = Expectations {
            issuer: ISSUER,
            audience: None,
            now_unix_s: 1_000_100,
            leeway_s: 5,
        };
        let Ok(verdict) = verify(&token, &keys, &expect);
        assert_eq!(
            verdict.err().map(|i| i.reason),
            Some(TokenInvalidReason::UnknownKey)
        );
    }
}
