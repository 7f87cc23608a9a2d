//! Deriving a schema from Rust types: a tracing serde `Deserializer` walks a type's `Deserialize`
//! implementation and records every struct, enum, tuple, collection and scalar it is asked for.
//!
//! Three things serde's data model does not say are found by experiment:
//! - **Sets.** A set and a list are both sequences, so each traced sequence is fed two equal
//!   elements; a probe `Serializer` then walks the traced value, and a collection that kept only
//!   one of them is a set. Anonymous types (collections, tuples) are traced per *position* (the
//!   field or element that holds them) so that a `HashSet<String>` beside a `Vec<String>` stays a
//!   set; they are named, and positions of the same shape merged, when the schema is built.
//! - **Enum variants.** A visitor picks one variant per value, so the type is traced again until
//!   every variant of every enum it reaches was picked once.
//! - **Type arguments.** serde names `Page<Movie>` and `Page<Actor>` alike; the type arguments are
//!   read from the Rust type name (see [`super::rust_names`]).

use std::collections::HashMap;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};
use serde::Deserialize;

use super::rust_names::schema_name;
use super::{Column, KeyField, Kind, Schema, TypeDef, TypeId, TypeKind, ValueType};
use crate::error::{Error, Result, SchemaProblem};

/// Derives a [`Schema`] from Rust types. Every type reachable from the added ones becomes a type
/// of the schema: structs and tuple structs become objects, tuples objects with fields `0`, `1`,
/// …, `Vec`s lists, sets sets, maps maps, enums whose variants carry data enum types (enums
/// without data are stored as their variant's name).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize)]
/// struct Actor { id: i64, name: String }
/// #[derive(Serialize, Deserialize)]
/// struct Movie { id: i64, title: String, cast: Vec<Actor>, tags: std::collections::BTreeSet<String> }
///
/// let schema = hollow_core::SchemaBuilder::new()
///     .add::<Movie>()
///     .primary_key("Movie", &["id"])
///     .build()
///     .unwrap();
/// assert_eq!(schema.to_string(), "\
/// Movie @PrimaryKey(id) {
///     id: i64
///     title: string
///     cast: ListOfActor
///     tags: SetOfString
/// }
/// Actor {
///     id: i64
///     name: string
/// }
/// ListOfActor = List<Actor>
/// SetOfString = Set<string>
/// ");
/// ```
///
/// What serde's data model allows but a schema cannot hold is refused by
/// [`SchemaBuilder::build`] with [`Error::UnsupportedType`], saying what to write instead:
/// `#[serde(flatten)]`, untagged and internally tagged enums (anything that calls
/// `deserialize_any`), `()` fields, `Option<Option<T>>`, and newtype variants holding an `Option`.
#[derive(Debug, Default)]
pub struct SchemaBuilder {
    drafts: Vec<Draft>,
    /// Structs, tuple structs, enums and variant payloads, by schema name.
    named: HashMap<String, TypeId>,
    /// Collections and tuples, by position: (type holding them, column).
    anonymous: HashMap<(TypeId, usize), TypeId>,
    enums: HashMap<TypeId, EnumDraft>,
    keys: Vec<(String, Vec<String>)>,
    hash_indexes: Vec<(String, Vec<String>)>,
    error: Option<Error>,
    /// Gives drafts their place in the schema: named types when first met, anonymous ones when
    /// first defined (after what they hold).
    next_order: u64,
}

/// A type being traced.
#[derive(Debug)]
struct Draft {
    /// The schema name of a named type; empty for an anonymous one until the schema is built.
    name: String,
    /// `List` for every anonymous sequence until the probes tell sets apart; `Object` for tuples.
    kind: TypeKind,
    anonymous: bool,
    /// `None` until traced once.
    columns: Option<Vec<Column>>,
    order: u64,
    /// Sequences: fed two equal elements at least once.
    fed_two: bool,
    /// Sequences: seen by a probe holding exactly one element, or two.
    kept_one: bool,
    kept_two: bool,
}

/// An enum being traced: what each variant holds, as far as it was picked.
#[derive(Debug)]
struct EnumDraft {
    variants: &'static [&'static str],
    /// Per variant: `None` until picked; then `Some(None)` for a unit variant or the type of its
    /// data.
    payloads: Vec<Option<Option<ValueType>>>,
    /// The variant picked in this run once every variant was picked.
    cursor: usize,
    visited: bool,
}

impl EnumDraft {
    fn explored(&self) -> bool {
        self.payloads.iter().all(Option::is_some)
    }

    /// The variant to pick in this run: one not picked yet, else the next in turn (so that what
    /// hides behind each variant is reached too).
    fn pick(&self) -> usize {
        self.payloads
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.cursor % self.variants.len())
    }

    /// The variant least likely to recurse, for a value inside a recursive type: a unit
    /// variant, else one holding a scalar, else one not picked yet, else the first.
    fn pick_small(&self) -> usize {
        let rank = |p: &Option<Option<ValueType>>| match p {
            Some(None) => 0,
            Some(Some(t)) if !matches!(t.kind, Kind::Reference(_)) => 1,
            None => 2,
            Some(Some(_)) => 3,
        };
        (0..self.payloads.len())
            .min_by_key(|&i| rank(&self.payloads[i]))
            .unwrap_or(0)
    }
}

/// How many sequences deep the tracer feeds two elements (deeper ones get one, so the work stays
/// bounded for deeply nested collections; a set that deep is stored as a list).
const PROBE_DEPTH: usize = 8;

/// How deep values may nest while tracing: deeper means a type with no finite value.
const MAX_TRACE_DEPTH: usize = 256;

/// How many times a type is traced to pick every variant of the enums it reaches.
const MAX_RUNS: usize = 4096;

