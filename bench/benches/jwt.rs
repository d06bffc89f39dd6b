//! JWT sign and verify with the node's EdDSA key, as Issue and Verify run them.

use divan::Bencher;
use warrant_token::{
    NodeSigningKey,
    jwt::{self, AccessClaims, Expectations, KeyLookup},
};

fn main() {
    divan::main();
}

struct OneKey(String, [u8; 32]);

impl KeyLookup for OneKey {
    type Error = std::convert::Infallible;

    fn public_key(&self, key_id: &str) -> Result<Option<[u8; 32]>, Self::Error> {
        Ok((key_id == self.0).then_some(self.1))
    }
}

fn claims(i: u64) -> AccessClaims {
    AccessClaims {
        iss: "https://warrant.local".into(),
        sub: "alice-assistant".into(),
        aud: "https://calendar.example/mcp".into(),
        exp: 4_000_000_000,
        iat: 1_700_000_000,
        nbf: 1_700_000_000,
        jti: format!("0190c6a2-7e55-7cc0-8f4e-{i:012}"),
        client_id: "alice-assistant".into(),
        scope: "read_events".into(),
        ..Default::default()
    }
}

#[divan::bench]
fn sign(bencher: Bencher) {
    let key = NodeSigningKey::generate_ephemeral().expect("key");
    let claims = claims(1);
    bencher.bench(|| jwt::sign(&key, divan::black_box(&claims)).expect("sign"));
}

/// Full strict verification: parse, header checks, signature, claims.
#[divan::bench]
fn verify(bencher: Bencher) {
    let key = NodeSigningKey::generate_ephemeral().expect("key");
    let token = jwt::sign(&key, &claims(1)).expect("sign");
    let keys = OneKey(key.key_id().to_string(), *key.public_key());
    let expect = Expectations {
        issuer: "https://warrant.local",
        audience: Some("https://calendar.example/mcp"),
        now_unix_s: 1_800_000_000,
        leeway_s: 5,
    };
    bencher.bench(|| {
        let verdict = jwt::verify(divan::black_box(&token), &keys, &expect).expect("verify runs");
        assert!(verdict.is_ok());
    });
}

/// Anchor, measured in the same run: a bare aws-lc-rs Ed25519 signature over a token-sized
/// message. `sign` above minus this is our JWT overhead (serde, base64, key handling).
#[divan::bench]
fn anchor_ed25519_sign(bencher: Bencher) {
    use aws_lc_rs::signature::Ed25519KeyPair;
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).expect("key");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse key");
    let message = [0x5au8; 220];
    bencher.bench(|| pair.sign(divan::black_box(&message)));
}

/// Anchor: a bare aws-lc-rs Ed25519 verification of a token-sized message.
#[divan::bench]
fn anchor_ed25519_verify(bencher: Bencher) {
    use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).expect("key");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse key");
    let message = [0x5au8; 220];
    let sig = pair.sign(&message);
    let public_key =
        UnparsedPublicKey::new(&signature::ED25519, pair.public_key().as_ref().to_vec());
    bencher.bench(|| {
        public_key
            .verify(divan::black_box(&message), sig.as_ref())
            .expect("verifies")
    });
}
