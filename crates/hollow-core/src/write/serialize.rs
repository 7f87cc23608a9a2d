//! The serde bridge on the write side: a `Serializer` that turns a record into canonical rows
//! on the [`Tape`], each nested record, collection and string a pending value of its own.

use serde::ser::{self, Serialize};

use super::tape::{Tape, TapeLayout};
use crate::error::{Error, Result};
use crate::schema::{names_instance, schema_name, Kind, Schema, TypeId, TypeKind, ValueType};

/// What the serializer reads of the write state (and only that: the tables themselves may be
/// busy interning an earlier tape on another thread).
#[derive(Clone, Copy)]
pub(super) struct Context<'a> {
    pub schema: &'a Schema,
    pub layout: &'a TapeLayout,
    /// The Rust type name of the record being added, for the type arguments of a generic one.
    pub rust_name: &'static str,
}

/// Serializes one value into the column `column` of `owner` (or, with `expect: None`, a root
/// record of any object type). `Ok` is the canonical value (for a string, bytes or a reference:
/// the index of its pending value on the tape), `None` for null.
pub(super) struct ValueSer<'a> {
    pub cx: Context<'a>,
    pub tape: &'a mut Tape,
    pub owner: TypeId,
    pub column: usize,
    /// The column's type; `None` for a root record.
    pub expect: Option<ValueType>,
}

impl<'a> ValueSer<'a> {
    fn kind(&self) -> Option<Kind> {
        self.expect.map(|t| t.kind)
    }

    fn mismatch(&self, got: &str) -> Error {
        let schema = self.cx.schema;
        match self.expect {
            None => Error::Write(format!("a record must be a struct, got {got}")),
            Some(t) => {
                let owner = schema.get(self.owner);
                Error::Write(format!(
                    "{}.{} is {}, got {got}",
                    owner.name(),
                    owner.columns()[self.column].name,
                    schema.type_name(t)
                ))
            }
        }
    }

    fn int(self, v: i128) -> Result<Option<u64>> {
        match self.kind() {
            Some(Kind::I32) if i32::try_from(v).is_ok() => Ok(Some(v as i64 as u64)),
            Some(Kind::I64) if i64::try_from(v).is_ok() => Ok(Some(v as i64 as u64)),
            // States written before `u64` had a kind of its own hold it in i64 columns.
            Some(Kind::I64 | Kind::U64) if u64::try_from(v).is_ok() => Ok(Some(v as u64)),
            Some(Kind::I128) => self.var(Kind::I128, &v.to_le_bytes()),
            Some(Kind::U128) if v >= 0 => self.var(Kind::U128, &(v as u128).to_le_bytes()),
            _ => Err(self.mismatch(&format!("integer {v}"))),
        }
    }

    fn var(self, kind: Kind, bytes: &[u8]) -> Result<Option<u64>> {
        if self.kind() != Some(kind) {
            return Err(self.mismatch(match kind {
                Kind::String => "a string",
                Kind::Bytes => "bytes",
                _ => "a 128-bit integer",
            }));
        }
        Ok(Some(push_dictionary_entry(
            self.cx,
            self.tape,
            self.owner,
            self.column,
            bytes,
        )?))
    }

    /// The type of a root record whose serde name is `name`: the type of that name, or of a
    /// generic instance of it named after the Rust type's arguments.
    fn root(&mut self, name: &'static str, shape: &str) -> Result<TypeId> {
        if let Some(t) = self.tape.names.root(name, self.cx.rust_name) {
            return Ok(t);
        }
        let schema = self.cx.schema;
        let t = match schema.type_id(name) {
            Some(t) => t,
            None => schema.require(&schema_name(name, self.cx.rust_name))?,
        };
        if schema.get(t).kind() != TypeKind::Object {
            return Err(self.mismatch(&format!("{shape} {name}")));
        }
        Ok(t)
    }

