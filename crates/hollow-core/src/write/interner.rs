//! Content-addressed record tables: equal values get one ordinal, ordinals stay stable while the
//! value is present, and freed ordinals are handed out again.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::ops::Range;

use super::slot_table::SlotTable;
use crate::bitset::Bitset;
use crate::prefetch::prefetch;

/// Bits of a [`Span`] that hold the value's length.
const LENGTH_BITS: u32 = 24;
/// The length a [`Span`] stores for a value of this many bytes or more, whose length the
/// interner keeps aside.
const LONG: u64 = (1 << LENGTH_BITS) - 1;
/// Bytes an arena holds at most: a [`Span`]'s start has the other 40 bits.
pub const MAX_ARENA: u64 = 1 << (64 - LENGTH_BITS);

/// Where a value is in the arena: its start and length in one word, since a table of many
/// small values spends as much on these as on the values. The span of a free ordinal is 0.
#[derive(Clone, Copy, Debug, Default)]
struct Span(u64);

impl Span {
    fn new(start: usize, len: usize) -> Self {
        Span((start as u64) << LENGTH_BITS | (len as u64).min(LONG))
    }

    fn start(self) -> usize {
        (self.0 >> LENGTH_BITS) as usize
    }
}

/// How many values ahead [`Interner::intern_many`] prefetches: the table slot of value `i + 3D`,
/// the span of its candidate at `i + 2D` and the arena of value `i + D` load while value `i`
/// is interned.
const PREFETCH_DISTANCE: usize = 8;

/// A table and arena this small stay in the core's cache: prefetching them only costs.
const IN_CACHE_BYTES: usize = 256 << 10;

/// A deduplicating table of variable-length values: records (encoded by
/// [`super::row_codec`]) or the strings and bytes of a field.
#[derive(Debug)]
pub struct Interner {
    arena: Vec<u8>,
    spans: Vec<Span>,
    /// The lengths of values of [`LONG`] bytes or more, by ordinal.
    long_lengths: HashMap<u32, u32>,
    table: SlotTable,
    /// Ordinals added (or re-added) in the current cycle.
    present: Bitset,
    /// Ordinals of the last committed state.
    previous: Bitset,
    /// Slot count of the last committed state.
    previous_slots: u32,
    /// Ordinals free to hand out, highest first so `pop` gives the lowest.
    free: Vec<u32>,
    /// Ordinals handed out in the current cycle: none of them is in the previous state. A set
    /// rather than a list: a first cycle hands out every ordinal, and at 10 M values a list
    /// would hold 40 MB until the cycle ends.
    fresh: Bitset,
    /// Arena bytes belonging to removed values.
    garbage: usize,
    /// Values this table may hold (ordinals are `u32`, and `u32::MAX` marks an empty slot).
    max_values: u32,
    /// The limit a value of this cycle ran into, if any: the value was not added, and the
    /// state cannot be written until the cycle is abandoned.
    exceeded: Option<Limit>,
}

/// A limit of a value table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// More values (records of a type, or distinct values of a dictionary) than it can hold.
    Values(u32),
    /// A value longer than `u32::MAX` bytes (an encoded record, or a string).
    Length,
    /// More than [`MAX_ARENA`] bytes (of encoded records, or of strings) in one table.
    Arena,
}

/// Values one table holds at most: `u32` ordinals, the largest reserved.
pub const MAX_VALUES: u32 = u32::MAX - 1;

impl Default for Interner {
    fn default() -> Self {
        Self {
            arena: Vec::new(),
            spans: Vec::new(),
            long_lengths: HashMap::new(),
            table: SlotTable::default(),
            present: Bitset::default(),
            previous: Bitset::default(),
            previous_slots: 0,
            free: Vec::new(),
            fresh: Bitset::default(),
            garbage: 0,
            max_values: MAX_VALUES,
            exceeded: None,
        }
    }
}

impl Interner {
    fn hash(value: &[u8]) -> u32 {
        let h = foldhash::fast::FixedState::with_seed(0x686f_6c6c_6f77).hash_one(value);
        (h ^ (h >> 32)) as u32
    }

    /// The value at `ordinal` (empty for an ordinal never used or freed).
    #[inline]
    pub fn get(&self, ordinal: u32) -> &[u8] {
        match self.spans.get(ordinal as usize) {
            Some(&s) => &self.arena[self.range(ordinal, s)],
            None => &[],
        }
    }

    /// Where the value of `ordinal`, whose span is `s`, is in the arena.
    #[inline]
    fn range(&self, ordinal: u32, s: Span) -> Range<usize> {
        let len = match s.0 & LONG {
            LONG => self.long_lengths[&ordinal] as usize,
            short => short as usize,
        };
        s.start()..s.start() + len
    }

