//! Turning a message into a record: JSON by default, any format through [`Decoder`].

use crate::key::{KeyShape, OwnedKeyPart};

/// Decodes the messages of a topic into records of `T`. Implement it for Avro, protobuf or raw
/// bytes; [`Json`] is the default. An error is the reason the message is bad: it goes to the
/// dead-letter topic with that reason (or stops the source, if so configured).
pub trait Decoder<T>: Send + Sync + 'static {
    /// Decodes a message's value.
    fn decode(&self, value: &[u8]) -> Result<T, String>;

    /// Decodes a message's key into the record type's primary key. By default the key is text
    /// or JSON (see [`KeyShape::parse`]).
    fn decode_key(&self, key: &[u8], shape: &KeyShape) -> Result<Vec<OwnedKeyPart>, String> {
        shape.parse(key)
    }
}

/// Values are JSON documents of `T` (`serde_json`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

impl<T: serde::de::DeserializeOwned> Decoder<T> for Json {
    fn decode(&self, value: &[u8]) -> Result<T, String> {
        serde_json::from_slice(value).map_err(|e| format!("the value is not a valid record: {e}"))
    }
}
