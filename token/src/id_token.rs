//! Verifying an upstream OpenID Connect ID token (federated human login) against its issuer's
//! JWKS.
//!
//! The caller loads or fetches the issuer's JWKS and builds [`IssuerKeys`] from it; this module
//! does no I/O and reads no clock. Verification follows [`crate::jwt`] (rustls's "parse, don't
//! validate"): exactly three strict base64url segments; the header may name only `alg`, `typ` and
//! `kid`; key sources in the token (`jku`, `x5u`, `jwk`, `x5c`, `x5t`, `x5t#S256`) are refused,
//! because the keys come only from the configured JWKS; `crit` is refused, because we understand
//! no extensions; JSON objects with duplicate members are refused (RFC 8725 §2.6).
//!
//! Each key is bound to one algorithm, chosen by its key type (RSA → RS256, EC P-256 → ES256,
//! OKP Ed25519 → EdDSA), and the token's `alg` must be exactly that one: the token never picks
//! how its own signature is checked, so `none`, HMAC keyed with the public key, and algorithm
//! substitutions are all refused. The signature is checked before any claim is interpreted, and
//! the claims are then checked as OpenID Connect Core 1.0 §3.1.3.7 asks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    RsaPublicKeyComponents,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{
        AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters, Jwk,
        JwkSet, KeyAlgorithm, KeyOperations, OctetKeyPairParameters, PublicKeyUse,
        RSAKeyParameters,
    },
};
use serde::{
    Deserialize, Deserializer,
    de::{MapAccess, SeqAccess, Visitor},
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{
    claims::{self, ClaimError, Claims},
    compact::{self, SplitError},
    limits::KEY_ID_LEN_MAX,
};

/// A JWKS document longer than this (in bytes) is refused before parsing.
pub const JWKS_BYTES_MAX: usize = 64 * 1024;
/// The most keys a JWKS may list, usable or not. Issuers publish a handful during rotation.
pub const JWKS_KEYS_MAX: usize = 32;
/// ID tokens longer than this (in bytes) are refused before parsing.
pub const ID_TOKEN_LEN_MAX: usize = 16 * 1024;
/// The longest `kid`, in the JWKS and in token headers: the same bound as access tokens'.
pub const ID_TOKEN_KEY_ID_LEN_MAX: usize = KEY_ID_LEN_MAX;
/// The longest `sub` in bytes: OpenID Connect Core §2 allows at most 255 ASCII characters.
pub const SUBJECT_LEN_MAX: usize = 255;
/// The smallest RSA modulus accepted, in bits (RFC 7518 §3.3 requires 2048).
pub const RSA_MODULUS_BITS_MIN: usize = 2048;
/// The largest RSA modulus accepted, in bits: the most the RS256 verifier handles.
pub const RSA_MODULUS_BITS_MAX: usize = 8192;

/// Header parameters that would let the token choose its own verification key.
const KEY_SOURCES: [&str; 6] = ["jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256"];

/// The signing keys of one upstream issuer, each bound to the single algorithm its key type
/// allows, by `kid`.
#[derive(Clone, Debug)]
pub struct IssuerKeys {
    keys: BTreeMap<String, BoundKey>,
}

#[derive(Clone, Debug)]
struct BoundKey {
    key: DecodingKey,
    alg: Algorithm,
}

/// Why a JWKS document was refused.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS is {len} bytes; allowed: at most {JWKS_BYTES_MAX}")]
    TooLarge { len: usize },
    #[error("JWKS is malformed: {0}")]
    Malformed(String),
    #[error(
        "JWKS has no usable signing key; allowed: kty RSA (RS256, {RSA_MODULUS_BITS_MIN} to \
         {RSA_MODULUS_BITS_MAX} bits), EC P-256 (ES256) or OKP Ed25519 (EdDSA), with use \"sig\" \
         or no use"
    )]
    NoUsableKeys,
    #[error("JWKS lists {count} keys; allowed: at most {JWKS_KEYS_MAX}")]
    TooManyKeys { count: usize },
    #[error("JWKS has more than one usable key with kid {0:?}; allowed: each kid names one key")]
    DuplicateKeyId(String),
    #[error("JWKS key {kid:?} names alg {named}, but its key type allows only {bound}")]
    AlgMismatch {
        kid: String,
        named: String,
        bound: &'static str,
    },
}

impl IssuerKeys {
    /// Builds the key set from a JWKS document (RFC 7517 §5).
    ///
    /// Keys of other types (`oct`, P-384, …), with a `use` other than `sig`, or with `key_ops`
    /// lacking `verify` are skipped: they can never verify an ID token. Every key kept must have
    /// a `kid` unique among the kept keys, an `alg` (if named) agreeing with its key type, and
    /// sound key material; otherwise the whole document is refused, so a broken JWKS is noticed
    /// when it is loaded rather than at the first login.
    pub fn from_jwks_json(bytes: &[u8]) -> Result<IssuerKeys, JwksError> {
        if JWKS_BYTES_MAX < bytes.len() {
            return Err(JwksError::TooLarge { len: bytes.len() });
        }
        serde_json::from_slice::<NoDuplicateMembers>(bytes).map_err(|e| {
            JwksError::Malformed(format!("not JSON without duplicate members: {e}"))
        })?;
        let set: JwkSet = serde_json::from_slice(bytes)
            .map_err(|e| JwksError::Malformed(format!("not a JWK set: {e}")))?;
        if JWKS_KEYS_MAX < set.keys.len() {
            return Err(JwksError::TooManyKeys {
                count: set.keys.len(),
            });
        }
        let mut keys = BTreeMap::new();
        for jwk in &set.keys {
            let Some((kid, bound)) = bind(jwk)? else {
                continue;
            };
            if keys.contains_key(&kid) {
                return Err(JwksError::DuplicateKeyId(kid));
            }
            keys.insert(kid, bound);
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKeys);
        }
        Ok(IssuerKeys { keys })
    }

    /// How many usable keys the set holds (never zero).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a set without usable keys is refused when built.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid`s of the usable keys, in order.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }
}

