//! The hash table behind an [`super::interner::Interner`]: open addressing with linear probing
//! over 4-byte slots, each holding a value's ordinal in its low bits and the top bits of the
//! value's hash above (as many as the ordinals leave: 8 at 10 M values). A lookup costs one
//! cache line of the table, and for a candidate whose hash bits match one of the interner's
//! spans and one of its arena; lookups of a batch can prefetch the lines they will touch. The
//! table is the largest part of a producer's memory after its arena, which is why a slot does
//! not keep the whole hash: growing and removing, which need it, ask the interner for it.

use crate::prefetch::prefetch;

/// An empty slot (never a value's: an ordinal is always below its mask).
const EMPTY: u32 = u32::MAX;

/// Spreads a 32-bit hash over 64 bits, which [`home_in`] scales to a slot.
#[inline]
fn spread(h: u32) -> u64 {
    (h as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The home slot of `hash` in a table of `slots` slots: its spread hash scaled to the slot
/// count, so that homes keep their order from one table size to another.
#[inline]
fn home_in(hash: u32, slots: usize) -> usize {
    ((spread(hash) as u128 * slots as u128) >> 64) as usize
}

/// A table is grown once more than this share of its slots would be used...
const MAX_LOAD: (usize, usize) = (3, 4);
/// ...by this factor, which leaves it half full.
const GROWTH: (usize, usize) = (3, 2);
/// The slots of a table's first allocation.
const MIN_SLOTS: usize = 16;

/// Open-addressing table of ordinals, between half and three quarters full once past its first
/// allocation. Its size is not a power of two: a table that doubled whenever it passed half
/// full would be a quarter to half full. Linear probing at three quarters full still finds a
/// present value in 2.5 slots on average, and most of a probe run shares a cache line.
#[derive(Debug, Default)]
pub(super) struct SlotTable {
    slots: Vec<u32>,
    len: usize,
    /// The bits of a slot that hold its ordinal (the others hold hash bits): every ordinal in
    /// the table is below it, so that no slot is [`EMPTY`].
    ordinal_mask: u32,
}

impl SlotTable {
    #[inline]
    fn home(&self, hash: u32) -> usize {
        home_in(hash, self.slots.len())
    }

    /// The slot after `i`, wrapping around the end.
    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// Prefetches the home slot of `hash`.
    #[inline]
    pub fn prefetch_home(&self, hash: u32) {
        if !self.slots.is_empty() {
            prefetch(&self.slots[self.home(hash)]);
        }
    }

    /// The ordinal of the first slot whose hash bits are those of `hash` (a candidate to
    /// compare), without comparing values.
    #[inline]
    pub fn first_candidate(&self, hash: u32) -> Option<u32> {
        self.find(hash, |_| true)
    }

    /// The ordinal with the hash bits of `hash` for which `eq` holds.
    #[inline]
    pub fn find(&self, hash: u32, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let hash_bits = !self.ordinal_mask;
        let mut i = self.home(hash);
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return None;
            }
            if (s ^ hash) & hash_bits == 0 && eq(s & self.ordinal_mask) {
                return Some(s & self.ordinal_mask);
            }
            i = self.next(i);
        }
    }

    /// Inserts `ordinal`, of a value that is not in the table and hashes to `hash`. If the table
    /// must grow first, `hashes` gives the hash of every value, by ordinal.
    pub fn insert(&mut self, hash: u32, ordinal: u32, hashes: impl FnOnce() -> Vec<u32>) {
        if ordinal >= self.ordinal_mask {
            self.widen_ordinals(ordinal);
        }
        if (self.len + 1) * MAX_LOAD.1 > self.slots.len() * MAX_LOAD.0 {
            self.grow(&hashes());
        }
        self.place(hash, (hash & !self.ordinal_mask) | ordinal);
        self.len += 1;
    }

    /// Gives the ordinals bits enough for `ordinal`, taking them from the hash bits of every
    /// slot (the lowest of those go; homes do not move).
    fn widen_ordinals(&mut self, ordinal: u32) {
        let bits = 64 - (ordinal as u64 + 1).leading_zeros();
        let mask = ((1u64 << bits) - 1) as u32;
        let old = self.ordinal_mask;
        for s in self.slots.iter_mut().filter(|s| **s != EMPTY) {
            *s = (*s & !mask) | (*s & old);
        }
        self.ordinal_mask = mask;
    }

    fn place(&mut self, hash: u32, slot: u32) {
        let mut i = self.home(hash);
        while self.slots[i] != EMPTY {
            i = self.next(i);
        }
        self.slots[i] = slot;
    }

    /// Moves every slot to a table half as large again; `hashes` holds the hash of every value
    /// in the table, by ordinal.
    ///
    /// A home is the hash scaled to the slot count, so homes keep their order from one size to
    /// the next, and the slots can move in one pass over both tables instead of a random access
    /// each. The old table is read run by run (a run is a stretch of full slots), starting
    /// after an empty slot so that no run is cut in two; the slots of a run are sorted by their
    /// new home, and each goes to its home or, if an earlier slot took that, just after the
    /// slot placed before it. Every slot from a home to where its slot lands is then full, which
    /// is all a linear probe needs.
    fn grow(&mut self, hashes: &[u32]) {
        let capacity = (self.slots.len() * GROWTH.0 / GROWTH.1).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; capacity]);
        let Some(empty) = old.iter().position(|&s| s == EMPTY) else {
            return;
        };
        let ordinal_mask = self.ordinal_mask;
        let hash_of = |s: u32| hashes[(s & ordinal_mask) as usize];
        // Homes counted on from the scan's start: a slot whose old home lies before the empty
        // slot comes after the wrap, so its new home counts one table further.
        let unwrapped_home = |h: u32| {
            let wrap = if home_in(h, old.len()) < empty {
                capacity
            } else {
                0
            };
            home_in(h, capacity) + wrap
        };
        let mut run: Vec<(usize, u32, u32)> = Vec::new();
        let mut floor = 0;
        let scan = old[empty + 1..].iter().chain(&old[..=empty]);
        for (k, &s) in scan.enumerate() {
            if s != EMPTY {
                // The hashes are read in slot order, at random ordinals: fetched ahead.
                if let Some(&ahead) = old.get((empty + 1 + k + 16) % old.len()) {
                    let ordinal = (ahead & ordinal_mask) as usize;
                    prefetch(hashes.as_ptr().wrapping_add(ordinal));
                }
                let h = hash_of(s);
                run.push((unwrapped_home(h), h, s));
                continue;
            }
            run.sort_unstable_by_key(|&(home, _, _)| home);
            for (home, h, s) in run.drain(..) {
                let at = home.max(floor);
                let i = at % capacity;
                if self.slots[i] == EMPTY {
                    self.slots[i] = s;
                    floor = at + 1;
                } else {
                    self.place(h, s);
                }
            }
        }
    }

    /// Removes `ordinal` (whose value hashes to `hash`), if present; `hash_of` gives the hash of
    /// another ordinal's value. Later slots of the probe run shift back, so lookups never need
    /// tombstones.
    pub fn remove(&mut self, hash: u32, ordinal: u32, hash_of: impl Fn(u32) -> u32) {
        if self.slots.is_empty() {
            return;
        }
        let mut hole = self.home(hash);
        loop {
            let s = self.slots[hole];
            if s == EMPTY {
                return;
            }
            if s & self.ordinal_mask == ordinal {
                break;
            }
            hole = self.next(hole);
        }
        self.len -= 1;
        let mut j = hole;
        loop {
            j = self.next(j);
            let s = self.slots[j];
            if s == EMPTY {
                break;
            }
            // The slot at j may move back to the hole unless its home lies cyclically in
            // (hole, j]: then the hole is before its home and moving it would lose it.
            let home = self.home(hash_of(s & self.ordinal_mask));
            let home_in_between = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !home_in_between {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = EMPTY;
    }

    /// Number of values in the table.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A table and the hash of each ordinal's value, as an interner holds them.
    #[derive(Default)]
    struct Model {
        table: SlotTable,
        hashes: std::collections::HashMap<u32, u32>,
    }

    impl Model {
        fn insert(&mut self, ordinal: u32, hash: u32) {
            self.hashes.insert(ordinal, hash);
            let hashes = &self.hashes;
            self.table.insert(hash, ordinal, || {
                let end = hashes.keys().max().map_or(0, |&o| o as usize + 1);
                (0..end)
                    .map(|o| hashes.get(&(o as u32)).copied().unwrap_or(0))
                    .collect()
            });
        }

        fn remove(&mut self, ordinal: u32) {
            let hashes = &self.hashes;
            self.table.remove(hashes[&ordinal], ordinal, |o| hashes[&o]);
        }

        fn find(&self, ordinal: u32) -> Option<u32> {
            self.table.find(self.hashes[&ordinal], |o| o == ordinal)
        }
    }

    #[test]
    fn prefetch_of_any_address_is_harmless() {
        let t = SlotTable::default();
        t.prefetch_home(7);
        assert!(t.first_candidate(7).is_none());
    }

    /// A probe run that starts in the last slot goes on at the first, and a removal shifts
    /// slots back across that wrap.
    #[test]
    fn probe_runs_wrap_around_the_end() {
        let mut m = Model::default();
        m.insert(100, 0);
        let last = m.table.slots.len() - 1;
        let at_end: Vec<u32> = (0..u32::MAX)
            .filter(|&h| m.table.home(h) == last)
            .take(4)
            .collect();
        for (ordinal, &h) in at_end.iter().enumerate() {
            m.insert(ordinal as u32, h);
        }
        assert_eq!(m.table.slots.len(), MIN_SLOTS, "no growth");
        let ordinal_at = |m: &Model, i: usize| m.table.slots[i] & m.table.ordinal_mask;
        assert_eq!(ordinal_at(&m, last), 0);
        assert!((0..3).any(|i| ordinal_at(&m, i) == 1));
        m.remove(0);
        for ordinal in 1..at_end.len() as u32 {
            assert_eq!(m.find(ordinal), Some(ordinal));
        }
        assert_eq!(ordinal_at(&m, last), 1, "shifted back over the wrap");
        assert_eq!(m.find(100), Some(100));
        assert_eq!(m.find(0), None);
    }

    /// Tables grow by half once three quarters full, and so stay between half and three
    /// quarters full; ordinals take more of a slot's bits as they grow, and values stay found.
    #[test]
    fn tables_stay_between_half_and_three_quarters_full() {
        let mut m = Model::default();
        for ordinal in 0..100_000u32 {
            m.insert(ordinal, ordinal.wrapping_mul(0x9E37_79B9));
            if ordinal >= MIN_SLOTS as u32 {
                let load = m.table.len() as f64 / m.table.slots.len() as f64;
                assert!((0.49..=0.75).contains(&load), "{ordinal}: {load}");
            }
        }
        assert_eq!(m.table.ordinal_mask, (1 << 17) - 1);
        for ordinal in (0..100_000u32).step_by(7) {
            assert_eq!(m.find(ordinal), Some(ordinal));
        }
    }

    /// Growth moves slots in one pass; with hashes shared by many values (runs of dozens of
    /// slots, some across the end) every value is still found after each growth, and removals
    /// that shift slots back keep the rest findable.
    #[test]
    fn growing_keeps_long_runs_reachable() {
        let hash = |ordinal: u32| (ordinal % 1_500).wrapping_mul(0x2545_F491);
        let mut m = Model::default();
        for ordinal in 0..40_000u32 {
            m.insert(ordinal, hash(ordinal));
        }
        for ordinal in (0..40_000u32).filter(|o| o % 3 == 0) {
            m.remove(ordinal);
        }
        for ordinal in 0..40_000u32 {
            assert_eq!(m.find(ordinal).is_some(), ordinal % 3 != 0, "{ordinal}");
        }
        assert_eq!(m.table.len(), 26_666);
    }

    /// Values whose hashes differ only in the bits the ordinals took are candidates of each
    /// other, and told apart by the comparison; the largest ordinals leave no hash bits.
    #[test]
    fn hash_bits_the_ordinals_took_only_cost_comparisons() {
        let mut m = Model::default();
        let h = 0xABCD_0001;
        m.insert(0, h);
        m.insert(1000, 0x1111_1111);
        assert_eq!(m.table.ordinal_mask, 1023);
        let twin = (1..1024)
            .map(|k| h ^ k)
            .find(|&t| m.table.home(t) == m.table.home(h))
            .unwrap();
        assert_eq!(m.table.first_candidate(twin), Some(0));
        assert_eq!(m.table.find(twin, |_| false), None);
        assert_eq!(m.find(0), Some(0));
        m.insert(1, 0xABCD_0002);
        m.insert(u32::MAX - 1, 0x1234_5678);
        assert_eq!(m.table.ordinal_mask, u32::MAX);
        assert_eq!(m.find(u32::MAX - 1), Some(u32::MAX - 1));
        assert_eq!(m.find(1), Some(1));
    }

    proptest! {
        /// Inserts and removals agree with a plain map after every step. Hashes come from a
        /// range of 8, so probe runs are long, share slots and wrap around the end; ordinals
        /// from a range that widens them now and then.
        #[test]
        fn agrees_with_a_map(ops in proptest::collection::vec((any::<bool>(), 0u32..8, 0u32..40), 1..400)) {
            let mut m = Model::default();
            let mut model = std::collections::BTreeMap::<u32, u32>::new();
            for (insert, hash, ordinal) in ops {
                let ordinal = ordinal * 97;
                let hash = *model.get(&ordinal).unwrap_or(&hash);
                if insert {
                    if let std::collections::btree_map::Entry::Vacant(e) = model.entry(ordinal) {
                        m.insert(ordinal, hash);
                        e.insert(hash);
                    }
                } else if model.remove(&ordinal).is_some() {
                    m.remove(ordinal);
                }
                for &o in model.keys() {
                    prop_assert_eq!(m.find(o), Some(o));
                }
                prop_assert_eq!(m.table.len(), model.len());
            }
        }
    }
}
