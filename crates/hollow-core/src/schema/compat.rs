//! Which schema changes readers survive. Two questions, asked of whole schemas:
//! - [`Schema::breaking_changes_to`]: what a producer's next schema changes that a reader of the
//!   announced one may fail on (a field's kind, a primary key, a type's shape), as opposed to
//!   adding or removing fields and types;
//! - [`Schema::unreadable_as`]: whether a state can be read with the Rust types a consumer
//!   declared (their schema, traced by a [`SchemaBuilder`](super::SchemaBuilder)).

use std::fmt;

use super::{Kind, Schema, TypeDef, TypeKind, ValueType};

/// One difference between two schemas that readers may fail on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaConflict {
    /// The type concerned.
    pub type_name: String,
    /// The field concerned, if the conflict is about one field.
    pub field: Option<String>,
    /// What differs, e.g. "was i32, is now i64".
    pub reason: String,
}

impl SchemaConflict {
    /// `conflicts` in one line, separated by `; `.
    pub fn join(conflicts: &[SchemaConflict]) -> String {
        conflicts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl fmt::Display for SchemaConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}.{field}: {}", self.type_name, self.reason),
            None => write!(f, "{}: {}", self.type_name, self.reason),
        }
    }
}

fn shape(kind: TypeKind) -> &'static str {
    match kind {
        TypeKind::Object => "an object",
        TypeKind::List => "a list",
        TypeKind::Set => "a set",
        TypeKind::Map => "a map",
        TypeKind::Enum => "an enum",
    }
}

fn conflict(t: &TypeDef, field: Option<&str>, reason: String) -> SchemaConflict {
    SchemaConflict {
        type_name: t.name().to_string(),
        field: field.map(str::to_string),
        reason,
    }
}

/// The kind of a column with references named by their type, to compare across schemas.
fn kind_name(schema: &Schema, ty: ValueType) -> String {
    schema.type_name(ValueType {
        nullable: false,
        ..ty
    })
}

impl Schema {
    /// What `next` changes in the types both schemas have that readers of this schema may fail
    /// on: a type's shape, its primary key, a field's kind, a field that may now be null. Types
    /// and fields added or removed are not conflicts (serde reads a missing `Option` field as
    /// `None`; a consumer that needs a removed type or field says so with the types it reads).
    pub fn breaking_changes_to(&self, next: &Schema) -> Vec<SchemaConflict> {
        let mut out = Vec::new();
        for old in self.types() {
            let Some(new) = next.type_id(old.name()).map(|id| next.get(id)) else {
                continue;
            };
            if old.kind() != new.kind() {
                out.push(conflict(
                    old,
                    None,
                    format!("was {}, is now {}", shape(old.kind()), shape(new.kind())),
                ));
                continue;
            }
            if old.key_field_names() != new.key_field_names() {
                out.push(conflict(
                    old,
                    None,
                    format!(
                        "primary key was ({}), is now ({})",
                        old.key_field_names().join(", "),
                        new.key_field_names().join(", ")
                    ),
                ));
            }
            for c in old.columns() {
                let Some(d) = new.column_index(&c.name).map(|i| &new.columns()[i]) else {
                    continue;
                };
                let (was, now) = (kind_name(self, c.ty), kind_name(next, d.ty));
                // A `u64` field was stored in an i64 column before `u64` had a kind of its own:
                // the same values, now read as what they are.
                let u64_kind = c.ty.kind == Kind::I64 && d.ty.kind == Kind::U64;
                if was != now && !u64_kind {
                    out.push(conflict(
                        old,
                        Some(&c.name),
                        format!("was {was}, is now {now}"),
                    ));
                } else if d.ty.nullable && !c.ty.nullable {
                    out.push(conflict(
                        old,
                        Some(&c.name),
                        format!("was never null, may now be null ({now}?)"),
                    ));
                }
            }
        }
        out
    }

