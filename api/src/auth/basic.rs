//! An agent's `Basic` credential: parsing it, and finding the one stored client secret it is
//! checked against.
//!
//! The user part is the agent id, optionally followed by `/` and the id of the credential the
//! secret belongs to: `agent_id[/credential_id]:client_secret`. Ids never contain `/`, so the
//! form is unambiguous. Without a credential id, the secret is checked against the agent's
//! oldest client secret: an agent holding one (the usual case, and the case after an atomic
//! RotateCredential) need not name it, and adding a second secret never breaks a client that
//! presents the first. A client of the newer secret names it until the older one is removed.
//! Either way a presented secret is checked against one stored hash, never against each.

use base64::{Engine, engine::general_purpose::STANDARD};
use tonic::Code;
use warrant_proto::{log, state::AgentRow};

use crate::{
    error::{ApiError, Reason},
    limits::{CLIENT_SECRET_LEN_MAX, CLIENT_SECRET_LEN_MIN},
};

/// The separator between the agent id and a credential id in the user part.
pub const CREDENTIAL_SEPARATOR: char = '/';

/// A well-formed `Basic` credential: ids in the id charset, a secret of the length and
/// characters a client secret may have. Anything else is refused before any lookup or hash.
#[derive(Debug, PartialEq, Eq)]
pub struct BasicCredential {
    pub agent_id: String,
    pub credential_id: Option<String>,
    pub secret: String,
}

impl BasicCredential {
    /// Parses the base64 text after `Basic `.
    pub fn parse(encoded: &str) -> Result<BasicCredential, ApiError> {
        let decoded = STANDARD
            .decode(encoded)
            .map_err(|_| invalid("Basic credential is not valid base64"))?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| invalid("Basic credential is not UTF-8"))?;
        let Some((user, secret)) = decoded.split_once(':') else {
            return Err(invalid(
                "Basic credential must be agent_id:client_secret or \
                 agent_id/credential_id:client_secret",
            ));
        };
        let (agent_id, credential_id) = match user.split_once(CREDENTIAL_SEPARATOR) {
            Some((agent_id, credential_id)) => (agent_id, Some(credential_id)),
            None => (user, None),
        };
        for (field, id) in [
            ("agent_id", Some(agent_id)),
            ("credential_id", credential_id),
        ] {
            if let Some(id) = id
                && let Err(e) = warrant_identity::limits::validate_id(field, id)
            {
                return Err(invalid(format!("the Basic credential's {e}")));
            }
        }
        let len = secret.len();
        if !(CLIENT_SECRET_LEN_MIN..=CLIENT_SECRET_LEN_MAX).contains(&len)
            || !secret.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(invalid(format!(
                "the Basic credential's client secret is {len} bytes; allowed: \
                 {CLIENT_SECRET_LEN_MIN} to {CLIENT_SECRET_LEN_MAX} printable ASCII characters"
            )));
        }
        Ok(BasicCredential {
            agent_id: agent_id.to_string(),
            credential_id: credential_id.map(str::to_string),
            secret: secret.to_string(),
        })
    }

    /// The (credential id, argon2id PHC) the secret is checked against: the named client
    /// secret, else the agent's oldest. None when the agent holds no such client secret.
    pub fn target(&self, agent: &AgentRow) -> Option<(String, String)> {
        agent
            .credentials
            .iter()
            .filter(|it| {
                self.credential_id
                    .as_ref()
                    .is_none_or(|named| &it.credential_id == named)
            })
            .find_map(|it| match &it.kind {
                Some(log::credential::Kind::ClientSecretArgon2id(phc)) => {
                    Some((it.credential_id.clone(), phc.clone()))
                }
                _ => None,
            })
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(Code::Unauthenticated, Reason::CredentialInvalid, message)
}

#[cfg(test)]
mod tests {
    use warrant_proto::log::{Credential, credential::Kind};

    use super::*;

    const SECRET: &str = "s3cret-s3cret-s3cret-s3cret";

    fn parse(text: &str) -> Result<BasicCredential, String> {
        BasicCredential::parse(&STANDARD.encode(text)).map_err(|e| e.message)
    }

    #[test]
    fn parses_the_agent_the_credential_and_the_secret() {
        let accepted = [
            (format!("bot:{SECRET}"), "bot", None),
            (format!("bot/c2:{SECRET}"), "bot", Some("c2")),
            (format!("bot:{SECRET}:x"), "bot", None),
        ];
        for (text, agent_id, credential_id) in accepted {
            let expected = BasicCredential {
                agent_id: agent_id.to_owned(),
                credential_id: credential_id.map(str::to_owned),
                secret: text[text.find(':').expect("a colon") + 1..].to_owned(),
            };
            assert_eq!(parse(&text), Ok(expected), "{text}");
        }
        let ids = "allowed: 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter \
                   or digit";
        let secrets = "allowed: 24 to 256 printable ASCII characters";
        let refused = [
            (
                "bot".to_owned(),
                "Basic credential must be agent_id:client_secret or \
                 agent_id/credential_id:client_secret"
                    .to_owned(),
            ),
            (
                format!(":{SECRET}"),
                format!("the Basic credential's agent_id is empty; {ids}"),
            ),
            (
                format!("bot/:{SECRET}"),
                format!("the Basic credential's credential_id is empty; {ids}"),
            ),
            (
                format!("bot/c/2:{SECRET}"),
                format!("the Basic credential's credential_id contains '/' at byte 1; {ids}"),
            ),
            (
                "bot:short".to_owned(),
                format!("the Basic credential's client secret is 5 bytes; {secrets}"),
            ),
            (
                format!("bot:{SECRET} "),
                format!("the Basic credential's client secret is 28 bytes; {secrets}"),
            ),
        ];
        for (text, message) in refused {
            assert_eq!(parse(&text), Err(message), "{text}");
        }
        assert_eq!(
            BasicCredential::parse("!!!").map_err(|e| e.message),
            Err("Basic credential is not valid base64".to_owned())
        );
    }

    #[test]
    fn the_target_is_the_named_secret_or_the_oldest() {
        let secret = |id: &str| Credential {
            credential_id: id.to_owned(),
            kind: Some(Kind::ClientSecretArgon2id(format!("phc-{id}"))),
        };
        let key = |id: &str| Credential {
            credential_id: id.to_owned(),
            kind: Some(Kind::Ed25519PublicKey(vec![7; 32])),
        };
        let agent = AgentRow {
            credentials: vec![key("k0"), secret("c1"), secret("c2")],
            ..AgentRow::default()
        };
        let target = |user: &str| {
            parse(&format!("{user}:{SECRET}"))
                .expect("well-formed")
                .target(&agent)
        };
        let found = |id: &str| Some((id.to_owned(), format!("phc-{id}")));
        assert_eq!(target("bot"), found("c1"));
        assert_eq!(target("bot/c2"), found("c2"));
        assert_eq!(target("bot/k0"), None, "a key is not a client secret");
        assert_eq!(target("bot/c9"), None);
        let keys_only = AgentRow {
            credentials: vec![key("k0")],
            ..AgentRow::default()
        };
        assert_eq!(
            parse(&format!("bot:{SECRET}"))
                .expect("ok")
                .target(&keys_only),
            None
        );
    }
}
