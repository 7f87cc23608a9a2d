//! The binary form of a schema inside a blob.

use super::{Column, Kind, Schema, TypeDef, TypeId, TypeKind, ValueType};
use crate::byte_io::{ByteReader, ByteWriter};
use crate::error::{CorruptReason, Error, Result};

impl Schema {
    /// Appends the binary form of the schema.
    pub(crate) fn encode(&self, w: &mut ByteWriter) {
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
            for &k in &t.primary_key {
                w.u32(k as u32);
            }
        }
    }

    /// Reads a schema written by [`Schema::encode`]. Counts are never trusted for allocation:
    /// vectors grow only as the bytes they describe are read.
    pub(crate) fn decode(r: &mut ByteReader) -> Result<Self> {
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
                primary_key.push(r.u32("primary key column")? as usize);
            }
            types.push(TypeDef {
                name,
                kind,
                columns,
                primary_key,
            });
        }
        Schema::from_types(types).map_err(|e| match e {
            Error::InvalidSchema { type_name, problem } => Error::corrupt(
                "schema",
                CorruptReason::InvalidSchema { type_name, problem },
            ),
            other => other,
        })
    }
}