/// The algorithm `jwk` is bound to, with its key, or `None` if it is not a signing key of a type
/// we verify.
fn bind(jwk: &Jwk) -> Result<Option<(String, BoundKey)>, JwksError> {
    if !for_signatures(&jwk.common) {
        return Ok(None);
    }
    let Some(alg) = bound_alg(&jwk.algorithm) else {
        return Ok(None);
    };
    let kid = key_id(&jwk.common, alg)?;
    if let Some(named) = jwk.common.key_algorithm
        && named != KeyAlgorithm::from(alg)
    {
        return Err(JwksError::AlgMismatch {
            kid,
            named: format!("{named:?}"),
            bound: alg_name(alg),
        });
    }
    let malformed = |what: &str| JwksError::Malformed(format!("key {kid:?}: {what}"));
    let key = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => rsa_key(rsa, malformed)?,
        AlgorithmParameters::EllipticCurve(ec) => p256_key(ec, malformed)?,
        AlgorithmParameters::OctetKeyPair(okp) => ed25519_key(okp, malformed)?,
        _ => return Ok(None),
    };
    Ok(Some((kid, BoundKey { key, alg })))
}

/// Whether the key may verify signatures: `use` absent or `sig`, `key_ops` absent or naming
/// `verify`, and no encryption `alg`.
fn for_signatures(common: &CommonParameters) -> bool {
    let signing_use = matches!(common.public_key_use, None | Some(PublicKeyUse::Signature))
        && common
            .key_operations
            .as_ref()
            .is_none_or(|ops| ops.contains(&KeyOperations::Verify));
    let encryption_alg = matches!(
        common.key_algorithm,
        Some(KeyAlgorithm::RSA1_5 | KeyAlgorithm::RSA_OAEP | KeyAlgorithm::RSA_OAEP_256)
    );
    signing_use && !encryption_alg
}

/// The one algorithm a key type is bound to, or `None` for a type we do not verify.
fn bound_alg(params: &AlgorithmParameters) -> Option<Algorithm> {
    match params {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Some(Algorithm::EdDSA)
        }
        _ => None,
    }
}

/// The key's `kid`, which every signing key must name, within [`ID_TOKEN_KEY_ID_LEN_MAX`].
fn key_id(common: &CommonParameters, alg: Algorithm) -> Result<String, JwksError> {
    match &common.key_id {
        Some(kid) if !kid.is_empty() && kid.len() <= ID_TOKEN_KEY_ID_LEN_MAX => Ok(kid.clone()),
        Some(kid) => Err(JwksError::Malformed(format!(
            "a {} key's kid is {} bytes; allowed: 1 to {ID_TOKEN_KEY_ID_LEN_MAX}",
            alg_name(alg),
            kid.len()
        ))),
        None => Err(JwksError::Malformed(format!(
            "a {} key has no kid; allowed: every signing key names a kid",
            alg_name(alg)
        ))),
    }
}

/// An RS256 key with a modulus of [`RSA_MODULUS_BITS_MIN`] to [`RSA_MODULUS_BITS_MAX`] bits.
fn rsa_key(
    rsa: &RSAKeyParameters,
    malformed: impl Fn(&str) -> JwksError,
) -> Result<DecodingKey, JwksError> {
    let n = decode_unsigned(&rsa.n).ok_or_else(|| malformed("n is not base64url"))?;
    let e = decode_unsigned(&rsa.e).ok_or_else(|| malformed("e is not base64url"))?;
    let bits = n.first().map_or(0, |first| {
        n.len() * 8 - usize::try_from(first.leading_zeros()).unwrap_or(0)
    });
    if !(RSA_MODULUS_BITS_MIN..=RSA_MODULUS_BITS_MAX).contains(&bits) {
        return Err(malformed(&format!(
            "RSA modulus is {bits} bits; allowed: {RSA_MODULUS_BITS_MIN} to \
             {RSA_MODULUS_BITS_MAX}"
        )));
    }
    RsaPublicKeyComponents { n: &n, e: &e }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .map_err(|e| malformed(&format!("not an RSA public key: {e}")))?;
    Ok(DecodingKey::from_rsa_raw_components(&n, &e))
}

/// An ES256 key: a point on P-256.
fn p256_key(
    ec: &EllipticCurveKeyParameters,
    malformed: impl Fn(&str) -> JwksError,
) -> Result<DecodingKey, JwksError> {
    let x = decode_fixed(&ec.x, 32).ok_or_else(|| malformed("x is not 32 bytes"))?;
    let y = decode_fixed(&ec.y, 32).ok_or_else(|| malformed("y is not 32 bytes"))?;
    let point = [&[0x04][..], &x, &y].concat();
    ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .map_err(|e| malformed(&format!("not a P-256 point: {e}")))?;
    Ok(DecodingKey::from_ec_der(&point))
}

/// An EdDSA key: an Ed25519 public key.
fn ed25519_key(
    okp: &OctetKeyPairParameters,
    malformed: impl Fn(&str) -> JwksError,
) -> Result<DecodingKey, JwksError> {
    let x = decode_fixed(&okp.x, 32).ok_or_else(|| malformed("x is not 32 bytes"))?;
    ParsedPublicKey::new(&ED25519, &x)
        .map_err(|e| malformed(&format!("not an Ed25519 key: {e}")))?;
    Ok(DecodingKey::from_ed_der(&x))
}

/// A big-endian unsigned integer in base64url, with any leading zero bytes removed: RFC 7518
/// forbids them, but some issuers have published them, and the value is the same.
fn decode_unsigned(b64: &str) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(b64).ok()?;
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    Some(bytes[start..].to_vec())
}

fn decode_fixed(b64: &str, len: usize) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(b64)
        .ok()
        .filter(|bytes| bytes.len() == len)
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        _ => "an algorithm we do not verify",
    }
}

