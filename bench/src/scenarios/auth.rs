//! Credentials as `authorization` metadata: admins and humans as `Bearer`, agents as `Basic`.

use anyhow::Context as _;
use base64::{Engine, engine::general_purpose::STANDARD};
use tonic::{
    Request,
    metadata::{AsciiMetadataValue, MetadataValue},
};

/// `Bearer <token>`.
pub fn bearer(token: &str) -> anyhow::Result<AsciiMetadataValue> {
    MetadataValue::try_from(format!("Bearer {token}")).context("the token is not valid metadata")
}

/// `Basic base64(agent_id:secret)`.
pub fn basic(agent_id: &str, secret: &str) -> AsciiMetadataValue {
    let encoded = STANDARD.encode(format!("{agent_id}:{secret}"));
    MetadataValue::try_from(format!("Basic {encoded}")).expect("base64 is valid metadata")
}

/// `message` carrying `authorization`.
pub fn with_auth<T>(authorization: &AsciiMetadataValue, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", authorization.clone());
    request
}
