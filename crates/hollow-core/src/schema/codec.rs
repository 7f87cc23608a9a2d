//! The binary form of a schema inside a blob.
//!
//! Formats 1 and 2 end each type with its primary key as column positions. Format 3 writes
//! each key field as its path (`id`, `category.id`), then the type's declared hash indexes,
//! each as a count of fields and their paths. A schema is written in format 3 only when it
//! needs to be (a key through a reference, or a declared hash index), so readers that know
//! only format 2 keep reading what they can.

use super::{Column, KeyField, Kind, Schema, TypeDef, TypeId, TypeKind, ValueType};
use crate::byte_io::{ByteReader, ByteWriter};
use crate::error::{CorruptReason, Error, Result, SchemaProblem};

/// The first format whose schema carries key paths and hash indexes.
pub(crate) const PATHS_FORMAT: u32 = 3;

impl Schema {
    /// The oldest blob format that holds this schema: 3 when a primary key passes through a
    /// reference or a hash index is declared, 2 otherwise.
    pub(crate) fn format_version(&self) -> u32 {
        let needs_paths = self
            .types
            .iter()
            .any(|t| !t.hash_indexes.is_empty() || t.primary_key.iter().any(KeyField::is_path));
        if needs_paths {
            PATHS_FORMAT
        } else {
            PATHS_FORMAT - 1
        }
    }

    /// Appends the binary form of the schema, in [`Schema::format_version`].
    pub(crate) fn encode(&self, w: &mut ByteWriter) {
        let paths = self.format_version() >= PATHS_FORMAT;
        w.u32(self.types.len() as u32);
        for t in &self.types {
            w.str(&t.name);
            w.u8(match t.kind {
                TypeKind::Object => 0,
                TypeKind::List => 1,
                TypeKind::Set => 2,
                TypeKind::Map => 3,
                TypeKind::Enum => 4,
            });
            w.u32(t.columns.len() as u32);
            for c in &t.columns {
                w.str(&c.name);
                let (code, target) = match c.ty.kind {
                    Kind::I32 => (0, None),
                    Kind::I64 => (1, None),
                    Kind::F32 => (2, None),
                    Kind::F64 => (3, None),
                    Kind::Bool => (4, None),
                    Kind::String => (5, None),
                    Kind::Bytes => (6, None),
                    Kind::Reference(t) => (7, Some(t.0)),
                    Kind::U64 => (8, None),
                    Kind::I128 => (9, None),
                    Kind::U128 => (10, None),
                };
                w.u8(code);
                w.u8(c.ty.nullable as u8);
                if let Some(t) = target {
                    w.u32(t);
                }
            }
            w.u32(t.primary_key.len() as u32);
            for k in &t.primary_key {
                match paths {
                    true => w.str(k.path()),
                    false => w.u32(k.columns()[0] as u32),
                }
            }
            if paths {
                w.u32(t.hash_indexes.len() as u32);
                for fields in &t.hash_indexes {
                    w.u32(fields.len() as u32);
                    fields.iter().for_each(|f| w.str(f));
                }
            }
        }
    }

    /// Reads a schema written by [`Schema::encode`] in blob format `format`. Counts are never
    /// trusted for allocation: vectors grow only as the bytes they describe are read.
    pub(crate) fn decode(r: &mut ByteReader, format: u32) -> Result<Self> {
        let paths = format >= PATHS_FORMAT;
        let count = r.u32("schema type count")?;
        let mut types = Vec::new();
        for _ in 0..count {
            let name = r.str("type name")?;
            let kind = match r.u8("type kind")? {
                0 => TypeKind::Object,
                1 => TypeKind::List,
                2 => TypeKind::Set,
                3 => TypeKind::Map,
                4 => TypeKind::Enum,
                k => {
                    return Err(Error::corrupt(
                        format!("schema: type {name}"),
                        CorruptReason::UnknownCode {
                            what: "type kind",
                            code: k.into(),
                        },
                    ))
                }
            };
            let ncols = r.u32("column count")?;
            let mut columns = Vec::new();
            for _ in 0..ncols {
                let cname = r.str("column name")?;
                let code = r.u8("column kind")?;
                let nullable = match r.u8("column nullability")? {
                    0 => false,
                    1 => true,
                    n => {
                        return Err(Error::corrupt(
                            format!("schema: {name}.{cname}"),
                            CorruptReason::UnknownCode {
                                what: "nullability flag",
                                code: n.into(),
                            },
                        ))
                    }
                };
                let kind = match code {
                    0 => Kind::I32,
                    1 => Kind::I64,
                    2 => Kind::F32,
                    3 => Kind::F64,
                    4 => Kind::Bool,
                    5 => Kind::String,
                    6 => Kind::Bytes,
                    7 => Kind::Reference(TypeId(r.u32("referenced type")?)),
                    8 => Kind::U64,
                    9 => Kind::I128,
                    10 => Kind::U128,
                    k => {
                        return Err(Error::corrupt(
                            format!("schema: {name}.{cname}"),
                            CorruptReason::UnknownCode {
                                what: "field kind",
                                code: k.into(),
                            },
                        ))
                    }
                };
                columns.push(Column {
                    name: cname,
                    ty: ValueType { kind, nullable },
                });
            }
            let nkeys = r.u32("primary key length")?;
            let mut primary_key = Vec::new();
            for _ in 0..nkeys {
                let path = if paths {
                    r.str("primary key field")?
                } else {
                    let column = r.u32("primary key column")? as usize;
                    let c = columns.get(column).ok_or_else(|| {
                        Error::corrupt(
                            "schema",
                            CorruptReason::InvalidSchema {
                                type_name: name.clone(),
                                problem: SchemaProblem::KeyColumnMissing { column },
                            },
                        )
                    })?;
                    c.name.clone()
                };
                primary_key.push(KeyField::unresolved(path));
            }
            let mut hash_indexes = Vec::new();
            if paths {
                for _ in 0..r.u32("hash index count")? {
                    let mut fields = Vec::new();
                    for _ in 0..r.u32("hash index field count")? {
                        fields.push(r.str("hash index field")?);
                    }
                    hash_indexes.push(fields);
                }
            }
            types.push(TypeDef {
                name,
                kind,
                columns,
                primary_key,
                hash_indexes,
            });
        }
        Schema::from_types(types).map_err(|e| match e {
            Error::InvalidSchema { type_name, problem } => Error::corrupt(
                "schema",
                CorruptReason::InvalidSchema { type_name, problem },
            ),
            Error::UnknownField { type_name, field } => Error::corrupt(
                "schema",
                CorruptReason::InvalidSchema {
                    type_name,
                    problem: SchemaProblem::UnresolvedPath { path: field },
                },
            ),
            other => other,
        })
    }
}
