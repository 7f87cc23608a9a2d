//! Allocation-free field access for hot lookups: resolve a field once, then read it by ordinal.
//!
//! ```
//! # use serde::{Deserialize, Serialize};
//! # use hollow_core::{SchemaBuilder, WriteState, ReadState};
//! # #[derive(Serialize, Deserialize)]
//! # struct Movie { id: i64, title: String, year: Option<i32> }
//! # let schema = SchemaBuilder::new().add::<Movie>().build()?;
//! # let mut w = WriteState::new(schema);
//! # w.add(&Movie { id: 7, title: "Ran".into(), year: Some(1985) })?;
//! # let state = ReadState::from_snapshot(w.write_snapshot(1)?.into())?;
//! let movies = state.object("Movie")?;
//! let (title, year) = (movies.string("title")?, movies.int("year")?);
//! for ordinal in movies.ordinals() {
//!     assert_eq!(title.get(ordinal), Some("Ran"));
//!     assert_eq!(year.get(ordinal), Some(1985));
//! }
//! # Ok::<(), hollow_core::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::schema::{Kind, TypeDef};

use crate::type_data::{Dictionary, TypeData};

/// Reads the records of one object type.
#[derive(Clone, Copy, Debug)]
pub struct ObjectReader<'a> {
    def: &'a TypeDef,
    data: &'a TypeData,
}

/// A resolved column of an object type: reads the canonical value by ordinal.
#[derive(Clone, Copy, Debug)]
struct Column<'a> {
    data: &'a TypeData,
    index: usize,
}

impl Column<'_> {
    #[inline(always)]
    fn get(&self, ordinal: u32) -> Option<u64> {
        if ordinal as u64 >= self.data.slot_count() {
            return None;
        }
        self.data.value(ordinal as u64, self.index)
    }
}

macro_rules! field_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name<'a>(Column<'a>);
    };
}

field_type!(
    /// An `i32` or `i64` field. `get` returns `None` for null or a missing ordinal.
    IntField
);
field_type!(
    /// A `u64` field (over its whole range).
    UIntField
);
field_type!(
    /// An `f32` or `f64` field.
    FloatField
);
field_type!(
    /// A `bool` field.
    BoolField
);
field_type!(
    /// A string field; values borrow from the state.
    StrField
);
field_type!(
    /// A bytes field; values borrow from the state.
    BytesField
);
field_type!(
    /// A reference field: the ordinal of the referenced record.
    RefField
);

impl IntField<'_> {
    /// The value at `ordinal`.
    #[inline(always)]
    pub fn get(&self, ordinal: u32) -> Option<i64> {
        self.0.get(ordinal).map(|v| v as i64)
    }
}

impl UIntField<'_> {
    /// The value at `ordinal`.
    #[inline(always)]
    pub fn get(&self, ordinal: u32) -> Option<u64> {
        self.0.get(ordinal)
    }
}

impl FloatField<'_> {
    /// The value at `ordinal`, widened to `f64`.
    #[inline(always)]
    pub fn get(&self, ordinal: u32) -> Option<f64> {
        let v = self.0.get(ordinal)?;
        Some(match self.0.data.columns[self.0.index].kind {
            Kind::F32 => f32::from_bits(v as u32) as f64,
            _ => f64::from_bits(v),
        })
    }
}

impl BoolField<'_> {
    /// The value at `ordinal`.
    #[inline(always)]
    pub fn get(&self, ordinal: u32) -> Option<bool> {
        self.0.get(ordinal).map(|v| v != 0)
    }
}

impl<'a> StrField<'a> {
    /// The value at `ordinal`, borrowed from the state.
    #[inline(always)]
    pub fn get(&self, ordinal: u32) -> Option<&'a str> {
        let entry = self.0.get(ordinal)?;
        let dict: &'a Dictionary = self.0.data.dicts[self.0.index].as_ref()?;
        dict.get_str(entry)
    }
}

impl<'a> BytesField<'a> {
    /// The value at `ordinal`, borrowed from the state.
    #[inline(always)]
    pub fn get(&self, ordinal: u32) -> Option<&'a [u8]> {
        let entry = self.0.get(ordinal)?;
        let dict: &'a Dictionary = self.0.data.dicts[self.0.index].as_ref()?;
        dict.get(entry)
    }
}

impl RefField<'_> {
    /// The ordinal referenced from `ordinal`.
    #[inline(always)]
    pub fn get(&self, ordinal: u32) -> Option<u32> {
        self.0.get(ordinal).and_then(|v| u32::try_from(v).ok())
    }
}

impl<'a> ObjectReader<'a> {
    pub(crate) fn new(def: &'a TypeDef, data: &'a TypeData) -> Self {
        Self { def, data }
    }