/// Why an ID token was refused. Each message says what was wrong and what is allowed;
/// [`IdTokenError::reason`] gives a stable code for logs and error responses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("ID token is malformed: {0}")]
    Malformed(String),
    #[error("ID token algorithm is not allowed: {0}")]
    AlgNotAllowed(String),
    #[error("ID token names its own key: {0}")]
    KeySourceNotAllowed(String),
    #[error("ID token is signed by an unknown key: {0}")]
    UnknownKey(String),
    #[error("ID token signature is bad: {0}")]
    BadSignature(String),
    #[error("ID token has expired: {0}")]
    Expired(String),
    #[error("ID token is not yet valid: {0}")]
    NotYetValid(String),
    #[error("ID token is from another issuer: {0}")]
    IssuerMismatch(String),
    #[error("ID token is for another audience: {0}")]
    AudienceMismatch(String),
    #[error("ID token nonce does not match: {0}")]
    NonceMismatch(String),
    #[error("ID token lacks a claim: {0}")]
    MissingClaim(String),
    #[error("ID token is too large: {0}")]
    TooLarge(String),
}

impl IdTokenError {
    /// A stable code naming the kind of failure, e.g. `ID_TOKEN_EXPIRED`.
    pub fn reason(&self) -> &'static str {
        match self {
            IdTokenError::Malformed(_) => "ID_TOKEN_MALFORMED",
            IdTokenError::AlgNotAllowed(_) => "ID_TOKEN_ALG_NOT_ALLOWED",
            IdTokenError::KeySourceNotAllowed(_) => "ID_TOKEN_KEY_SOURCE_NOT_ALLOWED",
            IdTokenError::UnknownKey(_) => "ID_TOKEN_UNKNOWN_KEY",
            IdTokenError::BadSignature(_) => "ID_TOKEN_BAD_SIGNATURE",
            IdTokenError::Expired(_) => "ID_TOKEN_EXPIRED",
            IdTokenError::NotYetValid(_) => "ID_TOKEN_NOT_YET_VALID",
            IdTokenError::IssuerMismatch(_) => "ID_TOKEN_ISSUER_MISMATCH",
            IdTokenError::AudienceMismatch(_) => "ID_TOKEN_AUDIENCE_MISMATCH",
            IdTokenError::NonceMismatch(_) => "ID_TOKEN_NONCE_MISMATCH",
            IdTokenError::MissingClaim(_) => "ID_TOKEN_MISSING_CLAIM",
            IdTokenError::TooLarge(_) => "ID_TOKEN_TOO_LARGE",
        }
    }
}

/// What a verification is checked against.
pub struct IdTokenExpectations<'a> {
    /// The configured issuer whose keys are passed in; `iss` must equal it exactly.
    pub issuer: &'a str,
    /// Our client id at that issuer; `aud` must contain it, and `azp`, if present, must equal it.
    pub audience: &'a str,
    /// The nonce sent in the authentication request, if one was: then the token must carry it.
    pub nonce: Option<&'a str>,
    pub now_unix_s: u64,
    pub leeway_s: u64,
}

/// An ID token whose signature, issuer, audience, times and nonce checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdToken {
    pub issuer: String,
    /// The issuer's stable id for the human; with `issuer`, the account key.
    pub subject: String,
    pub expires_at_unix_s: u64,
    pub nonce: Option<String>,
    pub email: Option<String>,
    /// True only if the token says `"email_verified": true` (a JSON boolean). An unverified
    /// email must not be used to match an existing account.
    pub email_verified: bool,
    pub name: Option<String>,
}

/// Parses `id_token` strictly without checking its signature and returns its `iss`, so the
/// caller can pick the configured issuer whose keys verify it. Use it for nothing else.
pub fn peek_issuer(id_token: &str) -> Result<String, IdTokenError> {
    let parsed = parse(id_token)?;
    let iss = claims::string(&parsed.claims, "iss")?;
    if iss.is_empty() {
        return Err(IdTokenError::Malformed(
            "claim iss is empty; allowed: the issuer's URL".to_string(),
        ));
    }
    Ok(iss)
}

/// Verifies `id_token` with the issuer's `keys`: the strict parse, the key named by `kid` and
/// the algorithm bound to it, the signature, then the claims.
pub fn verify(
    id_token: &str,
    keys: &IssuerKeys,
    expect: &IdTokenExpectations<'_>,
) -> Result<VerifiedIdToken, IdTokenError> {
    let parsed = parse(id_token)?;
    let Some(bound) = keys.keys.get(&parsed.key_id) else {
        return Err(IdTokenError::UnknownKey(format!(
            "kid {:?} names no key in the issuer's JWKS; known: {:?}",
            parsed.key_id,
            keys.key_ids()
        )));
    };
    if parsed.alg != bound.alg {
        return Err(IdTokenError::AlgNotAllowed(format!(
            "alg {} is not allowed with key {:?}; allowed: {}",
            alg_name(parsed.alg),
            parsed.key_id,
            alg_name(bound.alg)
        )));
    }
    let signature_ok = jsonwebtoken::crypto::verify(
        parsed.signature_b64,
        parsed.signing_input.as_bytes(),
        &bound.key,
        bound.alg,
    )
    .unwrap_or(false);
    if !signature_ok {
        return Err(IdTokenError::BadSignature(format!(
            "the signature does not verify with key {:?}",
            parsed.key_id
        )));
    }
    check_claims(&parsed.claims, expect)
}

/// The digest that names `id_token` when it is spent as a single-use credential: SHA-256 of its
/// signing input (`header.payload`), never of the whole token. Signatures are malleable: an ES256
/// signature (r, s) verifies as (r, n − s) too, and RFC 7518 asks no issuer to emit low-S ones,
/// so refusing high-S would refuse about half the honest tokens. Keyed on what the issuer signed,
/// every signature of the same claims is one login. Call it only on a token that verified.
pub fn single_use_digest(id_token: &str) -> [u8; 32] {
    let signing_input = id_token
        .rsplit_once('.')
        .map_or(id_token, |(signing_input, _)| signing_input);
    Sha256::digest(signing_input.as_bytes()).into()
}

/// An ID token that passed the structural checks; nothing in it is trusted yet.
struct Parsed<'a> {
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'a str,
    signature_b64: &'a str,
    alg: Algorithm,
    key_id: String,
    claims: BTreeMap<String, Value>,
}

