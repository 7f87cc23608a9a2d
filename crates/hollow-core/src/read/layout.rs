//! A state's layout, carried to the snapshot of its version: a producer lets the state its
//! deltas reach go before it writes that snapshot (so that it never holds both), keeping only
//! the state's layout digest, to check the snapshot against, and its indexes, to give the
//! state it reads back from the snapshot instead of building them again.

use std::sync::Arc;

use bytes::Bytes;
use xxhash_rust::xxh3::Xxh3;

use super::ReadState;
use crate::byte_io::ByteWriter;
use crate::error::{Error, Result};
use crate::format;
use crate::hash_index::HashIndex;
use crate::index::{DetachedKeyTable, PrimaryKeyIndex};
use crate::schema::TypeId;

/// What a state leaves behind once let go ([`ReadState::into_layout`]): its layout digest and
/// its indexes, detached from its records.
#[derive(Debug)]
pub struct StateLayout {
    version: u64,
    digest: u64,
    primary_keys: Vec<Option<DetachedKeyTable>>,
    hash_indexes: Vec<Arc<HashIndex>>,
}

impl StateLayout {
    /// The state's [`ReadState::layout_digest`].
    pub fn digest(&self) -> u64 {
        self.digest
    }
}

impl ReadState {
    /// A digest of the state as its snapshot lays it out: schema, tags, and the bytes of every
    /// type's section. Two states have the same digest when (bar a 64-bit hash collision) their
    /// snapshots hold the same bytes, so a state can be compared with one no longer held: a
    /// producer lets the state its deltas reach go before it writes the snapshot of that
    /// version, and compares the state it reads back from the snapshot by digest.
    ///
    /// The rows (and a collection's ends) of a type under an overlay are hashed a block at a
    /// time, never flattened whole.
    pub fn layout_digest(&self) -> u64 {
        let mut hasher = Xxh3::new();
        let hash =
            |w: ByteWriter, hasher: &mut Xxh3| w.into_parts().iter().for_each(|p| hasher.update(p));
        let mut w = ByteWriter::new();
        self.schema.encode(&mut w);
        for (key, value) in self.tags.iter() {
            w.str(key);
            w.str(value);
        }
        hash(w, &mut hasher);
        for data in &self.types {
            // Rows (and a collection's ends) hashed a block at a time, never flattened whole.
            let mut w = ByteWriter::new();
            data.to_section_without_rows().encode(&mut w);
            hash(w, &mut hasher);
            match data.ends.is_none() {
                true => data.hash_whole_rows(&mut hasher),
                false => data.hash_whole_spans(&mut hasher),
            }
        }
        hasher.digest()
    }

    /// Lets the state go, keeping its layout digest and its indexes (detached from its
    /// records, which go with it unless another state shares them), for the state read back
    /// from the snapshot of its version ([`ReadState::from_snapshot_laid_out_as`]).
    pub fn into_layout(self) -> StateLayout {
        let digest = self.layout_digest();
        StateLayout {
            version: self.version(),
            digest,
            primary_keys: (self.indexes.into_iter())
                .map(|i| Arc::try_unwrap(i?).ok().map(PrimaryKeyIndex::detach))
                .collect(),
            hash_indexes: self.hash_indexes,
        }
    }

    /// [`ReadState::from_snapshot_keeping_blob`] for the snapshot of a state let go as
    /// `layout`: the snapshot must hold that state bit for bit (the same layout digest, else
    /// [`Error::LayoutMismatch`]), and the state read from it takes its indexes instead of
    /// building them again (any it could not keep are built).
    pub fn from_snapshot_laid_out_as(blob: Vec<u8>, layout: StateLayout) -> Result<(Self, Bytes)> {
        let (mut state, blob) =
            Self::decode_snapshot_keeping_blob(Bytes::from(blob), format::ContentCheck::Verify)?;
        if state.version() != layout.version || state.layout_digest() != layout.digest {
            return Err(Error::LayoutMismatch {
                version: state.version(),
                laid_out_as: layout.version,
            });
        }
        let mut tables = layout.primary_keys.into_iter();
        let mut indexes = Vec::with_capacity(state.schema.len());
        for (i, def) in state.schema.types().iter().enumerate() {
            let id = TypeId(i as u32);
            let index = match (def.primary_key().is_empty(), tables.next().flatten()) {
                (true, _) => None,
                (false, Some(table)) => Some(PrimaryKeyIndex::attach(&state, id, table)),
                (false, None) => Some(PrimaryKeyIndex::build(&state, id)),
            };
            indexes.push(index.map(Arc::new));
        }
        state.indexes = indexes;
        state.hash_indexes = layout.hash_indexes;
        state.add_declared_hash_indexes()?;
        Ok((state, blob))
    }
}
