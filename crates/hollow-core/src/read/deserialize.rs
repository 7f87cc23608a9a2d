//! The serde bridge on the read side: a `Deserializer` over one record of a read state, so any
//! `Deserialize` type (owned, or borrowing `&str` / `&[u8]` from the state) can be materialized.

use std::cell::Cell;

use serde::de::{self, DeserializeSeed, Visitor};

use super::ReadState;
use crate::error::{CorruptReason, Error, Result};
use crate::schema::{schema_name, Kind, TypeId, TypeKind};
use crate::type_data::TypeData;

/// Records nest at most this deep; deeper means a reference cycle in a hostile blob.
const MAX_DEPTH: u32 = 128;

/// How many records one materialization may visit: legitimate records are trees over a DAG of
/// at most the state's rows, so a budget of a few times that only stops hostile blobs whose
/// references fan out exponentially.
pub(super) fn record_budget(state: &ReadState) -> u64 {
    state.total_rows().saturating_mul(4).saturating_add(1024)
}

/// The records one materialization may still visit.
pub(super) struct Budget(Cell<u64>);

impl Budget {
    pub(super) fn new(state: &ReadState) -> Self {
        Self::of(record_budget(state))
    }

    /// A budget of `records`, from [`record_budget`] worked out earlier.
    pub(super) fn of(records: u64) -> Self {
        Self(Cell::new(records))
    }
}

/// Deserializes the record at `ordinal` of a type (for the root: the type the Rust struct names).
pub(super) struct RecordDeserializer<'s, 'b> {
    state: &'s ReadState,
    ty: Option<TypeId>,
    ordinal: u32,
    depth: u32,
    budget: &'b Cell<u64>,
    /// How many more references to object records are followed; past that, a reference reads
    /// as a stub naming the record (see [`ReadState::value_of`]). `u32::MAX` follows all.
    follow: u32,
}

impl<'s, 'b> RecordDeserializer<'s, 'b> {
    /// The record at `ordinal` of the type the Rust struct names. `budget` starts from
    /// [`Budget::new`].
    pub(super) fn root(state: &'s ReadState, ordinal: u32, budget: &'b Budget) -> Self {
        Self {
            state,
            ty: None,
            ordinal,
            depth: 0,
            budget: &budget.0,
            follow: u32::MAX,
        }
    }

    /// The record at `ordinal` of type `ty`.
    pub(super) fn of(state: &'s ReadState, ty: TypeId, ordinal: u32, budget: &'b Budget) -> Self {
        Self {
            state,
            ty: Some(ty),
            ordinal,
            depth: 0,
            budget: &budget.0,
            follow: u32::MAX,
        }
    }

    /// Follows at most `follow` references to object records; the ones past that read as
    /// stubs.
    pub(super) fn following(self, follow: u32) -> Self {
        Self { follow, ..self }
    }

    /// The type and data of the record; for a root record, the type is the one the Rust type
    /// names: its serde name `name`, with the type arguments in `rust_name` if it is generic.
    fn resolve(&self, name: Option<(&str, &str)>) -> Result<(TypeId, &'s TypeData)> {
        let id = match (self.ty, name) {
            (Some(id), _) => id,
            (None, Some((name, rust_name))) => match self.state.schema.type_id(name) {
                Some(id) => id,
                None => self.state.schema.require(&schema_name(name, rust_name))?,
            },
            (None, None) => return Err(Error::Read("a record must be read as a struct".into())),
        };
        let data = &**self.state.type_data(id);
        if !data.population.contains(self.ordinal as u64) {
            return Err(Error::NoSuchOrdinal {
                type_name: self.state.schema.get(id).name().to_string(),
                ordinal: self.ordinal,
            });
        }
        if self.depth > MAX_DEPTH {
            return Err(Error::NestedTooDeep {
                type_name: self.state.schema.get(id).name().to_string(),
                limit: MAX_DEPTH,
            });
        }
        let left = self.budget.get();
        if left == 0 {
            return Err(Error::Read(
                "record expands to more nested records than the state holds (a corrupt blob?)"
                    .into(),
            ));
        }
        self.budget.set(left - 1);
        Ok((id, data))
    }

    /// [`Self::resolve`] for a record read as `what` (`struct Movie`, `a tuple`), which must be
    /// of `kind`; returns the deserializer pinned to the record's type, the type and its data.
    fn record_of(
        self,
        name: Option<(&str, &str)>,
        kind: TypeKind,
        what: &str,
    ) -> Result<(Self, TypeId, &'s TypeData)> {
        let (id, data) = self.resolve(name)?;
        let def = self.state.schema.get(id);
        if def.kind() != kind {
            return Err(Error::Read(format!(
                "{what} read from {}, which is a {:?} type",
                def.name(),
                def.kind()
            )));
        }
        Ok((
            Self {
                ty: Some(id),
                ..self
            },
            id,
            data,
        ))
    }

