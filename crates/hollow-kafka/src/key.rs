//! Message keys as primary keys: parsing a Kafka message key into the parts of the record
//! type's primary key, and reading the primary key of a decoded record, so that the two can be
//! compared and a tombstone can delete by key.

use hollow_core::schema::Kind;
use hollow_core::{KeyPart, Schema};
use serde::ser::{self, Impossible, Serialize};

/// One field of a primary key, owned (see [`KeyPart`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OwnedKeyPart {
    /// A null field.
    Null,
    /// An integer field (a `u64` as its bits), or a `bool` as 0 / 1.
    Int(i64),
    /// A float field, as its IEEE bits (an `f32`'s bits widened).
    Float(u64),
    /// A string or bytes field, or a 128-bit integer as its 16 little-endian bytes.
    Bytes(Vec<u8>),
}

impl OwnedKeyPart {
    /// The borrowed form the indexes take.
    pub fn as_part(&self) -> KeyPart<'_> {
        match self {
            OwnedKeyPart::Null => KeyPart::Null,
            OwnedKeyPart::Int(v) => KeyPart::Int(*v),
            OwnedKeyPart::Float(v) => KeyPart::Float(*v),
            OwnedKeyPart::Bytes(b) => KeyPart::Bytes(b),
        }
    }
}

/// The primary key of the record type a topic holds: its field names and kinds, in key order.
#[derive(Clone, Debug)]
pub struct KeyShape {
    type_name: String,
    fields: Vec<(String, Kind)>,
}

impl KeyShape {
    /// The primary key of the record type `T` in `schema`; an error if `T` is not a record type
    /// of the schema or has no primary key.
    pub fn of<T: serde::de::DeserializeOwned>(schema: &Schema) -> Result<Self, String> {
        let ty = schema.record_type::<T>().map_err(|e| e.to_string())?;
        let def = schema.get(ty);
        if def.primary_key().is_empty() {
            return Err(format!(
                "{} has no primary key: a topic's message keys must be its records' primary keys",
                def.name()
            ));
        }
        if let Some(path) = def.primary_key().iter().find(|f| f.is_path()) {
            return Err(format!(
                "the primary key of {} has the field {}, a path through a reference: a topic's \
                 records must be keyed by fields of their own",
                def.name(),
                path.path()
            ));
        }
        let fields = def
            .primary_key()
            .iter()
            .map(|f| (f.path().to_string(), f.value_type().kind))
            .collect();
        Ok(Self {
            type_name: def.name().to_string(),
            fields,
        })
    }

    /// The record type's name in the schema.
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The key's field names, in key order.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(n, _)| n.as_str())
    }

    /// Parses a message key: for a one-field key, the field's value as text (`42`, `Heat`, or
    /// a JSON string such as `"Heat"`); for any key, a JSON array of the fields in key order
    /// (`[7, "fr"]`) or a JSON object naming them (`{"id": 42}`, as Kafka Connect writes keys).
    pub fn parse(&self, key: &[u8]) -> Result<Vec<OwnedKeyPart>, String> {
        let text = std::str::from_utf8(key).map_err(|_| "the key is not UTF-8".to_string())?;
        let trimmed = text.trim();
        if trimmed.starts_with('[') || trimmed.starts_with('{') {
            let json: serde_json::Value = serde_json::from_str(trimmed)
                .map_err(|e| format!("the key {text:?} is not valid JSON: {e}"))?;
            let values: Vec<&serde_json::Value> = match &json {
                serde_json::Value::Array(items) => items.iter().collect(),
                serde_json::Value::Object(map) => self
                    .fields
                    .iter()
                    .map(|(name, _)| {
                        map.get(name)
                            .ok_or_else(|| format!("the key {text:?} has no field {name:?}"))
                    })
                    .collect::<Result<_, _>>()?,
                _ => unreachable!("starts with [ or {{"),
            };
            if values.len() != self.fields.len() {
                return Err(format!(
                    "the key {text:?} has {} fields; the primary key of {} has {}",
                    values.len(),
                    self.type_name,
                    self.fields.len()
                ));
            }
            return values
                .iter()
                .zip(&self.fields)
                .map(|(v, (name, kind))| json_part(v, *kind).map_err(|e| format!("{name}: {e}")))
                .collect();
        }
        if self.fields.len() != 1 {
            return Err(format!(
                "the key {text:?} is one value; the primary key of {} has {} fields (send a JSON array)",
                self.type_name,
                self.fields.len()
            ));
        }
        let kind = self.fields[0].1;
        if trimmed.starts_with('"') {
            if let Ok(serde_json::Value::String(s)) = serde_json::from_str(trimmed) {
                return Ok(vec![text_part(&s, kind)?]);
            }
        }
        Ok(vec![text_part(text, kind)?])
    }

    /// The primary key of `record` (a record of this shape's type), read from the fields it
    /// serializes; the other fields are skipped, not serialized.
    pub fn key_of<T: Serialize + ?Sized>(&self, record: &T) -> Result<Vec<OwnedKeyPart>, String> {
        let mut found: Vec<Option<OwnedKeyPart>> = vec![None; self.fields.len()];
        record
            .serialize(RecordSerializer {
                shape: self,
                found: &mut found,
            })
            .map_err(|e| e.0)?;
        found
            .into_iter()
            .zip(&self.fields)
            .map(|(p, (name, _))| p.ok_or_else(|| format!("the record has no field {name:?}")))
            .collect()
    }
}

