//! The compact JWS serialization (RFC 7515 §7.1), split strictly and before anything else is
//! looked at: a length limit, exactly three segments, and strict base64url in each (URL-safe
//! alphabet, no padding, no whitespace, no stray trailing bits). Shared by access tokens, client
//! assertions and upstream id_tokens, which differ only in what their headers and claims may say.

use aws_lc_rs::signature::Ed25519KeyPair;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::ed25519;

/// A compact JWS whose structure checked out; nothing in it is trusted yet.
pub(crate) struct Compact<'a> {
    /// `header.payload`: the bytes the signature covers.
    pub signing_input: &'a str,
    pub header: Vec<u8>,
    pub payload: Vec<u8>,
    pub signature_b64: &'a str,
    pub signature: Vec<u8>,
}

/// Why a compact JWS did not split; each caller maps it to its own error.
pub(crate) enum SplitError {
    TooLarge(String),
    Malformed(String),
}

/// Splits `token` (called `what` in messages) of at most `len_max` bytes.
pub(crate) fn split<'a>(
    token: &'a str,
    what: &str,
    len_max: usize,
) -> Result<Compact<'a>, SplitError> {
    if len_max < token.len() {
        return Err(SplitError::TooLarge(format!(
            "{what} is {} bytes; allowed: at most {len_max}",
            token.len()
        )));
    }
    let segments: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = segments.as_slice() else {
        return Err(SplitError::Malformed(format!(
            "{what} has {} segments; allowed: 3 (a compact JWS)",
            segments.len()
        )));
    };
    let decode = |part: &str, segment: &str| {
        URL_SAFE_NO_PAD.decode(segment).map_err(|_| {
            SplitError::Malformed(format!(
                "{part} is not strict base64url (no padding, no whitespace)"
            ))
        })
    };
    let header = decode("header", header_b64)?;
    let payload = decode("payload", payload_b64)?;
    let signature = decode("signature", signature_b64)?;
    let signing_input_len = header_b64.len() + 1 + payload_b64.len();
    Ok(Compact {
        signing_input: &token[..signing_input_len],
        header,
        payload,
        signature_b64,
        signature,
    })
}

/// Joins `header` and `payload` into a compact JWS signed by `sign`, which is given the signing
/// input and returns the raw signature. Nothing is checked, so tests can make bad tokens too.
pub(crate) fn join(header: &[u8], payload: &[u8], sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Signs `header` and `payload` (the JSON bytes, exactly as given) as a compact JWS with the
/// Ed25519 `key_pair`, by the crate's one signer ([`ed25519::sign`]).
pub(crate) fn sign_ed25519(header: &[u8], payload: &[u8], key_pair: &Ed25519KeyPair) -> String {
    join(header, payload, |input| ed25519::sign(key_pair, input))
}

/// Whether `signature` (raw bytes, already decoded by [`split`]) is an Ed25519 signature by
/// `public_key` (raw 32 bytes) over `signing_input`, by the crate's one verifier
/// ([`ed25519::verify`]).
pub(crate) fn verify_ed25519(public_key: &[u8; 32], signing_input: &str, signature: &[u8]) -> bool {
    ed25519::verify(public_key, signing_input.as_bytes(), signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(token: &str) -> Result<(), String> {
        match split(token, "token", 64) {
            Ok(_) => Ok(()),
            Err(SplitError::TooLarge(message) | SplitError::Malformed(message)) => Err(message),
        }
    }

    #[test]
    fn structure_is_checked_strictly() {
        let cases: &[(&str, Result<(), &str>)] = &[
            ("e30.e30.AAAA", Ok(())),
            (
                "e30.e30",
                Err("token has 2 segments; allowed: 3 (a compact JWS)"),
            ),
            (
                "e30.e30.AA.AA",
                Err("token has 4 segments; allowed: 3 (a compact JWS)"),
            ),
            (
                "e30=.e30.AAAA",
                Err("header is not strict base64url (no padding, no whitespace)"),
            ),
            (
                "e30.e3 0.AAAA",
                Err("payload is not strict base64url (no padding, no whitespace)"),
            ),
            (
                "e30.e30.AA+A",
                Err("signature is not strict base64url (no padding, no whitespace)"),
            ),
        ];
        for (token, expected) in cases {
            assert_eq!(
                verdict(token),
                expected.map_err(str::to_string),
                "token {token:?}"
            );
        }
        let long = "a".repeat(65);
        assert_eq!(
            verdict(&long),
            Err("token is 65 bytes; allowed: at most 64".to_string())
        );
    }

    #[test]
    fn the_signing_input_is_header_dot_payload() {
        let Ok(compact) = split("e30.eyJhIjoxfQ.AAAA", "token", 64) else {
            panic!("splits");
        };
        assert_eq!(compact.signing_input, "e30.eyJhIjoxfQ");
        assert_eq!(compact.payload, br#"{"a":1}"#);
        assert_eq!(compact.signature, vec![0, 0, 0]);
    }
}
