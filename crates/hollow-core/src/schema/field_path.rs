//! Paths to the values a record is keyed or indexed by: `country`, `category.id` (the `id` of
//! the category a record references), `cast.id` (through a list of actors, each actor's `id`),
//! `genres` (every element of a list of strings). A path is resolved against a schema once,
//! into hops; primary keys take paths that reach one value per record, hash indexes any.

use super::{Kind, Schema, TypeId, TypeKind};
use crate::error::{Error, Result};

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
pub(crate) struct FieldPath {
    pub(crate) hops: Vec<Hop>,
    /// The kind of the values reached.
    pub(crate) kind: Kind,
    /// True when a field on the way, or the last one, may be null.
    pub(crate) nullable: bool,
}

fn bad_path(type_name: &str, path: &str, why: String) -> Error {
    Error::UnknownField {
        type_name: type_name.to_string(),
        field: format!("{path} ({why})"),
    }
}

impl FieldPath {
    /// True when the path passes through a list or set, so that it may reach several values
    /// (or none) from one record.
    pub(crate) fn through_collection(&self) -> bool {
        self.hops.iter().any(|h| h.collection)
    }
}

impl Schema {
    /// Resolves `path` (field names joined by `.`) from the object type `root`. Lists and sets
    /// on the way are passed through to their elements; the path must end at a scalar or
    /// string (or a list or set of them).
    pub(crate) fn resolve_path(&self, root: TypeId, path: &str) -> Result<FieldPath> {
        let root_name = self.get(root).name();
        let mut hops = Vec::new();
        let mut nullable = false;
        let mut current = root;
        let mut segments = path.split('.').peekable();
        while let Some(segment) = segments.next() {
            let def = self.get(current);
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
            let mut ty = def.columns()[column].ty;
            // Through lists and sets to their elements.
            while let Kind::Reference(r) = ty.kind {
                let target = self.get(r);
                match target.kind() {
                    TypeKind::List | TypeKind::Set => {
                        hops.push(Hop {
                            ty: r,
                            column: 0,
                            collection: true,
                        });
                        nullable |= ty.nullable;
                        ty = target.columns()[0].ty;
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
            nullable |= ty.nullable;
            match (ty.kind, segments.peek()) {
                (Kind::Reference(r), Some(_)) => current = r,
                (Kind::Reference(r), None) => {
                    return Err(bad_path(
                        root_name,
                        path,
                        format!("it ends at {}: name one of its fields", self.get(r).name()),
                    ))
                }
                (_, Some(next)) => {
                    return Err(bad_path(
                        root_name,
                        path,
                        format!("{segment} holds values, it has no field {next}"),
                    ))
                }
                (kind, None) => {
                    return Ok(FieldPath {
                        hops,
                        kind,
                        nullable,
                    })
                }
            }
        }
        Err(bad_path(root_name, path, "it is empty".into()))
    }
}
