//! RFC 7523 `private_key_jwt` client assertions: an agent proves who it is by signing a short-lived
//! JWT with an Ed25519 key registered for it, instead of sending a shared secret.
//!
//! Verification takes two steps because the key depends on the token: [`peek`] parses the
//! assertion strictly *without* trusting it and names the agent (`iss`, which must equal `sub`)
//! and the key (`kid`); the caller looks up the public key registered for that pair and hands it
//! to [`verify`], which parses again, checks the signature, and only then interprets the claims.
//!
//! Parsing follows [`crate::jwt`] (rustls's "parse, don't validate"): exactly three strict
//! base64url segments; the header may name only `alg`, `typ` and `kid`; `alg` must be `EdDSA`, the
//! only algorithm an agent key is bound to; key sources in the token (`jku`, `x5u`, `jwk`, `x5c`,
//! `x5t`, `x5t#S256`) are refused, because a token that names its own key proves nothing; JSON
//! objects with duplicate members are refused (RFC 8725 §2.6). Times come from the caller.
//!
//! Unlike RFC 7523 §3, `iat` is required: with it and [`ASSERTION_LIFETIME_MAX_S`] an assertion
//! is valid for minutes at most, which bounds how long the caller must remember each `jti` to
//! refuse replays. Remembering them is the caller's job; this module keeps no state.

use std::collections::BTreeMap;

use aws_lc_rs::signature::Ed25519KeyPair;
use serde_json::Value;

use crate::{
    claims::{self, ClaimError, Claims},
    compact::{self, SplitError},
    limits::KEY_ID_LEN_MAX,
};

/// The `client_assertion_type` form value that announces a JWT client assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The longest an assertion may be valid: `exp - iat` at most, in seconds.
pub const ASSERTION_LIFETIME_MAX_S: u64 = 300;
/// Assertions longer than this (in bytes) are refused before parsing.
pub const ASSERTION_LEN_MAX: usize = 4096;
/// The longest `jti` in bytes. A `jti` is 1 to this many printable ASCII bytes without spaces,
/// so it can be stored and logged as-is for replay detection.
pub const ASSERTION_JTI_LEN_MAX: usize = 128;
/// The longest `kid` in an assertion's header: the same bound as access tokens'.
pub const ASSERTION_KEY_ID_LEN_MAX: usize = KEY_ID_LEN_MAX;

/// The only `alg` an assertion may name: agent keys are Ed25519.
const ALG: &str = "EdDSA";
/// An Ed25519 signature is 64 bytes.
const SIGNATURE_LEN: usize = 64;
/// Header parameters that would let the token choose its own verification key.
const KEY_SOURCES: [&str; 6] = ["jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256"];

/// Why a client assertion was refused. Each message says what was wrong and what is allowed;
/// [`AssertionError::reason`] gives a stable code for logs and error responses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("client assertion is malformed: {0}")]
    Malformed(String),
    #[error("client assertion algorithm is not allowed: {0}")]
    AlgNotAllowed(String),
    #[error("client assertion names its own key: {0}")]
    KeySourceNotAllowed(String),
    #[error("client assertion signature is bad: {0}")]
    BadSignature(String),
    #[error("client assertion has expired: {0}")]
    Expired(String),
    #[error("client assertion is not yet valid: {0}")]
    NotYetValid(String),
    #[error("client assertion lives too long: {0}")]
    LifetimeTooLong(String),
    #[error("client assertion is for another audience: {0}")]
    AudienceMismatch(String),
    #[error("client assertion issuer and subject differ: {0}")]
    IssuerMismatch(String),
    #[error("client assertion lacks a claim: {0}")]
    MissingClaim(String),
    #[error("client assertion is too large: {0}")]
    TooLarge(String),
}

