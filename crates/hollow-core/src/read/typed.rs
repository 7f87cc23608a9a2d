//! Typed reads: look a record up as a Rust type in one call, the type and its index resolved
//! once per handle.

use std::marker::PhantomData;

use serde::Deserialize;

use super::deserialize::{record_budget, Budget, RecordDeserializer};
use super::ReadState;
use crate::error::Result;
use crate::index::{Key, PrimaryKeyIndex};
use crate::schema::TypeId;

/// The primary key index of the record type `T`, resolved once: [`TypedIndex::get`] is a
/// lookup and a materialization, with no name resolved per call. `T` may be the record's own
/// struct or a view of some of its fields that borrows strings from the state, named like the
/// record with `#[serde(rename = "...")]`:
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use hollow_core::{ReadState, SchemaBuilder, WriteState};
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct Movie { id: i64, title: String, year: i32, country: String }
///
/// #[derive(Deserialize, Debug, PartialEq)]
/// #[serde(rename = "Movie")]
/// struct MovieRef<'a> { title: &'a str, year: i32 }
///
/// let schema = SchemaBuilder::new().add::<Movie>().primary_key("Movie", &["id"]).build()?;
/// let mut w = WriteState::new(schema);
/// w.add(&Movie { id: 42, title: "Heat".into(), year: 1995, country: "US".into() })?;
/// let state = ReadState::from_snapshot(w.write_snapshot(1)?.into())?;
///
/// let movies = state.index::<MovieRef>()?;
/// assert_eq!(movies.get(&42)?, Some(MovieRef { title: "Heat", year: 1995 }));
/// assert_eq!(movies.get(&7)?, None);
/// assert_eq!(state.find::<Movie, _>(&42)?.map(|m| m.country), Some("US".to_string()));
/// # Ok::<(), hollow_core::Error>(())
/// ```
pub struct TypedIndex<'s, T> {
    state: &'s ReadState,
    id: TypeId,
    index: &'s PrimaryKeyIndex,
    /// The state's record budget, worked out once.
    budget: u64,
    record: PhantomData<fn() -> T>,
}

impl<'s, T: Deserialize<'s>> TypedIndex<'s, T> {
    /// The record whose primary key is `key`, if any.
    #[inline]
    pub fn get<K: Key + ?Sized>(&self, key: &K) -> Result<Option<T>> {
        match self.index.find(key)? {
            Some(ordinal) => self.at(ordinal).map(Some),
            None => Ok(None),
        }
    }

    /// The ordinal of the record whose primary key is `key`, if any.
    #[inline]
    pub fn ordinal<K: Key + ?Sized>(&self, key: &K) -> Result<Option<u32>> {
        Ok(self.index.find(key)?)
    }

    /// The record at `ordinal`.
    #[inline]
    pub fn at(&self, ordinal: u32) -> Result<T> {
        let budget = Budget::of(self.budget);
        T::deserialize(RecordDeserializer::of(
            self.state, self.id, ordinal, &budget,
        ))
    }
}

impl ReadState {
    /// A typed handle on the primary key index of the record type `T` (see [`TypedIndex`]).
    pub fn index<'s, T: Deserialize<'s>>(&'s self) -> Result<TypedIndex<'s, T>> {
        let id = self.schema.record_type::<T>()?;
        let name = self.schema.get(id).name();
        let index = self.primary_key_index(name)?;
        Ok(TypedIndex {
            state: self,
            id,
            index,
            budget: record_budget(self),
            record: PhantomData,
        })
    }

    /// The record of type `T` whose primary key is `key`, if any: `state.find::<Movie, _>(&42)`.
    /// For many lookups, resolve the type once with [`ReadState::index`].
    pub fn find<'s, T: Deserialize<'s>, K: Key + ?Sized>(&'s self, key: &K) -> Result<Option<T>> {
        self.index::<T>()?.get(key)
    }
}