fn parse(id_token: &str) -> Result<Parsed<'_>, IdTokenError> {
    let compact = compact::split(id_token, "ID token", ID_TOKEN_LEN_MAX).map_err(|e| match e {
        SplitError::TooLarge(message) => IdTokenError::TooLarge(message),
        SplitError::Malformed(message) => IdTokenError::Malformed(message),
    })?;
    let (alg, key_id) = check_header(&compact.header)?;
    let claims = claims::parse_object(&compact.payload, "payload")?;
    Ok(Parsed {
        signing_input: compact.signing_input,
        signature_b64: compact.signature_b64,
        alg,
        key_id,
        claims,
    })
}

/// Checks the header and returns its `alg` (one we can verify) and `kid`.
fn check_header(header_bytes: &[u8]) -> Result<(Algorithm, String), IdTokenError> {
    let header = claims::parse_object(header_bytes, "header")?;
    // Key sources first, so a token naming its own key is reported as such whatever else it has.
    if let Some(name) = header
        .keys()
        .find(|name| KEY_SOURCES.contains(&name.as_str()))
    {
        return Err(IdTokenError::KeySourceNotAllowed(format!(
            "header parameter {name:?} is not allowed: keys come only from the issuer's JWKS"
        )));
    }
    if header.contains_key("crit") {
        return Err(IdTokenError::Malformed(
            "header parameter \"crit\" is not allowed: no extensions are understood".to_string(),
        ));
    }
    if let Some(name) = header
        .keys()
        .find(|name| !matches!(name.as_str(), "alg" | "typ" | "kid"))
    {
        return Err(IdTokenError::Malformed(format!(
            "header parameter {name:?} is not allowed; allowed: alg, typ, kid"
        )));
    }
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => match alg.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            "EdDSA" => Algorithm::EdDSA,
            other => {
                return Err(IdTokenError::AlgNotAllowed(format!(
                    "alg {other:?} is not allowed; allowed: RS256, ES256 or EdDSA, whichever the \
                     key is bound to"
                )));
            }
        },
        Some(_) => return Err(IdTokenError::Malformed("alg is not a string".to_string())),
        None => return Err(IdTokenError::Malformed("header has no alg".to_string())),
    };
    match header.get("typ") {
        None => {}
        Some(Value::String(typ))
            if typ.eq_ignore_ascii_case("JWT") || typ.eq_ignore_ascii_case("application/jwt") => {}
        Some(Value::String(typ)) => {
            return Err(IdTokenError::Malformed(format!(
                "typ {typ:?} is not an ID token's; allowed: JWT, or no typ"
            )));
        }
        Some(_) => return Err(IdTokenError::Malformed("typ is not a string".to_string())),
    }
    let key_id = match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= ID_TOKEN_KEY_ID_LEN_MAX => {
            kid.clone()
        }
        Some(Value::String(kid)) => {
            return Err(IdTokenError::Malformed(format!(
                "kid is {} bytes; allowed: 1 to {ID_TOKEN_KEY_ID_LEN_MAX}",
                kid.len()
            )));
        }
        Some(_) => return Err(IdTokenError::Malformed("kid is not a string".to_string())),
        None => {
            return Err(IdTokenError::Malformed(
                "header has no kid; allowed: the kid of a key in the issuer's JWKS".to_string(),
            ));
        }
    };
    Ok((alg, key_id))
}

fn check_claims(
    claims: &BTreeMap<String, Value>,
    expect: &IdTokenExpectations<'_>,
) -> Result<VerifiedIdToken, IdTokenError> {
    let iss = claims::string(claims, "iss")?;
    if iss != expect.issuer {
        return Err(IdTokenError::IssuerMismatch(format!(
            "iss {iss:?} is not the expected issuer {:?}",
            expect.issuer
        )));
    }
    check_audience(claims, expect.audience)?;
    let exp = claims::time(claims, "exp")?;
    let iat = claims::time(claims, "iat")?;
    let nbf = claims::optional_time(claims, "nbf")?;
    claims::check_window(exp, iat, nbf, expect.now_unix_s, expect.leeway_s)?;
    let sub = claims::string(claims, "sub")?;
    if sub.is_empty() || SUBJECT_LEN_MAX < sub.len() {
        return Err(IdTokenError::Malformed(format!(
            "sub is {} bytes; allowed: 1 to {SUBJECT_LEN_MAX}",
            sub.len()
        )));
    }
    let nonce = claims::optional_string(claims, "nonce")?;
    if let Some(expected) = expect.nonce {
        match &nonce {
            None => {
                return Err(IdTokenError::MissingClaim(
                    "claim nonce is missing, but the authentication request sent one".to_string(),
                ));
            }
            Some(nonce) if nonce != expected => {
                return Err(IdTokenError::NonceMismatch(
                    "the nonce is not the one the authentication request sent".to_string(),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(VerifiedIdToken {
        issuer: iss,
        subject: sub,
        expires_at_unix_s: exp,
        nonce,
        email: claims::optional_string(claims, "email")?,
        email_verified: claims.get("email_verified") == Some(&Value::Bool(true)),
        name: claims::optional_string(claims, "name")?,
    })
}

/// `aud` is a string or an array of strings and must contain `expected`; `azp`, if present, must
/// equal it (OpenID Connect Core §3.1.3.7 items 3 to 5).
fn check_audience(claims: &Claims, expected: &str) -> Result<(), IdTokenError> {
    let audiences = claims::audiences(claims)?;
    if !audiences.iter().any(|aud| aud == expected) {
        return Err(IdTokenError::AudienceMismatch(format!(
            "aud {audiences:?} does not contain our client id {expected:?}"
        )));
    }
    if let Some(azp) = claims::optional_string(claims, "azp")?
        && azp != expected
    {
        return Err(IdTokenError::AudienceMismatch(format!(
            "azp {azp:?} is not our client id {expected:?}"
        )));
    }
    Ok(())
}

/// Any JSON value in which no object, at any depth, has two members of the same name. Used to
/// refuse a JWKS whose keys could be read two ways.
struct NoDuplicateMembers;

impl<'de> Deserialize<'de> for NoDuplicateMembers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicateMembers;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value without duplicate object members")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(NoDuplicateMembers)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(NoDuplicateMembers)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(NoDuplicateMembers)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(NoDuplicateMembers)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(NoDuplicateMembers)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(NoDuplicateMembers)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<NoDuplicateMembers>()?.is_some() {}
        Ok(NoDuplicateMembers)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut names = BTreeSet::new();
        while let Some(name) = map.next_key::<String>()? {
            map.next_value::<NoDuplicateMembers>()?;
            if !names.insert(name.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate member {name:?}"
                )));
            }
        }
        Ok(NoDuplicateMembers)
    }
}

