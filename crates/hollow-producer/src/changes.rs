//! What a cycle's closure gets: a [`Populator`] adding the whole dataset, or [`Changes`]
//! upserting and deleting records by primary key on top of the announced state.

use hollow_core::schema::TypeId;
use hollow_core::{AddBatch, AddedRecords, OnStaged, ReadState, StagedBatch, WriteState};
use serde::{Deserialize, Serialize};

/// Adds the records of one cycle, in batches (see [`WriteState::batch`]).
pub struct Populator<'a> {
    pub(crate) batch: AddBatch<'a>,
}

impl Populator<'_> {
    /// Adds a record (a struct of the schema) and everything it references. A record that
    /// does not fit the schema adds nothing and returns the error.
    pub fn add<T: Serialize + ?Sized>(&mut self, record: &T) -> hollow_core::Result<()> {
        self.batch.add(record)
    }

    /// Sets a tag of the new state: key/value metadata consumers read back with
    /// [`ReadState::tags`](hollow_core::ReadState::tags). Tags stay from cycle to cycle until
    /// changed, and a changed tag alone is a change worth a new version.
    pub fn set_tag(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.batch.set_tag(key, value);
    }
}

/// The changes of an incremental cycle: records upserted or deleted by primary key, on top of
/// the announced state.
///
/// Upserts are serialized, and their keys looked up in the announced state, on the caller's
/// thread while a worker thread adds the ones before and replaces the records that had their
/// keys; a delete waits for the upserts before it.
pub struct Changes<'a> {
    pub(crate) batch: StagedBatch<'a, Replacements>,
    schema: std::sync::Arc<hollow_core::Schema>,
    announced: Option<ReadState>,
    /// Where keys are encoded, reused.
    scratch: Vec<u8>,
}

/// What replaces the records of upserted keys: run on the thread that interns the upserts.
#[derive(Default)]
pub(crate) struct Replacements {
    /// Per type, the keys (encoded) this cycle upserted or deleted: one table, so that an
    /// upsert finds and updates what the cycle did with its key in one lookup.
    keys: foldhash::HashMap<(TypeId, EncodedKey), KeyChange>,
}

/// What a cycle did with one key.
#[derive(Clone, Copy, Default)]
struct KeyChange {
    /// The ordinal of the record last upserted with the key, if it is still in.
    upserted: Option<u32>,
    /// Whether the announced state's record with the key was removed.
    deleted: bool,
}

/// An upsert as staged: its key, and the ordinal of the announced state's record with that
/// key, if any.
pub(crate) struct Upsert {
    key: (TypeId, EncodedKey),
    announced: Option<u32>,
}

impl<'a> Changes<'a> {
    /// The changes of a cycle on `write` (an incremental cycle begun) over `announced`,
    /// remembering keys in `replacements` (empty).
    pub(crate) fn new(
        write: &'a mut WriteState,
        announced: Option<&ReadState>,
        replacements: Replacements,
    ) -> Self {
        debug_assert!(replacements.keys.is_empty());
        Self {
            schema: write.schema().clone(),
            batch: write.staged_batch(replacements),
            announced: announced.cloned(),
            scratch: Vec::new(),
        }
    }
}

/// A key's parts as bytes, to remember keys across the borrow of the write state: inline when
/// short (an integer key takes 9 bytes), so that remembering 100,000 upserts allocates nothing
/// per key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum EncodedKey {
    Short(u8, [u8; 22]),
    Long(Box<[u8]>),
}

fn encode_key(parts: &[hollow_core::KeyPart<'_>], out: &mut Vec<u8>) -> EncodedKey {
    out.clear();
    for p in parts {
        match *p {
            hollow_core::KeyPart::Null => out.push(0),
            hollow_core::KeyPart::Int(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_le_bytes());
            }
            hollow_core::KeyPart::Float(v) => {
                out.push(2);
                out.extend_from_slice(&v.to_le_bytes());
            }
            hollow_core::KeyPart::Bytes(b) => {
                out.push(3);
                out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                out.extend_from_slice(b);
            }
        }
    }
    if out.len() <= 22 {
        let mut short = [0u8; 22];
        short[..out.len()].copy_from_slice(out);
        EncodedKey::Short(out.len() as u8, short)
    } else {
        EncodedKey::Long(out.as_slice().into())
    }
}

