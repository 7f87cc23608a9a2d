//! Fast equality of two states. A state reached by deltas is laid out bit for bit like the
//! snapshot of the same version (same encodings, holes zeroed, dictionaries and collections
//! in ordinal order), so equal states can be recognised by comparing their buffers: types
//! shared between the two are equal at once, the others at memory speed.

use std::sync::Arc;

use super::ReadState;
use crate::byte_io::ByteWriter;
use crate::type_data::TypeData;
use xxhash_rust::xxh3::Xxh3;

/// Whether two types hold the same bits: at once when they are shared.
pub(super) fn same_type(a: &Arc<TypeData>, b: &Arc<TypeData>) -> bool {
    Arc::ptr_eq(a, b) || same_data(a, b)
}

/// Whether two types hold the same bits, compared at memory speed.
pub(super) fn same_data(a: &TypeData, b: &TypeData) -> bool {
    let spans = |t: &TypeData| t.overlay.as_ref().is_some_and(|o| o.has_spans());
    if spans(a) || spans(b) {
        // A collection under an overlay is compared as a snapshot would store it.
        return same_data(&a.flattened(), &b.flattened());
    }
    let dicts_equal = a.dicts.len() == b.dicts.len()
        && a.dicts.iter().zip(&b.dicts).all(|(x, y)| match (x, y) {
            (None, None) => true,
            (Some(x), Some(y)) => x.same_bytes_as(y),
            _ => false,
        });
    a.population == b.population
        && a.population.len() == b.population.len()
        && a.row_bits == b.row_bits
        && a.columns
            .iter()
            .map(|c| c.encoding)
            .eq(b.columns.iter().map(|c| c.encoding))
        && a.row_count == b.row_count
        && a.same_rows_as(b)
        && a.ends.as_ref().map(|e| (e.width(), e.bits().bytes()))
            == b.ends.as_ref().map(|e| (e.width(), e.bits().bytes()))
        && dicts_equal
}

impl ReadState {
    /// True when both states hold the same records at the same ordinals, and the same tags.
    /// Compares buffers
    /// (fast, and exact for states written by this library); when the buffers differ it falls
    /// back to [`ReadState::checksum`], so a state laid out differently but holding the same
    /// content still compares equal.
    pub fn same_content_as(&self, other: &ReadState) -> bool {
        let identical = self.schema == other.schema
            && self.types.len() == other.types.len()
            && self
                .types
                .iter()
                .zip(&other.types)
                .all(|(a, b)| same_type(a, b));
        self.tags() == other.tags() && (identical || self.checksum() == other.checksum())
    }

    /// A digest of the state as its snapshot lays it out: schema, tags, and the bytes of every
    /// type's section. Two states have the same digest when (bar a 64-bit hash collision) their
    /// snapshots hold the same bytes, so a state can be compared with one no longer held: a
    /// producer lets the state its deltas reach go before it writes the snapshot of that
    /// version, and compares the state it reads back from the snapshot by digest.
    ///
    /// A collection type under an overlay is flattened to be hashed, one type at a time;
    /// the rows of an object type are hashed a block at a time.
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
            let mut w = ByteWriter::new();
            if data.ends.is_none() {
                // An object type: its rows hashed a block at a time, never flattened whole.
                data.to_section_without_rows().encode(&mut w);
                hash(w, &mut hasher);
                data.hash_whole_rows(&mut hasher);
            } else {
                data.to_section().encode(&mut w);
                hash(w, &mut hasher);
            }
        }
        hasher.digest()
    }
}
