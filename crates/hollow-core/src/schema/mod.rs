//! The data model: a [`Schema`] is a set of named types. Each type is an object (named fields),
//! a list, a set or a map; every one of them is stored as rows of typed columns — an object has one
//! row per record, a collection has one row per element (or map entry).
//!
//! Schemas are never written by hand: [`SchemaBuilder::add`] derives them from Rust types that
//! implement serde's `Serialize` and `Deserialize`.

mod codec;
mod compat;
mod field_path;
mod rust_names;
mod trace;

use std::collections::HashMap;
use std::fmt;

use crate::error::{Error, Result, SchemaProblem};

pub use compat::SchemaConflict;
pub(crate) use field_path::{FieldPath, Hop};
pub(crate) use rust_names::{names_instance, record_type_name, schema_name};
pub use trace::SchemaBuilder;

/// Index of a type in its [`Schema`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId(pub(crate) u32);

impl TypeId {
    /// The position of the type in [`Schema::types`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// 32-bit signed integer (also `i8`, `i16`, `u8`, `u16`).
    I32,
    /// 64-bit signed integer (also `u32`).
    I64,
    /// 64-bit unsigned integer, over its whole range.
    U64,
    /// 128-bit signed integer, stored as 16 little-endian bytes in a per-column dictionary.
    I128,
    /// 128-bit unsigned integer, stored as 16 little-endian bytes in a per-column dictionary.
    U128,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// Boolean.
    Bool,
    /// UTF-8 string (also `char` and enums whose variants carry no data, by variant name).
    /// Deduplicated per column.
    String,
    /// Byte string (`serde_bytes`). Deduplicated per column.
    Bytes,
    /// A record of another type, by ordinal.
    Reference(TypeId),
}

impl Kind {
    /// True for kinds stored in a per-column dictionary of byte strings.
    pub fn is_var_length(self) -> bool {
        matches!(self, Kind::String | Kind::Bytes | Kind::I128 | Kind::U128)
    }

    /// True for the integer kinds stored in a column word (`I32`, `I64`, `U64`).
    pub fn is_word_integer(self) -> bool {
        matches!(self, Kind::I32 | Kind::I64 | Kind::U64)
    }

    /// True for kinds whose canonical value is a two's-complement signed integer.
    pub fn is_signed(self) -> bool {
        matches!(self, Kind::I32 | Kind::I64)
    }
}

/// The type of a column: a kind and whether it may be null (`Option`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ValueType {
    /// What the column holds.
    pub kind: Kind,
    /// True when the Rust field is an `Option`.
    pub nullable: bool,
}

/// One column of a type: an object field, or the element / key / value of a collection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Field name (`element`, `key`, `value` for collections).
    pub name: String,
    /// Column type.
    pub ty: ValueType,
}

/// The shape of a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TypeKind {
    /// Named fields, one row per record.
    Object,
    /// Ordered elements; column `element`.
    List,
    /// Unordered distinct elements, kept in canonical order; column `element`.
    Set,
    /// Entries with distinct keys, kept in canonical order; columns `key`, `value`.
    Map,
    /// An enum whose variants carry data, one row per value: column `variant` (the variant's
    /// name), then one nullable column per variant with data, named after it, set for the
    /// variant the value is. A newtype variant's column holds its value; a tuple or struct
    /// variant's column references an object type named `Enum::Variant`.
    Enum,
}

/// One field of a primary key: a field of the keyed type (`id`), or a path through references
/// to objects to a field of a type it references (`category.id`: the `id` of the record's
/// category). Either reaches exactly one value (or null) per record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyField {
    path: String,
    /// The column read in each type along the path, from the keyed type's.
    columns: Vec<usize>,
    /// The type of the value reached; nullable when a field on the way may be null.
    ty: ValueType,
}

impl KeyField {
    /// A key field named by its path, to be resolved when the schema is built.
    pub(crate) fn unresolved(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            columns: Vec::new(),
            ty: ValueType {
                kind: Kind::Bool,
                nullable: false,
            },
        }
    }

    /// The field's name, or its path of names joined by `.`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The column read in each type along the path, starting with the keyed type's; one
    /// column for a field of the keyed type itself.
    pub fn columns(&self) -> &[usize] {
        &self.columns
    }

    /// The type of the value the field reaches (nullable when any field on the way may be
    /// null).
    pub fn value_type(&self) -> ValueType {
        self.ty
    }

    /// True when the field is a path through a referenced type (`category.id`).
    pub fn is_path(&self) -> bool {
        self.columns.len() > 1
    }
}

/// One named type of a schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeDef {
    pub(crate) name: String,
    pub(crate) kind: TypeKind,
    pub(crate) columns: Vec<Column>,
    pub(crate) primary_key: Vec<KeyField>,
    /// The hash indexes declared on the type: each a list of field paths.
    pub(crate) hash_indexes: Vec<Vec<String>>,
}