    /// The object type of a struct, tuple struct or tuple named `name` (empty for a tuple),
    /// with its row begun.
    fn object(mut self, name: &'static str, shape: &str) -> Result<RowsSer<'a>> {
        let t = match self.expect {
            None => self.root(name, shape)?,
            Some(_) => self.target(TypeKind::Object, shape)?,
        };
        if !name.is_empty() && !self.tape.names.is_struct(t, name) {
            if !names_instance(self.cx.schema.get(t).name(), name) {
                return Err(self.mismatch(&format!("{shape} {name}")));
            }
            let root = self.expect.is_none().then_some(self.cx.rust_name);
            self.tape.names.learn_struct(t, name, root);
        }
        let mut rows = self.rows(t);
        rows.begin_row();
        Ok(rows)
    }

    /// The enum type this value is a variant of, and the column of `variant`'s data.
    fn variant(&self, variant: &str, got: &str) -> Result<(TypeId, Option<usize>)> {
        let t = self.target(TypeKind::Enum, got)?;
        let columns = self.cx.schema.get(t).columns();
        Ok((t, (1..columns.len()).find(|&c| columns[c].name == variant)))
    }

    /// The column of `variant`'s data in enum `t`, which must exist.
    fn data_column(&self, t: TypeId, column: Option<usize>, variant: &str) -> Result<usize> {
        column.ok_or_else(|| {
            Error::Write(format!(
                "variant {variant} of {} carries data the schema has no column for",
                self.cx.schema.get(t).name()
            ))
        })
    }

    fn target(&self, shape: TypeKind, got: &str) -> Result<TypeId> {
        let target = match self.expect {
            Some(ValueType {
                kind: Kind::Reference(t),
                ..
            }) => t,
            _ => return Err(self.mismatch(got)),
        };
        let kind = self.cx.schema.get(target).kind();
        let ok = match shape {
            TypeKind::List => matches!(kind, TypeKind::List | TypeKind::Set),
            other => other == kind,
        };
        if !ok {
            return Err(self.mismatch(got));
        }
        Ok(target)
    }

    fn rows(self, ty: TypeId) -> RowsSer<'a> {
        let buf = self.tape.take_buffer();
        RowsSer {
            cx: self.cx,
            tape: self.tape,
            ty,
            buf,
            row_start: 0,
            written: 0,
            variant_of: None,
        }
    }
}

fn push_dictionary_entry(
    cx: Context<'_>,
    tape: &mut Tape,
    owner: TypeId,
    column: usize,
    bytes: &[u8],
) -> Result<u64> {
    let table = cx
        .layout
        .dictionary(owner, column)
        .ok_or_else(|| Error::Write("column has no dictionary".into()))?;
    Ok(tape.push_bytes(table, bytes))
}

/// Puts a value of enum type `ty` on the tape: the variant's name, and in `column` its data (a
/// pending value, or the canonical scalar).
fn push_variant(
    cx: Context<'_>,
    tape: &mut Tape,
    ty: TypeId,
    variant: &str,
    data: Option<(usize, u64)>,
) -> Result<u64> {
    let shape = cx.layout.shape(ty);
    let mut row = tape.take_buffer();
    row.resize(shape.row_words, 0);
    for (w, mask) in row[..shape.mask_words].iter_mut().enumerate() {
        *mask = shape.all_null_mask(w);
    }
    // Column 0, the variant's name, is never null.
    row[shape.mask_words] = push_dictionary_entry(cx, tape, ty, 0, variant.as_bytes())?;
    if let Some((column, value)) = data {
        row[shape.mask_words + column] = value;
    }
    if shape.mask_words > 0 {
        row[0] &= !1;
        if let Some((column, _)) = data {
            row[column / 64] &= !(1u64 << (column % 64));
        }
    }
    let pending = tape.push_record(ty.0, &row);
    tape.return_buffer(row);
    Ok(pending)
}

