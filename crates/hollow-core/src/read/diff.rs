//! What changed between two states, record by record: records matched by primary key, and
//! the ones that did not change recognised at memory speed without materializing them.
//!
//! A producer keeps a record at its ordinal for as long as it does not change, so a record
//! whose row holds the same values at the same ordinal in both states, and whose references
//! lead to records that are themselves the same, is unchanged. Only the others are looked up
//! by key and compared as [`Value`](super::Value)s, which decides exactly (states from different producers,
//! whose ordinals differ, compare correctly, only slower).

use std::collections::HashMap;

use super::ReadState;
use crate::bitset::Bitset;
use crate::error::Result;
use crate::schema::{Kind, TypeDef, TypeId, TypeKind};
use crate::type_data::TypeData;
use crate::StateId;

/// The records that changed between two states ([`ReadState::diff`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateDiff {
    /// The state compared from.
    pub from: StateId,
    /// The state compared to.
    pub to: StateId,
    /// One entry per object type of either state, in the order of the `to` state's schema
    /// (then the types only `from` has).
    pub types: Vec<TypeDiff>,
}

impl StateDiff {
    /// True when no record of any type changed.
    pub fn is_empty(&self) -> bool {
        self.types.iter().all(TypeDiff::is_empty)
    }

    /// The differences of the type `name`.
    pub fn of(&self, name: &str) -> Option<&TypeDiff> {
        self.types.iter().find(|t| t.type_name == name)
    }
}

/// The records of one object type that changed between two states.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TypeDiff {
    /// The type.
    pub type_name: String,
    /// True when records were matched by their primary key. Without one (in either state),
    /// a record whose content changed counts as one removed and one added.
    pub by_primary_key: bool,
    /// Ordinals (in the `from` state) of records that are gone.
    pub removed: Vec<u32>,
    /// Ordinals (in the `to` state) of records that are new.
    pub added: Vec<u32>,
    /// Records with the same key whose content changed: (ordinal in `from`, ordinal in `to`).
    pub changed: Vec<(u32, u32)>,
    /// Records that did not change.
    pub unchanged: u64,
}

impl TypeDiff {
    /// True when no record of the type changed.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty() && self.changed.is_empty()
    }
}

impl ReadState {
    /// What changed from this state to `to`, for every object type (collections and enum
    /// values are parts of the records that hold them). See [`ReadState::diff_type`].
    pub fn diff(&self, to: &ReadState) -> Result<StateDiff> {
        let mut names: Vec<&str> = to
            .schema
            .types()
            .iter()
            .chain(self.schema.types())
            .filter(|t| t.kind() == TypeKind::Object)
            .map(TypeDef::name)
            .collect();
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(*n));
        let mut same = Sameness::new(self, to);
        let types = names
            .into_iter()
            .map(|name| same.diff_type(name))
            .collect::<Result<_>>()?;
        Ok(StateDiff {
            from: self.id,
            to: to.id,
            types,
        })
    }

    /// What changed from this state to `to` in the object type `type_name` alone: records
    /// removed, added, and changed (same primary key, other content; compare them with
    /// [`Value::differences`](crate::Value::differences) on [`ReadState::value_of`]). A type only one state has is all
    /// added or all removed.
    pub fn diff_type(&self, to: &ReadState, type_name: &str) -> Result<TypeDiff> {
        if self.schema.type_id(type_name).is_none() {
            to.schema.require(type_name)?;
        }
        Sameness::new(self, to).diff_type(type_name)
    }
}

/// Which ordinals of each type of `from` hold the same record in `to`, worked out once per type.
struct Sameness<'a> {
    from: &'a ReadState,
    to: &'a ReadState,
    /// Per type of `from`: `None` while being worked out (a reference cycle), then the same
    /// ordinals (empty when the type has no counterpart of the same shape).
    done: HashMap<TypeId, Option<Bitset>>,
    /// The types of `from` whose data `to` shares (no delta between them touched it) and
    /// whose references all lead to such types: every record of theirs is the same.
    untouched: std::collections::HashSet<TypeId>,
}

impl<'a> Sameness<'a> {
    fn new(from: &'a ReadState, to: &'a ReadState) -> Self {
        Self {
            from,
            to,
            done: HashMap::new(),
            untouched: std::collections::HashSet::new(),
        }
    }

