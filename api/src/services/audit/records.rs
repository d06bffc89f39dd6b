//! Event records read through the public descriptors alone (`warrant_proto::
//! PUBLIC_FILE_DESCRIPTOR_SET`, decoded once): the event kind names `Query` accepts, and the
//! proto3 JSON `Export` writes. Nothing here uses the generated Warrant types, so what it
//! produces is what a stock protobuf tool with the shipped `.proto` files produces.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};

use crate::error::ApiError;

/// The full name of the event record.
const EVENT_MESSAGE: &str = "warrant.log.v1.Event";
/// The oneof holding the event's kind.
const EVENT_KIND_ONEOF: &str = "kind";

/// The public descriptor pool, decoded at first use. A failure is a build defect (the bytes are
/// compiled in), reported as an internal error to every call that needs it.
fn pool() -> Result<&'static DescriptorPool, ApiError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(warrant_proto::PUBLIC_FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| ApiError::internal(format!("the public descriptors do not decode: {e}")))
}

/// `warrant.log.v1.Event`'s descriptor.
pub(super) fn event_descriptor() -> Result<MessageDescriptor, ApiError> {
    pool()?.get_message_by_name(EVENT_MESSAGE).ok_or_else(|| {
        ApiError::internal(format!("{EVENT_MESSAGE} is not in the public descriptors"))
    })
}

/// The field names of `Event`'s `kind` oneof, in field order: the one list of event kind names.
pub(super) fn kind_names() -> Result<Vec<String>, ApiError> {
    let event = event_descriptor()?;
    let kind = event
        .oneofs()
        .find(|oneof| oneof.name() == EVENT_KIND_ONEOF)
        .ok_or_else(|| {
            ApiError::internal(format!("{EVENT_MESSAGE} has no oneof {EVENT_KIND_ONEOF}"))
        })?;
    Ok(kind
        .fields()
        .map(|field| field.name().to_string())
        .collect())
}

/// An event record as proto3 JSON with the proto field names (snake_case), appended to `out`.
/// Default values are left out, as proto3 JSON does; 64-bit integers are strings.
pub(super) fn write_event_json(record: &[u8], out: &mut Vec<u8>) -> Result<(), ApiError> {
    let message = DynamicMessage::decode(event_descriptor()?, record)
        .map_err(|e| ApiError::internal(format!("a stored event record does not decode: {e}")))?;
    let options = SerializeOptions::new().use_proto_field_name(true);
    let mut serializer = serde_json::Serializer::new(out);
    message
        .serialize_with_options(&mut serializer, &options)
        .map_err(|e| ApiError::internal(format!("an event record does not encode as JSON: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use prost_reflect::Value;
    use warrant_identity::event_subjects::kind_name;
    use warrant_proto::log;

    use super::*;

    /// The kind names `Query` accepts come from the descriptor, and the exhaustive match in
    /// `identity::event_subjects::kind_name` names every kind the same way: each oneof field,
    /// set through the descriptor alone, decodes to the generated kind of that name.
    #[test]
    fn every_descriptor_kind_is_named_alike_by_the_generated_match() {
        let names = kind_names().expect("names");
        assert!(names.len() >= 27, "{names:?}");
        let event = event_descriptor().expect("event");
        for name in &names {
            let field = event.get_field_by_name(name).expect("field");
            let kind = field.kind();
            let message = kind.as_message().expect("every kind is a message");
            let mut dynamic = DynamicMessage::new(event.clone());
            dynamic.set_field_by_name(name, Value::Message(DynamicMessage::new(message.clone())));
            let decoded = log::Event::decode(dynamic.encode_to_vec().as_slice()).expect("decode");
            let generated = decoded.kind.expect("kind set");
            assert_eq!(kind_name(&generated), name);
        }
    }

    #[test]
    fn an_event_is_written_as_proto3_json_with_proto_field_names() {
        let event = log::Event {
            seq: 3,
            time_unix_ms: 1_700_000_000_123,
            kind: Some(log::event::Kind::HumanRegistered(log::HumanRegistered {
                human_id: "alice".to_string(),
                display_name: "Alice".to_string(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let mut out = Vec::new();
        write_event_json(&event.encode_to_vec(), &mut out).expect("json");
        let json: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(
            json["seq"], "3",
            "64-bit integers are strings in proto3 JSON"
        );
        assert_eq!(json["time_unix_ms"], "1700000000123");
        assert_eq!(json["human_registered"]["human_id"], "alice");
        assert_eq!(json["human_registered"]["display_name"], "Alice");
        assert!(
            json.get("timeUnixMs").is_none(),
            "proto field names, not lowerCamel"
        );
        let refused = write_event_json(&[0xff, 0xff, 0xff], &mut Vec::new()).expect_err("garbage");
        assert_eq!(refused.reason, crate::error::Reason::Internal);
    }
}
