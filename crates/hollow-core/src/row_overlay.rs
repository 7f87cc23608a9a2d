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
//! Every ordinal at or past the base's slot count is in the overlay (a type that grew), so a
//! row not in the overlay is always in the base. Each delta builds the next overlay from the
//! last one and its own changes, so the overlay grows, and so does what each delta copies;
//! once keeping it costs more than writing the rows out whole would ([`worth_keeping`]), the
//! delta writes them out whole instead, and those become the next base.
//!
//! A collection type holds a run of element rows per record rather than one row, so its
//! overlay holds a run per ordinal too ([`OverlayBuilder::with_spans`]), numbered on from the
//! base's rows: row `base_rows + k` is the overlay's row `k`. A record's rows are then one
//! contiguous range whichever side they are on, and everything that walks a record's rows by
//! number reads them unchanged.

use crate::bitset::Bitset;
use crate::packed::{BitWriter, PackedBits};

/// The overlay may hold at most one ordinal in this many; past that a delta rewrites the rows.
const MAX_OVERLAID_SHARE: u64 = 8;

/// Whether an overlay that holds `held` of a type's `slots` ordinals after a delta that
/// changed `changed` of them is worth keeping, rather than writing the type out whole.
///
/// Deltas of `changed` ordinals each grow an overlay by about as many until it holds `h`:
/// every delta copies the overlay (`h / 2` on average) and one in `h / changed` copies the
/// whole type, `slots` more. The sum, `h / 2 + slots * changed / h` per delta, is least at
/// `h = sqrt(2 * slots * changed)`: past that the overlay is written out. A small delta thus
/// keeps a small overlay (70 changes of a million records: 11,800 ordinals, not 125,000),
/// and never more than one ordinal in [`MAX_OVERLAID_SHARE`], which lookups pay for.
fn worth_keeping(held: u64, changed: u64, slots: u64) -> bool {
    let (held, changed, slots) = (held as u128, changed.max(1) as u128, slots as u128);
    held * MAX_OVERLAID_SHARE as u128 <= slots && held * held <= 2 * slots * changed
}

/// The ordinals an overlay holds after a delta that removes and adds the ordinals given (each
/// list ascending): those `last` held, those the delta changes below its slot count `slots`,
/// and every new slot from `old_slots` on. `None` when that overlay is not [`worth_keeping`].
pub(crate) fn held_after(
    last: Option<&RowOverlay>,
    removed: &[u32],
    added: &[u32],
    old_slots: u64,
    slots: u64,
) -> Option<Bitset> {
    let mut held = match last {
        Some(overlay) => overlay.held().clone_with_len(slots),
        None => Bitset::with_len(slots),
    };
    let changed = removed.iter().chain(added).map(|&o| o as u64);
    changed.filter(|&o| o < slots).for_each(|o| held.insert(o));
    (old_slots..slots).for_each(|o| held.insert(o));
    let changed = (removed.len() + added.len()) as u64;
    worth_keeping(held.count(), changed, slots).then_some(held)
}

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
    /// For a collection type, per held ordinal (in ascending order), where its rows end in
    /// [`RowOverlay::rows`]; `None` for an object type (one row per ordinal).
    span_ends: Option<Vec<u64>>,
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

    /// Whether this is the overlay of a collection type: a run of rows per ordinal.
    pub(crate) fn has_spans(&self) -> bool {
        self.span_ends.is_some()
    }

    /// For a collection type, the rows of `ordinal` if the overlay holds it, numbered on from
    /// the base's rows.
    #[inline]
    pub(crate) fn span(&self, ordinal: u64) -> Option<std::ops::Range<u64>> {
        let ends = self.span_ends.as_ref()?;
        let i = self.position(ordinal)? as usize;
        let start = if i == 0 { 0 } else { ends[i - 1] };
        Some(self.base_rows + start..self.base_rows + ends[i])
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
        self.held.heap_bytes()
            + self.ranks.capacity() * 8
            + self.rows.heap_bytes()
            + self.span_ends.as_ref().map_or(0, |e| e.capacity() * 8)
    }
}

/// Builds an overlay: the held ordinals first, then their rows in ascending order.
pub(crate) struct OverlayBuilder {
    held: Bitset,
    row_bits: u64,
    base_rows: u64,
    span_ends: Option<Vec<u64>>,
}

impl OverlayBuilder {
    /// An overlay holding the row of each ordinal of `held` over a base of `base_rows` rows.
    /// Every ordinal from `base_rows` up to `held.len()` must be in `held`.
    pub(crate) fn new(held: Bitset, row_bits: u64, base_rows: u64) -> Self {
        debug_assert!((base_rows..held.len()).all(|o| held.contains(o)));
        Self {
            held,
            row_bits,
            base_rows,
            span_ends: None,
        }
    }