    fn diff_type(&mut self, name: &str) -> Result<TypeDiff> {
        let (from, to) = (self.from, self.to);
        let mut diff = TypeDiff {
            type_name: name.to_string(),
            by_primary_key: false,
            removed: Vec::new(),
            added: Vec::new(),
            changed: Vec::new(),
            unchanged: 0,
        };
        let (a, b) = match (from.schema.type_id(name), to.schema.type_id(name)) {
            (Some(a), Some(b)) => (a, b),
            (Some(a), None) => {
                diff.removed = ordinals(from, a).collect();
                return Ok(diff);
            }
            (None, Some(b)) => {
                diff.added = ordinals(to, b).collect();
                return Ok(diff);
            }
            (None, None) => return Ok(diff),
        };
        self.work_out(a);
        let same = self.done[&a].as_ref().expect("worked out");
        let keys = match (from.primary_key_index(name), to.primary_key_index(name)) {
            (Ok(x), Ok(y)) if key_names(from, a) == key_names(to, b) => Some((x, y)),
            _ => None,
        };
        diff.by_primary_key = keys.is_some();
        let (da, db) = (from.type_data(a), to.type_data(b));
        for o in da.population.iter() {
            if same.contains(o) {
                diff.unchanged += 1;
                continue;
            }
            let Some((from_index, to_index)) = keys else {
                diff.removed.push(o as u32);
                continue;
            };
            match to_index.find_parts(&from_index.key_parts(o)) {
                Ok(Some(p)) => {
                    let old = from.value_of(name, o as u32, None)?;
                    if old.same_as(&to.value_of(name, p, None)?) {
                        diff.unchanged += 1;
                    } else {
                        diff.changed.push((o as u32, p));
                    }
                }
                _ => diff.removed.push(o as u32),
            }
        }
        for o in db.population.iter() {
            if same.contains(o) {
                continue;
            }
            let matched = match keys {
                Some((from_index, to_index)) => {
                    matches!(from_index.find_parts(&to_index.key_parts(o)), Ok(Some(_)))
                }
                None => false,
            };
            if !matched {
                diff.added.push(o as u32);
            }
        }
        Ok(diff)
    }

    /// Works out the same ordinals of type `a` of `from` (and of the types it references).
    fn work_out(&mut self, a: TypeId) {
        if self.done.contains_key(&a) {
            return;
        }
        self.done.insert(a, None);
        let (from, to) = (self.from, self.to);
        let def = from.schema.get(a);
        let counterpart = to
            .schema
            .type_id(def.name())
            .filter(|&b| same_shape(from, def, to, to.schema.get(b)));
        let mut same = Bitset::with_len(from.type_data(a).population.len());
        if let Some(b) = counterpart {
            for column in def.columns() {
                if let Kind::Reference(t) = column.ty.kind {
                    self.work_out(t);
                }
            }
            let (da, db) = (from.type_data(a), to.type_data(b));
            let references = || {
                def.columns().iter().filter_map(|c| match c.ty.kind {
                    Kind::Reference(t) => Some(t),
                    _ => None,
                })
            };
            if std::sync::Arc::ptr_eq(da, db) && references().all(|t| self.untouched.contains(&t)) {
                self.untouched.insert(a);
                self.done.insert(a, Some(da.population.clone()));
                return;
            }
            let targets: Vec<Option<&Bitset>> = def
                .columns()
                .iter()
                .map(|c| match c.ty.kind {
                    Kind::Reference(t) => self.done[&t].as_ref(),
                    _ => None,
                })
                .collect();
            for o in da.population.iter() {
                if db.population.contains(o) && same_record(da, db, o, &targets) {
                    same.insert(o);
                }
            }
        }
        self.done.insert(a, Some(same));
    }
}

/// True when types `x` of `a` and `y` of `b` have the same columns (references compared by
/// the names of the types they lead to).
fn same_shape(a: &ReadState, x: &TypeDef, b: &ReadState, y: &TypeDef) -> bool {
    x.kind() == y.kind()
        && x.columns().len() == y.columns().len()
        && x.columns().iter().zip(y.columns()).all(|(p, q)| {
            p.name == q.name
                && a.schema.type_name(p.ty) == b.schema.type_name(q.ty)
                && matches!(p.ty.kind, Kind::Reference(_))
                    == matches!(q.ty.kind, Kind::Reference(_))
        })
}