impl<'a> ser::Serializer for ValueSer<'a> {
    type Ok = Option<u64>;
    type Error = Error;
    type SerializeSeq = RowsSer<'a>;
    type SerializeTuple = RowsSer<'a>;
    type SerializeTupleStruct = RowsSer<'a>;
    type SerializeTupleVariant = RowsSer<'a>;
    type SerializeMap = RowsSer<'a>;
    type SerializeStruct = RowsSer<'a>;
    type SerializeStructVariant = RowsSer<'a>;

    fn serialize_bool(self, v: bool) -> Result<Option<u64>> {
        match self.kind() {
            Some(Kind::Bool) => Ok(Some(v as u64)),
            _ => Err(self.mismatch("a bool")),
        }
    }

    fn serialize_i8(self, v: i8) -> Result<Option<u64>> {
        self.int(v as i128)
    }
    fn serialize_i16(self, v: i16) -> Result<Option<u64>> {
        self.int(v as i128)
    }
    fn serialize_i32(self, v: i32) -> Result<Option<u64>> {
        self.int(v as i128)
    }
    fn serialize_i64(self, v: i64) -> Result<Option<u64>> {
        self.int(v as i128)
    }
    fn serialize_u8(self, v: u8) -> Result<Option<u64>> {
        self.int(v as i128)
    }
    fn serialize_u16(self, v: u16) -> Result<Option<u64>> {
        self.int(v as i128)
    }
    fn serialize_u32(self, v: u32) -> Result<Option<u64>> {
        self.int(v as i128)
    }
    fn serialize_u64(self, v: u64) -> Result<Option<u64>> {
        self.int(v as i128)
    }
    fn serialize_i128(self, v: i128) -> Result<Option<u64>> {
        self.int(v)
    }
    fn serialize_u128(self, v: u128) -> Result<Option<u64>> {
        match self.kind() {
            Some(Kind::U128) => self.var(Kind::U128, &v.to_le_bytes()),
            _ => match i128::try_from(v) {
                Ok(v) => self.int(v),
                Err(_) => Err(self.mismatch(&format!("integer {v}"))),
            },
        }
    }

    fn serialize_f32(self, v: f32) -> Result<Option<u64>> {
        match self.kind() {
            Some(Kind::F32) => Ok(Some(v.to_bits() as u64)),
            Some(Kind::F64) => Ok(Some((v as f64).to_bits())),
            _ => Err(self.mismatch("an f32")),
        }
    }

    fn serialize_f64(self, v: f64) -> Result<Option<u64>> {
        match self.kind() {
            Some(Kind::F64) => Ok(Some(v.to_bits())),
            _ => Err(self.mismatch("an f64")),
        }
    }

    fn serialize_char(self, v: char) -> Result<Option<u64>> {
        let mut buf = [0u8; 4];
        self.var(Kind::String, v.encode_utf8(&mut buf).as_bytes())
    }