impl SchemaBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the record type `T` (a struct or tuple struct) and every type it reaches.
    pub fn add<T: Serialize + Deserialize<'static>>(mut self) -> Self {
        if self.error.is_none() {
            if let Err(e) = self.trace::<T>() {
                self.error = Some(e);
            }
        }
        self
    }

    /// Declares the primary key of `type_name`: one or more of its fields, checked by
    /// [`SchemaBuilder::build`]. A field may be a path through references to objects
    /// (`category.id`: the `id` of the record's category), as long as it reaches one value per
    /// record; paths through lists and sets are for hash indexes.
    pub fn primary_key(mut self, type_name: &str, fields: &[&str]) -> Self {
        self.keys.push((
            type_name.to_string(),
            fields.iter().map(|f| f.to_string()).collect(),
        ));
        self
    }

    /// Declares a hash index of `type_name` on `fields` (paths such as `country` or
    /// `cast.id`, through references, lists and sets): every state of the schema builds it when
    /// it is loaded, updates it with each delta, and serves it with
    /// [`ReadState::hash_index`](crate::ReadState::hash_index). Declared here, it travels in
    /// the blobs: every consumer has it without configuring it.
    pub fn hash_index(mut self, type_name: &str, fields: &[&str]) -> Self {
        self.hash_indexes.push((
            type_name.to_string(),
            fields.iter().map(|f| f.to_string()).collect(),
        ));
        self
    }

    /// The schema, or the first error met while tracing or resolving keys.
    pub fn build(mut self) -> Result<Schema> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut types = self.finish()?;
        let by_name: HashMap<String, usize> = types
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        for (type_name, fields) in &self.keys {
            let i = *by_name
                .get(type_name)
                .ok_or_else(|| Error::UnknownType(type_name.clone()))?;
            let t = &mut types[i];
            if t.kind != TypeKind::Object {
                return Err(Error::invalid_schema(
                    type_name,
                    SchemaProblem::KeyOnNonObject,
                ));
            }
            if fields.is_empty() {
                return Err(Error::invalid_schema(
                    type_name,
                    SchemaProblem::KeyWithoutFields,
                ));
            }
            t.primary_key = fields.iter().map(KeyField::unresolved).collect();
        }
        for (type_name, fields) in &self.hash_indexes {
            let i = *by_name
                .get(type_name)
                .ok_or_else(|| Error::UnknownType(type_name.clone()))?;
            if !types[i].hash_indexes.contains(fields) {
                types[i].hash_indexes.push(fields.clone());
            }
        }
        Schema::from_types(types)
    }

    fn trace<T: Serialize + Deserialize<'static>>(&mut self) -> Result<()> {
        let type_name = std::any::type_name::<T>();
        for _ in 0..MAX_RUNS {
            for e in self.enums.values_mut() {
                e.visited = false;
            }
            let mut out = None;
            let value = T::deserialize(Tracer {
                ctx: &mut Ctx {
                    b: self,
                    stack: Vec::new(),
                    depth: 0,
                },
                out: &mut out,
                at: None,
                nullable: false,
                minimal: false,
                seq_depth: 0,
            })
            .map_err(|e| in_type(e, type_name))?;
            let root = match out {
                Some(ValueType {
                    kind: Kind::Reference(id),
                    nullable: false,
                }) if self.drafts[id.index()].kind == TypeKind::Object
                    && !self.drafts[id.index()].anonymous =>
                {
                    id
                }
                _ => {
                    return Err(Error::UnsupportedType {
                        type_name: type_name.to_string(),
                        reason: "a record type must be a struct or a tuple struct".into(),
                    })
                }
            };
            value.serialize(Probe {
                b: self,
                at: Kind::Reference(root),
            })?;
            let mut pending = false;
            for e in self.enums.values_mut() {
                if !e.explored() {
                    pending = true;
                } else if e.visited {
                    e.cursor += 1;
                }
            }
            if !pending {
                return Ok(());
            }
        }
        Err(unsupported(
            type_name,
            "some enum variants could not be reached while tracing it",
        ))
    }

    fn order(&mut self) -> u64 {
        self.next_order += 1;
        self.next_order
    }

    fn draft(&mut self, name: String, kind: TypeKind, anonymous: bool) -> TypeId {
        let id = TypeId(self.drafts.len() as u32);
        let order = if anonymous { u64::MAX } else { self.order() };
        self.drafts.push(Draft {
            name,
            kind,
            anonymous,
            columns: None,
            order,
            fed_two: false,
            kept_one: false,
            kept_two: false,
        });
        id
    }

    /// The named type `name`, met now or before.
    fn named(&mut self, name: String, kind: TypeKind) -> Result<TypeId> {
        if let Some(&id) = self.named.get(&name) {
            if self.drafts[id.index()].kind != kind {
                return Err(self.shape_conflict(id));
            }
            return Ok(id);
        }
        let id = self.draft(name.clone(), kind, false);
        self.named.insert(name, id);
        Ok(id)
    }

    /// The anonymous type at `at`, met now or before.
    fn anonymous(&mut self, at: (TypeId, usize), kind: TypeKind) -> TypeId {
        if let Some(&id) = self.anonymous.get(&at) {
            return id;
        }
        let id = self.draft(String::new(), kind, true);
        self.anonymous.insert(at, id);
        id
    }

    fn define(&mut self, id: TypeId, columns: Vec<Column>) -> Result<()> {
        let d = &self.drafts[id.index()];
        match &d.columns {
            None => {
                let first = d.anonymous;
                let order = if first { self.order() } else { d.order };
                let d = &mut self.drafts[id.index()];
                d.order = order;
                d.columns = Some(columns);
                Ok(())
            }
            Some(c) if *c == columns => Ok(()),
            Some(_) => Err(self.shape_conflict(id)),
        }
    }

    fn shape_conflict(&self, id: TypeId) -> Error {
        Error::invalid_schema(&self.drafts[id.index()].name, SchemaProblem::ShapeClash)
    }

    /// Turns the drafts into schema types: enums without data become strings, sequences that
    /// kept one of two equal elements become sets, anonymous types get their names and those of
    /// the same name and shape become one.
    fn finish(&mut self) -> Result<Vec<TypeDef>> {
        for (&id, e) in &self.enums {
            let d = &mut self.drafts[id.index()];
            if e.payloads.iter().all(|p| matches!(p, Some(None))) {
                d.columns = None; // stored as a string: no type of its own
                continue;
            }
            let mut columns = vec![Column {
                name: "variant".into(),
                ty: ValueType {
                    kind: Kind::String,
                    nullable: false,
                },
            }];
            for (v, p) in e.variants.iter().zip(&e.payloads) {
                if let Some(Some(ty)) = p {
                    columns.push(Column {
                        name: v.to_string(),
                        ty: ValueType {
                            kind: ty.kind,
                            nullable: true,
                        },
                    });
                }
            }
            d.columns = Some(columns);
        }
        for d in &mut self.drafts {
            if d.anonymous && d.kind == TypeKind::List && d.fed_two && d.kept_one && !d.kept_two {
                d.kind = TypeKind::Set;
            }
        }
        let mut names: Vec<Option<String>> = vec![None; self.drafts.len()];
        for i in 0..self.drafts.len() {
            self.final_name(TypeId(i as u32), &mut names, 0)?;
        }
        // Drafts in schema order; the first of each name stands for the others.
        let mut order: Vec<usize> = (0..self.drafts.len())
            .filter(|&i| !self.is_string(TypeId(i as u32)))
            .collect();
        order.sort_by_key(|&i| self.drafts[i].order);
        let mut new_id: Vec<Option<TypeId>> = vec![None; self.drafts.len()];
        let mut by_name: HashMap<&str, TypeId> = HashMap::new();
        let mut kept = Vec::new();
        for &i in &order {
            let name = names[i].as_deref().unwrap_or_default();
            let id = *by_name.entry(name).or_insert_with(|| {
                kept.push(i);
                TypeId(kept.len() as u32 - 1)
            });
            new_id[i] = Some(id);
        }
        let remap = |ty: ValueType| -> ValueType {
            match ty.kind {
                Kind::Reference(r) => match new_id[r.index()] {
                    Some(n) => ValueType {
                        kind: Kind::Reference(n),
                        nullable: ty.nullable,
                    },
                    None => ValueType {
                        kind: Kind::String,
                        nullable: ty.nullable,
                    },
                },
                _ => ty,
            }
        };
        let mut types = Vec::with_capacity(kept.len());
        for &i in &kept {
            let d = &self.drafts[i];
            let name = names[i].clone().unwrap_or_default();
            let columns = d
                .columns
                .as_ref()
                .ok_or_else(|| unsupported(&name, "its fields could not be traced"))?
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    ty: remap(c.ty),
                })
                .collect();
            types.push(TypeDef {
                name,
                kind: d.kind,
                columns,
                primary_key: Vec::new(),
                hash_indexes: Vec::new(),
            });
        }
        // Anonymous types merged under one name must be alike.
        for (i, id) in new_id.iter().enumerate() {
            let (Some(id), Some(columns)) = (id, &self.drafts[i].columns) else {
                continue;
            };
            let t = &types[id.index()];
            let same = t.kind == self.drafts[i].kind
                && t.columns.len() == columns.len()
                && t.columns
                    .iter()
                    .zip(columns)
                    .all(|(a, b)| a.ty == remap(b.ty));
            if !same {
                return Err(Error::invalid_schema(&t.name, SchemaProblem::ShapeClash));
            }
        }
        Ok(types)
    }

    /// True for an enum whose variants carry no data: stored as a string.
    fn is_string(&self, id: TypeId) -> bool {
        self.drafts[id.index()].kind == TypeKind::Enum && self.drafts[id.index()].columns.is_none()
    }

    fn final_name(
        &self,
        id: TypeId,
        names: &mut Vec<Option<String>>,
        depth: usize,
    ) -> Result<String> {
        if let Some(n) = &names[id.index()] {
            return Ok(n.clone());
        }
        let d = &self.drafts[id.index()];
        if !d.anonymous {
            names[id.index()] = Some(d.name.clone());
            return Ok(d.name.clone());
        }
        if depth > MAX_TRACE_DEPTH {
            return Err(Error::invalid_schema(&d.name, SchemaProblem::NestedTooDeep));
        }
        let columns = d.columns.as_deref().unwrap_or_default();
        let mut element = |i: usize| -> Result<String> {
            let Some(c) = columns.get(i) else {
                return Ok(String::new());
            };
            let base = match c.ty.kind {
                Kind::Reference(r) if self.is_string(r) => "String".to_string(),
                Kind::Reference(r) => self.final_name(r, names, depth + 1)?,
                other => scalar_name(other).to_string(),
            };
            Ok(if c.ty.nullable {
                format!("Option{base}")
            } else {
                base
            })
        };
        let name = match d.kind {
            TypeKind::List => format!("ListOf{}", element(0)?),
            TypeKind::Set => format!("SetOf{}", element(0)?),
            TypeKind::Map => format!("MapOf{}To{}", element(0)?, element(1)?),
            _ => {
                let parts = (0..columns.len())
                    .map(&mut element)
                    .collect::<Result<Vec<_>>>()?;
                match parts.as_slice() {
                    [] => "TupleOfNothing".to_string(),
                    [first, ..] if parts.len() > 2 && parts.iter().all(|p| p == first) => {
                        format!("TupleOf{}{first}", parts.len())
                    }
                    _ => format!("TupleOf{}", parts.join("And")),
                }
            }
        };
        names[id.index()] = Some(name.clone());
        Ok(name)
    }
}