impl TypeDef {
    /// The type's name: the serde name of a struct or enum (with its type parameters for a
    /// generic one, e.g. `PageOfMovie`), `ListOfX`, `SetOfX`, `MapOfXToY`, `TupleOfXAndY`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Object, list, set or map.
    pub fn kind(&self) -> TypeKind {
        self.kind
    }

    /// The columns: fields of an object, element of a list or set, key and value of a map.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Position of the column named `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The fields of the primary key, in key order; empty when the type has none.
    pub fn primary_key(&self) -> &[KeyField] {
        &self.primary_key
    }

    /// The names (or paths) of the primary key's fields, in key order.
    pub fn key_field_names(&self) -> Vec<&str> {
        self.primary_key.iter().map(KeyField::path).collect()
    }

    /// The hash indexes declared on the type with [`SchemaBuilder::hash_index`], each as its
    /// field paths. Every state of the schema builds them when it is loaded.
    pub fn hash_indexes(&self) -> &[Vec<String>] {
        &self.hash_indexes
    }

    /// True for list, set and map types (several rows per record).
    pub fn is_collection(&self) -> bool {
        matches!(self.kind, TypeKind::List | TypeKind::Set | TypeKind::Map)
    }
}

/// A set of named types that reference each other by [`TypeId`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schema {
    types: Vec<TypeDef>,
    by_name: HashMap<String, TypeId>,
}

impl Schema {
    /// Builds a schema from type definitions, checking that references and keys are valid.
    pub(crate) fn from_types(types: Vec<TypeDef>) -> Result<Self> {
        let mut by_name = HashMap::with_capacity(types.len());
        for (i, t) in types.iter().enumerate() {
            if by_name.insert(t.name.clone(), TypeId(i as u32)).is_some() {
                return Err(Error::invalid_schema(&t.name, SchemaProblem::DefinedTwice));
            }
            let expected_columns = match t.kind {
                TypeKind::Object | TypeKind::Enum => None,
                TypeKind::List | TypeKind::Set => Some(1),
                TypeKind::Map => Some(2),
            };
            if expected_columns.is_some_and(|n| n != t.columns.len()) {
                return Err(Error::invalid_schema(
                    &t.name,
                    SchemaProblem::CollectionColumns {
                        columns: t.columns.len(),
                    },
                ));
            }
            let variant_column = ValueType {
                kind: Kind::String,
                nullable: false,
            };
            if t.kind == TypeKind::Enum
                && !t
                    .columns
                    .first()
                    .is_some_and(|c| c.name == "variant" && c.ty == variant_column)
            {
                return Err(Error::invalid_schema(
                    &t.name,
                    SchemaProblem::EnumWithoutVariant,
                ));
            }
            if t.kind != TypeKind::Object && !t.primary_key.is_empty() {
                return Err(Error::invalid_schema(
                    &t.name,
                    SchemaProblem::KeyOnNonObject,
                ));
            }
            if t.kind != TypeKind::Object && !t.hash_indexes.is_empty() {
                return Err(Error::invalid_schema(
                    &t.name,
                    SchemaProblem::HashIndexOnNonObject,
                ));
            }
            for c in &t.columns {
                if let Kind::Reference(r) = c.ty.kind {
                    if r.index() >= types.len() {
                        return Err(Error::invalid_schema(
                            &t.name,
                            SchemaProblem::DanglingReference {
                                field: c.name.clone(),
                                type_id: r.0,
                                types: types.len(),
                            },
                        ));
                    }
                }
            }
        }
        let mut schema = Self { types, by_name };
        schema.resolve_keys()?;
        Ok(schema)
    }

    /// Resolves every primary key field's path into its columns and value type, and checks
    /// the declared hash indexes' paths.
    fn resolve_keys(&mut self) -> Result<()> {
        for i in 0..self.types.len() {
            let root = TypeId(i as u32);
            let mut fields = std::mem::take(&mut self.types[i].primary_key);
            for field in &mut fields {
                if self.is_reference_field(root, &field.path) {
                    return Err(Error::invalid_schema(
                        &self.types[i].name,
                        SchemaProblem::KeyFieldIsReference {
                            field: field.path.clone(),
                        },
                    ));
                }
                let path = self.resolve_path(root, &field.path)?;
                if path.through_collection() {
                    return Err(Error::invalid_schema(
                        &self.types[i].name,
                        SchemaProblem::KeyThroughCollection {
                            field: field.path.clone(),
                        },
                    ));
                }
                field.columns = path.hops.iter().map(|h| h.column).collect();
                field.ty = ValueType {
                    kind: path.kind,
                    nullable: path.nullable,
                };
            }
            self.types[i].primary_key = fields;
            for fields in &self.types[i].hash_indexes {
                if fields.is_empty() || fields.len() > 32 {
                    return Err(Error::invalid_schema(
                        &self.types[i].name,
                        SchemaProblem::HashIndexFieldCount {
                            fields: fields.len(),
                        },
                    ));
                }
                for f in fields {
                    self.resolve_path(root, f)?;
                }
            }
        }
        Ok(())
    }

