//! What a cycle's closure gets: a [`Populator`] adding the whole dataset, or [`Changes`]
//! upserting and deleting records by primary key on top of the announced state.

use hollow_core::schema::TypeId;
use hollow_core::{AddBatch, ReadState, WriteState};
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
pub struct Changes<'a> {
    pub(crate) write: &'a mut WriteState,
    pub(crate) announced: Option<&'a ReadState>,
    /// Per type: keys upserted in this cycle (encoded) and the ordinal they got.
    pub(crate) upserted: foldhash::HashMap<(TypeId, EncodedKey), u32>,
    /// Keys (as in `upserted`) whose record of the announced state was removed this cycle.
    pub(crate) deleted: foldhash::HashSet<(TypeId, EncodedKey)>,
    /// Where keys are encoded, reused.
    pub(crate) scratch: Vec<u8>,
    /// The types of the upserts staged in the write state and not applied yet, in order.
    pub(crate) staged: Vec<hollow_core::schema::TypeId>,
}

fn no_primary_key(type_name: &str) -> hollow_core::Error {
    hollow_core::Error::NoPrimaryKey {
        type_name: type_name.to_string(),
    }
}

/// Upserts are staged and added together up to this many at a time.
const STAGED_UPSERTS: usize = 4096;

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
        self.write.set_tag(key, value);
    }

    /// The tags of the new state: the announced state's, with this cycle's changes.
    pub fn tags(&self) -> &hollow_core::Tags {
        self.write.tags()
    }

    /// Adds `record` (a struct of a record type with a primary key, the type known from `T`),
    /// replacing the record that had its key, if any.
    pub fn upsert<T: Serialize + ?Sized>(&mut self, record: &T) -> hollow_core::Result<()> {
        // Staged, so that the lookups of many upserts overlap (see WriteState::stage).
        let ty = self.write.stage(record)?;
        self.staged.push(ty);
        if self.staged.len() >= STAGED_UPSERTS {
            self.apply_staged()?;
        }
        Ok(())
    }

    /// Adds the staged upserts and replaces the records that had their keys.
    pub(crate) fn apply_staged(&mut self) -> hollow_core::Result<()> {
        let ordinals = self.write.add_staged();
        let schema = self.write.schema().clone();
        for (&ty, ordinal) in std::mem::take(&mut self.staged).iter().zip(ordinals) {
            let type_name = schema.get(ty).name();
            let parts = self
                .write
                .key_of(type_name, ordinal)?
                .ok_or_else(|| no_primary_key(type_name))?;
            let key = (ty, encode_key(&parts, &mut self.scratch));
            let before = match self.deleted.contains(&key) {
                true => None, // removed already this cycle
                false => self.find_committed(type_name, &parts)?,
            };
            if before.is_some_and(|old| old != ordinal) {
                self.deleted.insert(key.clone());
            }
            let earlier = self.upserted.insert(key, ordinal);
            for old in before.into_iter().chain(earlier) {
                if old != ordinal {
                    self.write.remove(type_name, old)?;
                }
            }
        }
        Ok(())
    }

    /// Deletes the record of type `T` whose primary key is `key`; false if there was none:
    /// `changes.delete::<Movie, _>(&42)`.
    pub fn delete<T: Deserialize<'static>, K: hollow_core::Key + ?Sized>(
        &mut self,
        key: &K,
    ) -> hollow_core::Result<bool> {
        let schema = self.write.schema().clone();
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
        self.apply_staged()?;
        let ty = self.write.schema().require(type_name)?;
        let encoded = (ty, encode_key(parts, &mut self.scratch));
        let mut found = false;
        if !self.deleted.contains(&encoded) {
            if let Some(o) = self.find_committed(type_name, parts)? {
                self.write.remove(type_name, o)?;
                self.deleted.insert(encoded.clone());
                found = true;
            }
        }
        if let Some(o) = self.upserted.remove(&encoded) {
            self.write.remove(type_name, o)?;
            found = true;
        }
        Ok(found)
    }

    fn find_committed(
        &self,
        type_name: &str,
        parts: &[hollow_core::KeyPart<'_>],
    ) -> hollow_core::Result<Option<u32>> {
        match self.announced {
            Some(state) => Ok(state.primary_key_index(type_name)?.find_parts(parts)?),
            None => Ok(None),
        }
    }
}