fn scalar_name(kind: Kind) -> &'static str {
    match kind {
        Kind::I32 => "I32",
        Kind::I64 => "I64",
        Kind::U64 => "U64",
        Kind::I128 => "I128",
        Kind::U128 => "U128",
        Kind::F32 => "F32",
        Kind::F64 => "F64",
        Kind::Bool => "Bool",
        Kind::String => "String",
        Kind::Bytes => "Bytes",
        Kind::Reference(_) => "Reference",
    }
}

fn unsupported(what: &str, reason: &str) -> Error {
    Error::UnsupportedType {
        type_name: what.to_string(),
        reason: reason.to_string(),
    }
}

/// Says in which record type an unsupported shape was met.
fn in_type(e: Error, record: &str) -> Error {
    match e {
        Error::UnsupportedType { type_name, reason } if type_name != record => {
            Error::UnsupportedType {
                type_name: format!("{type_name} (in {record})"),
                reason,
            }
        }
        other => other,
    }
}

struct Ctx<'b> {
    b: &'b mut SchemaBuilder,
    /// Named types being traced, to stop at recursive types.
    stack: Vec<TypeId>,
    /// How deep values nest now.
    depth: usize,
}

/// Deserializes a sample value while recording the type asked for into `out`. In `minimal` mode
/// (inside a recursive type) it records nothing and produces the smallest value: no elements,
/// `None` for options, the least recursive variant of an enum.
struct Tracer<'a, 'b> {
    ctx: &'a mut Ctx<'b>,
    out: &'a mut Option<ValueType>,
    /// Where the value sits: (the type holding it, column); `None` for a record.
    at: Option<(TypeId, usize)>,
    nullable: bool,
    minimal: bool,
    seq_depth: usize,
}