impl AssertionError {
    /// A stable code naming the kind of failure, e.g. `ASSERTION_EXPIRED`.
    pub fn reason(&self) -> &'static str {
        match self {
            AssertionError::Malformed(_) => "ASSERTION_MALFORMED",
            AssertionError::AlgNotAllowed(_) => "ASSERTION_ALG_NOT_ALLOWED",
            AssertionError::KeySourceNotAllowed(_) => "ASSERTION_KEY_SOURCE_NOT_ALLOWED",
            AssertionError::BadSignature(_) => "ASSERTION_BAD_SIGNATURE",
            AssertionError::Expired(_) => "ASSERTION_EXPIRED",
            AssertionError::NotYetValid(_) => "ASSERTION_NOT_YET_VALID",
            AssertionError::LifetimeTooLong(_) => "ASSERTION_LIFETIME_TOO_LONG",
            AssertionError::AudienceMismatch(_) => "ASSERTION_AUDIENCE_MISMATCH",
            AssertionError::IssuerMismatch(_) => "ASSERTION_ISSUER_MISMATCH",
            AssertionError::MissingClaim(_) => "ASSERTION_MISSING_CLAIM",
            AssertionError::TooLarge(_) => "ASSERTION_TOO_LARGE",
        }
    }
}

/// Who an assertion claims to come from, read before its signature is checked: use it only to
/// look up the key, never as an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionClaimsPeek {
    /// `iss` (equal to `sub`): the agent the assertion claims to be.
    pub agent_id: String,
    /// The header's `kid`: which of the agent's registered keys signed it.
    pub key_id: String,
}

/// What a verification is checked against.
pub struct AssertionExpectations<'a> {
    /// `aud` must contain at least one of these (e.g. the issuer URL and the token endpoint URL,
    /// RFC 7523 §3 item 3). An empty slice matches nothing.
    pub audiences: &'a [&'a str],
    pub now_unix_s: u64,
    pub leeway_s: u64,
}

/// An assertion whose signature, audience and times checked out. The caller must still refuse a
/// `jti` it has seen before (until `expires_at_unix_s` plus its leeway has passed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub agent_id: String,
    pub key_id: String,
    pub jti: String,
    pub issued_at_unix_s: u64,
    pub expires_at_unix_s: u64,
}

/// Parses `assertion` strictly without checking its signature and names the agent and key, so
/// the caller can look up the public key registered for them and call [`verify`].
pub fn peek(assertion: &str) -> Result<AssertionClaimsPeek, AssertionError> {
    let parsed = parse(assertion)?;
    let agent_id = agent_id(&parsed.claims)?;
    Ok(AssertionClaimsPeek {
        agent_id,
        key_id: parsed.key_id,
    })
}

/// Verifies `assertion` with the agent's registered Ed25519 `public_key` (raw 32 bytes): the
/// strict parse of [`peek`] again, then the signature, then the claims. The returned `agent_id`
/// and `key_id` are the ones [`peek`] returns for the same string.
pub fn verify(
    assertion: &str,
    public_key: &[u8; 32],
    expect: &AssertionExpectations<'_>,
) -> Result<VerifiedAssertion, AssertionError> {
    let parsed = parse(assertion)?;
    if parsed.signature.len() != SIGNATURE_LEN {
        return Err(AssertionError::BadSignature(format!(
            "signature is {} bytes; allowed: {SIGNATURE_LEN} (Ed25519)",
            parsed.signature.len()
        )));
    }
    if !compact::verify_ed25519(public_key, parsed.signing_input, &parsed.signature) {
        return Err(AssertionError::BadSignature(
            "the signature does not verify with the agent's registered key".to_string(),
        ));
    }
    check_claims(parsed.claims, parsed.key_id, expect)
}

/// Makes a compact assertion: `header` and `claims` serialized as given, signed with `key_pair`.
/// Nothing is checked or added, so tests can make bad assertions too; a good one has header
/// `{"alg":"EdDSA","typ":"JWT","kid":…}` and claims `iss` = `sub` = the agent id, `aud`, `iat`,
/// `exp` (at most [`ASSERTION_LIFETIME_MAX_S`] later) and a fresh `jti`.
pub fn encode_signed(header: &Value, claims: &Value, key_pair: &Ed25519KeyPair) -> String {
    compact::sign_ed25519(
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
        key_pair,
    )
}

