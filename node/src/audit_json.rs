//! Messages as proto3 JSON (proto field names), through prost-reflect and the public
//! descriptor set: the same rendering stock protobuf tools give from the shipped `.proto`s.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::Value;
use warrant_proto::log;

fn pool() -> anyhow::Result<&'static DescriptorPool> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(warrant_proto::PUBLIC_FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| anyhow::anyhow!("the public descriptor set: {e}"))
}

/// `message` (of protobuf type `full_name`) as proto3 JSON.
pub fn to_json<M: Message>(message: &M, full_name: &str) -> anyhow::Result<Value> {
    let descriptor = pool()?
        .get_message_by_name(full_name)
        .ok_or_else(|| anyhow::anyhow!("no message {full_name} in the public descriptors"))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())?;
    let options = SerializeOptions::new().use_proto_field_name(true);
    Ok(dynamic.serialize_with_options(serde_json::value::Serializer, &options)?)
}

/// An event from its proto3 JSON (either field naming, enums by name or number, 64-bit
/// integers as strings or numbers: whatever a conforming printer wrote).
pub fn event_from_json(value: &Value) -> anyhow::Result<log::Event> {
    let descriptor = pool()?
        .get_message_by_name("warrant.log.v1.Event")
        .ok_or_else(|| {
            anyhow::anyhow!("no message warrant.log.v1.Event in the public descriptors")
        })?;
    let dynamic = DynamicMessage::deserialize(descriptor, value)?;
    Ok(dynamic.transcode_to::<log::Event>()?)
}

/// An event as proto3 JSON.
pub fn event_json(event: &log::Event) -> anyhow::Result<Value> {
    to_json(event, "warrant.log.v1.Event")
}

/// The field name of the event's kind ("human_registered", ...), as Query's `kinds` takes it.
pub fn event_kind(json: &Value) -> String {
    const HEADER: [&str; 6] = [
        "seq",
        "time_unix_ms",
        "log_index",
        "batch_position",
        "idempotency_key",
        "actor",
    ];
    json.as_object()
        .and_then(|fields| fields.keys().find(|k| !HEADER.contains(&k.as_str())))
        .cloned()
        .unwrap_or_else(|| "unknown".to_string())
}