impl Changes<'_> {
    /// Sets a tag of the new state (see [`Populator::set_tag`]).
    pub fn set_tag(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.batch.set_tag(key, value);
    }

    /// The tags of the new state: the announced state's, with this cycle's changes.
    pub fn tags(&self) -> &hollow_core::Tags {
        self.batch.tags()
    }

    /// Adds `record` (a struct of a record type with a primary key, the type known from `T`),
    /// replacing the record that had its key, if any.
    pub fn upsert<T: Serialize + ?Sized>(&mut self, record: &T) -> hollow_core::Result<()> {
        let (schema, announced, scratch) = (&self.schema, &self.announced, &mut self.scratch);
        let noted = self.batch.stage_noting(record, |ty, parts| {
            Ok(Upsert {
                key: (ty, encode_key(parts, scratch)),
                announced: find_committed(announced, schema.get(ty).name(), parts)?,
            })
        });
        noted.map(drop)
    }

    /// Deletes the record of type `T` whose primary key is `key`; false if there was none:
    /// `changes.delete::<Movie, _>(&42)`.
    pub fn delete<T: Deserialize<'static>, K: hollow_core::Key + ?Sized>(
        &mut self,
        key: &K,
    ) -> hollow_core::Result<bool> {
        let schema = self.batch.schema().clone();
        let ty = schema.record_type::<T>()?;
        self.delete_by_name(schema.get(ty).name(), key)
    }

    /// Deletes the record of the type named `type_name` whose primary key is `key`; false if
    /// there was none. For tools that have no Rust type for the records.
    pub fn delete_by_name<K: hollow_core::Key + ?Sized>(
        &mut self,
        type_name: &str,
        key: &K,
    ) -> hollow_core::Result<bool> {
        let parts: Vec<hollow_core::KeyPart<'_>> = (0..K::ARITY).map(|i| key.part(i)).collect();
        self.delete_key_parts(type_name, &parts)
    }

    /// Deletes the record of the type named `type_name` whose primary key has the given parts
    /// (in key order); false if there was none. For keys known only at run time, as the keys of
    /// Kafka messages.
    pub fn delete_key_parts(
        &mut self,
        type_name: &str,
        parts: &[hollow_core::KeyPart<'_>],
    ) -> hollow_core::Result<bool> {
        let (write, replacements) = self.batch.settle()?;
        let ty = write.schema().require(type_name)?;
        let encoded = (ty, encode_key(parts, &mut self.scratch));
        let change = replacements.keys.entry(encoded).or_default();
        let mut found = false;
        if !change.deleted {
            if let Some(o) = find_committed(&self.announced, type_name, parts)? {
                write.remove(type_name, o)?;
                change.deleted = true;
                found = true;
            }
        }
        if let Some(o) = change.upserted.take() {
            write.remove(type_name, o)?;
            found = true;
        }
        Ok(found)
    }
}

/// The ordinal of the record of `announced` (if any) whose primary key has `parts`.
fn find_committed(
    announced: &Option<ReadState>,
    type_name: &str,
    parts: &[hollow_core::KeyPart<'_>],
) -> hollow_core::Result<Option<u32>> {
    match announced {
        Some(state) => Ok(state.primary_key_index(type_name)?.find_parts(parts)?),
        None => Ok(None),
    }
}

impl Replacements {
    /// Emptied for another cycle, keeping room for as many keys as this one had.
    pub(crate) fn emptied(mut self) -> Self {
        let keys = self.keys.len();
        self.keys.clear();
        self.keys.shrink_to(keys);
        self
    }
}

impl OnStaged for Replacements {
    type Note = Upsert;

    /// Replaces the record that had the key of the upserted record at `ordinal`.
    fn added(
        &mut self,
        records: &mut AddedRecords<'_>,
        ty: TypeId,
        ordinal: u32,
        upsert: Upsert,
    ) -> hollow_core::Result<()> {
        let Upsert { key, announced } = upsert;
        let change = self.keys.entry(key).or_default();
        let before = match change.deleted {
            true => None, // removed already this cycle
            false => announced,
        };
        if before.is_some_and(|old| old != ordinal) {
            change.deleted = true;
        }
        let earlier = change.upserted.replace(ordinal);
        for old in before.into_iter().chain(earlier) {
            if old != ordinal {
                records.remove(ty, old);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cycle's table goes to the next one empty, with room for as many keys.
    #[test]
    fn an_emptied_table_keeps_its_room_and_nothing_else() {
        let ty = crate::test_rows::schema().require("Row").unwrap();
        let mut r = Replacements::default();
        let mut scratch = Vec::new();
        let change = |id: i64| KeyChange {
            upserted: Some(id as u32),
            deleted: true,
        };
        for id in 0..1000i64 {
            let key = encode_key(&[hollow_core::KeyPart::Int(id)], &mut scratch);
            r.keys.insert((ty, key), change(id));
        }
        let r = r.emptied();
        assert!(r.keys.is_empty());
        assert!(r.keys.capacity() >= 1000);
        // A small cycle's table gives the room of a large one back.
        let mut r = r;
        let key = encode_key(&[hollow_core::KeyPart::Int(1)], &mut scratch);
        r.keys.insert((ty, key), change(1));
        let r = r.emptied();
        assert!(r.keys.capacity() < 1000);
    }
}