/// An assertion that passed the structural checks; nothing in it is trusted yet.
struct Parsed<'a> {
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'a str,
    signature: Vec<u8>,
    key_id: String,
    claims: BTreeMap<String, Value>,
}

fn parse(assertion: &str) -> Result<Parsed<'_>, AssertionError> {
    let compact =
        compact::split(assertion, "assertion", ASSERTION_LEN_MAX).map_err(|e| match e {
            SplitError::TooLarge(message) => AssertionError::TooLarge(message),
            SplitError::Malformed(message) => AssertionError::Malformed(message),
        })?;
    let key_id = check_header(&compact.header)?;
    let claims = claims::parse_object(&compact.payload, "payload")?;
    Ok(Parsed {
        signing_input: compact.signing_input,
        signature: compact.signature,
        key_id,
        claims,
    })
}

/// Checks the header and returns its `kid`.
fn check_header(header_bytes: &[u8]) -> Result<String, AssertionError> {
    let header = claims::parse_object(header_bytes, "header")?;
    // Key sources first, so a token naming its own key is reported as such whatever else it has.
    if let Some(name) = header
        .keys()
        .find(|name| KEY_SOURCES.contains(&name.as_str()))
    {
        return Err(AssertionError::KeySourceNotAllowed(format!(
            "header parameter {name:?} is not allowed: the key is the one registered for the agent"
        )));
    }
    if let Some(name) = header
        .keys()
        .find(|name| !matches!(name.as_str(), "alg" | "typ" | "kid"))
    {
        return Err(AssertionError::Malformed(format!(
            "header parameter {name:?} is not allowed; allowed: alg, typ, kid"
        )));
    }
    match header.get("alg") {
        Some(Value::String(alg)) if alg == ALG => {}
        Some(Value::String(alg)) => {
            return Err(AssertionError::AlgNotAllowed(format!(
                "alg {alg:?} is not allowed; allowed: {ALG}"
            )));
        }
        Some(_) => return Err(AssertionError::Malformed("alg is not a string".to_string())),
        None => return Err(AssertionError::Malformed("header has no alg".to_string())),
    }
    match header.get("typ") {
        None => {}
        Some(Value::String(typ)) if typ.eq_ignore_ascii_case("JWT") => {}
        Some(Value::String(typ)) => {
            return Err(AssertionError::Malformed(format!(
                "typ {typ:?} is not allowed; allowed: JWT, or no typ"
            )));
        }
        Some(_) => return Err(AssertionError::Malformed("typ is not a string".to_string())),
    }
    match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= ASSERTION_KEY_ID_LEN_MAX => {
            Ok(kid.clone())
        }
        Some(Value::String(kid)) => Err(AssertionError::Malformed(format!(
            "kid is {} bytes; allowed: 1 to {ASSERTION_KEY_ID_LEN_MAX}",
            kid.len()
        ))),
        Some(_) => Err(AssertionError::Malformed("kid is not a string".to_string())),
        None => Err(AssertionError::Malformed(
            "header has no kid; allowed: the id of a key registered for the agent".to_string(),
        )),
    }
}

/// `iss`, which RFC 7523 §3 requires to equal `sub`: both name the agent.
fn agent_id(claims: &BTreeMap<String, Value>) -> Result<String, AssertionError> {
    let iss = claims::string(claims, "iss")?;
    let sub = claims::string(claims, "sub")?;
    if iss.is_empty() {
        return Err(AssertionError::Malformed(
            "claim iss is empty; allowed: the agent id".to_string(),
        ));
    }
    if iss != sub {
        return Err(AssertionError::IssuerMismatch(format!(
            "iss {iss:?} differs from sub {sub:?}; allowed: both the agent id"
        )));
    }
    Ok(iss)
}

