//! Deriving a schema from Rust types: a tracing serde `Deserializer` walks a type's `Deserialize`
//! implementation and records every struct, collection and scalar it is asked for.
//!
//! serde's data model does not tell a set from a list (both are sequences), so each traced
//! sequence is fed two equal elements; a probe `Serializer` then walks the traced value, and a
//! collection that kept only one of them is a set.

use std::collections::HashMap;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};
use serde::Deserialize;

use super::{Column, Kind, Schema, TypeDef, TypeId, TypeKind, ValueType};
use crate::error::{Error, Result};

/// Derives a [`Schema`] from Rust types. Every type reachable from the added ones becomes a type
/// of the schema: structs become objects, `Vec`s lists, sets sets, maps maps.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize)]
/// struct Actor { id: i64, name: String }
/// #[derive(Serialize, Deserialize)]
/// struct Movie { id: i64, title: String, cast: Vec<Actor>, tags: std::collections::BTreeSet<String> }
///
/// let schema = hollow_core::SchemaBuilder::new()
///     .add::<Movie>()
///     .primary_key("Movie", &["id"])
///     .build()
///     .unwrap();
/// assert_eq!(schema.to_string(), "\
/// Movie @PrimaryKey(id) {
///     id: i64
///     title: string
///     cast: ListOfActor
///     tags: SetOfString
/// }
/// Actor {
///     id: i64
///     name: string
/// }
/// ListOfActor = List<Actor>
/// SetOfString = Set<string>
/// ");
/// ```
#[derive(Debug, Default)]
pub struct SchemaBuilder {
    types: Vec<TypeDef>,
    by_name: HashMap<String, TypeId>,
    /// Per collection type: (seen holding exactly one probe element, seen holding two).
    probes: HashMap<TypeId, (bool, bool)>,
    keys: Vec<(String, Vec<String>)>,
    error: Option<Error>,
}

/// How many sequences deep the tracer feeds two elements (deeper ones get one, so the work stays
/// linear for deeply nested collections).
const PROBE_DEPTH: usize = 8;

