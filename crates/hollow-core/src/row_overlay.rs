//! The rows an object type reached by deltas holds apart from the rows it shares.
//!
//! A delta that changes 1% of a type's records used to copy all of the type's rows: at 10 M
//! movies, 160 MB copied, and held beside the state being served, for 1.6 MB of changes. An
//! object type patched by a delta now keeps reading the rows of the type it was patched from
//! (its *base*, shared, not copied) and holds the rows that deltas changed since in a
//! [`RowOverlay`]: one bit per ordinal says whether its row is in the overlay, and a count per
//! block of 512 ordinals says where. Reading a row costs one more bit test; finding an
//! overlaid row, a few population counts in the cache line that bit is in.
//!
//! Every ordinal at or past the base's row count is in the overlay (a type that grew), so a
//! row not in the overlay is always in the base. The overlay grows with each delta; once it
//! would hold more than [`MAX_OVERLAID_SHARE`] of the type's ordinals, the delta writes the
//! rows out whole instead, and those become the next base.

use crate::bitset::Bitset;
use crate::packed::{BitWriter, PackedBits};

/// The overlay may hold at most one ordinal in this many; past that a delta rewrites the rows.
pub(crate) const MAX_OVERLAID_SHARE: u64 = 8;

/// Ordinals per rank block: eight words, one cache line of the bitset.
const BLOCK: u64 = 512;

/// The rows of some ordinals of an object type, held apart from the base rows it shares.
#[derive(Clone, Debug)]
pub(crate) struct RowOverlay {
    /// The ordinals whose rows are here.
    held: Bitset,
    /// Per block of [`BLOCK`] ordinals, how many ordinals before the block are held.
    ranks: Vec<u64>,
    /// The rows of the held ordinals, ascending, `row_bits` each.
    rows: PackedBits,
    /// How many rows the base holds.
    base_rows: u64,
}

impl RowOverlay {
    /// Where the row of `ordinal` is in [`RowOverlay::rows`], if the overlay holds it.
    #[inline(always)]
    pub(crate) fn position(&self, ordinal: u64) -> Option<u64> {
        let words = self.held.words();
        let w = (ordinal >> 6) as usize;
        let word = *words.get(w)?;
        let bit = ordinal & 63;
        if (word >> bit) & 1 == 0 {
            return None;
        }
        let block = (ordinal / BLOCK) as usize;
        let before_word: u64 = (words[block * 8..w].iter())
            .map(|x| x.count_ones() as u64)
            .sum();
        let before_bit = (word & ((1u64 << bit) - 1)).count_ones() as u64;
        Some(self.ranks[block] + before_word + before_bit)
    }

    /// The overlaid rows, in ordinal order.
    pub(crate) fn rows(&self) -> &PackedBits {
        &self.rows
    }

    /// The ordinals whose rows are here.
    pub(crate) fn held(&self) -> &Bitset {
        &self.held
    }

    /// How many rows the base holds: every ordinal from there on is overlaid.
    pub(crate) fn base_rows(&self) -> u64 {
        self.base_rows
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.held.heap_bytes() + self.ranks.capacity() * 8 + self.rows.heap_bytes()
    }
}

/// Builds an overlay: the held ordinals first, then their rows in ascending order.
pub(crate) struct OverlayBuilder {
    held: Bitset,
    rows: BitWriter,
    row_bits: u64,
    base_rows: u64,
}

impl OverlayBuilder {
    /// An overlay holding the ordinals of `held` over a base of `base_rows` rows. Every
    /// ordinal from `base_rows` up to `held.len()` must be in `held`.
    pub(crate) fn new(held: Bitset, row_bits: u64, base_rows: u64) -> Self {
        debug_assert!((base_rows..held.len()).all(|o| held.contains(o)));
        let count = held.count();
        Self {
            rows: BitWriter::with_bits(count * row_bits),
            held,
            row_bits,
            base_rows,
        }
    }

    /// Writes the row of each held ordinal, ascending: `row_of(ordinal)` says where its bits
    /// are (`row_bits` bits of a buffer from a bit offset), or `None` for a row of zeros.
    pub(crate) fn fill<'a>(
        &mut self,
        mut row_of: impl FnMut(u64) -> Option<(&'a PackedBits, u64)>,
    ) {
        for (i, o) in self.held.iter().enumerate() {
            if let Some((from, at)) = row_of(o) {
                let to = i as u64 * self.row_bits;
                self.rows.copy_bits(to, from, at, self.row_bits);
            }
        }
    }

    /// The overlay, its rows as [`OverlayBuilder::fill`] wrote them.
    pub(crate) fn finish(self) -> RowOverlay {
        let words = self.held.words();
        let mut ranks = Vec::with_capacity(words.len().div_ceil(8));
        let mut before = 0u64;
        for block in words.chunks(8) {
            ranks.push(before);
            before += block.iter().map(|w| w.count_ones() as u64).sum::<u64>();
        }
        let bits = before * self.row_bits;
        RowOverlay {
            rows: PackedBits::new(self.rows.into_bytes(), bits).unwrap_or_default(),
            held: self.held,
            ranks,
            base_rows: self.base_rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_held_row_and_no_other() {
        let slots = 3000;
        let held_ordinals: Vec<u64> = (0..slots).filter(|o| o % 7 == 3 || *o >= 2900).collect();
        let mut held = Bitset::with_len(slots);
        held_ordinals.iter().for_each(|&o| held.insert(o));
        let mut source = BitWriter::with_bits(slots * 13);
        (0..slots).for_each(|o| source.set(o * 13, 13, o));
        let source = PackedBits::new(source.into_bytes(), slots * 13).unwrap();
        let mut b = OverlayBuilder::new(held, 13, 2900);
        b.fill(|o| (o % 2 == 0).then_some((&source, o * 13)));
        let overlay = b.finish();
        for o in 0..slots + 100 {
            match overlay.position(o) {
                Some(i) => {
                    assert!(held_ordinals.contains(&o));
                    let expected = if o % 2 == 0 { o } else { 0 };
                    assert_eq!(overlay.rows().get(i * 13, 13), expected);
                }
                None => assert!(!held_ordinals.contains(&o)),
            }
        }
    }
}