    fn value(
        &self,
        id: TypeId,
        data: &'s TypeData,
        row: u64,
        column: usize,
    ) -> ValueDeserializer<'s, 'b> {
        let def = self.state.schema.get(id);
        ValueDeserializer {
            state: self.state,
            budget: self.budget,
            data,
            ty: id,
            column,
            kind: def.columns()[column].ty.kind,
            value: data.value(row, column),
            depth: self.depth,
            follow: self.follow,
            in_enum: def.kind() == TypeKind::Enum,
        }
    }
}

impl<'de> de::Deserializer<'de> for RecordDeserializer<'de, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let (id, data) = self.resolve(None)?;
        let rows = data.row_range(self.ordinal as u64);
        match self.state.schema.get(id).kind() {
            TypeKind::Object => visitor.visit_map(ObjectAccess::all(self, id, data)),
            TypeKind::List | TypeKind::Set => visitor.visit_seq(RowsAccess {
                de: self,
                id,
                data,
                rows,
            }),
            TypeKind::Map => visitor.visit_map(RowsAccess {
                de: self,
                id,
                data,
                rows,
            }),
            TypeKind::Enum => {
                let access = EnumAccess::new(self, id, data)?;
                match access.column {
                    Some(_) => visitor.visit_map(access),
                    None => visitor.visit_borrowed_str(access.variant),
                }
            }
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value> {
        let (de, id, data) = self.record_of(None, TypeKind::Object, "a tuple")?;
        visitor.visit_seq(ObjectAccess::all(de, id, data))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value> {
        let named = Some((name, std::any::type_name::<V>()));
        let (de, id, data) = self.record_of(named, TypeKind::Object, name)?;
        visitor.visit_seq(ObjectAccess::all(de, id, data))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        let named = Some((name, std::any::type_name::<V>()));
        self.record_of(named, TypeKind::Object, name)?;
        visitor.visit_unit()
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let named = Some((name, std::any::type_name::<V>()));
        let (de, id, data) = self.record_of(named, TypeKind::Enum, name)?;
        visitor.visit_enum(EnumAccess::new(de, id, data)?)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let named = Some((name, std::any::type_name::<V>()));
        let (de, id, data) = self.record_of(named, TypeKind::Object, name)?;
        visitor.visit_map(ObjectAccess {
            fields,
            ..ObjectAccess::all(de, id, data)
        })
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit seq map identifier ignored_any
    }
}

/// An enum record: its variant, and the column holding the variant's data (none for a unit
/// variant).
struct EnumAccess<'s, 'b> {
    de: RecordDeserializer<'s, 'b>,
    id: TypeId,
    data: &'s TypeData,
    variant: &'s str,
    column: Option<usize>,
}

impl<'s, 'b> EnumAccess<'s, 'b> {
    fn new(de: RecordDeserializer<'s, 'b>, id: TypeId, data: &'s TypeData) -> Result<Self> {
        let variant = de.value(id, data, de.ordinal as u64, 0).str()?;
        let columns = de.state.schema.get(id).columns();
        let column = (1..columns.len()).find(|&c| columns[c].name == variant);
        Ok(Self {
            de,
            id,
            data,
            variant,
            column,
        })
    }

    fn data(&self) -> Result<ValueDeserializer<'s, 'b>> {
        let column = self.column.ok_or_else(|| {
            Error::Read(format!(
                "variant {} carries no data in the state",
                self.variant
            ))
        })?;
        Ok(self
            .de
            .value(self.id, self.data, self.de.ordinal as u64, column))
    }
}

impl<'de> de::EnumAccess<'de> for EnumAccess<'de, '_> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        let v = seed.deserialize(de::value::BorrowedStrDeserializer::<Error>::new(
            self.variant,
        ))?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for EnumAccess<'de, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<()> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self.data()?)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_tuple(self.data()?, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_struct(self.data()?, "", fields, visitor)
    }
}

/// An enum record read without a Rust type: a map of its one variant to its data.
impl<'de> de::MapAccess<'de> for EnumAccess<'de, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.column.is_none() {
            return Ok(None);
        }
        seed.deserialize(de::value::BorrowedStrDeserializer::new(self.variant))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        let value = self.data()?;
        self.column = None;
        seed.deserialize(value)
    }
}

