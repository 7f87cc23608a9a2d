//! Paths to the values a record is indexed by: `country`, `cast.id` (through a reference to a
//! list of actors, each actor's `id`), `genres` (every element of a list of strings). A path is
//! resolved against a schema once, into hops; walking it from a record yields zero or more
//! values.

use crate::error::{Error, Result};
use crate::index::{stored_part, KeyPart};
use crate::schema::{Kind, Schema, TypeId, TypeKind};
use crate::type_data::StateTypes;

/// One step of a resolved path: read `column` of type `ty`, in the record's row (an object) or
/// in each of its rows (a list or set, whose elements are passed through).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hop {
    pub(crate) ty: TypeId,
    pub(crate) column: usize,
    pub(crate) collection: bool,
}

/// A field path resolved against a schema: hops from the record type to a scalar or string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyPath {
    pub(crate) hops: Vec<Hop>,
    /// The kind of the values reached.
    pub(crate) kind: Kind,
}

fn bad_path(type_name: &str, path: &str, why: String) -> Error {
    Error::UnknownField {
        type_name: type_name.to_string(),
        field: format!("{path} ({why})"),
    }
}

impl KeyPath {
    /// Resolves `path` (field names joined by `.`) from the object type `root`. Lists and sets
    /// on the way are passed through to their elements; the path must end at a scalar or
    /// string (or a list or set of them).
    pub(crate) fn resolve(schema: &Schema, root: TypeId, path: &str) -> Result<Self> {
        let root_name = schema.get(root).name();
        let mut hops = Vec::new();
        let mut current = root;
        let mut segments = path.split('.').peekable();
        while let Some(segment) = segments.next() {
            let def = schema.get(current);
            if def.kind() != TypeKind::Object {
                return Err(bad_path(
                    root_name,
                    path,
                    format!("{} is not an object type", def.name()),
                ));
            }
            let column = def.column_index(segment).ok_or_else(|| {
                bad_path(
                    root_name,
                    path,
                    format!("{} has no field {segment}", def.name()),
                )
            })?;
            hops.push(Hop {
                ty: current,
                column,
                collection: false,
            });
            let mut kind = def.columns()[column].ty.kind;
            // Through lists and sets to their elements.
            while let Kind::Reference(r) = kind {
                let target = schema.get(r);
                match target.kind() {
                    TypeKind::List | TypeKind::Set => {
                        hops.push(Hop {
                            ty: r,
                            column: 0,
                            collection: true,
                        });
                        kind = target.columns()[0].ty.kind;
                    }
                    TypeKind::Object => break,
                    TypeKind::Map | TypeKind::Enum => {
                        return Err(bad_path(
                            root_name,
                            path,
                            format!(
                                "{} is a map or enum, which paths do not enter",
                                target.name()
                            ),
                        ))
                    }
                }
            }
            match (kind, segments.peek()) {
                (Kind::Reference(r), Some(_)) => current = r,
                (Kind::Reference(r), None) => {
                    return Err(bad_path(
                        root_name,
                        path,
                        format!(
                            "it ends at {}: name one of its fields",
                            schema.get(r).name()
                        ),
                    ))
                }
                (_, Some(next)) => {
                    return Err(bad_path(
                        root_name,
                        path,
                        format!("{segment} holds values, it has no field {next}"),
                    ))
                }
                (kind, None) => return Ok(Self { hops, kind }),
            }
        }
        Err(bad_path(root_name, path, "it is empty".into()))
    }

    /// Calls `f` with each value the path reaches from record `ordinal` of its root type (nulls
    /// are left out).
    #[inline]
    pub(crate) fn for_each<'s, S: StateTypes>(
        &self,
        state: &'s S,
        ordinal: u32,
        f: &mut impl FnMut(KeyPart<'s>),
    ) {
        self.walk(state, 0, ordinal as u64, f);
    }

    fn walk<'s, S: StateTypes>(
        &self,
        state: &'s S,
        hop: usize,
        ordinal: u64,
        f: &mut impl FnMut(KeyPart<'s>),
    ) {
        let Some(h) = self.hops.get(hop) else {
            return;
        };
        let data = &**state.type_data(h.ty);
        let rows = if h.collection {
            data.row_range(ordinal)
        } else if ordinal < data.slot_count() {
            ordinal..ordinal + 1
        } else {
            return;
        };
        let last = hop + 1 == self.hops.len();
        for row in rows {
            let Some(v) = data.value(row, h.column) else {
                continue;
            };
            if last {
                f(stored_part(self.kind, v, |e| {
                    data.dicts[h.column].as_ref()?.get(e)
                }));
            } else {
                self.walk(state, hop + 1, v, f);
            }
        }
    }
}
