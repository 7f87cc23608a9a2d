//! Fast equality of two states. A state reached by deltas is laid out bit for bit like the
//! snapshot of the same version (same encodings, holes zeroed, dictionaries and collections
//! in ordinal order), so equal states can be recognised by comparing their buffers: types
//! shared between the two are equal at once, the others at memory speed.

use std::sync::Arc;

use super::ReadState;
use crate::type_data::TypeData;

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
}