impl SchemaBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the struct `T` and every type it reaches. `T` must be a struct.
    pub fn add<T: Serialize + Deserialize<'static>>(mut self) -> Self {
        if self.error.is_none() {
            if let Err(e) = self.trace::<T>() {
                self.error = Some(e);
            }
        }
        self
    }

    /// Declares the primary key of `type_name`: one or more of its fields, checked by
    /// [`SchemaBuilder::build`].
    pub fn primary_key(mut self, type_name: &str, fields: &[&str]) -> Self {
        self.keys.push((
            type_name.to_string(),
            fields.iter().map(|f| f.to_string()).collect(),
        ));
        self
    }

    /// The schema, or the first error met while tracing or resolving keys.
    pub fn build(mut self) -> Result<Schema> {
        if let Some(e) = self.error {
            return Err(e);
        }
        for (id, (one, two)) in &self.probes {
            let t = &mut self.types[id.index()];
            if t.kind == TypeKind::List && *one && !*two {
                t.kind = TypeKind::Set;
                t.name = t.name.replacen("ListOf", "SetOf", 1);
            }
        }
        for (type_name, fields) in &self.keys {
            let id = *self
                .by_name
                .get(type_name)
                .ok_or_else(|| Error::UnknownType(type_name.clone()))?;
            let t = &mut self.types[id.index()];
            if t.kind != TypeKind::Object {
                return Err(Error::Schema(format!(
                    "primary key declared on {type_name}, which is not an object type"
                )));
            }
            if fields.is_empty() {
                return Err(Error::Schema(format!(
                    "primary key of {type_name} names no field"
                )));
            }
            t.primary_key = fields
                .iter()
                .map(|f| {
                    t.column_index(f).ok_or_else(|| Error::UnknownField {
                        type_name: type_name.clone(),
                        field: f.clone(),
                    })
                })
                .collect::<Result<_>>()?;
        }
        Schema::from_types(self.types)
    }

    fn trace<T: Serialize + Deserialize<'static>>(&mut self) -> Result<()> {
        let type_name = std::any::type_name::<T>();
        let mut out = None;
        let value = T::deserialize(Tracer {
            ctx: &mut Ctx {
                b: self,
                stack: Vec::new(),
            },
            out: &mut out,
            nullable: false,
            minimal: false,
            seq_depth: 0,
        })?;
        let root = match out {
            Some(ValueType {
                kind: Kind::Reference(id),
                nullable: false,
            }) if self.types[id.index()].kind == TypeKind::Object => id,
            _ => {
                return Err(Error::UnsupportedType {
                    type_name: type_name.to_string(),
                    reason: "a record type must be a struct".into(),
                })
            }
        };
        value.serialize(Probe {
            b: self,
            at: Kind::Reference(root),
        })
    }

    fn reserve(&mut self, name: &str, kind: TypeKind) -> TypeId {
        if let Some(&id) = self.by_name.get(name) {
            return id;
        }
        let id = TypeId(self.types.len() as u32);
        self.types.push(TypeDef {
            name: name.to_string(),
            kind,
            columns: Vec::new(),
            primary_key: Vec::new(),
        });
        self.by_name.insert(name.to_string(), id);
        id
    }

    fn define(&mut self, id: TypeId, kind: TypeKind, columns: Vec<Column>) -> Result<()> {
        let t = &mut self.types[id.index()];
        if t.columns.is_empty() && t.kind == kind {
            t.columns = columns;
            return Ok(());
        }
        if t.kind != kind || t.columns != columns {
            return Err(Error::Schema(format!(
                "two different shapes are both named {:?}: either two Rust types share that serde \
                 name (give one another name with #[serde(rename = \"...\")]), or one generic \
                 type is used with different parameters, which serde names alike whatever the \
                 parameters (a rename cannot tell them apart: use a non-generic struct for each)",
                t.name
            )));
        }
        Ok(())
    }

    fn element_name(&self, ty: ValueType) -> String {
        let base = match ty.kind {
            Kind::I32 => "I32",
            Kind::I64 => "I64",
            Kind::F32 => "F32",
            Kind::F64 => "F64",
            Kind::Bool => "Bool",
            Kind::String => "String",
            Kind::Bytes => "Bytes",
            Kind::Reference(t) => &self.types[t.index()].name,
        };
        if ty.nullable {
            format!("Option{base}")
        } else {
            base.to_string()
        }
    }

    fn collection(&mut self, kind: TypeKind, columns: Vec<Column>) -> Result<TypeId> {
        let name = match kind {
            TypeKind::Map => format!(
                "MapOf{}To{}",
                self.element_name(columns[0].ty),
                self.element_name(columns[1].ty)
            ),
            _ => format!("ListOf{}", self.element_name(columns[0].ty)),
        };
        let id = self.reserve(&name, kind);
        self.define(id, kind, columns)?;
        Ok(id)
    }
}

struct Ctx<'b> {
    b: &'b mut SchemaBuilder,
    /// Structs being traced, to stop at recursive types.
    stack: Vec<TypeId>,
}

/// Deserializes a sample value while recording the type asked for into `out`. In `minimal` mode
/// (inside a recursive type) it records nothing and produces the smallest value: no elements,
/// `None` for options.
struct Tracer<'a, 'b> {
    ctx: &'a mut Ctx<'b>,
    out: &'a mut Option<ValueType>,
    nullable: bool,
    minimal: bool,
    seq_depth: usize,
}

impl<'b> Tracer<'_, 'b> {
    fn record(&mut self, kind: Kind) {
        if !self.minimal {
            *self.out = Some(ValueType {
                kind,
                nullable: self.nullable,
            });
        }
    }

    fn child<'c>(&'c mut self, out: &'c mut Option<ValueType>, minimal: bool) -> Tracer<'c, 'b> {
        Tracer {
            ctx: &mut *self.ctx,
            out,
            nullable: false,
            minimal,
            seq_depth: self.seq_depth,
        }
    }
}

