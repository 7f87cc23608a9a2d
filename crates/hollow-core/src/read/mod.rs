//! The read state engine: an immutable, fully validated state, read in place from blob bytes.

mod accessor;
mod apply;
#[cfg(test)]
pub(crate) use apply::EARLY_REMOVAL_BYTES;
mod checksum;
mod deserialize;
mod diff;
mod equality;
mod hash_indexes;
mod layout;
mod reverse_check;
mod stats;
mod typed;
mod value;

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;

use crate::error::{CorruptReason, Error, Result};
use crate::format::{self, BlobKind, SectionKind};
use crate::hash_index::HashIndex;
use crate::index::PrimaryKeyIndex;
use crate::schema::{Schema, TypeId};
use crate::snapshot_buffer::SnapshotBuffer;
use crate::type_data::{BlobAddresses, StateTypes, TypeData};
use crate::StateId;

pub use accessor::{
    BoolField, BytesField, CollectionReader, FloatField, IntField, ObjectReader, RefField,
    StrField, UIntField,
};
pub use diff::{StateDiff, TypeDiff};
pub use layout::StateLayout;
pub use stats::{DictionaryStats, FieldStats, TypeStats};
pub use typed::TypedIndex;
pub use value::{Difference, Value};

/// How much of a snapshot blob [`ReadState::from_snapshot_with_saved_indexes`] verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotCheck {
    /// Every byte, against the blob's checksums (as [`ReadState::from_snapshot`]).
    Checksums,
    /// None of its bytes: the caller knows the blob is the very one verified when the indexes
    /// were saved, unchanged since (as a cache file whose size and change time are those it
    /// had then). Its footer must still hold the checksum the indexes recorded, and its
    /// structure is validated whole.
    UnchangedSinceSaved,
}

/// One whole, immutable version of the dataset: every type's records plus the primary key
/// indexes, read in place from the snapshot bytes (a downloaded buffer or a memory-mapped file).
///
/// Cloning is cheap (reference counts).
#[derive(Clone, Debug)]
pub struct ReadState {
    id: StateId,
    schema: Arc<Schema>,
    types: Vec<Arc<TypeData>>,
    indexes: Vec<Option<Arc<PrimaryKeyIndex>>>,
    /// The hash indexes added to this state (or carried from the state it was reached from).
    pub(crate) hash_indexes: Vec<Arc<crate::hash_index::HashIndex>>,
    /// The state's tags (see [`ReadState::tags`]).
    tags: Arc<crate::Tags>,
    /// The snapshot buffer this state's types read slices of, if they still do.
    blob: Option<BlobAddresses>,
    /// For a state loaded from a snapshot: the snapshot's footer checksum, which saved indexes
    /// record (see [`ReadState::save_indexes`]). `None` for a state reached by a delta.
    snapshot_checksum: Option<u64>,
}

impl ReadState {
    /// Loads a snapshot blob: verifies its checksums, decodes and validates every type, and
    /// builds the primary key index of every type that declares one and the hash indexes the
    /// schema declares. Any malformed input is an [`Error`], never a panic.
    pub fn from_snapshot(blob: Bytes) -> Result<Self> {
        let mut state = Self::from_snapshot_without_indexes(blob)?;
        state.build_indexes()?;
        Ok(state)
    }

    /// [`ReadState::from_snapshot`] for a blob the caller owns and still needs (a producer's
    /// first snapshot, read back and then published): the state reads the blob in place,
    /// without a copy, and the blob comes back as a view of the same memory. While the view
    /// lives, every type section stays readable through it; once it is dropped, a section
    /// gives its pages back as soon as no state reads it, as for a blob read from a store.
    pub fn from_snapshot_keeping_blob(blob: Vec<u8>) -> Result<(Self, Bytes)> {
        let (mut state, blob) =
            Self::decode_snapshot_keeping_blob(Bytes::from(blob), format::ContentCheck::Verify)?;
        state.build_indexes()?;
        Ok((state, blob))
    }