    /// An overlay holding a run of rows for each ordinal of `held` (`span_lengths`: how many,
    /// ordinals ascending) over a base of `base_rows` rows, whose records end at slot
    /// `base_slots`: every ordinal from there up to `held.len()` must be in `held`.
    pub(crate) fn with_spans(
        held: Bitset,
        row_bits: u64,
        base_rows: u64,
        base_slots: u64,
        span_lengths: impl Iterator<Item = u64>,
    ) -> Self {
        debug_assert!((base_slots..held.len()).all(|o| held.contains(o)));
        let ends: Vec<u64> = span_lengths
            .scan(0u64, |end, n| {
                *end += n;
                Some(*end)
            })
            .collect();
        debug_assert_eq!(ends.len() as u64, held.count());
        Self {
            held,
            row_bits,
            base_rows,
            span_ends: Some(ends),
        }
    }

    /// How many rows the overlay holds.
    fn row_count(&self) -> u64 {
        match &self.span_ends {
            None => self.held.count(),
            Some(ends) => ends.last().copied().unwrap_or(0),
        }
    }

    /// The rows of the `i`th held ordinal.
    fn span_of(&self, i: usize) -> std::ops::Range<u64> {
        match &self.span_ends {
            None => i as u64..i as u64 + 1,
            Some(ends) => (if i == 0 { 0 } else { ends[i - 1] })..ends[i],
        }
    }

    /// The overlay, with the rows of each held ordinal, ascending: `rows_of(ordinal)` says
    /// where their bits are (a buffer and a bit offset: as many rows as the ordinal's span),
    /// or `None` for rows of zeros.
    pub(crate) fn fill<'a>(
        self,
        mut rows_of: impl FnMut(u64) -> Option<(&'a PackedBits, u64)>,
    ) -> RowOverlay {
        let row_bits = self.row_bits;
        let mut rows = BitWriter::with_bits(self.row_count() * row_bits);
        for (i, o) in self.held.iter().enumerate() {
            let span = self.span_of(i);
            if let Some((from, at)) = rows_of(o).filter(|_| !span.is_empty()) {
                let bits = (span.end - span.start) * row_bits;
                rows.copy_bits(span.start * row_bits, from, at, bits);
            }
        }
        let bits = self.row_count() * row_bits;
        self.finish(PackedBits::new(rows.into_bytes(), bits).unwrap_or_default())
    }

    /// [`OverlayBuilder::fill`] for rows of one byte (a dictionary's entries over its pool):
    /// `bytes_of(ordinal)` gives the bytes of the ordinal's span, `None` when it is empty.
    pub(crate) fn fill_bytes<'a>(
        self,
        mut bytes_of: impl FnMut(u64) -> Option<&'a [u8]>,
    ) -> RowOverlay {
        debug_assert_eq!(self.row_bits, 8);
        let len = self.row_count() as usize;
        // Whole words, and one more: the padding `PackedBits` reads past the last row.
        let mut pool = Vec::with_capacity(len.next_multiple_of(8) + 8);
        for o in self.held.iter() {
            pool.extend_from_slice(bytes_of(o).unwrap_or_default());
        }
        debug_assert_eq!(pool.len(), len);
        pool.resize(len.next_multiple_of(8) + 8, 0);
        let rows = PackedBits::new(bytes::Bytes::from(pool), len as u64 * 8);
        self.finish(rows.unwrap_or_default())
    }

    fn finish(self, rows: PackedBits) -> RowOverlay {
        let words = self.held.words();
        let mut ranks = Vec::with_capacity(words.len().div_ceil(8));
        let mut before = 0u64;
        for block in words.chunks(8) {
            ranks.push(before);
            before += block.iter().map(|w| w.count_ones() as u64).sum::<u64>();
        }
        RowOverlay {
            rows,
            held: self.held,
            ranks,
            base_rows: self.base_rows,
            span_ends: self.span_ends,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_deltas_keep_small_overlays_and_none_holds_more_than_its_share() {
        // 70 changes a delta over a million records: about 11,800 held at most.
        assert!(worth_keeping(11_800, 70, 1_000_000));
        assert!(!worth_keeping(12_000, 70, 1_000_000));
        // 1% of the records changed: the share bounds it.
        assert!(worth_keeping(125_000, 10_000, 1_000_000));
        assert!(!worth_keeping(125_001, 10_000, 1_000_000));
        // No change (a delta of tags alone) and no records.
        assert!(worth_keeping(0, 0, 0) && worth_keeping(1, 0, 1_000_000));
        assert!(worth_keeping(u64::MAX / 16, u64::MAX / 4, u64::MAX));
    }

    #[test]
    fn finds_each_held_row_and_no_other() {
        let slots = 3000;
        let held_ordinals: Vec<u64> = (0..slots).filter(|o| o % 7 == 3 || *o >= 2900).collect();
        let mut held = Bitset::with_len(slots);
        held_ordinals.iter().for_each(|&o| held.insert(o));
        let mut source = BitWriter::with_bits(slots * 13);
        (0..slots).for_each(|o| source.set(o * 13, 13, o));
        let source = PackedBits::new(source.into_bytes(), slots * 13).unwrap();
        let b = OverlayBuilder::new(held, 13, 2900);
        let overlay = b.fill(|o| (o % 2 == 0).then_some((&source, o * 13)));
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