fn unsupported(what: &str, reason: &str) -> Error {
    Error::UnsupportedType {
        type_name: what.to_string(),
        reason: reason.to_string(),
    }
}

macro_rules! scalar {
    ($($method:ident => $kind:ident, $visit:ident($value:expr);)*) => {$(
        fn $method<V: Visitor<'static>>(mut self, visitor: V) -> Result<V::Value> {
            self.record(Kind::$kind);
            visitor.$visit($value)
        }
    )*};
}

impl<'de> de::Deserializer<'static> for Tracer<'_, 'de> {
    type Error = Error;

    scalar! {
        deserialize_bool => Bool, visit_bool(false);
        deserialize_i8 => I32, visit_i8(0);
        deserialize_i16 => I32, visit_i16(0);
        deserialize_i32 => I32, visit_i32(0);
        deserialize_u8 => I32, visit_u8(0);
        deserialize_u16 => I32, visit_u16(0);
        deserialize_u32 => I64, visit_u32(0);
        deserialize_i64 => I64, visit_i64(0);
        deserialize_u64 => I64, visit_u64(0);
        deserialize_f32 => F32, visit_f32(0.0);
        deserialize_f64 => F64, visit_f64(0.0);
        deserialize_char => String, visit_char('a');
        deserialize_str => String, visit_borrowed_str("");
        deserialize_string => String, visit_borrowed_str("");
        deserialize_bytes => Bytes, visit_borrowed_bytes(b"");
        deserialize_byte_buf => Bytes, visit_borrowed_bytes(b"");
        deserialize_identifier => String, visit_borrowed_str("");
    }