    /// Sets the span of `ordinal` to `len` bytes from `start`.
    fn set_span(&mut self, ordinal: u32, start: usize, len: usize) {
        let span = Span::new(start, len);
        if len as u64 >= LONG {
            self.long_lengths.insert(ordinal, len as u32);
        }
        if ordinal as usize == self.spans.len() {
            self.spans.push(span);
        } else {
            self.spans[ordinal as usize] = span;
        }
    }

    /// The ordinal of `value`, adding it if new; marks it present in this cycle.
    #[cfg(test)]
    pub fn intern(&mut self, value: &[u8]) -> u32 {
        self.intern_hashed(value, Self::hash(value))
    }

    /// Interns the values `source[r]` for each range `r` of `values` in order, as many calls of
    /// [`Interner::intern`] would, pushing their ordinals to `out`. While one value is looked
    /// up, the table and arena lines of the next ones are prefetched, so their cache misses
    /// overlap instead of following one another.
    pub fn intern_many(&mut self, source: &[u8], values: &[Range<usize>], out: &mut Vec<u32>) {
        let hashes: Vec<u32> = values
            .iter()
            .map(|r| Self::hash(&source[r.clone()]))
            .collect();
        let in_cache = self.table.heap_bytes()
            + self.spans.len() * std::mem::size_of::<Span>()
            + self.arena.len()
            <= IN_CACHE_BYTES;
        for (i, r) in values.iter().enumerate() {
            if in_cache {
                out.push(self.intern_hashed(&source[r.clone()], hashes[i]));
                continue;
            }
            if let Some(&h) = hashes.get(i + 3 * PREFETCH_DISTANCE) {
                self.table.prefetch_home(h);
            }
            if let Some(&h) = hashes.get(i + 2 * PREFETCH_DISTANCE) {
                if let Some(ordinal) = self.table.first_candidate(h) {
                    prefetch(self.spans.as_ptr().wrapping_add(ordinal as usize));
                }
            }
            if let Some(&h) = hashes.get(i + PREFETCH_DISTANCE) {
                if let Some(span) = self
                    .table
                    .first_candidate(h)
                    .and_then(|ordinal| self.spans.get(ordinal as usize))
                {
                    prefetch(self.arena.as_ptr().wrapping_add(span.start()));
                }
            }
            out.push(self.intern_hashed(&source[r.clone()], hashes[i]));
        }
    }

    fn intern_hashed(&mut self, value: &[u8], h: u32) -> u32 {
        let found = self.table.find(h, |ordinal| {
            let r = self.range(ordinal, self.spans[ordinal as usize]);
            r.len() == value.len() && self.arena[r] == *value
        });
        if let Some(ordinal) = found {
            self.present.insert(ordinal as u64);
            return ordinal;
        }
        let full = self.free.is_empty() && self.spans.len() >= self.max_values as usize;
        let exceeded = if full {
            Some(Limit::Values(self.max_values))
        } else if value.len() > u32::MAX as usize {
            Some(Limit::Length)
        } else if (self.arena.len() + value.len()) as u64 > MAX_ARENA {
            Some(Limit::Arena)
        } else {
            None
        };
        if exceeded.is_some() {
            self.exceeded = exceeded;
            return 0;
        }
        let ordinal = self.free.pop().unwrap_or(self.spans.len() as u32);
        self.set_span(ordinal, self.arena.len(), value.len());
        self.arena.extend_from_slice(value);
        self.insert_in_table(h, ordinal);
        self.present.insert(ordinal as u64);
        self.fresh.insert(ordinal as u64);
        ordinal
    }

    /// Adds `ordinal`, whose value hashes to `h`, to the table.
    fn insert_in_table(&mut self, h: u32, ordinal: u32) {
        let mut table = std::mem::take(&mut self.table);
        table.insert(h, ordinal, || self.hashes());
        self.table = table;
    }

    /// The hash of every ordinal's value (of the empty value for a free ordinal), for the table
    /// to grow: a pass over the arena mostly in order, where the table would read it at random.
    fn hashes(&self) -> Vec<u32> {
        (0..self.spans.len() as u32)
            .map(|o| Self::hash(self.get(o)))
            .collect()
    }

    /// One more than the highest ordinal present in the current cycle: the slot count of the
    /// current state (trailing free ordinals are not part of it).
    pub fn present_slots(&self) -> u32 {
        self.present.end() as u32
    }

    /// Ordinals present in the current cycle.
    pub fn present(&self) -> &Bitset {
        &self.present
    }

    /// Places `value` at `ordinal` as part of the committed state (restoring a state written
    /// before). Ordinals must be restored in ascending order; the gaps become free ordinals.
    pub fn restore(&mut self, ordinal: u32, value: &[u8]) {
        let h = Self::hash(value);
        while self.spans.len() < ordinal as usize {
            self.free.push(self.spans.len() as u32);
            self.spans.push(Span::default());
        }
        self.set_span(ordinal, self.arena.len(), value.len());
        self.arena.extend_from_slice(value);
        self.insert_in_table(h, ordinal);
        self.previous.insert(ordinal as u64);
        self.previous_slots = ordinal + 1;
    }