impl<'b> Tracer<'_, 'b> {
    fn record(&mut self, kind: Kind) {
        if !self.minimal {
            *self.out = Some(ValueType {
                kind,
                nullable: self.nullable,
            });
        }
    }

    fn child<'c>(
        &'c mut self,
        out: &'c mut Option<ValueType>,
        at: Option<(TypeId, usize)>,
        minimal: bool,
    ) -> Tracer<'c, 'b> {
        Tracer {
            ctx: &mut *self.ctx,
            out,
            at,
            nullable: false,
            minimal,
            seq_depth: self.seq_depth,
        }
    }

    /// The position of a value that needs one (a collection or tuple).
    fn position(&self, what: &str) -> Result<(TypeId, usize)> {
        self.at
            .ok_or_else(|| unsupported(what, "a record type must be a struct or a tuple struct"))
    }

    fn enter(&mut self) -> Result<()> {
        self.ctx.depth += 1;
        if self.ctx.depth > MAX_TRACE_DEPTH {
            return Err(unsupported(
                "a recursive type",
                "it has no finite value to trace (every path recurses)",
            ));
        }
        Ok(())
    }

    /// Traces a named object type (a struct, a tuple struct, an enum variant's data) whose
    /// fields are `fields`, letting `visit` walk them with a [`FieldsTracer`].
    fn object<T>(
        mut self,
        id: TypeId,
        fields: Vec<String>,
        visit: impl FnOnce(FieldsTracer<'_, 'b, '_>) -> Result<T>,
    ) -> Result<T> {
        self.enter()?;
        let recursive = self.ctx.stack.contains(&id);
        self.record(Kind::Reference(id));
        let minimal = self.minimal || recursive;
        let mut slots = vec![None; fields.len()];
        self.ctx.stack.push(id);
        let value = visit(FieldsTracer {
            tracer: self.child(&mut None, None, minimal),
            owner: id,
            names: &fields,
            slots: &mut slots,
            next: 0,
        });
        self.ctx.stack.pop();
        self.ctx.depth -= 1;
        let value = value?;
        if !minimal {
            let columns = fields
                .into_iter()
                .zip(slots)
                .map(|(f, ty)| {
                    let ty = ty.ok_or_else(|| {
                        unsupported(
                            &self.ctx.b.drafts[id.index()].name,
                            &format!("field {f} could not be traced"),
                        )
                    })?;
                    Ok(Column { name: f, ty })
                })
                .collect::<Result<Vec<_>>>()?;
            self.ctx.b.define(id, columns)?;
        }
        Ok(value)
    }
}

fn numbered(len: usize) -> Vec<String> {
    (0..len).map(|i| i.to_string()).collect()
}

macro_rules! scalar {
    ($($method:ident => $kind:ident, $visit:ident($value:expr);)*) => {$(
        fn $method<V: Visitor<'static>>(mut self, visitor: V) -> Result<V::Value> {
            self.record(Kind::$kind);
            visitor.$visit($value)
        }
    )*};
}

const SELF_DESCRIBING: &str = "it needs a self-describing format (`deserialize_any`), as \
    #[serde(flatten)], #[serde(untagged)] and internally tagged enums (#[serde(tag = \"...\")]) \
    do: write the flattened fields out in the struct, and use an externally tagged enum (serde's \
    default), whose variants may carry data";

impl<'de> de::Deserializer<'static> for Tracer<'_, 'de> {
    type Error = Error;

    scalar! {
        deserialize_bool => Bool, visit_bool(false);
        deserialize_i8 => I32, visit_i8(0);
        deserialize_i16 => I32, visit_i16(0);
        deserialize_i32 => I32, visit_i32(0);
        deserialize_u8 => I32, visit_u8(0);
        deserialize_u16 => I32, visit_u16(0);
        deserialize_u32 => I64, visit_u32(0);
        deserialize_i64 => I64, visit_i64(0);
        deserialize_u64 => U64, visit_u64(0);
        deserialize_i128 => I128, visit_i128(0);
        deserialize_u128 => U128, visit_u128(0);
        deserialize_f32 => F32, visit_f32(0.0);
        deserialize_f64 => F64, visit_f64(0.0);
        deserialize_char => String, visit_char('a');
        deserialize_str => String, visit_borrowed_str("");
        deserialize_string => String, visit_borrowed_str("");
        deserialize_bytes => Bytes, visit_borrowed_bytes(b"");
        deserialize_byte_buf => Bytes, visit_borrowed_bytes(b"");
        deserialize_identifier => String, visit_borrowed_str("");
    }