    fn deserialize_any<V: Visitor<'static>>(self, _: V) -> Result<V::Value> {
        Err(unsupported(
            "a self-describing value",
            "untagged enums, #[serde(flatten)] and `deserialize_any` need a self-describing format",
        ))
    }

    fn deserialize_i128<V: Visitor<'static>>(self, _: V) -> Result<V::Value> {
        Err(unsupported("i128", "128-bit integers are not supported"))
    }

    fn deserialize_u128<V: Visitor<'static>>(self, _: V) -> Result<V::Value> {
        Err(unsupported("u128", "128-bit integers are not supported"))
    }

    fn deserialize_option<V: Visitor<'static>>(self, visitor: V) -> Result<V::Value> {
        if self.nullable {
            return Err(unsupported(
                "Option<Option<_>>",
                "nested options cannot be told apart when null",
            ));
        }
        if self.minimal {
            return visitor.visit_none();
        }
        visitor.visit_some(Tracer {
            nullable: true,
            ..self
        })
    }

    fn deserialize_unit<V: Visitor<'static>>(self, _: V) -> Result<V::Value> {
        Err(unsupported("()", "unit values carry no data"))
    }

    fn deserialize_unit_struct<V: Visitor<'static>>(
        self,
        name: &'static str,
        _: V,
    ) -> Result<V::Value> {
        Err(unsupported(name, "unit structs carry no data"))
    }

    fn deserialize_newtype_struct<V: Visitor<'static>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'static>>(mut self, visitor: V) -> Result<V::Value> {
        if self.minimal {
            return visitor.visit_seq(SeqTracer {
                tracer: self.child(&mut None, true),
                remaining: 0,
            });
        }
        let mut element = None;
        let remaining = if self.seq_depth < PROBE_DEPTH { 2 } else { 1 };
        let mut child = self.child(&mut element, false);
        child.seq_depth += 1;
        let value = visitor.visit_seq(SeqTracer {
            tracer: child,
            remaining,
        })?;
        let element =
            element.ok_or_else(|| unsupported("a sequence", "its elements could not be traced"))?;
        let id = self.ctx.b.collection(
            TypeKind::List,
            vec![Column {
                name: "element".into(),
                ty: element,
            }],
        )?;
        self.record(Kind::Reference(id));
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'static>>(self, _: usize, _: V) -> Result<V::Value> {
        Err(unsupported(
            "a tuple or array",
            "use a struct (named fields) or a Vec instead",
        ))
    }

    fn deserialize_tuple_struct<V: Visitor<'static>>(
        self,
        name: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value> {
        Err(unsupported(
            name,
            "tuple structs are not supported; use named fields",
        ))
    }

    fn deserialize_map<V: Visitor<'static>>(mut self, visitor: V) -> Result<V::Value> {
        if self.minimal {
            return visitor.visit_map(EntryTracer {
                tracer: self.child(&mut None, true),
                key: None,
                value: None,
                remaining: 0,
            });
        }
        let (mut key, mut value) = (None, None);
        let out = visitor.visit_map(EntryTracer {
            tracer: self.child(&mut None, false),
            key: Some(&mut key),
            value: Some(&mut value),
            remaining: 1,
        })?;
        let (Some(key), Some(value)) = (key, value) else {
            return Err(unsupported(
                "a map",
                "its keys and values could not be traced",
            ));
        };
        let id = self.ctx.b.collection(
            TypeKind::Map,
            vec![
                Column {
                    name: "key".into(),
                    ty: key,
                },
                Column {
                    name: "value".into(),
                    ty: value,
                },
            ],
        )?;
        self.record(Kind::Reference(id));
        Ok(out)
    }

    fn deserialize_struct<V: Visitor<'static>>(
        mut self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let id = self.ctx.b.reserve(name, TypeKind::Object);
        let recursive = self.ctx.stack.contains(&id);
        self.record(Kind::Reference(id));
        let minimal = self.minimal || recursive;
        let mut slots = vec![None; fields.len()];
        self.ctx.stack.push(id);
        let value = visitor.visit_map(StructTracer {
            tracer: self.child(&mut None, minimal),
            fields,
            slots: &mut slots,
            next: 0,
        });
        self.ctx.stack.pop();
        let value = value?;
        if !minimal {
            let columns = fields
                .iter()
                .zip(slots)
                .map(|(f, ty)| {
                    ty.map(|ty| Column {
                        name: f.to_string(),
                        ty,
                    })
                    .ok_or_else(|| unsupported(name, &format!("field {f} could not be traced")))
                })
                .collect::<Result<Vec<_>>>()?;
            self.ctx.b.define(id, TypeKind::Object, columns)?;
        }
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'static>>(
        mut self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let Some(first) = variants.first() else {
            return Err(unsupported(name, "an enum without variants holds no value"));
        };
        self.record(Kind::String);
        visitor.visit_enum(UnitEnumTracer {
            name,
            variant: first,
        })
    }

    fn deserialize_ignored_any<V: Visitor<'static>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }
}

struct SeqTracer<'a, 'b> {
    tracer: Tracer<'a, 'b>,
    remaining: usize,
}

impl de::SeqAccess<'static> for SeqTracer<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'static>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let t = &mut self.tracer;
        let minimal = t.minimal;
        seed.deserialize(Tracer {
            ctx: &mut *t.ctx,
            out: &mut *t.out,
            nullable: false,
            minimal,
            seq_depth: t.seq_depth,
        })
        .map(Some)
    }
}

struct EntryTracer<'a, 'b> {
    tracer: Tracer<'a, 'b>,
    key: Option<&'a mut Option<ValueType>>,
    value: Option<&'a mut Option<ValueType>>,
    remaining: usize,
}

impl de::MapAccess<'static> for EntryTracer<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'static>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let mut scratch = None;
        let out = self.key.as_deref_mut().unwrap_or(&mut scratch);
        seed.deserialize(self.tracer.child(out, false)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'static>>(&mut self, seed: V) -> Result<V::Value> {
        let mut scratch = None;
        let out = self.value.as_deref_mut().unwrap_or(&mut scratch);
        seed.deserialize(self.tracer.child(out, false))
    }
}

struct StructTracer<'a, 'b, 's> {
    tracer: Tracer<'a, 'b>,
    fields: &'static [&'static str],
    slots: &'s mut [Option<ValueType>],
    next: usize,
}