    fn serialize_str(self, v: &str) -> Result<Option<u64>> {
        self.var(Kind::String, v.as_bytes())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<Option<u64>> {
        self.var(Kind::Bytes, v)
    }

    fn serialize_none(self) -> Result<Option<u64>> {
        match self.expect {
            Some(t) if t.nullable => Ok(None),
            _ => Err(self.mismatch("None")),
        }
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Option<u64>> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Option<u64>> {
        Err(self.mismatch("()"))
    }

    fn serialize_unit_struct(self, name: &'static str) -> Result<Option<u64>> {
        ser::SerializeStruct::end(self.object(name, "unit struct")?)
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Option<u64>> {
        if self.kind() == Some(Kind::String) {
            return self.var(Kind::String, variant.as_bytes());
        }
        let (t, _) = self.variant(variant, "an enum variant")?;
        Ok(Some(push_variant(self.cx, self.tape, t, variant, None)?))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Option<u64>> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Option<u64>> {
        let (t, column) = self.variant(variant, &format!("enum variant {name}::{variant}"))?;
        let column = self.data_column(t, column, variant)?;
        let ty = self.cx.schema.get(t).columns()[column].ty;
        let data = value.serialize(ValueSer {
            cx: self.cx,
            tape: &mut *self.tape,
            owner: t,
            column,
            expect: Some(ValueType {
                nullable: false,
                ..ty
            }),
        })?;
        let data = data.map(|v| (column, v));
        Ok(Some(push_variant(self.cx, self.tape, t, variant, data)?))
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<RowsSer<'a>> {
        let t = self.target(TypeKind::List, "a sequence")?;
        Ok(self.rows(t))
    }

    fn serialize_tuple(self, _: usize) -> Result<RowsSer<'a>> {
        self.object("", "a tuple")
    }

    fn serialize_tuple_struct(self, name: &'static str, _: usize) -> Result<RowsSer<'a>> {
        self.object(name, "tuple struct")
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<RowsSer<'a>> {
        self.variant_data(name, variant)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<RowsSer<'a>> {
        let t = self.target(TypeKind::Map, "a map")?;
        Ok(self.rows(t))
    }

    fn serialize_struct(self, name: &'static str, _: usize) -> Result<RowsSer<'a>> {
        self.object(name, "struct")
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<RowsSer<'a>> {
        self.variant_data(name, variant)
    }
}

impl<'a> ValueSer<'a> {
    /// The rows of a tuple or struct variant's data, which [`RowsSer::finish`] wraps in a value
    /// of the enum.
    fn variant_data(self, name: &'static str, variant: &'static str) -> Result<RowsSer<'a>> {
        let (t, column) = self.variant(variant, &format!("enum variant {name}::{variant}"))?;
        let column = self.data_column(t, column, variant)?;
        let Kind::Reference(data) = self.cx.schema.get(t).columns()[column].ty.kind else {
            return Err(self.mismatch(&format!("enum variant {name}::{variant}")));
        };
        if self.cx.schema.get(data).kind() != TypeKind::Object {
            return Err(self.mismatch(&format!("enum variant {name}::{variant}")));
        }
        let mut rows = self.rows(data);
        rows.variant_of = Some((t, column, variant));
        rows.begin_row();
        Ok(rows)
    }
}

/// Collects the rows of one record (one row for an object, one per element or entry for a
/// collection) in the canonical form `[null mask words][column values]`, then puts them on the
/// tape. (Sets and maps are put in canonical order once their values are interned.)
pub(super) struct RowsSer<'a> {
    cx: Context<'a>,
    tape: &'a mut Tape,
    ty: TypeId,
    buf: Vec<u64>,
    row_start: usize,
    /// Columns written (or skipped as null) in the current row.
    written: usize,
    /// For the data of a tuple or struct variant: the enum type, the variant's column and name.
    variant_of: Option<(TypeId, usize, &'static str)>,
}

impl RowsSer<'_> {
    fn layout(&self) -> (usize, usize) {
        let shape = self.cx.layout.shape(self.ty);
        (shape.mask_words, shape.row_words)
    }

    fn begin_row(&mut self) {
        let (mask_words, row_words) = self.layout();
        self.row_start = self.buf.len();
        self.buf.resize(self.row_start + row_words, 0);
        for w in 0..mask_words {
            self.buf[self.row_start + w] = self.cx.layout.shape(self.ty).all_null_mask(w);
        }
        self.written = 0;
    }

    fn put<T: Serialize + ?Sized>(&mut self, column: usize, value: &T) -> Result<()> {
        let ty = self.cx.schema.get(self.ty).columns()[column].ty;
        let v = value.serialize(ValueSer {
            cx: self.cx,
            tape: &mut *self.tape,
            owner: self.ty,
            column,
            expect: Some(ty),
        })?;
        let (mask_words, _) = self.layout();
        if let Some(v) = v {
            self.buf[self.row_start + mask_words + column] = v;
            if mask_words > 0 {
                self.buf[self.row_start + column / 64] &= !(1u64 << (column % 64));
            }
        }
        self.written += 1;
        Ok(())
    }

    /// Checks that every non-nullable column of the current row got a value.
    fn end_row(&self) -> Result<()> {
        let def = self.cx.schema.get(self.ty);
        let (mask_words, _) = self.layout();
        for (i, c) in def.columns().iter().enumerate() {
            let missing = if mask_words > 0 {
                !c.ty.nullable && self.buf[self.row_start + i / 64] >> (i % 64) & 1 == 1
            } else {
                self.written < def.columns().len()
            };
            if missing {
                return Err(Error::Write(format!(
                    "{}.{} is missing and not an Option",
                    def.name(),
                    c.name
                )));
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Option<u64>> {
        let buf = std::mem::take(&mut self.buf);
        let pending = self.tape.push_record(self.ty.0, &buf);
        self.tape.return_buffer(buf);
        match self.variant_of {
            None => Ok(Some(pending)),
            Some((t, column, variant)) => Ok(Some(push_variant(
                self.cx,
                self.tape,
                t,
                variant,
                Some((column, pending)),
            )?)),
        }
    }

    /// Puts the next field of a tuple or tuple struct.
    fn put_next<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        if self.written >= self.cx.schema.get(self.ty).columns().len() {
            let def = self.cx.schema.get(self.ty);
            return Err(Error::Write(format!(
                "{} has {} fields, got more",
                def.name(),
                def.columns().len()
            )));
        }
        self.put(self.written, value)
    }

    fn end_object(self) -> Result<Option<u64>> {
        self.end_row()?;
        self.finish()
    }
}

macro_rules! tuple_rows {
    ($($trait:ident::$method:ident),*) => {$(
        impl ser::$trait for RowsSer<'_> {
            type Ok = Option<u64>;
            type Error = Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
                self.put_next(value)
            }

            fn end(self) -> Result<Option<u64>> {
                self.end_object()
            }
        }
    )*};
}

tuple_rows!(
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

macro_rules! struct_rows {
    ($($trait:ident),*) => {$(
        impl ser::$trait for RowsSer<'_> {
            type Ok = Option<u64>;
            type Error = Error;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<()> {
                self.field(key, value)
            }

            fn skip_field(&mut self, key: &'static str) -> Result<()> {
                self.skip(key)
            }

            fn end(self) -> Result<Option<u64>> {
                self.end_object()
            }
        }
    )*};
}

struct_rows!(SerializeStruct, SerializeStructVariant);

impl RowsSer<'_> {
    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<()> {
        if self.tape.names.is_field(self.ty, self.written, key) {
            return self.put(self.written, value);
        }
        let def = self.cx.schema.get(self.ty);
        let column = match def.columns().get(self.written) {
            Some(c) if c.name == key => self.written,
            _ => def.column_index(key).ok_or_else(|| Error::UnknownField {
                type_name: def.name().to_string(),
                field: key.to_string(),
            })?,
        };
        self.tape.names.learn_field(self.ty, column, key);
        self.put(column, value)
    }

    fn skip(&mut self, key: &'static str) -> Result<()> {
        let def = self.cx.schema.get(self.ty);
        if def
            .column_index(key)
            .is_some_and(|c| !def.columns()[c].ty.nullable)
        {
            return Err(Error::Write(format!(
                "{}.{key} was skipped but is not an Option, so it cannot be stored as null",
                def.name()
            )));
        }
        self.written += 1;
        Ok(())
    }
}

impl ser::SerializeSeq for RowsSer<'_> {
    type Ok = Option<u64>;
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.begin_row();
        self.put(0, value)
    }

    fn end(self) -> Result<Option<u64>> {
        self.finish()
    }
}

impl ser::SerializeMap for RowsSer<'_> {
    type Ok = Option<u64>;
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.begin_row();
        self.put(0, key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.put(1, value)
    }

    fn end(self) -> Result<Option<u64>> {
        self.finish()
    }
}