/// The fields of an object record: every column, or (for a Rust struct) the columns of the
/// fields it asks for, so that a view of a few fields reads only those.
struct ObjectAccess<'s, 'b> {
    de: RecordDeserializer<'s, 'b>,
    id: TypeId,
    data: &'s TypeData,
    /// The next column (all columns) or the next requested field.
    column: usize,
    /// The fields the Rust struct asks for; empty for every column.
    fields: &'static [&'static str],
    /// The column of the value to read next.
    current: usize,
}

impl<'s, 'b> ObjectAccess<'s, 'b> {
    fn all(de: RecordDeserializer<'s, 'b>, id: TypeId, data: &'s TypeData) -> Self {
        Self {
            de,
            id,
            data,
            column: 0,
            fields: &[],
            current: 0,
        }
    }
}

impl<'de> de::MapAccess<'de> for ObjectAccess<'de, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let columns = self.de.state.schema.get(self.id).columns();
        if self.fields.is_empty() {
            let Some(c) = columns.get(self.column) else {
                return Ok(None);
            };
            self.current = self.column;
            self.column += 1;
            return seed
                .deserialize(de::value::BorrowedStrDeserializer::new(c.name.as_str()))
                .map(Some);
        }
        // A field the state does not have is left out: serde reads a missing `Option` as None.
        while let Some(&field) = self.fields.get(self.column) {
            // Fields usually come in column order: try the column after the last one first.
            let guess = if self.column == 0 {
                0
            } else {
                self.current + 1
            };
            self.column += 1;
            let found = match columns.get(guess) {
                Some(c) if c.name == field => Some(guess),
                _ => columns.iter().position(|c| c.name == field),
            };
            if let Some(c) = found {
                self.current = c;
                return seed
                    .deserialize(de::value::BorrowedStrDeserializer::new(field))
                    .map(Some);
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(
            self.de
                .value(self.id, self.data, self.de.ordinal as u64, self.current),
        )
    }
}

impl<'de> de::SeqAccess<'de> for ObjectAccess<'de, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if self.column >= self.de.state.schema.get(self.id).columns().len() {
            return Ok(None);
        }
        let column = self.column;
        self.column += 1;
        seed.deserialize(
            self.de
                .value(self.id, self.data, self.de.ordinal as u64, column),
        )
        .map(Some)
    }
}

struct RowsAccess<'s, 'b> {
    de: RecordDeserializer<'s, 'b>,
    id: TypeId,
    data: &'s TypeData,
    rows: std::ops::Range<u64>,
}

impl<'de> de::SeqAccess<'de> for RowsAccess<'de, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        let Some(row) = self.rows.next() else {
            return Ok(None);
        };
        seed.deserialize(self.de.value(self.id, self.data, row, 0))
            .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some((self.rows.end - self.rows.start) as usize)
    }
}

impl<'de> de::MapAccess<'de> for RowsAccess<'de, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.rows.start >= self.rows.end {
            return Ok(None);
        }
        seed.deserialize(self.de.value(self.id, self.data, self.rows.start, 0))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        let row = self.rows.next().unwrap_or_default();
        seed.deserialize(self.de.value(self.id, self.data, row, 1))
    }

    fn size_hint(&self) -> Option<usize> {
        Some((self.rows.end - self.rows.start) as usize)
    }
}

/// Deserializes one column value.
struct ValueDeserializer<'s, 'b> {
    state: &'s ReadState,
    budget: &'b Cell<u64>,
    data: &'s TypeData,
    ty: TypeId,
    column: usize,
    kind: Kind,
    value: Option<u64>,
    depth: u32,
    follow: u32,
    /// True for a column of an enum type: its data is part of the value, never a stub.
    in_enum: bool,
}

impl<'s, 'b> ValueDeserializer<'s, 'b> {
    fn require(&self) -> Result<u64> {
        self.value
            .ok_or_else(|| Error::Read("null where the Rust type is not an Option".into()))
    }