impl de::MapAccess<'static> for StructTracer<'_, '_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'static>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let Some(field) = self.fields.get(self.next) else {
            return Ok(None);
        };
        seed.deserialize(de::value::BorrowedStrDeserializer::new(field))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'static>>(&mut self, seed: V) -> Result<V::Value> {
        let i = self.next;
        self.next += 1;
        let minimal = self.tracer.minimal;
        seed.deserialize(self.tracer.child(&mut self.slots[i], minimal))
    }
}

struct UnitEnumTracer {
    name: &'static str,
    variant: &'static str,
}

impl de::EnumAccess<'static> for UnitEnumTracer {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'static>>(self, seed: V) -> Result<(V::Value, Self)> {
        let v = seed.deserialize(IntoDeserializer::<Error>::into_deserializer(self.variant))?;
        Ok((v, self))
    }
}

impl de::VariantAccess<'static> for UnitEnumTracer {
    type Error = Error;

    fn unit_variant(self) -> Result<()> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'static>>(self, _: T) -> Result<T::Value> {
        Err(self.data_variant())
    }

    fn tuple_variant<V: Visitor<'static>>(self, _: usize, _: V) -> Result<V::Value> {
        Err(self.data_variant())
    }

    fn struct_variant<V: Visitor<'static>>(
        self,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value> {
        Err(self.data_variant())
    }
}

impl UnitEnumTracer {
    fn data_variant(&self) -> Error {
        unsupported(
            self.name,
            "only enums whose variants carry no data are supported (stored as the variant name)",
        )
    }
}

/// Walks a traced value alongside the schema and counts the elements each collection kept.
struct Probe<'b> {
    b: &'b mut SchemaBuilder,
    at: Kind,
}

impl<'b> Probe<'b> {
    fn column(&mut self, column: usize) -> Probe<'_> {
        let at = match self.at {
            Kind::Reference(t) => self.b.types[t.index()]
                .columns
                .get(column)
                .map_or(Kind::Bool, |c| c.ty.kind),
            other => other,
        };
        Probe {
            b: &mut *self.b,
            at,
        }
    }

    fn observe(&mut self, count: usize) {
        if let Kind::Reference(t) = self.at {
            let entry = self.b.probes.entry(t).or_default();
            entry.0 |= count == 1;
            entry.1 |= count >= 2;
        }
    }
}

macro_rules! ignore {
    ($($method:ident($($arg:ty),*);)*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<()> { Ok(()) }
    )*};
}

impl<'b> ser::Serializer for Probe<'b> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ProbeSeq<'b>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ProbeSeq<'b>;
    type SerializeStruct = ProbeSeq<'b>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    ignore! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_u8(u8); serialize_u16(u16); serialize_u32(u32);
        serialize_u64(u64); serialize_f32(f32); serialize_f64(f64); serialize_char(char);
        serialize_str(&str); serialize_bytes(&[u8]); serialize_none(); serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<()> {
        Ok(())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<ProbeSeq<'b>> {
        Ok(ProbeSeq {
            probe: self,
            count: 0,
        })
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
        Err(unsupported("a tuple", "not supported"))
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(unsupported(name, "tuple structs are not supported"))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(unsupported(
            name,
            "enum variants with data are not supported",
        ))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<ProbeSeq<'b>> {
        Ok(ProbeSeq {
            probe: self,
            count: 0,
        })
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<ProbeSeq<'b>> {
        Ok(ProbeSeq {
            probe: self,
            count: 0,
        })
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(unsupported(
            name,
            "enum variants with data are not supported",
        ))
    }
}

struct ProbeSeq<'b> {
    probe: Probe<'b>,
    count: usize,
}

impl ser::SerializeSeq for ProbeSeq<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.count += 1;
        value.serialize(self.probe.column(0))
    }

    fn end(mut self) -> Result<()> {
        self.probe.observe(self.count);
        Ok(())
    }
}

impl ser::SerializeMap for ProbeSeq<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        key.serialize(self.probe.column(0))
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        value.serialize(self.probe.column(1))
    }

    fn end(self) -> Result<()> {
        Ok(())
    }
}