    fn deserialize_any<V: Visitor<'static>>(self, _: V) -> Result<V::Value> {
        Err(unsupported("a self-describing value", SELF_DESCRIBING))
    }

    fn deserialize_option<V: Visitor<'static>>(self, visitor: V) -> Result<V::Value> {
        if self.nullable {
            return Err(unsupported(
                "Option<Option<_>>",
                "nested options cannot be told apart when null: use one Option, or an enum",
            ));
        }
        if self.minimal {
            return visitor.visit_none();
        }
        visitor.visit_some(Tracer {
            nullable: true,
            ..self
        })
    }

    fn deserialize_unit<V: Visitor<'static>>(self, _: V) -> Result<V::Value> {
        Err(unsupported(
            "()",
            "a unit value carries no data: leave the field out",
        ))
    }

    fn deserialize_unit_struct<V: Visitor<'static>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        let id = self.ctx.b.named(
            schema_name(name, std::any::type_name::<V>()),
            TypeKind::Object,
        )?;
        self.object(id, Vec::new(), |_| visitor.visit_unit())
    }

    fn deserialize_newtype_struct<V: Visitor<'static>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'static>>(mut self, visitor: V) -> Result<V::Value> {
        if self.minimal {
            return visitor.visit_seq(FieldsTracer::empty(self.child(&mut None, None, true)));
        }
        let at = self.position("a sequence")?;
        let id = self.ctx.b.anonymous(at, TypeKind::List);
        let mut element = None;
        let two = self.seq_depth < PROBE_DEPTH;
        self.ctx.b.drafts[id.index()].fed_two |= two;
        let value = {
            let mut child = self.child(&mut element, Some((id, 0)), false);
            child.seq_depth += 1;
            visitor.visit_seq(SeqTracer {
                tracer: child,
                remaining: if two { 2 } else { 1 },
            })?
        };
        let element =
            element.ok_or_else(|| unsupported("a sequence", "its elements could not be traced"))?;
        self.ctx.b.define(
            id,
            vec![Column {
                name: "element".into(),
                ty: element,
            }],
        )?;
        self.record(Kind::Reference(id));
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'static>>(
        mut self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        if self.minimal {
            return visitor.visit_seq(FieldsTracer {
                tracer: self.child(&mut None, None, true),
                owner: TypeId(0),
                names: &numbered(len),
                slots: &mut vec![None; len],
                next: 0,
            });
        }
        let at = self.position("a tuple")?;
        let id = self.ctx.b.anonymous(at, TypeKind::Object);
        self.object(id, numbered(len), |f| visitor.visit_seq(f))
    }

    fn deserialize_tuple_struct<V: Visitor<'static>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        let id = self.ctx.b.named(
            schema_name(name, std::any::type_name::<V>()),
            TypeKind::Object,
        )?;
        self.object(id, numbered(len), |f| visitor.visit_seq(f))
    }

    fn deserialize_map<V: Visitor<'static>>(mut self, visitor: V) -> Result<V::Value> {
        if self.minimal {
            return visitor.visit_map(EntryTracer {
                tracer: self.child(&mut None, None, true),
                owner: None,
                key: None,
                value: None,
                remaining: 0,
            });
        }
        let at = self.at.ok_or_else(|| {
            unsupported(
                "a map",
                "a record type must be a struct; a struct with #[serde(flatten)] is read as a \
                 map, which a schema cannot hold: write the flattened fields out in the struct",
            )
        })?;
        let id = self.ctx.b.anonymous(at, TypeKind::Map);
        let (mut key, mut value) = (None, None);
        let out = visitor.visit_map(EntryTracer {
            tracer: self.child(&mut None, None, false),
            owner: Some(id),
            key: Some(&mut key),
            value: Some(&mut value),
            remaining: 1,
        })?;
        let (Some(key), Some(value)) = (key, value) else {
            return Err(unsupported(
                "a map",
                "its keys and values could not be traced",
            ));
        };
        self.ctx.b.define(
            id,
            vec![
                Column {
                    name: "key".into(),
                    ty: key,
                },
                Column {
                    name: "value".into(),
                    ty: value,
                },
            ],
        )?;
        self.record(Kind::Reference(id));
        Ok(out)
    }

    fn deserialize_struct<V: Visitor<'static>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let id = self.ctx.b.named(
            schema_name(name, std::any::type_name::<V>()),
            TypeKind::Object,
        )?;
        let fields = fields.iter().map(|f| f.to_string()).collect();
        self.object(id, fields, |f| visitor.visit_map(f))
    }

    fn deserialize_enum<V: Visitor<'static>>(
        mut self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        if variants.is_empty() {
            return Err(unsupported(name, "an enum without variants holds no value"));
        }
        let schema_name = schema_name(name, std::any::type_name::<V>());
        let known = self.ctx.b.named.get(&schema_name).copied();
        let id = match known {
            Some(id) => id,
            None if self.minimal => {
                // Not traced yet: any variant will do, nothing is recorded.
                return visitor.visit_enum(VariantTracer {
                    tracer: self,
                    id: TypeId(0),
                    variant: 0,
                    variants,
                    minimal: true,
                });
            }
            None => {
                let id = self.ctx.b.named(schema_name, TypeKind::Enum)?;
                self.ctx.b.enums.insert(
                    id,
                    EnumDraft {
                        variants,
                        payloads: vec![None; variants.len()],
                        cursor: 0,
                        visited: false,
                    },
                );
                id
            }
        };
        let Some(e) = self.ctx.b.enums.get_mut(&id) else {
            return Err(self.ctx.b.shape_conflict(id));
        };
        let minimal = self.minimal || self.ctx.stack.contains(&id);
        let variant = if minimal {
            e.pick_small()
        } else {
            e.visited = true;
            e.pick()
        };
        self.record(Kind::Reference(id));
        self.enter()?;
        self.ctx.stack.push(id);
        let value = visitor.visit_enum(VariantTracer {
            tracer: self.child(&mut None, None, minimal),
            id,
            variant,
            variants,
            minimal,
        });
        self.ctx.stack.pop();
        self.ctx.depth -= 1;
        value
    }

    fn deserialize_ignored_any<V: Visitor<'static>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }
}