    /// Number of records.
    pub fn len(&self) -> u64 {
        self.data.record_count
    }

    /// True when the type has no record.
    pub fn is_empty(&self) -> bool {
        self.data.record_count == 0
    }

    /// True when `ordinal` holds a record.
    pub fn contains(&self, ordinal: u32) -> bool {
        self.data.population.contains(ordinal as u64)
    }

    /// Every ordinal holding a record, ascending.
    pub fn ordinals(&self) -> impl Iterator<Item = u32> + 'a {
        self.data.population.iter().map(|o| o as u32)
    }

    fn column(
        &self,
        name: &str,
        requested: &'static str,
        ok: fn(Kind) -> bool,
    ) -> Result<Column<'a>> {
        let index = self
            .def
            .column_index(name)
            .ok_or_else(|| Error::UnknownField {
                type_name: self.def.name().to_string(),
                field: name.to_string(),
            })?;
        let kind = self.def.columns()[index].ty.kind;
        if !ok(kind) {
            return Err(Error::FieldKindMismatch {
                type_name: self.def.name().to_string(),
                field: name.to_string(),
                requested,
                actual: format!("{kind:?}"),
            });
        }
        Ok(Column {
            data: self.data,
            index,
        })
    }

    /// The `i32` or `i64` field `name`.
    pub fn int(&self, name: &str) -> Result<IntField<'a>> {
        self.column(name, "an integer", |k| matches!(k, Kind::I32 | Kind::I64))
            .map(IntField)
    }

    /// The `u64` field `name` (also an `i64` field of a state written before `u64` had a kind
    /// of its own, read bit for bit).
    pub fn uint(&self, name: &str) -> Result<UIntField<'a>> {
        self.column(name, "a u64", |k| matches!(k, Kind::U64 | Kind::I64))
            .map(UIntField)
    }

    /// The `f32` or `f64` field `name`.
    pub fn float(&self, name: &str) -> Result<FloatField<'a>> {
        self.column(name, "a float", |k| matches!(k, Kind::F32 | Kind::F64))
            .map(FloatField)
    }

    /// The `bool` field `name`.
    pub fn bool(&self, name: &str) -> Result<BoolField<'a>> {
        self.column(name, "a bool", |k| k == Kind::Bool)
            .map(BoolField)
    }

    /// The string field `name`.
    pub fn string(&self, name: &str) -> Result<StrField<'a>> {
        self.column(name, "a string", |k| k == Kind::String)
            .map(StrField)
    }

    /// The bytes field `name`.
    pub fn bytes(&self, name: &str) -> Result<BytesField<'a>> {
        self.column(name, "bytes", |k| k == Kind::Bytes)
            .map(BytesField)
    }

    /// The reference field `name`.
    pub fn reference(&self, name: &str) -> Result<RefField<'a>> {
        self.column(name, "a reference", |k| matches!(k, Kind::Reference(_)))
            .map(RefField)
    }
}

/// Reads the records of one list, set or map type.
#[derive(Clone, Copy, Debug)]
pub struct CollectionReader<'a> {
    data: &'a TypeData,
}

impl<'a> CollectionReader<'a> {
    pub(crate) fn new(data: &'a TypeData) -> Self {
        Self { data }
    }

    /// Number of records.
    pub fn len(&self) -> u64 {
        self.data.record_count
    }

    /// True when the type has no record.
    pub fn is_empty(&self) -> bool {
        self.data.record_count == 0
    }

    /// Number of elements (or entries) of the record at `ordinal`; 0 for a missing ordinal.
    #[inline]
    pub fn size(&self, ordinal: u32) -> u64 {
        let r = self.data.row_range(ordinal as u64);
        r.end - r.start
    }

    /// The referenced ordinals held by record `ordinal` of a list or set of references (the
    /// values of a map of references), in stored order; nulls are skipped.
    pub fn references(&self, ordinal: u32) -> impl Iterator<Item = u32> + 'a {
        let data = self.data;
        let column = data.columns.len() - 1;
        let is_ref = matches!(data.columns[column].kind, Kind::Reference(_));
        data.row_range(ordinal as u64)
            .filter(move |_| is_ref)
            .filter_map(move |row| data.value(row, column))
            .map(|v| v as u32)
    }

    /// The strings held by record `ordinal` of a list or set of strings (the keys of a map with
    /// string keys), in stored order; nulls are skipped.
    pub fn strings(&self, ordinal: u32) -> impl Iterator<Item = &'a str> + 'a {
        let data = self.data;
        let dict = data.dicts.first().and_then(|d| d.as_ref());
        data.row_range(ordinal as u64)
            .filter_map(move |row| data.value(row, 0))
            .filter_map(move |v| dict?.get_str(v))
    }
}