    /// Builds the primary key index of every type that declares one, and the hash indexes the
    /// schema declares.
    fn build_indexes(&mut self) -> Result<()> {
        let state = &*self;
        let indexes = state
            .schema
            .types()
            .iter()
            .enumerate()
            .map(|(i, def)| {
                (!def.primary_key().is_empty())
                    .then(|| Arc::new(PrimaryKeyIndex::build(state, TypeId(i as u32))))
            })
            .collect();
        self.indexes = indexes;
        self.add_declared_hash_indexes()
    }

    /// The primary key indexes and the hash indexes of a state loaded from a snapshot, saved so
    /// that a later load of the same snapshot ([`ReadState::from_snapshot_with_saved_indexes`])
    /// maps the primary key indexes and copies the hash indexes instead of building them.
    /// `None` for a state reached by a delta, or one loaded without indexes.
    pub fn save_indexes(&self) -> Option<Vec<u8>> {
        let tables = self
            .indexes
            .iter()
            .enumerate()
            .filter_map(|(i, index)| Some(index.as_ref()?.saved_table(TypeId(i as u32))))
            .collect::<Option<Vec<_>>>()?;
        let pk_types = self
            .schema
            .types()
            .iter()
            .filter(|t| !t.primary_key().is_empty());
        if tables.len() != pk_types.count() {
            return None;
        }
        let hash_indexes = self
            .hash_indexes
            .iter()
            .map(|index| Some(index.saved(self.schema.type_id(index.type_name())?)))
            .collect::<Option<Vec<_>>>()?;
        let saved = format::saved_indexes::SavedIndexes {
            snapshot: self.id,
            footer_checksum: self.snapshot_checksum?,
            tables,
            hash_indexes,
        };
        Some(saved.encode())
    }

    /// [`ReadState::from_snapshot`], with the indexes read from `saved` (what
    /// [`ReadState::save_indexes`] gave for this snapshot) instead of built: the primary key
    /// indexes stay in `saved`'s buffer, a memory-mapped file if that is what it is; the hash
    /// indexes are copied out and checked (keys in order, runs ascending, ordinals the type
    /// has), and the ones the schema declares that `saved` lacks are built.
    ///
    /// `check` says how much of the blob to verify: [`SnapshotCheck::UnchangedSinceSaved`]
    /// skips hashing its bytes, for a caller that knows they have not changed since the
    /// indexes were saved (their blob was verified then); the blob's structure is validated
    /// either way. Indexes saved for another snapshot, by another layout of the index, or
    /// damaged, are an [`Error::SavedIndexes`]: load the snapshot with
    /// [`ReadState::from_snapshot`] then.
    pub fn from_snapshot_with_saved_indexes(
        blob: Bytes,
        saved: Bytes,
        check: SnapshotCheck,
    ) -> Result<Self> {
        let saved = format::saved_indexes::SavedIndexes::decode(saved)?;
        let content = match check {
            SnapshotCheck::Checksums => format::ContentCheck::Verify,
            SnapshotCheck::UnchangedSinceSaved => format::ContentCheck::AlreadyVerified {
                footer_checksum: saved.footer_checksum,
            },
        };
        let mut state = Self::decode_snapshot(blob, content)?;
        if (state.id, state.snapshot_checksum) != (saved.snapshot, Some(saved.footer_checksum)) {
            return Err(Error::SavedIndexes(format!(
                "saved for snapshot {} (checksum {:#018x}), not this one, {}",
                saved.snapshot, saved.footer_checksum, state.id
            )));
        }
        let mut tables = saved.tables.into_iter();
        let mut indexes = Vec::with_capacity(state.schema.len());
        for (i, def) in state.schema.types().iter().enumerate() {
            let id = TypeId(i as u32);
            if def.primary_key().is_empty() {
                indexes.push(None);
                continue;
            }
            let table = tables
                .next()
                .filter(|t| t.type_id == id.0)
                .ok_or_else(|| Error::SavedIndexes(format!("no table for {}", def.name())))?;
            indexes.push(Some(Arc::new(PrimaryKeyIndex::from_saved_table(
                &state, id, table,
            )?)));
        }
        if tables.next().is_some() {
            return Err(Error::SavedIndexes(
                "a table for a type without a primary key".into(),
            ));
        }
        state.indexes = indexes;
        for saved in saved.hash_indexes {
            let index = HashIndex::from_saved(&state, saved)?;
            state.hash_indexes.push(Arc::new(index));
        }
        state.add_declared_hash_indexes()?;
        Ok(state)
    }