struct SeqTracer<'a, 'b> {
    tracer: Tracer<'a, 'b>,
    remaining: usize,
}

impl de::SeqAccess<'static> for SeqTracer<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'static>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let t = &mut self.tracer;
        seed.deserialize(Tracer {
            ctx: &mut *t.ctx,
            out: &mut *t.out,
            at: t.at,
            nullable: false,
            minimal: t.minimal,
            seq_depth: t.seq_depth,
        })
        .map(Some)
    }
}

struct EntryTracer<'a, 'b> {
    tracer: Tracer<'a, 'b>,
    owner: Option<TypeId>,
    key: Option<&'a mut Option<ValueType>>,
    value: Option<&'a mut Option<ValueType>>,
    remaining: usize,
}

impl de::MapAccess<'static> for EntryTracer<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'static>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let mut scratch = None;
        let out = self.key.as_deref_mut().unwrap_or(&mut scratch);
        let at = self.owner.map(|o| (o, 0));
        let minimal = self.tracer.minimal;
        seed.deserialize(self.tracer.child(out, at, minimal))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'static>>(&mut self, seed: V) -> Result<V::Value> {
        let mut scratch = None;
        let out = self.value.as_deref_mut().unwrap_or(&mut scratch);
        let at = self.owner.map(|o| (o, 1));
        let minimal = self.tracer.minimal;
        seed.deserialize(self.tracer.child(out, at, minimal))
    }
}

/// Walks the fields of an object: by name for a struct (a map), in order for a tuple (a
/// sequence).
struct FieldsTracer<'a, 'b, 's> {
    tracer: Tracer<'a, 'b>,
    owner: TypeId,
    names: &'s [String],
    slots: &'s mut [Option<ValueType>],
    next: usize,
}

impl<'a, 'b> FieldsTracer<'a, 'b, 'static> {
    fn empty(tracer: Tracer<'a, 'b>) -> Self {
        Self {
            tracer,
            owner: TypeId(0),
            names: &[],
            slots: &mut [],
            next: 0,
        }
    }
}

impl FieldsTracer<'_, '_, '_> {
    fn field<V: DeserializeSeed<'static>>(&mut self, seed: V) -> Result<V::Value> {
        let i = self.next;
        self.next += 1;
        let minimal = self.tracer.minimal;
        let at = Some((self.owner, i));
        seed.deserialize(self.tracer.child(&mut self.slots[i], at, minimal))
    }
}

impl de::MapAccess<'static> for FieldsTracer<'_, '_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'static>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let Some(field) = self.names.get(self.next) else {
            return Ok(None);
        };
        seed.deserialize(field.as_str().into_deserializer())
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'static>>(&mut self, seed: V) -> Result<V::Value> {
        self.field(seed)
    }
}

impl de::SeqAccess<'static> for FieldsTracer<'_, '_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'static>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>> {
        if self.next >= self.names.len() {
            return Ok(None);
        }
        self.field(seed).map(Some)
    }
}

/// Gives an enum's visitor the variant picked for this run, and records what it holds.
struct VariantTracer<'a, 'b> {
    tracer: Tracer<'a, 'b>,
    id: TypeId,
    variant: usize,
    variants: &'static [&'static str],
    minimal: bool,
}

impl VariantTracer<'_, '_> {
    fn name(&self) -> &'static str {
        self.variants[self.variant]
    }

    fn learn(&mut self, payload: Option<ValueType>) -> Result<()> {
        if self.minimal {
            return Ok(());
        }
        let b = &mut *self.tracer.ctx.b;
        let Some(e) = b.enums.get_mut(&self.id) else {
            return Ok(());
        };
        match &e.payloads[self.variant] {
            None => e.payloads[self.variant] = Some(payload),
            Some(p) if *p == payload => {}
            Some(_) => return Err(b.shape_conflict(self.id)),
        }
        Ok(())
    }

    /// The object type holding a tuple or struct variant's data: `Enum::Variant`.
    fn payload_type(&mut self) -> Result<TypeId> {
        let name = format!(
            "{}::{}",
            self.tracer.ctx.b.drafts[self.id.index()].name,
            self.name()
        );
        self.tracer.ctx.b.named(name, TypeKind::Object)
    }

    fn data_variant<T>(
        mut self,
        fields: Vec<String>,
        visit: impl FnOnce(FieldsTracer<'_, '_, '_>) -> Result<T>,
    ) -> Result<T> {
        if self.minimal {
            let names = fields;
            let mut slots = vec![None; names.len()];
            return visit(FieldsTracer {
                tracer: self.tracer.child(&mut None, None, true),
                owner: TypeId(0),
                names: &names,
                slots: &mut slots,
                next: 0,
            });
        }
        let id = self.payload_type()?;
        let mut out = None;
        let value = self
            .tracer
            .child(&mut out, None, false)
            .object(id, fields, visit)?;
        self.learn(out)?;
        Ok(value)
    }
}

