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