fn text_part(text: &str, kind: Kind) -> Result<OwnedKeyPart, String> {
    fn parse<N: std::str::FromStr>(text: &str, what: &str) -> Result<N, String> {
        text.trim()
            .parse()
            .map_err(|_| format!("{text:?} is not {what}"))
    }
    Ok(match kind {
        Kind::I32 | Kind::I64 => OwnedKeyPart::Int(parse(text, "an integer")?),
        Kind::U64 => OwnedKeyPart::Int(parse::<u64>(text, "an unsigned integer")? as i64),
        Kind::I128 => {
            OwnedKeyPart::Bytes(parse::<i128>(text, "an integer")?.to_le_bytes().to_vec())
        }
        Kind::U128 => OwnedKeyPart::Bytes(
            parse::<u128>(text, "an unsigned integer")?
                .to_le_bytes()
                .to_vec(),
        ),
        Kind::F32 => OwnedKeyPart::Float(parse::<f32>(text, "a number")?.to_bits() as u64),
        Kind::F64 => OwnedKeyPart::Float(parse::<f64>(text, "a number")?.to_bits()),
        Kind::Bool => OwnedKeyPart::Int(parse::<bool>(text, "true or false")? as i64),
        Kind::String | Kind::Bytes => OwnedKeyPart::Bytes(text.as_bytes().to_vec()),
        Kind::Reference(_) => return Err("a key field that is a reference".into()),
    })
}

fn json_part(v: &serde_json::Value, kind: Kind) -> Result<OwnedKeyPart, String> {
    match v {
        serde_json::Value::Null => Ok(OwnedKeyPart::Null),
        serde_json::Value::String(s) => text_part(s, kind),
        serde_json::Value::Number(n) => text_part(&n.to_string(), kind),
        serde_json::Value::Bool(b) => text_part(if *b { "true" } else { "false" }, kind),
        other => Err(format!("{other} is not a key value")),
    }
}

/// Why a record's key could not be read.
#[derive(Debug)]
struct KeyError(String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

impl ser::Error for KeyError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        KeyError(msg.to_string())
    }
}

fn not_a_record() -> KeyError {
    KeyError("the record is not a struct".into())
}

/// Serializes a record only as far as its key fields.
struct RecordSerializer<'a> {
    shape: &'a KeyShape,
    found: &'a mut Vec<Option<OwnedKeyPart>>,
}

impl<'a> ser::SerializeStruct for RecordSerializer<'a> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        if let Some(i) = self.shape.fields.iter().position(|(n, _)| n == name) {
            self.found[i] = Some(value.serialize(PartSerializer)?);
        }
        Ok(())
    }

    fn end(self) -> Result<(), KeyError> {
        Ok(())
    }
}

macro_rules! refuse {
    ($($method:ident($($arg:ty),*) -> $ret:ty;)*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<$ret, KeyError> {
            Err(not_a_record())
        }
    )*};
}

impl<'a> ser::Serializer for RecordSerializer<'a> {
    type Ok = ();
    type Error = KeyError;
    type SerializeSeq = Impossible<(), KeyError>;
    type SerializeTuple = Impossible<(), KeyError>;
    type SerializeTupleStruct = Impossible<(), KeyError>;
    type SerializeTupleVariant = Impossible<(), KeyError>;
    type SerializeMap = Impossible<(), KeyError>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), KeyError>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, KeyError> {
        Ok(self)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        value.serialize(self)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), KeyError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), KeyError> {
        Err(not_a_record())
    }

    refuse! {
        serialize_bool(bool) -> ();
        serialize_i8(i8) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_u8(u8) -> ();
        serialize_u16(u16) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_char(char) -> ();
        serialize_str(&str) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
}

/// Serializes one key field's value.
struct PartSerializer;

fn not_a_key_value() -> KeyError {
    KeyError("a primary key field holds a value that is not a scalar".into())
}

macro_rules! refuse_part {
    ($($method:ident($($arg:ty),*) -> $ret:ty;)*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<$ret, KeyError> {
            Err(not_a_key_value())
        }
    )*};
}

impl ser::Serializer for PartSerializer {
    type Ok = OwnedKeyPart;
    type Error = KeyError;
    type SerializeSeq = Impossible<OwnedKeyPart, KeyError>;
    type SerializeTuple = Impossible<OwnedKeyPart, KeyError>;
    type SerializeTupleStruct = Impossible<OwnedKeyPart, KeyError>;
    type SerializeTupleVariant = Impossible<OwnedKeyPart, KeyError>;
    type SerializeMap = Impossible<OwnedKeyPart, KeyError>;
    type SerializeStruct = Impossible<OwnedKeyPart, KeyError>;
    type SerializeStructVariant = Impossible<OwnedKeyPart, KeyError>;