impl de::EnumAccess<'static> for VariantTracer<'_, '_> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'static>>(self, seed: V) -> Result<(V::Value, Self)> {
        let v = seed.deserialize(IntoDeserializer::<Error>::into_deserializer(self.name()))?;
        Ok((v, self))
    }
}

impl de::VariantAccess<'static> for VariantTracer<'_, '_> {
    type Error = Error;

    fn unit_variant(mut self) -> Result<()> {
        self.learn(None)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'static>>(mut self, seed: T) -> Result<T::Value> {
        let mut out = None;
        let minimal = self.minimal;
        let at = Some((self.id, self.variant));
        let value = seed.deserialize(self.tracer.child(&mut out, at, minimal))?;
        if !minimal {
            let ty = out.ok_or_else(|| {
                unsupported(self.name(), "the variant's data could not be traced")
            })?;
            if ty.nullable {
                return Err(unsupported(
                    self.name(),
                    "a newtype variant holding an Option cannot be told apart from another \
                     variant when None: make the variant a struct variant with an Option field",
                ));
            }
            self.learn(Some(ty))?;
        }
        Ok(value)
    }

    fn tuple_variant<V: Visitor<'static>>(self, len: usize, visitor: V) -> Result<V::Value> {
        self.data_variant(numbered(len), |f| visitor.visit_seq(f))
    }

    fn struct_variant<V: Visitor<'static>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let fields = fields.iter().map(|f| f.to_string()).collect();
        self.data_variant(fields, |f| visitor.visit_map(f))
    }
}

/// Walks a traced value alongside the drafts and counts the elements each sequence kept.
struct Probe<'b> {
    b: &'b mut SchemaBuilder,
    at: Kind,
}

impl<'b> Probe<'b> {
    /// The probe for column `column` of the current type (for an enum: variant `column`'s data).
    fn column(&mut self, column: usize) -> Probe<'_> {
        let at = match self.at {
            Kind::Reference(t) => match self.b.enums.get(&t) {
                Some(e) => e
                    .payloads
                    .get(column)
                    .copied()
                    .flatten()
                    .flatten()
                    .map_or(Kind::Bool, |ty| ty.kind),
                None => self.b.drafts[t.index()]
                    .columns
                    .as_ref()
                    .and_then(|c| c.get(column))
                    .map_or(Kind::Bool, |c| c.ty.kind),
            },
            other => other,
        };
        Probe {
            b: &mut *self.b,
            at,
        }
    }

    fn observe(&mut self, count: usize) {
        if let Kind::Reference(t) = self.at {
            let d = &mut self.b.drafts[t.index()];
            d.kept_one |= count == 1;
            d.kept_two |= count >= 2;
        }
    }

    fn walk(self, counted: bool) -> ProbeSeq<'b> {
        ProbeSeq {
            probe: self,
            count: 0,
            counted,
        }
    }
}

macro_rules! ignore {
    ($($method:ident($($arg:ty),*);)*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<()> { Ok(()) }
    )*};
}

impl<'b> ser::Serializer for Probe<'b> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ProbeSeq<'b>;
    type SerializeTuple = ProbeSeq<'b>;
    type SerializeTupleStruct = ProbeSeq<'b>;
    type SerializeTupleVariant = ProbeSeq<'b>;
    type SerializeMap = ProbeSeq<'b>;
    type SerializeStruct = ProbeSeq<'b>;
    type SerializeStructVariant = ProbeSeq<'b>;

    ignore! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_i128(i128); serialize_u8(u8); serialize_u16(u16);
        serialize_u32(u32); serialize_u64(u64); serialize_u128(u128); serialize_f32(f32);
        serialize_f64(f64); serialize_char(char); serialize_str(&str); serialize_bytes(&[u8]);
        serialize_none(); serialize_unit(); serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _: &'static str,
        variant: u32,
        _: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self.column(variant as usize))
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<ProbeSeq<'b>> {
        Ok(self.walk(true))
    }

    fn serialize_tuple(self, _: usize) -> Result<ProbeSeq<'b>> {
        Ok(self.walk(false))
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<ProbeSeq<'b>> {
        Ok(self.walk(false))
    }

    fn serialize_tuple_variant(
        mut self,
        _: &'static str,
        variant: u32,
        _: &'static str,
        _: usize,
    ) -> Result<ProbeSeq<'b>> {
        let at = self.column(variant as usize).at;
        Ok(Probe { b: self.b, at }.walk(false))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<ProbeSeq<'b>> {
        Ok(self.walk(false))
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<ProbeSeq<'b>> {
        Ok(self.walk(false))
    }

    fn serialize_struct_variant(
        mut self,
        _: &'static str,
        variant: u32,
        _: &'static str,
        _: usize,
    ) -> Result<ProbeSeq<'b>> {
        let at = self.column(variant as usize).at;
        Ok(Probe { b: self.b, at }.walk(false))
    }
}

/// The elements of a sequence (counted), or the fields of a tuple or struct.
struct ProbeSeq<'b> {
    probe: Probe<'b>,
    count: usize,
    counted: bool,
}

impl ProbeSeq<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let column = if self.counted { 0 } else { self.count };
        self.count += 1;
        value.serialize(self.probe.column(column))
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<()> {
        let column = match self.probe.at {
            Kind::Reference(t) => self.probe.b.drafts[t.index()]
                .columns
                .as_ref()
                .and_then(|c| c.iter().position(|c| c.name == key)),
            _ => None,
        };
        match column {
            Some(c) => value.serialize(self.probe.column(c)),
            None => Ok(()),
        }
    }

    fn finish(mut self) -> Result<()> {
        if self.counted {
            self.probe.observe(self.count);
        }
        Ok(())
    }
}