    /// Ends a restore: free ordinals are handed out lowest first.
    pub fn finish_restore(&mut self) {
        self.free.sort_unstable_by(|a, b| b.cmp(a));
        self.present = Bitset::with_len(self.previous.len());
    }

    /// Starts a cycle from the committed state: every committed value is present.
    pub fn carry_over(&mut self) {
        self.present = self.previous.clone();
    }

    /// Marks `ordinal` present (it must hold a value); true if it was not present before.
    pub fn mark(&mut self, ordinal: u32) -> bool {
        let was = self.present.contains(ordinal as u64);
        self.present.insert(ordinal as u64);
        !was
    }

    /// Marks every ordinal of `ordinals` present (each must hold a value).
    pub fn mark_all(&mut self, ordinals: &Bitset) {
        self.present.union_with(ordinals);
    }

    /// Number of ordinals handed out so far: every ordinal is below it.
    pub fn ordinal_count(&self) -> u32 {
        self.spans.len() as u32
    }

    /// Marks `ordinal` not present in this cycle.
    pub fn unmark(&mut self, ordinal: u32) {
        self.present.remove(ordinal as u64);
    }

    /// Marks every ordinal not present.
    pub fn unmark_all(&mut self) {
        self.present.clear();
    }

    /// Ordinals of the last committed state.
    pub fn previous(&self) -> &Bitset {
        &self.previous
    }

    /// Slot count of the last committed state.
    pub fn previous_slots(&self) -> u32 {
        self.previous_slots
    }

    /// Ends the cycle: the current state becomes the previous one. Values not present in it
    /// (of the previous state, or added and taken out again in this cycle) are dropped and
    /// their ordinals freed for the next cycle.
    pub fn commit(&mut self) {
        let fresh = std::mem::take(&mut self.fresh);
        // A word at a time: a table whose values did not change costs a pass over its words.
        let removed: Vec<u32> = (self.previous.iter_minus(&self.present))
            .chain(fresh.iter_minus(&self.present))
            .map(|o| o as u32)
            .collect();
        self.drop_values(removed);
        self.previous_slots = self.present_slots();
        self.previous = std::mem::take(&mut self.present);
        self.present = Bitset::with_len(self.previous.len());
    }

    /// The limit a value of this cycle ran into, if any (see [`Limit`]).
    pub fn exceeded(&self) -> Option<Limit> {
        self.exceeded
    }

    /// A table that holds at most `n` values, to test the limit.
    #[cfg(test)]
    pub fn with_max_values(n: u32) -> Self {
        Self {
            max_values: n,
            ..Self::default()
        }
    }

    /// Abandons the cycle: values added in it are dropped, the previous state stays.
    pub fn abandon(&mut self) {
        self.exceeded = None;
        let added = std::mem::take(&mut self.fresh);
        self.drop_values(added.iter().map(|o| o as u32).collect());
        self.present.clear();
    }

    fn drop_values(&mut self, ordinals: Vec<u32>) {
        let mut table = std::mem::take(&mut self.table);
        for &o in &ordinals {
            let value = self.get(o);
            let (hash, len) = (Self::hash(value), value.len());
            table.remove(hash, o, |other| Self::hash(self.get(other)));
            self.garbage += len;
            self.spans[o as usize] = Span::default();
            self.long_lengths.remove(&o);
        }
        self.table = table;
        self.free.extend(ordinals);
        self.free.sort_unstable_by(|a, b| b.cmp(a));
        if self.garbage > self.arena.len() / 2 && self.garbage > 4096 {
            self.compact();
        }
    }

    /// Rewrites the arena without the values of removed ordinals.
    fn compact(&mut self) {
        let mut arena = Vec::with_capacity(self.arena.len() - self.garbage);
        for o in 0..self.spans.len() {
            let range = self.range(o as u32, self.spans[o]);
            let start = arena.len();
            arena.extend_from_slice(&self.arena[range]);
            self.spans[o] = Span::new(start, arena.len() - start);
        }
        self.arena = arena;
        self.garbage = 0;
    }