impl From<ClaimError> for IdTokenError {
    fn from(error: ClaimError) -> Self {
        match error {
            ClaimError::Missing(message) => IdTokenError::MissingClaim(message),
            ClaimError::Malformed(message) => IdTokenError::Malformed(message),
            ClaimError::Expired(message) => IdTokenError::Expired(message),
            ClaimError::NotYetValid(message) => IdTokenError::NotYetValid(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::{
        rand::SystemRandom,
        rsa::{KeyPair as RsaKeyPair, KeySize},
        signature::{
            ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
            RSA_PKCS1_SHA256,
        },
    };
    use serde_json::json;

    use super::*;
    use crate::testing::{Refusal, ed25519_key_pair, reason, with_claim, without_claim};

    impl Refusal for IdTokenError {
        fn code(&self) -> &'static str {
            self.reason()
        }
    }

    const ISSUER: &str = "https://accounts.example";
    const CLIENT_ID: &str = "warrant-client";
    const NONCE: &str = "n-0S6_WzA2Mj";
    const IAT: u64 = 1_000_000;
    const EXP: u64 = IAT + 3600;
    const NOW: u64 = IAT + 10;

    enum TestKey {
        Rsa(Box<RsaKeyPair>),
        Ec(EcdsaKeyPair),
        Ed(Ed25519KeyPair),
    }

    impl TestKey {
        fn rsa() -> TestKey {
            TestKey::Rsa(Box::new(
                RsaKeyPair::generate(KeySize::Rsa2048).expect("generate RSA key"),
            ))
        }

        fn ec() -> TestKey {
            TestKey::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .expect("generate P-256 key"),
            )
        }

        fn ed() -> TestKey {
            TestKey::Ed(ed25519_key_pair())
        }

        fn alg(&self) -> &'static str {
            match self {
                TestKey::Rsa(_) => "RS256",
                TestKey::Ec(_) => "ES256",
                TestKey::Ed(_) => "EdDSA",
            }
        }

        /// The public JWK, built from the key's raw components.
        fn jwk(&self, kid: &str) -> Value {
            let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
            match self {
                TestKey::Rsa(key) => {
                    let public = key.public_key();
                    json!({
                        "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                        "n": b64(public.modulus().big_endian_without_leading_zero()),
                        "e": b64(public.exponent().big_endian_without_leading_zero()),
                    })
                }
                TestKey::Ec(key) => {
                    let point = key.public_key().as_ref();
                    assert_eq!(point.len(), 65, "an uncompressed P-256 point");
                    json!({
                        "kty": "EC", "crv": "P-256", "kid": kid,
                        "x": b64(&point[1..33]), "y": b64(&point[33..]),
                    })
                }
                TestKey::Ed(key) => json!({
                    "kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA",
                    "x": b64(key.public_key().as_ref()),
                }),
            }
        }

        fn sign(&self, message: &[u8]) -> Vec<u8> {
            match self {
                TestKey::Rsa(key) => {
                    let mut signature = vec![0; key.public_modulus_len()];
                    key.sign(
                        &RSA_PKCS1_SHA256,
                        &SystemRandom::new(),
                        message,
                        &mut signature,
                    )
                    .expect("RSA sign");
                    signature
                }
                TestKey::Ec(key) => key
                    .sign(&SystemRandom::new(), message)
                    .expect("ECDSA sign")
                    .as_ref()
                    .to_vec(),
                TestKey::Ed(key) => key.sign(message).as_ref().to_vec(),
            }
        }
    }

    fn sign_raw(header: &str, payload: &str, key: &TestKey) -> String {
        compact::join(header.as_bytes(), payload.as_bytes(), |input| {
            key.sign(input)
        })
    }

    fn sign(header: &Value, claims: &Value, key: &TestKey) -> String {
        sign_raw(&header.to_string(), &claims.to_string(), key)
    }