impl ser::SerializeStruct for ProbeSeq<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        let column = match self.probe.at {
            Kind::Reference(t) => self.probe.b.types[t.index()].column_index(key),
            _ => None,
        };
        match column {
            Some(c) => value.serialize(self.probe.column(c)),
            None => Ok(()),
        }
    }

    fn end(self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize)]
    enum Color {
        Red,
        Green,
    }

    #[derive(Serialize, Deserialize)]
    struct Node {
        label: String,
        children: Vec<Node>,
        parent: Option<Box<Node>>,
    }

    #[derive(Serialize, Deserialize)]
    struct Everything<'a> {
        a: i32,
        b: i64,
        c: u64,
        d: f32,
        e: f64,
        f: bool,
        g: String,
        h: &'a str,
        #[serde(with = "serde_bytes")]
        i: Vec<u8>,
        j: Option<i32>,
        k: Vec<Option<String>>,
        l: HashSet<String>,
        m: BTreeSet<i64>,
        n: HashMap<String, Vec<i32>>,
        o: BTreeMap<i32, Node>,
        p: Color,
        q: u8,
        r: char,
    }

    #[test]
    fn every_shape_is_derived() {
        let schema = SchemaBuilder::new()
            .add::<Everything>()
            .primary_key("Everything", &["b", "g"])
            .build()
            .unwrap();
        let text = schema.to_string();
        let expected = "\
Everything @PrimaryKey(b, g) {
    a: i32
    b: i64
    c: i64
    d: f32
    e: f64
    f: bool
    g: string
    h: string
    i: bytes
    j: i32?
    k: ListOfOptionString
    l: SetOfString
    m: SetOfI64
    n: MapOfStringToListOfI32
    o: MapOfI32ToNode
    p: string
    q: i32
    r: string
}
ListOfOptionString = List<string?>
SetOfString = Set<string>
SetOfI64 = Set<i64>
ListOfI32 = List<i32>
MapOfStringToListOfI32 = Map<string, ListOfI32>
Node {
    label: string
    children: ListOfNode
    parent: Node?
}
ListOfNode = List<Node>
MapOfI32ToNode = Map<i32, Node>
";
        assert_eq!(text, expected);
    }

    #[test]
    fn unsupported_shapes_are_clear_errors() {
        #[derive(Serialize, Deserialize)]
        struct WithTuple {
            t: (i32, i32),
        }
        #[derive(Serialize, Deserialize)]
        enum Data {
            A(i32),
        }
        #[derive(Serialize, Deserialize)]
        struct WithData {
            d: Data,
        }
        #[derive(Serialize, Deserialize)]
        struct Wide {
            w: u128,
        }
        for e in [
            SchemaBuilder::new().add::<WithTuple>().build().unwrap_err(),
            SchemaBuilder::new().add::<WithData>().build().unwrap_err(),
            SchemaBuilder::new().add::<Wide>().build().unwrap_err(),
            SchemaBuilder::new().add::<Vec<i32>>().build().unwrap_err(),
        ] {
            assert!(matches!(e, Error::UnsupportedType { .. }), "{e}");
        }
    }

    #[test]
    fn conflicting_names_and_bad_keys_are_errors() {
        mod one {
            #[derive(serde::Serialize, serde::Deserialize)]
            pub struct Item {
                pub a: i32,
            }
        }
        mod two {
            #[derive(serde::Serialize, serde::Deserialize)]
            pub struct Item {
                pub b: String,
            }
        }
        #[derive(Serialize, Deserialize)]
        struct Both {
            x: one::Item,
            y: two::Item,
        }
        let e = SchemaBuilder::new().add::<Both>().build().unwrap_err();
        assert!(matches!(e, Error::Schema(_)), "{e}");
        let e = SchemaBuilder::new()
            .add::<one::Item>()
            .primary_key("Item", &["nope"])
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::UnknownField { .. }), "{e}");
        let e = SchemaBuilder::new()
            .add::<one::Item>()
            .primary_key("Other", &["a"])
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::UnknownType(_)), "{e}");
    }
}
