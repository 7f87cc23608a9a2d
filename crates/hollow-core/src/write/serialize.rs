//! The serde bridge on the write side: a `Serializer` that turns a record into canonical rows
//! on the [`Tape`], each nested record, collection and string a pending value of its own.

use serde::ser::{self, Serialize};

use super::tape::{Tape, TapeLayout};
use crate::error::{Error, Result};
use crate::schema::{Kind, Schema, TypeId, TypeKind, ValueType};

/// What the serializer reads of the write state (and only that: the tables themselves may be
/// busy interning an earlier tape on another thread).
#[derive(Clone, Copy)]
pub(super) struct Context<'a> {
    pub schema: &'a Schema,
    pub layout: &'a TapeLayout,
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
            Some(Kind::I64) if u64::try_from(v).is_ok() => Ok(Some(v as u64)),
            _ => Err(self.mismatch(&format!("integer {v}"))),
        }
    }

    fn var(self, kind: Kind, bytes: &[u8]) -> Result<Option<u64>> {
        if self.kind() != Some(kind) {
            return Err(self.mismatch(if kind == Kind::String {
                "a string"
            } else {
                "bytes"
            }));
        }
        let table = self
            .cx
            .layout
            .dictionary(self.owner, self.column)
            .ok_or_else(|| Error::Write("column has no dictionary".into()))?;
        Ok(Some(self.tape.push_bytes(table, bytes)))
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
        }
    }
}

impl<'a> ser::Serializer for ValueSer<'a> {
    type Ok = Option<u64>;
    type Error = Error;
    type SerializeSeq = RowsSer<'a>;
    type SerializeTuple = ser::Impossible<Option<u64>, Error>;
    type SerializeTupleStruct = ser::Impossible<Option<u64>, Error>;
    type SerializeTupleVariant = ser::Impossible<Option<u64>, Error>;
    type SerializeMap = RowsSer<'a>;
    type SerializeStruct = RowsSer<'a>;
    type SerializeStructVariant = ser::Impossible<Option<u64>, Error>;

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
        Err(self.mismatch(name))
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Option<u64>> {
        self.var(Kind::String, variant.as_bytes())
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
        _: &T,
    ) -> Result<Option<u64>> {
        Err(self.mismatch(&format!("enum variant {name}::{variant} with data")))
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<RowsSer<'a>> {
        let t = self.target(TypeKind::List, "a sequence")?;
        Ok(self.rows(t))
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
        Err(self.mismatch("a tuple"))
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(self.mismatch(name))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(self.mismatch(name))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<RowsSer<'a>> {
        let t = self.target(TypeKind::Map, "a map")?;
        Ok(self.rows(t))
    }

    fn serialize_struct(self, name: &'static str, _: usize) -> Result<RowsSer<'a>> {
        let t = match self.expect {
            None => match self.tape.names.root(name) {
                Some(t) => t,
                None => {
                    let t = self.cx.schema.require(name)?;
                    if self.cx.schema.get(t).kind() != TypeKind::Object {
                        return Err(self.mismatch(name));
                    }
                    t
                }
            },
            Some(_) => self.target(TypeKind::Object, name)?,
        };
        if !self.tape.names.is_struct(t, name) {
            if self.cx.schema.get(t).name() != name {
                return Err(self.mismatch(&format!("struct {name}")));
            }
            self.tape.names.learn_struct(t, name, self.expect.is_none());
        }
        let mut rows = self.rows(t);
        rows.begin_row();
        Ok(rows)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(self.mismatch(name))
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
        Ok(Some(pending))
    }
}

impl ser::SerializeStruct for RowsSer<'_> {
    type Ok = Option<u64>;
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
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

    fn skip_field(&mut self, key: &'static str) -> Result<()> {
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

    fn end(self) -> Result<Option<u64>> {
        self.end_row()?;
        self.finish()
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

/// Struct and field names the serializer has matched to the schema before, by address: serde
/// names are `&'static str`, so a name at a known address and length is known without comparing
/// its text.
#[derive(Debug, Default)]
pub(super) struct KnownNames {
    /// The struct name and type of the last root record.
    root: Option<(NameAddress, TypeId)>,
    /// Per type: its struct name.
    structs: Vec<Option<NameAddress>>,
    /// Per type, per column: its field name.
    fields: Vec<Vec<Option<NameAddress>>>,
}

type NameAddress = (usize, usize);

fn address(name: &'static str) -> NameAddress {
    (name.as_ptr() as usize, name.len())
}

impl KnownNames {
    fn root(&self, name: &'static str) -> Option<TypeId> {
        self.root
            .filter(|(a, _)| *a == address(name))
            .map(|(_, t)| t)
    }

    fn is_struct(&self, t: TypeId, name: &'static str) -> bool {
        self.structs.get(t.index()) == Some(&Some(address(name)))
    }

    fn learn_struct(&mut self, t: TypeId, name: &'static str, root: bool) {
        if self.structs.len() <= t.index() {
            self.structs.resize(t.index() + 1, None);
        }
        self.structs[t.index()] = Some(address(name));
        if root {
            self.root = Some((address(name), t));
        }
    }

    fn is_field(&self, t: TypeId, column: usize, key: &'static str) -> bool {
        self.fields
            .get(t.index())
            .and_then(|f| f.get(column))
            .is_some_and(|a| *a == Some(address(key)))
    }

    fn learn_field(&mut self, t: TypeId, column: usize, key: &'static str) {
        if self.fields.len() <= t.index() {
            self.fields.resize_with(t.index() + 1, Vec::new);
        }
        let fields = &mut self.fields[t.index()];
        if fields.len() <= column {
            fields.resize(column + 1, None);
        }
        fields[column] = Some(address(key));
    }
}