    /// Loads a snapshot blob like [`ReadState::from_snapshot`], checking all the same, but
    /// builds no primary key index: for when only the content matters, as when a producer
    /// compares the blob with the state its delta reaches ([`ReadState::same_content_as`]).
    /// [`ReadState::primary_key_index`] fails on this state.
    pub fn from_snapshot_without_indexes(blob: Bytes) -> Result<Self> {
        Self::decode_snapshot(blob, format::ContentCheck::Verify)
    }

    /// Reads a snapshot blob, its bytes verified as `check` says, without indexes.
    fn decode_snapshot(blob: Bytes, check: format::ContentCheck) -> Result<Self> {
        Self::decode_snapshot_keeping_blob(blob, check).map(|(state, _)| state)
    }

    /// [`ReadState::decode_snapshot`], returning also the (decompressed) blob, as a view that
    /// keeps every type section readable while it lives.
    fn decode_snapshot_keeping_blob(
        blob: Bytes,
        check: format::ContentCheck,
    ) -> Result<(Self, Bytes)> {
        let blob = format::compressed::decompress_if_compressed(blob)?;
        let addresses = BlobAddresses::of(&blob);
        let (blob, buffer) = SnapshotBuffer::adopt(blob);
        let whole = blob.clone();
        let mut sections_read = Vec::new();
        let mut type_section_bytes = 0;
        let parsed = format::parse_checked(blob, check)?;
        let snapshot_checksum = Some(parsed.footer_checksum);
        if parsed.header.kind != BlobKind::Snapshot {
            return Err(Error::WrongBlobKind {
                expected: BlobKind::Snapshot,
                found: parsed.header.kind,
            });
        }
        let id = parsed.header.destination;
        let format::SplitBlob {
            schema,
            tags,
            mut sections,
        } = parsed.split_schema()?;
        let schema = Arc::new(schema);
        let mut types = Vec::with_capacity(schema.len());
        for (i, def) in schema.types().iter().enumerate() {
            let s = sections
                .next()
                .filter(|s| s.kind == SectionKind::TypeData && s.type_id as usize == i)
                .ok_or_else(|| {
                    Error::corrupt(
                        def.name(),
                        CorruptReason::Missing {
                            what: "type section",
                        },
                    )
                })?;
            type_section_bytes += s.data.len();
            let data = match &buffer {
                Some(buffer) => buffer.section(s.data),
                None => s.data,
            };
            sections_read.push(data.clone());
            types.push(Arc::new(TypeData::decode(data, s.offset, def)?));
        }
        if sections.next().is_some() {
            return Err(Error::corrupt(
                "section table",
                CorruptReason::Unexpected {
                    what: "a type section past the schema's types",
                },
            ));
        }
        let state = Self {
            id,
            schema,
            types,
            indexes: Vec::new(),
            hash_indexes: Vec::new(),
            tags: Arc::new(tags),
            blob: Some(match buffer {
                Some(_) => addresses.releasing_sections(type_section_bytes),
                None => addresses,
            }),
            snapshot_checksum,
        };
        Ok((
            state,
            SnapshotBuffer::keeping_sections(whole, sections_read),
        ))
    }