fn check_claims(
    claims: BTreeMap<String, Value>,
    key_id: String,
    expect: &AssertionExpectations<'_>,
) -> Result<VerifiedAssertion, AssertionError> {
    let agent_id = agent_id(&claims)?;
    check_audience(&claims, expect.audiences)?;
    let exp = claims::time(&claims, "exp")?;
    let iat = claims::optional_time(&claims, "iat")?.ok_or_else(|| {
        AssertionError::MissingClaim(
            "claim iat is missing; it is required so the lifetime is bounded".to_string(),
        )
    })?;
    if exp <= iat {
        return Err(AssertionError::Malformed(format!(
            "exp {exp} is not after iat {iat}"
        )));
    }
    if ASSERTION_LIFETIME_MAX_S < exp - iat {
        return Err(AssertionError::LifetimeTooLong(format!(
            "exp - iat is {} s; allowed: at most {ASSERTION_LIFETIME_MAX_S} s",
            exp - iat
        )));
    }
    let nbf = claims::optional_time(&claims, "nbf")?;
    claims::check_window(exp, iat, nbf, expect.now_unix_s, expect.leeway_s)?;
    let jti = claims::string(&claims, "jti")?;
    if jti.is_empty()
        || ASSERTION_JTI_LEN_MAX < jti.len()
        || !jti.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(AssertionError::Malformed(format!(
            "jti is {} bytes or has other than printable ASCII; allowed: 1 to \
             {ASSERTION_JTI_LEN_MAX} printable ASCII bytes, no spaces",
            jti.len()
        )));
    }
    Ok(VerifiedAssertion {
        agent_id,
        key_id,
        jti,
        issued_at_unix_s: iat,
        expires_at_unix_s: exp,
    })
}

/// `aud` is a string or an array of strings, and must name one of `expected`.
fn check_audience(claims: &Claims, expected: &[&str]) -> Result<(), AssertionError> {
    let audiences = claims::audiences(claims)?;
    if audiences.iter().any(|aud| expected.contains(&aud.as_str())) {
        Ok(())
    } else {
        Err(AssertionError::AudienceMismatch(format!(
            "aud {audiences:?} names none of {expected:?}"
        )))
    }
}