    /// Why a state of this schema cannot be read with the Rust types whose schema is `reader`
    /// (every type they reach must be here in the same shape; every field they have must be
    /// here with a kind they read, unless the field is an `Option`). Empty when it can.
    pub fn unreadable_as(&self, reader: &Schema) -> Vec<SchemaConflict> {
        let mut out = Vec::new();
        for want in reader.types() {
            let Some(have) = self.type_id(want.name()).map(|id| self.get(id)) else {
                out.push(conflict(want, None, "is not in the state".into()));
                continue;
            };
            let same_shape = want.kind() == have.kind()
                || matches!(
                    (want.kind(), have.kind()),
                    (TypeKind::List, TypeKind::Set) | (TypeKind::Set, TypeKind::List)
                );
            if !same_shape {
                out.push(conflict(
                    want,
                    None,
                    format!(
                        "is read as {}, the state has {}",
                        shape(want.kind()),
                        shape(have.kind())
                    ),
                ));
                continue;
            }
            if want.kind() == TypeKind::Enum {
                for d in have.columns() {
                    if want.column_index(&d.name).is_none() {
                        out.push(conflict(
                            want,
                            Some(&d.name),
                            "is a variant of the state the reader does not know".into(),
                        ));
                    }
                }
            }
            for c in want.columns() {
                let Some(d) = have.column_index(&c.name).map(|i| &have.columns()[i]) else {
                    if !c.ty.nullable && want.kind() != TypeKind::Enum {
                        out.push(conflict(
                            want,
                            Some(&c.name),
                            "is not in the state and not an Option".into(),
                        ));
                    }
                    continue;
                };
                let (read, stored) = (kind_name(reader, c.ty), kind_name(self, d.ty));
                let widened = matches!(
                    (c.ty.kind, d.ty.kind),
                    (Kind::I64, Kind::I32) | (Kind::F64, Kind::F32) | (Kind::U64, Kind::I64)
                );
                if read != stored && !widened {
                    out.push(conflict(
                        want,
                        Some(&c.name),
                        format!("is read as {read}, the state has {stored}"),
                    ));
                } else if d.ty.nullable && !c.ty.nullable && want.kind() != TypeKind::Enum {
                    out.push(conflict(
                        want,
                        Some(&c.name),
                        format!("may be null in the state ({stored}?) but is not an Option"),
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use crate::SchemaBuilder;

    mod before {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Item {
            pub id: i64,
            pub count: i32,
            pub big: i64,
            pub note: String,
            pub gone: bool,
        }
    }

    mod after {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Item {
            pub id: i64,
            pub count: i64,
            pub big: u64,
            pub note: Option<String>,
            pub added: bool,
        }
    }

    fn schema<T: Serialize + Deserialize<'static>>(key: &str) -> crate::Schema {
        SchemaBuilder::new()
            .add::<T>()
            .primary_key("Item", &[key])
            .build()
            .unwrap()
    }

    #[test]
    fn kinds_keys_and_nullability_break_readers_additions_and_removals_do_not() {
        let old = schema::<before::Item>("id");
        let conflicts: Vec<String> = old
            .breaking_changes_to(&schema::<after::Item>("id"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            conflicts,
            [
                "Item.count: was i32, is now i64",
                "Item.note: was never null, may now be null (string?)",
            ],
            "u64 over an i64 column (how u64 was stored before) and added or removed fields \
             are not conflicts"
        );
        let conflicts = old.breaking_changes_to(&schema::<before::Item>("note"));
        assert_eq!(conflicts.len(), 1);
        assert_eq!(
            conflicts[0].to_string(),
            "Item: primary key was (id), is now (note)"
        );
        assert!(old.breaking_changes_to(&old).is_empty());

        // A reader of `after` cannot read a state of `before`: `count` and `big` are read as
        // wider kinds than stored (fine), `added` is missing and not an Option.
        let unreadable: Vec<String> = old
            .unreadable_as(&schema::<after::Item>("id"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            unreadable,
            ["Item.added: is not in the state and not an Option"]
        );
    }
}