    fn serialize_bool(self, v: bool) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Int(v as i64))
    }
    fn serialize_i8(self, v: i8) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Int(v as i64))
    }
    fn serialize_i16(self, v: i16) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Int(v as i64))
    }
    fn serialize_i32(self, v: i32) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Int(v as i64))
    }
    fn serialize_i64(self, v: i64) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Int(v))
    }
    fn serialize_u8(self, v: u8) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Int(v as i64))
    }
    fn serialize_u16(self, v: u16) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Int(v as i64))
    }
    fn serialize_u32(self, v: u32) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Int(v as i64))
    }
    fn serialize_u64(self, v: u64) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Int(v as i64))
    }
    fn serialize_i128(self, v: i128) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Bytes(v.to_le_bytes().to_vec()))
    }
    fn serialize_u128(self, v: u128) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Bytes(v.to_le_bytes().to_vec()))
    }
    fn serialize_f32(self, v: f32) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Float(v.to_bits() as u64))
    }
    fn serialize_f64(self, v: f64) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Float(v.to_bits()))
    }
    fn serialize_char(self, v: char) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Bytes(v.to_string().into_bytes()))
    }
    fn serialize_str(self, v: &str) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Bytes(v.as_bytes().to_vec()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Bytes(v.to_vec()))
    }
    fn serialize_none(self) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<OwnedKeyPart, KeyError> {
        value.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<OwnedKeyPart, KeyError> {
        value.serialize(self)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<OwnedKeyPart, KeyError> {
        Ok(OwnedKeyPart::Bytes(variant.as_bytes().to_vec()))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<OwnedKeyPart, KeyError> {
        Err(not_a_key_value())
    }

    refuse_part! {
        serialize_unit() -> OwnedKeyPart;
        serialize_unit_struct(&'static str) -> OwnedKeyPart;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hollow_core::SchemaBuilder;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Movie {
        title: String,
        id: u64,
        year: i32,
    }

    #[derive(Serialize, Deserialize)]
    struct Price {
        sku: String,
        region: Option<String>,
        amount: f32,
    }

    fn shapes() -> (KeyShape, KeyShape) {
        let schema = SchemaBuilder::new()
            .add::<Movie>()
            .primary_key("Movie", &["id"])
            .add::<Price>()
            .primary_key("Price", &["sku", "region"])
            .build()
            .unwrap();
        (
            KeyShape::of::<Movie>(&schema).unwrap(),
            KeyShape::of::<Price>(&schema).unwrap(),
        )
    }

    #[test]
    fn message_keys_parse_as_the_primary_key_and_match_the_record() {
        let (movie, price) = shapes();
        let heat = Movie {
            title: "Heat".into(),
            id: u64::MAX,
            year: 1995,
        };
        let key = movie.key_of(&heat).unwrap();
        assert_eq!(key, vec![OwnedKeyPart::Int(-1)]);
        for text in [
            "18446744073709551615",
            "\"18446744073709551615\"",
            "[18446744073709551615]",
            "{\"id\": 18446744073709551615}",
        ] {
            assert_eq!(movie.parse(text.as_bytes()).unwrap(), key, "{text}");
        }
        let p = Price {
            sku: "A-1".into(),
            region: None,
            amount: 1.5,
        };
        let key = price.key_of(&p).unwrap();
        assert_eq!(
            key,
            vec![OwnedKeyPart::Bytes(b"A-1".to_vec()), OwnedKeyPart::Null]
        );
        assert_eq!(price.parse(br#"["A-1", null]"#).unwrap(), key);
        assert_eq!(
            price.parse(br#"{"region": null, "sku": "A-1"}"#).unwrap(),
            key
        );
    }

    #[test]
    fn bad_keys_say_why() {
        let (movie, price) = shapes();
        for (shape, key, why) in [
            (&movie, &b"abc"[..], "not an unsigned integer"),
            (&movie, b"-1", "not an unsigned integer"),
            (&movie, b"[1, 2]", "has 2 fields"),
            (&movie, b"{\"key\": 1}", "no field \"id\""),
            (&movie, b"[1", "not valid JSON"),
            (&movie, b"\xff", "not UTF-8"),
            (&price, b"A-1", "send a JSON array"),
        ] {
            let err = shape.parse(key).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }

    #[derive(Serialize, Deserialize)]
    struct Listing {
        movie: Movie,
        shop: String,
    }

    #[test]
    fn a_key_through_a_reference_is_refused_with_its_path() {
        let schema = SchemaBuilder::new()
            .add::<Listing>()
            .primary_key("Listing", &["movie.id", "shop"])
            .build()
            .unwrap();
        let err = KeyShape::of::<Listing>(&schema).unwrap_err();
        assert!(
            err.contains("movie.id") && err.contains("fields of their own"),
            "{err}"
        );
    }
}