impl From<ClaimError> for AssertionError {
    fn from(error: ClaimError) -> Self {
        match error {
            ClaimError::Missing(message) => AssertionError::MissingClaim(message),
            ClaimError::Malformed(message) => AssertionError::Malformed(message),
            ClaimError::Expired(message) => AssertionError::Expired(message),
            ClaimError::NotYetValid(message) => AssertionError::NotYetValid(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::KeyPair;
    use serde_json::json;

    use super::*;
    use crate::testing::{Refusal, ed25519_key_pair, reason, with_claim, without_claim};

    impl Refusal for AssertionError {
        fn code(&self) -> &'static str {
            self.reason()
        }
    }

    const AGENT: &str = "agent-a";
    const KID: &str = "key-1";
    const ISSUER: &str = "https://warrant.test";
    const TOKEN_ENDPOINT: &str = "https://warrant.test/oauth/token";
    const IAT: u64 = 1_000_000;
    const EXP: u64 = IAT + 60;

    fn public_key(key_pair: &Ed25519KeyPair) -> [u8; 32] {
        key_pair
            .public_key()
            .as_ref()
            .try_into()
            .expect("an Ed25519 public key is 32 bytes")
    }

    fn header() -> Value {
        json!({"alg": "EdDSA", "typ": "JWT", "kid": KID})
    }

    fn claims() -> Value {
        json!({
            "iss": AGENT,
            "sub": AGENT,
            "aud": [TOKEN_ENDPOINT, "https://other.example"],
            "iat": IAT,
            "exp": EXP,
            "jti": "jti-0001",
        })
    }

    fn expect_at(now_unix_s: u64) -> AssertionExpectations<'static> {
        AssertionExpectations {
            audiences: &[ISSUER, TOKEN_ENDPOINT],
            now_unix_s,
            leeway_s: 5,
        }
    }

    /// Signs `header` and `claims` with a fresh key and verifies at `now` with that key.
    fn check_at(
        header: &Value,
        claims: &Value,
        now_unix_s: u64,
    ) -> Result<VerifiedAssertion, AssertionError> {
        let key_pair = ed25519_key_pair();
        let assertion = encode_signed(header, claims, &key_pair);
        verify(&assertion, &public_key(&key_pair), &expect_at(now_unix_s))
    }

    fn check(header: &Value, claims: &Value) -> Result<VerifiedAssertion, AssertionError> {
        check_at(header, claims, IAT + 10)
    }

    #[test]
    fn a_valid_assertion_verifies_with_all_its_fields() {
        let verified = check(&header(), &claims()).expect("valid");
        assert_eq!(
            verified,
            VerifiedAssertion {
                agent_id: AGENT.to_string(),
                key_id: KID.to_string(),
                jti: "jti-0001".to_string(),
                issued_at_unix_s: IAT,
                expires_at_unix_s: EXP,
            }
        );
        // A string aud and no typ are fine too.
        let verified = check(
            &json!({"alg": "EdDSA", "kid": KID}),
            &with_claim(claims(), "aud", json!(ISSUER)),
        )
        .expect("valid");
        assert_eq!(verified.agent_id, AGENT);
    }

    #[test]
    fn peek_names_the_agent_and_key_without_a_key() {
        let assertion = encode_signed(&header(), &claims(), &ed25519_key_pair());
        assert_eq!(
            peek(&assertion).expect("well formed"),
            AssertionClaimsPeek {
                agent_id: AGENT.to_string(),
                key_id: KID.to_string(),
            }
        );
        let other = encode_signed(
            &header(),
            &with_claim(claims(), "sub", json!("agent-b")),
            &ed25519_key_pair(),
        );
        assert_eq!(
            peek(&other).map_err(|e| e.reason()),
            Err("ASSERTION_ISSUER_MISMATCH")
        );
    }

    #[test]
    fn a_different_key_is_a_bad_signature() {
        let assertion = encode_signed(&header(), &claims(), &ed25519_key_pair());
        let other_key = public_key(&ed25519_key_pair());
        assert_eq!(
            reason(verify(&assertion, &other_key, &expect_at(IAT + 10))),
            "ASSERTION_BAD_SIGNATURE"
        );
    }

    #[test]
    fn a_tampered_payload_is_a_bad_signature() {
        let key_pair = ed25519_key_pair();
        let good = encode_signed(&header(), &claims(), &key_pair);
        let forged = encode_signed(
            &header(),
            &with_claim(claims(), "exp", json!(EXP + 100)),
            &key_pair,
        );
        let segments: Vec<&str> = good.split('.').collect();
        let forged_segments: Vec<&str> = forged.split('.').collect();
        let spliced = format!("{}.{}.{}", segments[0], forged_segments[1], segments[2]);
        assert_eq!(
            reason(verify(
                &spliced,
                &public_key(&key_pair),
                &expect_at(IAT + 10)
            )),
            "ASSERTION_BAD_SIGNATURE"
        );
        let truncated = format!("{}.{}.{}", segments[0], segments[1], &segments[2][..80]);
        assert_eq!(
            reason(verify(
                &truncated,
                &public_key(&key_pair),
                &expect_at(IAT + 10)
            )),
            "ASSERTION_BAD_SIGNATURE"
        );
    }

    #[test]
    fn expiry_is_exact_at_the_leeway_boundary() {
        // Leeway 5 s: exp + 4 is still valid, exp + 5 has expired.
        assert!(check_at(&header(), &claims(), EXP + 4).is_ok());
        assert_eq!(
            reason(check_at(&header(), &claims(), EXP + 5)),
            "ASSERTION_EXPIRED"
        );
    }

    #[test]
    fn issued_in_the_future_or_not_before_is_not_yet_valid() {
        assert!(check_at(&header(), &claims(), IAT - 5).is_ok());
        assert_eq!(
            reason(check_at(&header(), &claims(), IAT - 6)),
            "ASSERTION_NOT_YET_VALID"
        );
        let nbf = with_claim(claims(), "nbf", json!(IAT + 30));
        assert_eq!(
            reason(check_at(&header(), &nbf, IAT + 24)),
            "ASSERTION_NOT_YET_VALID"
        );
        assert!(check_at(&header(), &nbf, IAT + 25).is_ok());
    }

    #[test]
    fn the_lifetime_is_at_most_five_minutes() {
        let longest = with_claim(claims(), "exp", json!(IAT + ASSERTION_LIFETIME_MAX_S));
        assert!(check(&header(), &longest).is_ok());
        let too_long = with_claim(claims(), "exp", json!(IAT + ASSERTION_LIFETIME_MAX_S + 1));
        assert_eq!(
            reason(check(&header(), &too_long)),
            "ASSERTION_LIFETIME_TOO_LONG"
        );
        let backwards = with_claim(claims(), "exp", json!(IAT));
        assert_eq!(reason(check(&header(), &backwards)), "ASSERTION_MALFORMED");
    }

    #[test]
    fn iss_must_equal_sub() {
        let other = with_claim(claims(), "sub", json!("agent-b"));
        assert_eq!(
            reason(check(&header(), &other)),
            "ASSERTION_ISSUER_MISMATCH"
        );
    }

    #[test]
    fn required_claims_must_be_present() {
        for name in ["jti", "iat", "exp", "aud", "iss", "sub"] {
            assert_eq!(
                reason(check(&header(), &without_claim(claims(), name))),
                "ASSERTION_MISSING_CLAIM",
                "without {name}"
            );
        }
    }

    #[test]
    fn jti_must_be_printable_ascii_of_bounded_length() {
        let longest = "j".repeat(ASSERTION_JTI_LEN_MAX);
        assert!(check(&header(), &with_claim(claims(), "jti", json!(longest))).is_ok());
        for bad in [
            String::new(),
            "j".repeat(ASSERTION_JTI_LEN_MAX + 1),
            "has space".to_string(),
            "caf\u{e9}".to_string(),
        ] {
            assert_eq!(
                reason(check(&header(), &with_claim(claims(), "jti", json!(bad)))),
                "ASSERTION_MALFORMED",
                "jti {bad:?}"
            );
        }
    }

    #[test]
    fn the_audience_must_name_us() {
        let other = with_claim(claims(), "aud", json!(["https://evil.example"]));
        assert_eq!(
            reason(check(&header(), &other)),
            "ASSERTION_AUDIENCE_MISMATCH"
        );
        let empty = with_claim(claims(), "aud", json!([]));
        assert_eq!(
            reason(check(&header(), &empty)),
            "ASSERTION_AUDIENCE_MISMATCH"
        );
        let number = with_claim(claims(), "aud", json!(7));
        assert_eq!(reason(check(&header(), &number)), "ASSERTION_MALFORMED");
    }

    #[test]
    fn only_eddsa_is_allowed() {
        for alg in ["none", "HS256", "ES256", "RS256", "eddsa", "Ed25519"] {
            let header = json!({"alg": alg, "typ": "JWT", "kid": KID});
            assert_eq!(
                reason(check(&header, &claims())),
                "ASSERTION_ALG_NOT_ALLOWED",
                "alg {alg}"
            );
        }
        let no_alg = json!({"typ": "JWT", "kid": KID});
        assert_eq!(reason(check(&no_alg, &claims())), "ASSERTION_MALFORMED");
    }

    #[test]
    fn key_sources_in_the_header_are_refused() {
        for name in KEY_SOURCES {
            let mut header = header();
            header[name] = json!("https://evil.example/keys");
            assert_eq!(
                reason(check(&header, &claims())),
                "ASSERTION_KEY_SOURCE_NOT_ALLOWED",
                "{name}"
            );
        }
    }

    #[test]
    fn other_header_parameters_and_types_are_malformed() {
        let mut crit = header();
        crit["crit"] = json!(["exp"]);
        assert_eq!(reason(check(&crit, &claims())), "ASSERTION_MALFORMED");
        let mut typ = header();
        typ["typ"] = json!("at+jwt");
        assert_eq!(reason(check(&typ, &claims())), "ASSERTION_MALFORMED");
        let mut lower = header();
        lower["typ"] = json!("jwt");
        assert!(check(&lower, &claims()).is_ok());
        let no_kid = json!({"alg": "EdDSA"});
        assert_eq!(reason(check(&no_kid, &claims())), "ASSERTION_MALFORMED");
    }

    #[test]
    fn duplicate_members_are_malformed() {
        let key_pair = ed25519_key_pair();
        let header = header().to_string();
        let payload = format!(
            r#"{{"iss":"{AGENT}","sub":"{AGENT}","sub":"agent-b","aud":"{ISSUER}","iat":{IAT},"exp":{EXP},"jti":"j"}}"#
        );
        let assertion = compact::sign_ed25519(header.as_bytes(), payload.as_bytes(), &key_pair);
        assert_eq!(
            reason(verify(
                &assertion,
                &public_key(&key_pair),
                &expect_at(IAT + 10)
            )),
            "ASSERTION_MALFORMED"
        );
        let duplicate_alg = r#"{"alg":"EdDSA","alg":"none","kid":"key-1"}"#;
        let assertion = compact::sign_ed25519(
            duplicate_alg.as_bytes(),
            claims().to_string().as_bytes(),
            &key_pair,
        );
        assert_eq!(
            peek(&assertion).map_err(|e| e.reason()),
            Err("ASSERTION_MALFORMED")
        );
    }

    #[test]
    fn the_compact_form_is_strict() {
        let key_pair = ed25519_key_pair();
        let assertion = encode_signed(&header(), &claims(), &key_pair);
        let key = public_key(&key_pair);
        let expect = expect_at(IAT + 10);
        assert!(verify(&assertion, &key, &expect).is_ok());
        let four = format!("{assertion}.AAAA");
        assert_eq!(reason(verify(&four, &key, &expect)), "ASSERTION_MALFORMED");
        let segments: Vec<&str> = assertion.split('.').collect();
        let two = format!("{}.{}", segments[0], segments[1]);
        assert_eq!(reason(verify(&two, &key, &expect)), "ASSERTION_MALFORMED");
        // An Ed25519 signature is 64 bytes: 86 base64url characters, which standard encoders pad
        // with "==".
        let padded = format!("{assertion}==");
        assert_eq!(
            reason(verify(&padded, &key, &expect)),
            "ASSERTION_MALFORMED"
        );
        let standard_alphabet = assertion.replace('-', "+").replace('_', "/");
        if standard_alphabet != assertion {
            assert_eq!(
                reason(verify(&standard_alphabet, &key, &expect)),
                "ASSERTION_MALFORMED"
            );
        }
        let with_space = format!(" {assertion}");
        assert_eq!(
            reason(verify(&with_space, &key, &expect)),
            "ASSERTION_MALFORMED"
        );
    }

    #[test]
    fn oversize_assertions_are_refused_before_parsing() {
        let key_pair = ed25519_key_pair();
        let padding = "p".repeat(ASSERTION_LEN_MAX);
        let big = encode_signed(
            &header(),
            &with_claim(claims(), "pad", json!(padding)),
            &key_pair,
        );
        assert_eq!(
            reason(verify(&big, &public_key(&key_pair), &expect_at(IAT + 10))),
            "ASSERTION_TOO_LARGE"
        );
        assert_eq!(
            peek(&big).map_err(|e| e.reason()),
            Err("ASSERTION_TOO_LARGE")
        );
        assert_eq!(
            peek(&"x".repeat(ASSERTION_LEN_MAX + 1)).map_err(|e| e.reason()),
            Err("ASSERTION_TOO_LARGE")
        );
    }

    #[test]
    fn times_must_be_integer_numeric_dates() {
        for bad in [
            json!("1000060"),
            json!(1_000_060.5),
            json!(-1),
            json!(crate::limits::UNIX_TIME_MAX + 1),
        ] {
            assert_eq!(
                reason(check(&header(), &with_claim(claims(), "exp", bad.clone()))),
                "ASSERTION_MALFORMED",
                "exp {bad}"
            );
        }
    }
}