    /// Bytes held (approximately: vectors by capacity).
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + self.spans.capacity() * std::mem::size_of::<Span>()
            + self.table.heap_bytes()
            + self.present.heap_bytes()
            + self.previous.heap_bytes()
            + self.free.capacity() * 4
            + self.fresh.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_an_ordinal_and_freed_ordinals_are_reused() {
        let mut t = Interner::default();
        let a = t.intern(b"alpha");
        let b = t.intern(b"beta");
        assert_eq!(t.intern(b"alpha"), a);
        assert_eq!((a, b), (0, 1));
        t.commit();
        // Next cycle: only beta stays, gamma is new and must not take alpha's ordinal yet
        // (alpha is still part of the previous state until this cycle ends).
        assert_eq!(t.intern(b"beta"), b);
        let g = t.intern(b"gamma");
        assert_eq!(g, 2);
        t.commit();
        assert_eq!(t.present().count(), 0);
        assert_eq!(t.previous().iter().collect::<Vec<_>>(), vec![1, 2]);
        // alpha's ordinal 0 is free now.
        let d = t.intern(b"delta");
        assert_eq!(d, 0);
        assert_eq!(t.get(d), b"delta");
        assert_eq!(t.intern(b"gamma"), g);
        assert_eq!(t.intern(b"alpha"), 3, "alpha comes back as a new record");
    }

    /// A value added and taken out again within one cycle (an incremental cycle upserting a
    /// key twice) belongs to no state: its ordinal is free after the cycle, whether it is
    /// committed or abandoned, rather than a hole every later state carries.
    #[test]
    fn values_added_and_removed_within_a_cycle_free_their_ordinals() {
        let mut t = Interner::default();
        let kept = t.intern(b"kept");
        for v in [&b"one"[..], b"two", b"three"] {
            let o = t.intern(v);
            t.unmark(o);
        }
        t.commit();
        assert_eq!(t.previous().iter().collect::<Vec<_>>(), vec![kept as u64]);
        assert_eq!(
            t.intern(b"next"),
            1,
            "the lowest freed ordinal is handed out"
        );
        let o = t.intern(b"gone");
        t.unmark(o);
        t.abandon();
        assert_eq!(t.intern(b"after"), 1);
        assert_eq!(t.intern(b"and"), 2);
    }

    #[test]
    fn abandon_restores_the_previous_state() {
        let mut t = Interner::default();
        t.intern(b"a");
        t.intern(b"b");
        t.commit();
        t.intern(b"a");
        let c = t.intern(b"c");
        t.abandon();
        assert_eq!(t.previous().iter().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(t.present().count(), 0);
        assert_eq!(t.intern(b"b"), 1);
        assert_eq!(t.intern(b"d"), c, "the abandoned ordinal is free again");
    }

    #[test]
    fn compaction_keeps_values() {
        let value = |round: u64, i: u64| -> Vec<u8> {
            [round, i, i * 7]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect()
        };
        let mut t = Interner::default();
        for round in 0..5u64 {
            for i in 0..2000u64 {
                t.intern(&value(round, i));
            }
            t.commit();
        }
        for i in 0..2000u64 {
            let o = t.intern(&value(4, i));
            assert_eq!(t.get(o), value(4, i));
        }
        assert!(t.arena.len() <= 2000 * 24 * 2);
    }

    /// A value of 2^24 bytes or more does not fit a span's length: its length is kept
    /// aside, through lookups, removal and compaction.
    #[test]
    fn values_too_long_for_a_span_keep_their_length() {
        let mut t = Interner::default();
        let value = |fill: u8, extra: usize| vec![fill; LONG as usize + extra];
        let (x, y, z) = (value(1, 0), value(1, 1), value(2, 2));
        let a = t.intern(b"a");
        let ox = t.intern(&x);
        let oy = t.intern(&y);
        let oz = t.intern(&z);
        assert_ne!(ox, oy, "the same bytes but one longer are another value");
        assert_eq!((t.get(ox), t.get(oy), t.get(oz)), (&x[..], &y[..], &z[..]));
        assert_eq!((t.intern(&x), t.intern(b"a")), (ox, a));
        t.commit();
        // Only z stays: x, y and a are dropped, which compacts the arena.
        assert_eq!(t.intern(&z), oz);
        t.commit();
        assert_eq!(t.arena.len(), z.len(), "compacted");
        assert_eq!(t.get(oz), &z[..]);
        assert_eq!(t.long_lengths.len(), 1);
        assert_eq!(t.intern(&z), oz);
        let short = t.intern(b"short");
        assert_eq!(t.get(short), b"short", "an ordinal freed by a long value");
    }

    /// Past its limit a table adds nothing more and says so until the cycle is abandoned; a
    /// value already there is still found.
    #[test]
    fn a_full_table_says_so_instead_of_wrapping_around() {
        let mut t = Interner::with_max_values(2);
        let a = t.intern(b"a");
        t.intern(b"b");
        assert_eq!(t.exceeded(), None);
        t.intern(b"c");
        assert_eq!(t.exceeded(), Some(Limit::Values(2)));
        assert_eq!(t.intern(b"a"), a);
        assert_eq!(t.ordinal_count(), 2, "c was not added");
        t.abandon();
        assert_eq!(t.exceeded(), None);
    }
}