    /// Writes this state as a snapshot blob, as its producer would have: the same identity,
    /// schema, tags and records at the same ordinals, each type's buffers copied as they are.
    /// A state reached by deltas can so be snapshotted without its write state, off the path
    /// of the cycle that made it.
    pub fn write_snapshot(&self) -> Vec<u8> {
        let mut blob = format::BlobWriter::new(format::BlobHeader {
            kind: BlobKind::Snapshot,
            origin: StateId::default(),
            destination: self.id,
        });
        blob.schema_section(&self.schema);
        format::tags_section(&self.tags, &mut blob);
        for (i, data) in self.types.iter().enumerate() {
            let mut w = crate::byte_io::ByteWriter::new();
            data.to_section().encode(&mut w);
            blob.section(SectionKind::TypeData, i as u32, w);
        }
        blob.finish()
    }

    /// The version this state is.
    pub fn version(&self) -> u64 {
        self.id.version
    }

    /// The identity of this state: its version and its producer's random tag.
    pub fn id(&self) -> StateId {
        self.id
    }

    /// The state's tags: key/value metadata its producer recorded with it (as the Kafka offsets
    /// a state contains), read from the blob that reached it.
    pub fn tags(&self) -> &crate::Tags {
        &self.tags
    }

    /// The value of the tag `key`, if the state has it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }

    /// The schema.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    pub(crate) fn type_data(&self, id: TypeId) -> &Arc<TypeData> {
        &self.types[id.index()]
    }

    /// Number of records of `type_name`.
    pub fn record_count(&self, type_name: &str) -> Result<u64> {
        let id = self.schema.require(type_name)?;
        Ok(self.types[id.index()].record_count)
    }

    /// A reader for the object type `type_name`, for allocation-free field access.
    pub fn object(&self, type_name: &str) -> Result<ObjectReader<'_>> {
        let id = self.schema.require(type_name)?;
        let def = self.schema.get(id);
        if def.is_collection() {
            return Err(Error::FieldKindMismatch {
                type_name: type_name.to_string(),
                field: String::new(),
                requested: "object type",
                actual: format!("{:?}", def.kind()),
            });
        }
        Ok(ObjectReader::new(def, &self.types[id.index()]))
    }

    /// A reader for the list, set or map type `type_name`.
    pub fn collection(&self, type_name: &str) -> Result<CollectionReader<'_>> {
        let id = self.schema.require(type_name)?;
        if !self.schema.get(id).is_collection() {
            return Err(Error::FieldKindMismatch {
                type_name: type_name.to_string(),
                field: String::new(),
                requested: "collection type",
                actual: "object type".into(),
            });
        }
        Ok(CollectionReader::new(&self.types[id.index()]))
    }

    /// The primary key index of `type_name`.
    pub fn primary_key_index(&self, type_name: &str) -> Result<&PrimaryKeyIndex> {
        let id = self.schema.require(type_name)?;
        match self.indexes.get(id.index()) {
            Some(Some(index)) => Ok(index),
            Some(None) => Err(Error::NoPrimaryKey {
                type_name: type_name.to_string(),
            }),
            None => Err(Error::IndexesNotLoaded {
                type_name: type_name.to_string(),
            }),
        }
    }

    /// Materializes the record at `ordinal` of the type `T` names (its serde struct name; see
    /// [`ReadState::get_as`] to name the type explicitly).
    /// Fields of type `&str` or `&[u8]` borrow from the state.
    pub fn get<'s, T: Deserialize<'s>>(&'s self, ordinal: u32) -> Result<T> {
        let budget = deserialize::Budget::new(self);
        T::deserialize(deserialize::RecordDeserializer::root(
            self, ordinal, &budget,
        ))
    }

    /// Materializes the record at `ordinal` of `type_name` (any type, collections included) as
    /// `T`. Use it for a Rust type whose serde name differs from the type's (a borrowing view
    /// such as `MovieRef<'a>`), or with [`Value`] to inspect any record without a Rust type.
    pub fn get_as<'s, T: Deserialize<'s>>(&'s self, type_name: &str, ordinal: u32) -> Result<T> {
        let id = self.schema.require(type_name)?;
        let budget = deserialize::Budget::new(self);
        T::deserialize(deserialize::RecordDeserializer::of(
            self, id, ordinal, &budget,
        ))
    }

    /// The record at `ordinal` of `type_name` as a [`Value`], following at most `follow`
    /// references to records of object types (`None`: all of them). A reference not followed
    /// reads as `{"$ref": type name, "$ordinal": ordinal}`; collections and enum values are
    /// part of the record and always read whole. For tools that show records a level at a time.
    ///
    /// ```
    /// # use hollow_core::{ReadState, SchemaBuilder, Value, WriteState};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Studio { name: String }
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Movie { id: i64, studio: Studio }
    ///
    /// let mut w = WriteState::new(SchemaBuilder::new().add::<Movie>().build()?);
    /// let heat = w.add(&Movie { id: 1, studio: Studio { name: "WB".into() } })?;
    /// let state = ReadState::from_snapshot(w.write_snapshot(1)?.into())?;
    /// let shallow = state.value_of("Movie", heat, Some(0))?;
    /// assert_eq!(shallow.field("studio").and_then(|s| s.field("$ref")), Some(&Value::String("Studio".into())));
    /// let deep = state.value_of("Movie", heat, None)?;
    /// assert_eq!(deep.field("studio").and_then(|s| s.field("name")), Some(&Value::String("WB".into())));
    /// # Ok::<(), hollow_core::Error>(())
    /// ```
    pub fn value_of(&self, type_name: &str, ordinal: u32, follow: Option<u32>) -> Result<Value> {
        let id = self.schema.require(type_name)?;
        let budget = deserialize::Budget::new(self);
        Value::deserialize(
            deserialize::RecordDeserializer::of(self, id, ordinal, &budget)
                .following(follow.unwrap_or(u32::MAX)),
        )
    }

    /// Every record of the type `T` names, in ordinal order.
    pub fn iter<'s, T: Deserialize<'s> + 's>(
        &'s self,
    ) -> Result<impl Iterator<Item = Result<T>> + 's> {
        let id = self.schema.record_type::<T>()?;
        Ok(self.types[id.index()]
            .population
            .iter()
            .map(move |o| self.get::<T>(o as u32)))
    }

    /// Rows across all types (records of objects, elements of collections).
    pub(crate) fn total_rows(&self) -> u64 {
        self.types.iter().map(|t| t.row_count).sum()
    }

    /// Bytes held by this state, counted exactly: every buffer its types reference (the blob
    /// bytes they read in place, owned arrays), the parts of the blob buffer no type references
    /// but that stay allocated with it (headers, schema, padding, types that deltas replaced),
    /// and decoded metadata. Excludes the indexes.
    pub fn heap_bytes(&self) -> usize {
        let types: usize = self.types.iter().map(|t| t.heap_bytes()).sum();
        let unreferenced_blob_bytes = self.blob.map_or(0, |blob| {
            let referenced: usize = self.types.iter().map(|t| t.bytes_in(blob)).sum();
            blob.unreferenced_but_held(referenced)
        });
        types
            + unreferenced_blob_bytes
            + self.types.capacity() * std::mem::size_of::<Arc<TypeData>>()
    }

    /// Bytes held by the primary key indexes.
    pub fn index_heap_bytes(&self) -> usize {
        self.indexes.iter().flatten().map(|i| i.heap_bytes()).sum()
    }
}

impl StateTypes for ReadState {
    fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    fn type_data(&self, id: TypeId) -> &Arc<TypeData> {
        &self.types[id.index()]
    }
}
