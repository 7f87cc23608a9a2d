//! A dynamic view of any record, for tools, tests and debugging: what a record holds, without a
//! Rust type for it. Read one with [`ReadState::get_as`](crate::ReadState::get_as).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Any value a record can hold. An enum value whose variant carries data reads as a map of
/// its variant's name to the data; one without data as the variant's name.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// A null (`None`).
    Null,
    /// A signed integer field of up to 64 bits.
    Int(i64),
    /// A `u64` field.
    UInt(u64),
    /// An `i128` field.
    I128(i128),
    /// A `u128` field.
    U128(u128),
    /// A float field (`f32` widened).
    Float(f64),
    /// A boolean field.
    Bool(bool),
    /// A string field.
    String(String),
    /// A bytes field.
    Bytes(Vec<u8>),
    /// A list or a set.
    List(Vec<Value>),
    /// An object (field name, value), a map (key, value), in stored order, or an enum value
    /// with data (variant name, data).
    Map(Vec<(Value, Value)>),
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any hollow value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::UInt(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::I128(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(Value::U128(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::List(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry()? {
            out.push((k, v));
        }
        Ok(Value::Map(out))
    }
}

impl Value {
    /// The value of field `name` of an object.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::String(s) if s == name))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// One difference between two values: where (a path of field names, map keys in brackets and
/// list positions, e.g. `cast[2].name`; empty for the whole value) and the value on each side
/// (`None` where that side has nothing there).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Difference {
    /// Where the values differ.
    pub path: String,
    /// The value before, if there was one.
    pub old: Option<Value>,
    /// The value after, if there is one.
    pub new: Option<Value>,
}

impl Value {
    /// True when both values are the same: as `==`, except that floats compare by their bits
    /// (a NaN is the same as itself, so an unchanged record never reads as changed).
    pub fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::List(a), Value::List(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_as(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((ka, va), (kb, vb))| ka.same_as(kb) && va.same_as(vb))
            }
            _ => self == other,
        }
    }

    /// What changed from `self` to `new`, as few and as deep as the shapes allow: objects and
    /// maps compare entry by entry (by field name or key), lists of the same length element
    /// by element; a list whose length changed differs as a whole. Empty when the values are
    /// [the same](Value::same_as).
    ///
    /// ```
    /// use hollow_core::Value;
    /// let s = |v: &str| Value::String(v.into());
    /// let old = Value::Map(vec![(s("title"), s("Heat")), (s("year"), Value::Int(1995))]);
    /// let new = Value::Map(vec![(s("title"), s("Heat")), (s("year"), Value::Int(1996))]);
    /// let changes = old.differences(&new);
    /// assert_eq!(changes.len(), 1);
    /// assert_eq!((changes[0].path.as_str(), changes[0].new.clone()), ("year", Some(Value::Int(1996))));
    /// ```
    pub fn differences(&self, new: &Value) -> Vec<Difference> {
        let mut out = Vec::new();
        differ(String::new(), Some(self), Some(new), &mut out);
        out
    }
}

fn differ(path: String, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<Difference>) {
    match (old, new) {
        (Some(a), Some(b)) if a.same_as(b) => {}
        (Some(Value::Map(a)), Some(Value::Map(b))) => {
            for (key, va) in a {
                let vb = b.iter().find(|(k, _)| k.same_as(key)).map(|(_, v)| v);
                differ(entry_path(&path, key), Some(va), vb, out);
            }
            for (key, vb) in b {
                if !a.iter().any(|(k, _)| k.same_as(key)) {
                    differ(entry_path(&path, key), None, Some(vb), out);
                }
            }
        }
        (Some(Value::List(a)), Some(Value::List(b))) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                differ(format!("{path}[{i}]"), Some(va), Some(vb), out);
            }
        }
        _ => out.push(Difference {
            path,
            old: old.cloned(),
            new: new.cloned(),
        }),
    }
}

/// The path of the entry `key` under `path`: `path.field` for a field name, `path[key]` for
/// any other key.
fn entry_path(path: &str, key: &Value) -> String {
    match key {
        Value::String(name) if !name.is_empty() && !name.contains(['.', '[', ']']) => {
            if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            }
        }
        Value::String(s) => format!("{path}[{s:?}]"),
        Value::Int(i) => format!("{path}[{i}]"),
        Value::UInt(u) => format!("{path}[{u}]"),
        other => format!("{path}[{other:?}]"),
    }
}