    /// True when `path` from `root` ends at a field that holds a reference.
    fn is_reference_field(&self, root: TypeId, path: &str) -> bool {
        let mut ty = Kind::Reference(root);
        for segment in path.split('.') {
            let Kind::Reference(r) = ty else {
                return false;
            };
            let def = self.get(r);
            let Some(c) = def.column_index(segment) else {
                return false;
            };
            ty = def.columns[c].ty.kind;
        }
        matches!(ty, Kind::Reference(_))
    }

    /// Every type, in [`TypeId`] order.
    pub fn types(&self) -> &[TypeDef] {
        &self.types
    }

    /// The type with id `id`.
    pub fn get(&self, id: TypeId) -> &TypeDef {
        &self.types[id.index()]
    }

    /// The id of the type named `name`.
    pub fn type_id(&self, name: &str) -> Option<TypeId> {
        self.by_name.get(name).copied()
    }

    /// The type that the Rust record type `T` (a struct, tuple struct or unit struct) is stored
    /// as: the type of its serde name, with its type arguments for a generic one
    /// (`Page<Movie>` → `PageOfMovie`).
    pub fn record_type<'de, T: serde::Deserialize<'de>>(&self) -> Result<TypeId> {
        self.require(&record_type_name::<T>()?)
    }

    /// The id of the type named `name`, or [`Error::UnknownType`].
    pub fn require(&self, name: &str) -> Result<TypeId> {
        self.type_id(name)
            .ok_or_else(|| Error::UnknownType(name.to_string()))
    }

    /// Number of types.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// True when the schema has no type.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// True when type `a` of this schema and type `b` of `other` are defined alike: same name,
    /// kind, columns (references compared by the referenced type's name) and primary key. Records
    /// of such a type carry over from a state of one schema to a state of the other.
    pub fn same_type_as(&self, a: TypeId, other: &Schema, b: TypeId) -> bool {
        let (x, y) = (self.get(a), other.get(b));
        x.name == y.name
            && x.kind == y.kind
            && x.primary_key.len() == y.primary_key.len()
            && x.primary_key
                .iter()
                .zip(&y.primary_key)
                .all(|(k, l)| k.path == l.path && k.ty == l.ty)
            && x.columns.len() == y.columns.len()
            && x.columns.iter().zip(&y.columns).all(|(c, d)| {
                c.name == d.name
                    && c.ty.nullable == d.ty.nullable
                    && match (c.ty.kind, d.ty.kind) {
                        (Kind::Reference(p), Kind::Reference(q)) => {
                            self.get(p).name == other.get(q).name
                        }
                        (p, q) => p == q,
                    }
            })
    }

    /// The type of `other` defined like type `a` of this schema, if any.
    pub fn counterpart_in(&self, a: TypeId, other: &Schema) -> Option<TypeId> {
        other
            .type_id(self.get(a).name())
            .filter(|&b| self.same_type_as(a, other, b))
    }

    /// Display name of a column type, as in the text form.
    pub fn type_name(&self, ty: ValueType) -> String {
        let base = match ty.kind {
            Kind::I32 => "i32",
            Kind::I64 => "i64",
            Kind::U64 => "u64",
            Kind::I128 => "i128",
            Kind::U128 => "u128",
            Kind::F32 => "f32",
            Kind::F64 => "f64",
            Kind::Bool => "bool",
            Kind::String => "string",
            Kind::Bytes => "bytes",
            Kind::Reference(t) => &self.get(t).name,
        };
        if ty.nullable {
            format!("{base}?")
        } else {
            base.to_string()
        }
    }
}

/// The readable text form: one type per block, e.g.
///
/// ```text
/// Movie @PrimaryKey(id) {
///     id: i64
///     title: string
///     cast: ListOfActor
/// }
/// ListOfActor = List<Actor>
/// ```
impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.types {
            let col = |i: usize| self.type_name(t.columns[i].ty);
            match t.kind {
                TypeKind::Object | TypeKind::Enum => {
                    if t.kind == TypeKind::Enum {
                        write!(f, "enum ")?;
                    }
                    write!(f, "{}", t.name)?;
                    if !t.primary_key.is_empty() {
                        write!(f, " @PrimaryKey({})", t.key_field_names().join(", "))?;
                    }
                    for fields in &t.hash_indexes {
                        write!(f, " @HashIndex({})", fields.join(", "))?;
                    }
                    writeln!(f, " {{")?;
                    for (i, c) in t.columns.iter().enumerate() {
                        writeln!(f, "    {}: {}", c.name, col(i))?;
                    }
                    writeln!(f, "}}")?;
                }
                TypeKind::List => writeln!(f, "{} = List<{}>", t.name, col(0))?,
                TypeKind::Set => writeln!(f, "{} = Set<{}>", t.name, col(0))?,
                TypeKind::Map => writeln!(f, "{} = Map<{}, {}>", t.name, col(0), col(1))?,
            }
        }
        Ok(())
    }
}