    fn bytes(&self) -> Result<&'s [u8]> {
        let entry = self.require()?;
        let dict = self.data.dicts[self.column]
            .as_ref()
            .ok_or_else(|| Error::Read("string column without a dictionary".into()))?;
        dict.get(entry)
            .ok_or_else(|| self.entry_past_the_end(entry, dict.len()))
    }

    fn entry_past_the_end(&self, entry: u64, entries: u64) -> Error {
        self.corrupt(CorruptReason::OutOfRange {
            what: "dictionary entry",
            value: entry,
            limit: entries,
        })
    }

    /// [`Error::Corrupt`] naming this value's field.
    fn corrupt(&self, reason: CorruptReason) -> Error {
        let def = self.state.schema.get(self.ty);
        Error::corrupt(
            format!("{}.{}", def.name(), def.columns()[self.column].name),
            reason,
        )
    }

    fn str(&self) -> Result<&'s str> {
        let entry = self.require()?;
        let dict = self.data.dicts[self.column]
            .as_ref()
            .ok_or_else(|| Error::Read("string column without a dictionary".into()))?;
        dict.get_str(entry)
            .ok_or_else(|| self.entry_past_the_end(entry, dict.len()))
    }

    /// A 128-bit integer's 16 bytes.
    fn wide(&self) -> Result<[u8; 16]> {
        let bytes = self.bytes()?;
        bytes.try_into().map_err(|_| {
            self.corrupt(CorruptReason::Mismatch {
                what: "bytes of a 128-bit integer",
                expected: 16,
                found: bytes.len() as u64,
            })
        })
    }

    fn record(&self, target: TypeId) -> Result<RecordDeserializer<'s, 'b>> {
        let v = self.require()?;
        let ordinal = u32::try_from(v).map_err(|_| {
            self.corrupt(CorruptReason::OutOfRange {
                what: "referenced ordinal",
                value: v,
                limit: u32::MAX.into(),
            })
        })?;
        Ok(RecordDeserializer {
            state: self.state,
            ty: Some(target),
            ordinal,
            depth: self.depth + 1,
            budget: self.budget,
            follow: self.follow.saturating_sub(u32::from(self.is_hop(target))),
        })
    }

    /// True when a reference to `target` leads to another record (an object type), not to
    /// a part of this one (a collection, an enum value, an enum variant's fields).
    fn is_hop(&self, target: TypeId) -> bool {
        !self.in_enum && self.state.schema.get(target).kind() == TypeKind::Object
    }
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'de, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.value.is_none() {
            return visitor.visit_none();
        }
        let v = self.require()?;
        match self.kind {
            Kind::I32 => visitor.visit_i32(v as i64 as i32),
            Kind::I64 => visitor.visit_i64(v as i64),
            Kind::U64 => visitor.visit_u64(v),
            Kind::I128 => visitor.visit_i128(i128::from_le_bytes(self.wide()?)),
            Kind::U128 => visitor.visit_u128(u128::from_le_bytes(self.wide()?)),
            Kind::F32 => visitor.visit_f32(f32::from_bits(v as u32)),
            Kind::F64 => visitor.visit_f64(f64::from_bits(v)),
            Kind::Bool => visitor.visit_bool(v != 0),
            Kind::String => visitor.visit_borrowed_str(self.str()?),
            Kind::Bytes => visitor.visit_borrowed_bytes(self.bytes()?),
            Kind::Reference(t) if self.follow == 0 && self.is_hop(t) => {
                visitor.visit_map(StubAccess {
                    type_name: self.state.schema.get(t).name(),
                    ordinal: self.record(t)?.ordinal,
                    next: 0,
                })
            }
            Kind::Reference(t) => self.record(t)?.deserialize_any(visitor),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.kind {
            Kind::I64 => visitor.visit_u64(self.require()?),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            None => visitor.visit_none(),
            Some(_) => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self.kind {
            Kind::Reference(t) => self.record(t)?.deserialize_struct(name, fields, visitor),
            _ => Err(Error::Read(format!(
                "struct {name} read from a {:?} column",
                self.kind
            ))),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self.kind {
            Kind::String => {
                let variant: &'de str = self.str()?;
                let de = de::value::BorrowedStrDeserializer::<Error>::new(variant);
                visitor.visit_enum(de)
            }
            Kind::Reference(t) => self.record(t)?.deserialize_enum(name, variants, visitor),
            other => Err(Error::Read(format!(
                "enum {name} read from a {other:?} column"
            ))),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        match self.kind {
            Kind::Reference(t) => self.record(t)?.deserialize_tuple(len, visitor),
            other => Err(Error::Read(format!("a tuple read from a {other:?} column"))),
        }
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        match self.kind {
            Kind::Reference(_) => visitor.visit_unit(),
            other => Err(Error::Read(format!(
                "unit struct {name} read from a {other:?} column"
            ))),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u128 f32 f64 str string bytes byte_buf
        unit seq map identifier
    }
}

/// A record not followed: `{"$ref": type name, "$ordinal": ordinal}`.
struct StubAccess<'s> {
    type_name: &'s str,
    ordinal: u32,
    next: u8,
}

impl<'de> de::MapAccess<'de> for StubAccess<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let key = match self.next {
            0 => "$ref",
            1 => "$ordinal",
            _ => return Ok(None),
        };
        seed.deserialize(de::value::BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        self.next += 1;
        if self.next == 1 {
            seed.deserialize(de::value::BorrowedStrDeserializer::new(self.type_name))
        } else {
            seed.deserialize(de::value::U32Deserializer::new(self.ordinal))
        }
    }
}