macro_rules! probe_elements {
    ($($trait:ident::$method:ident),*) => {$(
        impl ser::$trait for ProbeSeq<'_> {
            type Ok = ();
            type Error = Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
                self.element(value)
            }

            fn end(self) -> Result<()> {
                self.finish()
            }
        }
    )*};
}

probe_elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

macro_rules! probe_fields {
    ($($trait:ident),*) => {$(
        impl ser::$trait for ProbeSeq<'_> {
            type Ok = ();
            type Error = Error;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<()> {
                self.field(key, value)
            }

            fn end(self) -> Result<()> {
                self.finish()
            }
        }
    )*};
}

probe_fields!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for ProbeSeq<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        key.serialize(self.probe.column(0))
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        value.serialize(self.probe.column(1))
    }

    fn end(self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize)]
    enum Color {
        Red,
        Green,
    }

    #[derive(Serialize, Deserialize)]
    struct Node {
        label: String,
        children: Vec<Node>,
        parent: Option<Box<Node>>,
    }

    #[derive(Serialize, Deserialize)]
    struct Everything<'a> {
        a: i32,
        b: i64,
        c: u64,
        d: f32,
        e: f64,
        f: bool,
        g: String,
        h: &'a str,
        #[serde(with = "serde_bytes")]
        i: Vec<u8>,
        j: Option<i32>,
        k: Vec<Option<String>>,
        l: HashSet<String>,
        m: BTreeSet<i64>,
        n: HashMap<String, Vec<i32>>,
        o: BTreeMap<i32, Node>,
        p: Color,
        q: u8,
        r: char,
    }

    #[test]
    fn every_shape_is_derived() {
        let schema = SchemaBuilder::new()
            .add::<Everything>()
            .primary_key("Everything", &["b", "g"])
            .build()
            .unwrap();
        let text = schema.to_string();
        let expected = "\
Everything @PrimaryKey(b, g) {
    a: i32
    b: i64
    c: u64
    d: f32
    e: f64
    f: bool
    g: string
    h: string
    i: bytes
    j: i32?
    k: ListOfOptionString
    l: SetOfString
    m: SetOfI64
    n: MapOfStringToListOfI32
    o: MapOfI32ToNode
    p: string
    q: i32
    r: string
}
ListOfOptionString = List<string?>
SetOfString = Set<string>
SetOfI64 = Set<i64>
ListOfI32 = List<i32>
MapOfStringToListOfI32 = Map<string, ListOfI32>
Node {
    label: string
    children: ListOfNode
    parent: Node?
}
ListOfNode = List<Node>
MapOfI32ToNode = Map<i32, Node>
";
        assert_eq!(text, expected);
    }

    #[test]
    fn unsupported_shapes_are_clear_errors_that_say_what_to_write() {
        #[derive(Serialize, Deserialize)]
        struct Inner {
            x: i32,
        }
        #[derive(Serialize, Deserialize)]
        struct Flattened {
            #[serde(flatten)]
            inner: Inner,
        }
        #[derive(Serialize, Deserialize)]
        #[serde(untagged)]
        enum Untagged {
            A(i32),
        }
        #[derive(Serialize, Deserialize)]
        struct WithUntagged {
            u: Untagged,
        }
        #[derive(Serialize, Deserialize)]
        #[serde(tag = "type")]
        enum Internal {
            A { x: i32 },
        }
        #[derive(Serialize, Deserialize)]
        struct WithInternal {
            i: Internal,
        }
        #[derive(Serialize, Deserialize)]
        struct Doubled {
            o: Option<Option<i32>>,
        }
        #[derive(Serialize, Deserialize)]
        enum OptionalData {
            A(Option<i32>),
        }
        #[derive(Serialize, Deserialize)]
        struct WithOptionalData {
            d: OptionalData,
        }
        for (e, says) in [
            (
                SchemaBuilder::new().add::<Flattened>().build().unwrap_err(),
                "flatten",
            ),
            (
                SchemaBuilder::new()
                    .add::<WithUntagged>()
                    .build()
                    .unwrap_err(),
                "externally tagged",
            ),
            (
                SchemaBuilder::new()
                    .add::<WithInternal>()
                    .build()
                    .unwrap_err(),
                "externally tagged",
            ),
            (
                SchemaBuilder::new().add::<Doubled>().build().unwrap_err(),
                "use one Option",
            ),
            (
                SchemaBuilder::new()
                    .add::<WithOptionalData>()
                    .build()
                    .unwrap_err(),
                "struct variant",
            ),
            (
                SchemaBuilder::new().add::<Vec<i32>>().build().unwrap_err(),
                "must be a struct",
            ),
        ] {
            assert!(matches!(e, Error::UnsupportedType { .. }), "{e}");
            assert!(e.to_string().contains(says), "{e}");
        }
    }

    #[test]
    fn conflicting_names_and_bad_keys_are_errors() {
        mod one {
            #[derive(serde::Serialize, serde::Deserialize)]
            pub struct Item {
                pub a: i32,
            }
        }
        mod two {
            #[derive(serde::Serialize, serde::Deserialize)]
            pub struct Item {
                pub b: String,
            }
        }
        #[derive(Serialize, Deserialize)]
        struct Both {
            x: one::Item,
            y: two::Item,
        }
        let e = SchemaBuilder::new().add::<Both>().build().unwrap_err();
        assert!(
            matches!(
                &e,
                Error::InvalidSchema {
                    type_name,
                    problem: crate::SchemaProblem::ShapeClash
                } if type_name == "Item"
            ),
            "{e}"
        );
        let e = SchemaBuilder::new()
            .add::<one::Item>()
            .primary_key("Item", &["nope"])
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::UnknownField { .. }), "{e}");
        let e = SchemaBuilder::new()
            .add::<one::Item>()
            .primary_key("Other", &["a"])
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::UnknownType(_)), "{e}");
    }
}