    fn header(key: &TestKey, kid: &str) -> Value {
        json!({"alg": key.alg(), "typ": "JWT", "kid": kid})
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER,
            "sub": "248289761001",
            "aud": CLIENT_ID,
            "iat": IAT,
            "exp": EXP,
            "nonce": NONCE,
            "email": "jane@example.com",
            "email_verified": true,
            "name": "Jane Doe",
        })
    }

    fn jwks(keys: &[Value]) -> IssuerKeys {
        IssuerKeys::from_jwks_json(json!({ "keys": keys }).to_string().as_bytes())
            .expect("valid JWKS")
    }

    fn expect_nonce(nonce: Option<&str>) -> IdTokenExpectations<'_> {
        IdTokenExpectations {
            issuer: ISSUER,
            audience: CLIENT_ID,
            nonce,
            now_unix_s: NOW,
            leeway_s: 5,
        }
    }

    fn expectations() -> IdTokenExpectations<'static> {
        expect_nonce(Some(NONCE))
    }

    /// Signs with `key` as kid "k1" and verifies against a JWKS holding only that key.
    fn check_with(
        key: &TestKey,
        header: &Value,
        claims: &Value,
        expect: &IdTokenExpectations<'_>,
    ) -> Result<VerifiedIdToken, IdTokenError> {
        let keys = jwks(&[key.jwk("k1")]);
        verify(&sign(header, claims, key), &keys, expect)
    }

    fn check(claims: &Value) -> Result<VerifiedIdToken, IdTokenError> {
        let key = TestKey::ec();
        check_with(&key, &header(&key, "k1"), claims, &expectations())
    }

    fn expected_verified() -> VerifiedIdToken {
        VerifiedIdToken {
            issuer: ISSUER.to_string(),
            subject: "248289761001".to_string(),
            expires_at_unix_s: EXP,
            nonce: Some(NONCE.to_string()),
            email: Some("jane@example.com".to_string()),
            email_verified: true,
            name: Some("Jane Doe".to_string()),
        }
    }

    #[test]
    fn es256_and_eddsa_tokens_verify_with_their_claims() {
        for key in [TestKey::ec(), TestKey::ed()] {
            let verified =
                check_with(&key, &header(&key, "k1"), &claims(), &expectations()).expect("valid");
            assert_eq!(verified, expected_verified(), "{}", key.alg());
        }
    }

    /// The order n of P-256's base point, big-endian (SEC 2 §2.4.2).
    const P256_ORDER: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];

    /// The twin of a fixed-size ES256 signature (r, s): (r, n − s), which verifies as well.
    fn es256_twin(token: &str) -> String {
        let (signing_input, signature_b64) = token.rsplit_once('.').expect("a compact JWS");
        let signature = URL_SAFE_NO_PAD.decode(signature_b64).expect("base64url");
        let (r, s) = signature.split_at(32);
        let mut negated = [0u8; 32];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let mut digit = i16::from(P256_ORDER[i]) - i16::from(s[i]) - borrow;
            borrow = i16::from(digit < 0);
            digit += 256 * borrow;
            negated[i] = u8::try_from(digit).expect("a byte");
        }
        assert_eq!(borrow, 0, "s < n");
        let twin = [r, &negated[..]].concat();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(twin))
    }

    #[test]
    fn an_es256_token_and_its_n_minus_s_twin_are_one_single_use_credential() {
        let key = TestKey::ec();
        let keys = jwks(&[key.jwk("k1")]);
        let token = sign(&header(&key, "k1"), &claims(), &key);
        let twin = es256_twin(&token);
        assert_ne!(twin, token);
        // Both verify: ES256 does not pin s to the low half, and honest issuers emit either.
        assert_eq!(
            verify(&token, &keys, &expectations()),
            Ok(expected_verified())
        );
        assert_eq!(
            verify(&twin, &keys, &expectations()),
            Ok(expected_verified())
        );
        // So the single-use record must not tell them apart.
        assert_eq!(single_use_digest(&twin), single_use_digest(&token));
        // Nor a second (randomized) signature over the same claims: the same login.
        let resigned = sign(&header(&key, "k1"), &claims(), &key);
        assert_ne!(resigned, token);
        assert_eq!(single_use_digest(&resigned), single_use_digest(&token));
        // Other claims are another credential.
        let later = sign(
            &header(&key, "k1"),
            &with_claim(claims(), "iat", json!(IAT + 1)),
            &key,
        );
        assert_ne!(single_use_digest(&later), single_use_digest(&token));
    }

    #[test]
    fn rs256_tokens_verify_and_other_rsa_algorithms_are_refused() {
        let key = TestKey::rsa();
        let verified =
            check_with(&key, &header(&key, "k1"), &claims(), &expectations()).expect("valid");
        assert_eq!(verified, expected_verified());
        for alg in ["RS512", "PS256", "ES256", "EdDSA"] {
            let header = json!({"alg": alg, "kid": "k1"});
            assert_eq!(
                reason(check_with(&key, &header, &claims(), &expectations())),
                "ID_TOKEN_ALG_NOT_ALLOWED",
                "alg {alg} on an RS256 key"
            );
        }
    }

    #[test]
    fn the_right_key_is_chosen_by_kid() {
        let (ec, ed) = (TestKey::ec(), TestKey::ed());
        let keys = jwks(&[ec.jwk("ec-1"), ed.jwk("ed-1")]);
        assert_eq!(keys.key_ids(), vec!["ec-1".to_string(), "ed-1".to_string()]);
        let token = sign(&header(&ed, "ed-1"), &claims(), &ed);
        assert!(verify(&token, &keys, &expectations()).is_ok());
        // Signed by the Ed25519 key but naming the EC key's kid: EdDSA is not its algorithm.
        let token = sign(&header(&ed, "ec-1"), &claims(), &ed);
        assert_eq!(
            reason(verify(&token, &keys, &expectations())),
            "ID_TOKEN_ALG_NOT_ALLOWED"
        );
    }

    #[test]
    fn an_unknown_kid_is_an_unknown_key() {
        let key = TestKey::ec();
        assert_eq!(
            reason(check_with(
                &key,
                &header(&key, "k2"),
                &claims(),
                &expectations()
            )),
            "ID_TOKEN_UNKNOWN_KEY"
        );
    }

    #[test]
    fn the_token_cannot_choose_another_algorithm() {
        let key = TestKey::ec();
        let rs256 = json!({"alg": "RS256", "kid": "k1"});
        assert_eq!(
            reason(check_with(&key, &rs256, &claims(), &expectations())),
            "ID_TOKEN_ALG_NOT_ALLOWED"
        );
        let keys = jwks(&[key.jwk("k1")]);
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        assert_eq!(
            reason(verify(&none, &keys, &expectations())),
            "ID_TOKEN_ALG_NOT_ALLOWED"
        );
        // HS256 keyed with the public key's bytes, the classic confusion.
        let TestKey::Ec(pair) = &key else {
            panic!("an EC key")
        };
        let hmac_key =
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, pair.public_key().as_ref());
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"k1"}"#),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        let tag = aws_lc_rs::hmac::sign(&hmac_key, signing_input.as_bytes());
        let hs256 = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_eq!(
            reason(verify(&hs256, &keys, &expectations())),
            "ID_TOKEN_ALG_NOT_ALLOWED"
        );
    }

    #[test]
    fn a_tampered_payload_is_a_bad_signature() {
        let key = TestKey::ed();
        let keys = jwks(&[key.jwk("k1")]);
        let good = sign(&header(&key, "k1"), &claims(), &key);
        let forged = sign(
            &header(&key, "k1"),
            &with_claim(claims(), "sub", json!("admin")),
            &key,
        );
        let good: Vec<&str> = good.split('.').collect();
        let forged: Vec<&str> = forged.split('.').collect();
        let spliced = format!("{}.{}.{}", good[0], forged[1], good[2]);
        assert_eq!(
            reason(verify(&spliced, &keys, &expectations())),
            "ID_TOKEN_BAD_SIGNATURE"
        );
        let other_signer = TestKey::ed();
        let token = sign(&header(&key, "k1"), &claims(), &other_signer);
        assert_eq!(
            reason(verify(&token, &keys, &expectations())),
            "ID_TOKEN_BAD_SIGNATURE"
        );
    }

    #[test]
    fn the_issuer_must_be_the_expected_one() {
        assert_eq!(
            reason(check(&with_claim(
                claims(),
                "iss",
                json!("https://evil.example")
            ))),
            "ID_TOKEN_ISSUER_MISMATCH"
        );
        assert_eq!(
            reason(check(&with_claim(
                claims(),
                "iss",
                json!(format!("{ISSUER}/"))
            ))),
            "ID_TOKEN_ISSUER_MISMATCH"
        );
    }

    #[test]
    fn the_audience_must_contain_our_client_id() {
        assert_eq!(
            reason(check(&with_claim(claims(), "aud", json!("other-client")))),
            "ID_TOKEN_AUDIENCE_MISMATCH"
        );
        assert!(
            check(&with_claim(
                claims(),
                "aud",
                json!(["other-client", CLIENT_ID])
            ))
            .is_ok()
        );
        assert_eq!(
            reason(check(&with_claim(claims(), "azp", json!("other-client")))),
            "ID_TOKEN_AUDIENCE_MISMATCH"
        );
        assert_eq!(
            reason(check(&without_claim(claims(), "aud"))),
            "ID_TOKEN_MISSING_CLAIM"
        );
    }

    #[test]
    fn the_nonce_must_be_the_one_sent() {
        assert_eq!(
            reason(check(&without_claim(claims(), "nonce"))),
            "ID_TOKEN_MISSING_CLAIM"
        );
        assert_eq!(
            reason(check(&with_claim(
                claims(),
                "nonce",
                json!("another-nonce")
            ))),
            "ID_TOKEN_NONCE_MISMATCH"
        );
        let key = TestKey::ec();
        let verified = check_with(
            &key,
            &header(&key, "k1"),
            &without_claim(claims(), "nonce"),
            &expect_nonce(None),
        )
        .expect("no nonce was sent, none is required");
        assert_eq!(verified.nonce, None);
    }

    #[test]
    fn expiry_is_exact_at_the_leeway_boundary() {
        let key = TestKey::ec();
        let at = |now_unix_s| IdTokenExpectations {
            now_unix_s,
            ..expectations()
        };
        let header = header(&key, "k1");
        assert!(check_with(&key, &header, &claims(), &at(EXP + 4)).is_ok());
        assert_eq!(
            reason(check_with(&key, &header, &claims(), &at(EXP + 5))),
            "ID_TOKEN_EXPIRED"
        );
        assert!(check_with(&key, &header, &claims(), &at(IAT - 5)).is_ok());
        assert_eq!(
            reason(check_with(&key, &header, &claims(), &at(IAT - 6))),
            "ID_TOKEN_NOT_YET_VALID"
        );
    }

    #[test]
    fn required_claims_must_be_present_and_well_typed() {
        for name in ["iss", "sub", "exp", "iat"] {
            assert_eq!(
                reason(check(&without_claim(claims(), name))),
                "ID_TOKEN_MISSING_CLAIM",
                "without {name}"
            );
        }
        assert_eq!(
            reason(check(&with_claim(claims(), "sub", json!("")))),
            "ID_TOKEN_MALFORMED"
        );
        assert_eq!(
            reason(check(&with_claim(
                claims(),
                "sub",
                json!("s".repeat(SUBJECT_LEN_MAX + 1))
            ))),
            "ID_TOKEN_MALFORMED"
        );
        assert_eq!(
            reason(check(&with_claim(claims(), "exp", json!("9999")))),
            "ID_TOKEN_MALFORMED"
        );
        assert_eq!(
            reason(check(&with_claim(claims(), "email", json!(7)))),
            "ID_TOKEN_MALFORMED"
        );
        let unverified =
            check(&with_claim(claims(), "email_verified", json!("true"))).expect("valid");
        assert!(
            !unverified.email_verified,
            "only the JSON boolean true counts"
        );
    }

    #[test]
    fn the_header_is_whitelisted() {
        let key = TestKey::ec();
        for name in KEY_SOURCES {
            let mut header = header(&key, "k1");
            header[name] = json!("https://evil.example/keys");
            assert_eq!(
                reason(check_with(&key, &header, &claims(), &expectations())),
                "ID_TOKEN_KEY_SOURCE_NOT_ALLOWED",
                "{name}"
            );
        }
        for (name, value) in [("crit", json!(["exp"])), ("cty", json!("JWT"))] {
            let mut header = header(&key, "k1");
            header[name] = value;
            assert_eq!(
                reason(check_with(&key, &header, &claims(), &expectations())),
                "ID_TOKEN_MALFORMED",
                "{name}"
            );
        }
        let mut typ = header(&key, "k1");
        typ["typ"] = json!("at+jwt");
        assert_eq!(
            reason(check_with(&key, &typ, &claims(), &expectations())),
            "ID_TOKEN_MALFORMED"
        );
        let no_kid = json!({"alg": "ES256"});
        assert_eq!(
            reason(check_with(&key, &no_kid, &claims(), &expectations())),
            "ID_TOKEN_MALFORMED"
        );
    }

    #[test]
    fn the_compact_form_is_strict() {
        let key = TestKey::ec();
        let keys = jwks(&[key.jwk("k1")]);
        let token = sign(&header(&key, "k1"), &claims(), &key);
        assert!(verify(&token, &keys, &expectations()).is_ok());
        for bad in [
            format!("{token}.e30"),
            format!("{token}=="),
            format!("{token} "),
            token.replacen('.', "..", 1),
        ] {
            assert_eq!(
                reason(verify(&bad, &keys, &expectations())),
                "ID_TOKEN_MALFORMED",
                "{bad}"
            );
        }
        let payload = format!(
            r#"{{"iss":"{ISSUER}","iss":"https://evil.example","sub":"s","aud":"{CLIENT_ID}","iat":{IAT},"exp":{EXP}}}"#
        );
        let duplicate = sign_raw(&header(&key, "k1").to_string(), &payload, &key);
        assert_eq!(
            reason(verify(&duplicate, &keys, &expect_nonce(None))),
            "ID_TOKEN_MALFORMED"
        );
        let big = sign(
            &header(&key, "k1"),
            &with_claim(claims(), "pad", json!("p".repeat(ID_TOKEN_LEN_MAX))),
            &key,
        );
        assert_eq!(
            reason(verify(&big, &keys, &expectations())),
            "ID_TOKEN_TOO_LARGE"
        );
    }

    #[test]
    fn peek_issuer_reads_iss_without_keys() {
        let key = TestKey::ed();
        let token = sign(&header(&key, "whatever"), &claims(), &key);
        assert_eq!(peek_issuer(&token).as_deref(), Ok(ISSUER));
        let no_iss = sign(&header(&key, "k1"), &without_claim(claims(), "iss"), &key);
        assert_eq!(
            peek_issuer(&no_iss).map_err(|e| e.reason()),
            Err("ID_TOKEN_MISSING_CLAIM")
        );
        assert_eq!(
            peek_issuer("a.b").map_err(|e| e.reason()),
            Err("ID_TOKEN_MALFORMED")
        );
    }

    fn jwks_error(document: &str) -> JwksError {
        IssuerKeys::from_jwks_json(document.as_bytes()).expect_err("the JWKS must be refused")
    }

    #[test]
    fn a_jwks_kid_names_one_key() {
        let (a, b) = (TestKey::ec(), TestKey::ed());
        let document = json!({"keys": [a.jwk("same"), b.jwk("same")]}).to_string();
        assert!(matches!(jwks_error(&document), JwksError::DuplicateKeyId(kid) if kid == "same"));
        let mut no_kid = a.jwk("k1");
        no_kid.as_object_mut().expect("object").remove("kid");
        let document = json!({"keys": [no_kid]}).to_string();
        assert!(matches!(jwks_error(&document), JwksError::Malformed(_)));
    }

    #[test]
    fn a_jwks_is_bounded() {
        let key = TestKey::ed();
        let mut padded = key.jwk("k1");
        padded["pad"] = json!("p".repeat(JWKS_BYTES_MAX));
        let document = json!({"keys": [padded]}).to_string();
        assert!(matches!(jwks_error(&document), JwksError::TooLarge { .. }));
        let many: Vec<Value> = (0..=JWKS_KEYS_MAX)
            .map(|i| key.jwk(&format!("k{i}")))
            .collect();
        let document = json!({"keys": many}).to_string();
        assert!(matches!(
            jwks_error(&document),
            JwksError::TooManyKeys { count } if count == JWKS_KEYS_MAX + 1
        ));
        let at_most: Vec<Value> = (0..JWKS_KEYS_MAX)
            .map(|i| key.jwk(&format!("k{i}")))
            .collect();
        assert_eq!(jwks(&at_most).len(), JWKS_KEYS_MAX);
    }

    #[test]
    fn keys_that_cannot_verify_id_tokens_are_skipped() {
        let ec = TestKey::ec();
        let mut encryption = ec.jwk("enc-1");
        encryption["use"] = json!("enc");
        let mut wrap_only = ec.jwk("wrap-1");
        wrap_only["key_ops"] = json!(["wrapKey"]);
        let secret = json!({"kty": "oct", "kid": "hmac-1", "k": "c2VjcmV0"});
        let p384 = json!({"kty": "EC", "crv": "P-384", "kid": "p384-1", "x": "AA", "y": "AA"});
        let x25519 = json!({"kty": "OKP", "crv": "X25519", "kid": "x-1", "x": "AA"});
        let oaep =
            json!({"kty": "RSA", "kid": "oaep-1", "alg": "RSA-OAEP", "n": "AA", "e": "AQAB"});
        let unusable = [encryption, wrap_only, secret, p384, x25519, oaep];
        let document = json!({"keys": unusable}).to_string();
        assert!(matches!(jwks_error(&document), JwksError::NoUsableKeys));
        let mut with_one = unusable.to_vec();
        with_one.push(ec.jwk("sig-1"));
        assert_eq!(jwks(&with_one).key_ids(), vec!["sig-1".to_string()]);
    }

    #[test]
    fn a_jwks_key_must_be_sound() {
        let ed = TestKey::ed();
        let mut mismatched = ed.jwk("k1");
        mismatched["alg"] = json!("ES256");
        let document = json!({"keys": [mismatched]}).to_string();
        assert!(matches!(
            jwks_error(&document),
            JwksError::AlgMismatch { .. }
        ));
        let short = json!({"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": "AAAA"});
        let document = json!({"keys": [short]}).to_string();
        assert!(matches!(jwks_error(&document), JwksError::Malformed(_)));
        let small_rsa = json!({"kty": "RSA", "kid": "k1", "n": URL_SAFE_NO_PAD.encode([0xC5; 128]), "e": "AQAB"});
        let document = json!({"keys": [small_rsa]}).to_string();
        assert!(matches!(jwks_error(&document), JwksError::Malformed(_)));
        let off_curve = json!({"kty": "EC", "crv": "P-256", "kid": "k1",
            "x": URL_SAFE_NO_PAD.encode([1; 32]), "y": URL_SAFE_NO_PAD.encode([1; 32])});
        let document = json!({"keys": [off_curve]}).to_string();
        assert!(matches!(jwks_error(&document), JwksError::Malformed(_)));
        let kid = r#""kid":"k1""#;
        let duplicate = ed
            .jwk("k1")
            .to_string()
            .replacen(kid, &format!("{kid},{kid}"), 1);
        assert_ne!(duplicate, ed.jwk("k1").to_string());
        let document = format!(r#"{{"keys":[{duplicate}]}}"#);
        assert!(matches!(jwks_error(&document), JwksError::Malformed(_)));
        assert!(matches!(jwks_error("[]"), JwksError::Malformed(_)));
    }
}
