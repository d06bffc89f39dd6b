//! The cluster's peer secret: every peer RPC carries it and every node checks it.
//!
//! Peers share the public gRPC port, and `Forward` commits a command as whatever actor it names,
//! so without the secret anyone who can reach the port could act as anyone. The secret is the
//! same on every member (the node binary's `peer_secret` config key).

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::{Request, Status, metadata::MetadataValue};

/// The metadata key that carries the peer secret.
pub const PEER_SECRET_METADATA: &str = "x-warrant-peer-secret";
/// The key nodes used before the secret was renamed. For one release the server accepts it and
/// the client sends it beside the new key, so a rolling upgrade, in which old and new nodes run
/// side by side, keeps working in both directions. Drop it in the release after.
pub const PEER_SECRET_METADATA_OLD: &str = "x-warrant-peer";

/// The cluster's peer secret. Cheap to clone.
#[derive(Clone)]
pub(crate) struct PeerSecret {
    /// What the client sends.
    secret: Arc<str>,
    /// What the server compares against: SHA-256, so that the comparison takes the same time
    /// whatever the length of what a caller presents.
    sha256: [u8; 32],
}

impl PeerSecret {
    /// The secret `secret`. Empty only in tests of a single process.
    pub(crate) fn new(secret: &str) -> Self {
        PeerSecret {
            secret: secret.into(),
            sha256: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    /// `message` as a request that carries the peer secret.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Ok(value) = MetadataValue::try_from(&*self.secret) {
            let metadata = request.metadata_mut();
            metadata.insert(PEER_SECRET_METADATA, value.clone());
            // Nodes of the previous release read only the old key (see its doc comment).
            metadata.insert(PEER_SECRET_METADATA_OLD, value);
        }
        request
    }

    /// Refuses a request that does not carry the cluster's peer secret: only members may append
    /// entries, vote, install snapshots, forward commands or ask for read indexes. The new key
    /// wins when a request carries both.
    pub(crate) fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let metadata = request.metadata();
        let presented = metadata
            .get(PEER_SECRET_METADATA)
            .or_else(|| metadata.get(PEER_SECRET_METADATA_OLD))
            .map(|value| value.as_bytes())
            .unwrap_or_default();
        let presented: [u8; 32] = Sha256::digest(presented).into();
        if bool::from(presented[..].ct_eq(&self.sha256[..])) {
            return Ok(());
        }
        Err(Status::unauthenticated(
            "peer RPCs need the cluster's peer secret (x-warrant-peer-secret); they are for \
             cluster members only",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(headers: &[(&'static str, &str)]) -> Request<()> {
        let mut request = Request::new(());
        for (key, value) in headers {
            request
                .metadata_mut()
                .insert(*key, value.parse().expect("ascii"));
        }
        request
    }

    #[test]
    fn a_request_built_with_the_secret_passes_the_check() {
        let secret = PeerSecret::new("the-cluster-peer-secret");
        let request = secret.request(());
        assert!(secret.check(&request).is_ok());
        // Nodes of the previous release read the old key: the client sends both.
        for key in [PEER_SECRET_METADATA, PEER_SECRET_METADATA_OLD] {
            assert_eq!(
                request.metadata().get(key).map(|v| v.as_bytes()),
                Some(&b"the-cluster-peer-secret"[..]),
                "{key}"
            );
        }
    }

    #[test]
    fn either_key_is_accepted_and_the_new_one_wins() {
        let secret = PeerSecret::new("the-cluster-peer-secret");
        let right = "the-cluster-peer-secret";
        let wrong = "not-the-secret";
        let accepted = [
            vec![(PEER_SECRET_METADATA, right)],
            vec![(PEER_SECRET_METADATA_OLD, right)],
            vec![
                (PEER_SECRET_METADATA, right),
                (PEER_SECRET_METADATA_OLD, wrong),
            ],
        ];
        for headers in accepted {
            assert!(secret.check(&request_with(&headers)).is_ok(), "{headers:?}");
        }
        let refused = [
            vec![],
            vec![(PEER_SECRET_METADATA, wrong)],
            vec![(PEER_SECRET_METADATA_OLD, wrong)],
            vec![
                (PEER_SECRET_METADATA, wrong),
                (PEER_SECRET_METADATA_OLD, right),
            ],
            vec![("x-warrant-peer-secret-extra", right)],
        ];
        for headers in refused {
            let status = secret
                .check(&request_with(&headers))
                .expect_err("a request without the secret");
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{headers:?}");
        }
    }
}