/// True when record `o` holds the same values in both types' data (of the same shape), and
/// its references lead to records in `targets` (per column: the same ordinals of the type it
/// references; `None` for a column that is not a reference, or a reference cycle).
fn same_record(da: &TypeData, db: &TypeData, o: u64, targets: &[Option<&Bitset>]) -> bool {
    let (ra, rb) = (da.row_range(o), db.row_range(o));
    if ra.end - ra.start != rb.end - rb.start {
        return false;
    }
    ra.zip(rb).all(|(x, y)| {
        (0..da.columns.len()).all(|c| match (da.value(x, c), db.value(y, c)) {
            (None, None) => true,
            (Some(u), Some(v)) => match da.columns[c].kind {
                Kind::Reference(_) => u == v && targets[c].is_some_and(|t| t.contains(u)),
                k if k.is_var_length() => {
                    let x = da.dicts[c].as_ref().and_then(|d| d.get(u));
                    x.is_some() && x == db.dicts[c].as_ref().and_then(|d| d.get(v))
                }
                _ => u == v,
            },
            _ => false,
        })
    })
}

/// The populated ordinals of type `t`.
fn ordinals(state: &ReadState, t: TypeId) -> impl Iterator<Item = u32> + '_ {
    state.type_data(t).population.iter().map(|o| o as u32)
}

/// The names of the primary key's fields of type `t`.
fn key_names(state: &ReadState, t: TypeId) -> Vec<&str> {
    state.schema.get(t).key_field_names()
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use crate::{ReadState, SchemaBuilder, WriteState};

    #[derive(Serialize, Deserialize, Clone)]
    struct Actor {
        id: i64,
        name: String,
    }

    #[derive(Serialize, Deserialize, Clone)]
    struct Movie {
        id: i64,
        title: String,
        cast: Vec<Actor>,
    }

    fn movie(id: i64, title: &str, actor: &str) -> Movie {
        Movie {
            id,
            title: title.into(),
            cast: vec![Actor {
                id: 1,
                name: actor.into(),
            }],
        }
    }

    #[test]
    fn records_are_matched_by_key_and_compared_deeply() {
        let schema = SchemaBuilder::new()
            .add::<Movie>()
            .primary_key("Movie", &["id"])
            .build()
            .unwrap();
        let mut w = WriteState::new(schema);
        for m in [
            movie(1, "Heat", "Al"),
            movie(2, "Ran", "Tatsuya"),
            movie(3, "Up", "Ed"),
        ] {
            w.add(&m).unwrap();
        }
        let before = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
        w.commit_cycle().unwrap();
        // 1 unchanged, 2 changed deep inside (an actor's name), 3 removed, 4 added.
        for m in [
            movie(1, "Heat", "Al"),
            movie(2, "Ran", "Mieko"),
            movie(4, "Jaws", "Roy"),
        ] {
            w.add(&m).unwrap();
        }
        let delta = w.write_delta(1, 2).unwrap();
        let after = before.apply_delta(delta.into()).unwrap();
        let diff = before.diff(&after).unwrap();
        let movies = diff.of("Movie").unwrap();
        assert!(movies.by_primary_key);
        assert_eq!(movies.unchanged, 1);
        assert_eq!(movies.changed.len(), 1);
        let (old, new) = movies.changed[0];
        let changes = before
            .value_of("Movie", old, None)
            .unwrap()
            .differences(&after.value_of("Movie", new, None).unwrap());
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].path, "cast[0].name");
        fn title(s: &ReadState, o: u32) -> String {
            let movies = s.object("Movie").unwrap();
            movies.string("title").unwrap().get(o).unwrap().to_string()
        }
        assert_eq!(
            movies
                .removed
                .iter()
                .map(|&o| title(&before, o))
                .collect::<Vec<_>>(),
            ["Up"]
        );
        assert_eq!(
            movies
                .added
                .iter()
                .map(|&o| title(&after, o))
                .collect::<Vec<_>>(),
            ["Jaws"]
        );
        // Actors have no primary key: a changed one is one removed and one added.
        let actors = diff.of("Actor").unwrap();
        assert!(!actors.by_primary_key);
        assert_eq!((actors.removed.len(), actors.added.len()), (2, 2));
        assert!(before.diff(&before).unwrap().is_empty());
        // Two snapshots of the same content compare equal whatever their ordinals.
        let again = ReadState::from_snapshot(after.write_snapshot().into()).unwrap();
        assert!(after.diff(&again).unwrap().is_empty());
    }
}
