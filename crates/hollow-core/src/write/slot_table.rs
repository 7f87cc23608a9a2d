//! The hash table behind an [`super::interner::Interner`]: open addressing with linear probing
//! over 8-byte slots that carry the value's hash and ordinal. A lookup costs one cache line of
//! the table, and for the candidate whose hash matches one of the interner's spans and one of
//! its arena; lookups of a batch can prefetch the lines they will touch. (Slots that also held
//! the value's place in the arena would save the span's line but double the table, which is
//! the larger part of a producer's memory.)

use crate::prefetch::prefetch;

/// One slot: a value's 32-bit hash and its ordinal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    /// Ordinal of the value, or [`EMPTY`].
    pub ordinal: u32,
    pub hash: u32,
}

/// The ordinal of an empty slot.
pub(super) const EMPTY: u32 = u32::MAX;

const VACANT: Slot = Slot {
    ordinal: EMPTY,
    hash: 0,
};

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

/// Open-addressing table of [`Slot`]s, between half and three quarters full once past its
/// first allocation. Its size is not a power of two: a table that doubled whenever it passed
/// half full would be a quarter to half full, and at 10 M records the table is a producer's
/// largest allocation after its arena. Linear probing at three quarters full still finds a
/// present value in 2.5 slots on average, and most of a probe run shares a cache line.
#[derive(Debug, Default)]
pub(super) struct SlotTable {
    slots: Vec<Slot>,
    len: usize,
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

    /// The first slot holding `hash` (a candidate to compare), without comparing values.
    #[inline]
    pub fn first_candidate(&self, hash: u32) -> Option<&Slot> {
        self.find(hash, |_| true)
    }

    /// The slot with `hash` for which `eq` holds.
    #[inline]
    pub fn find(&self, hash: u32, mut eq: impl FnMut(&Slot) -> bool) -> Option<&Slot> {
        if self.slots.is_empty() {
            return None;
        }
        let mut i = self.home(hash);
        loop {
            let s = &self.slots[i];
            if s.ordinal == EMPTY {
                return None;
            }
            if s.hash == hash && eq(s) {
                return Some(s);
            }
            i = self.next(i);
        }
    }

    /// Inserts a slot for a value that is not in the table.
    pub fn insert(&mut self, slot: Slot) {
        if (self.len + 1) * MAX_LOAD.1 > self.slots.len() * MAX_LOAD.0 {
            self.grow();
        }
        self.place(slot);
        self.len += 1;
    }

    fn place(&mut self, slot: Slot) {
        let mut i = self.home(slot.hash);
        while self.slots[i].ordinal != EMPTY {
            i = self.next(i);
        }
        self.slots[i] = slot;
    }

    /// Moves every slot to a table half as large again.
    ///
    /// A home is the hash scaled to the slot count, so homes keep their order from one size to
    /// the next, and the slots can move in one pass over both tables instead of a random access
    /// each. The old table is read run by run (a run is a stretch of full slots), starting
    /// after an empty slot so that no run is cut in two; the slots of a run are sorted by their
    /// new home, and each goes to its home or, if an earlier slot took that, just after the
    /// slot placed before it. Every slot from a home to where its slot lands is then full, which
    /// is all a linear probe needs.
    fn grow(&mut self) {
        let capacity = (self.slots.len() * GROWTH.0 / GROWTH.1).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![VACANT; capacity]);
        let Some(empty) = old.iter().position(|s| s.ordinal == EMPTY) else {
            return;
        };
        // Homes counted on from the scan's start: a slot whose old home lies before the empty
        // slot comes after the wrap, so its new home counts one table further.
        let unwrapped_home = |s: &Slot| {
            let wrap = if home_in(s.hash, old.len()) < empty {
                capacity
            } else {
                0
            };
            home_in(s.hash, capacity) + wrap
        };
        let mut run: Vec<(usize, Slot)> = Vec::new();
        let mut floor = 0;
        let scan = old[empty + 1..].iter().chain(&old[..=empty]);
        for s in scan {
            if s.ordinal != EMPTY {
                run.push((unwrapped_home(s), *s));
                continue;
            }
            run.sort_unstable_by_key(|&(home, _)| home);
            for (home, s) in run.drain(..) {
                let at = home.max(floor);
                let i = at % capacity;
                if self.slots[i].ordinal == EMPTY {
                    self.slots[i] = s;
                    floor = at + 1;
                } else {
                    self.place(s);
                }
            }
        }
    }

    /// Removes the slot of `ordinal` (whose value hashes to `hash`), if present. Later slots of
    /// the probe run shift back, so lookups never need tombstones.
    pub fn remove(&mut self, hash: u32, ordinal: u32) {
        if self.slots.is_empty() {
            return;
        }
        let mut hole = self.home(hash);
        loop {
            let s = self.slots[hole];
            if s.ordinal == EMPTY {
                return;
            }
            if s.ordinal == ordinal {
                break;
            }
            hole = self.next(hole);
        }
        self.len -= 1;
        let mut j = hole;
        loop {
            j = self.next(j);
            let s = self.slots[j];
            if s.ordinal == EMPTY {
                break;
            }
            // The slot at j may move back to the hole unless its home lies cyclically in
            // (hole, j]: then the hole is before its home and moving it would lose it.
            let home = self.home(s.hash);
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
        self.slots[hole] = VACANT;
    }

    /// Number of values in the table.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn slot(ordinal: u32, hash: u32) -> Slot {
        Slot { ordinal, hash }
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
        let mut table = SlotTable::default();
        table.insert(slot(100, 0));
        let last = table.slots.len() - 1;
        let at_end: Vec<u32> = (0..u32::MAX)
            .filter(|&h| table.home(h) == last)
            .take(4)
            .collect();
        for (ordinal, &h) in at_end.iter().enumerate() {
            table.insert(slot(ordinal as u32, h));
        }
        assert_eq!(table.slots.len(), MIN_SLOTS, "no growth");
        assert_eq!(table.slots[last].ordinal, 0);
        assert!(table.slots[..3].iter().any(|s| s.ordinal == 1));
        table.remove(at_end[0], 0);
        for (ordinal, &h) in at_end.iter().enumerate().skip(1) {
            let found = table.find(h, |s| s.ordinal == ordinal as u32);
            assert_eq!(found.map(|s| s.ordinal), Some(ordinal as u32));
        }
        assert_eq!(table.slots[last].ordinal, 1, "shifted back over the wrap");
        assert_eq!(
            table.find(0, |s| s.ordinal == 100).map(|s| s.ordinal),
            Some(100)
        );
    }

    /// Tables grow by half once three quarters full, and so stay between half and three
    /// quarters full.
    #[test]
    fn tables_stay_between_half_and_three_quarters_full() {
        let mut table = SlotTable::default();
        for ordinal in 0..100_000u32 {
            table.insert(slot(ordinal, ordinal.wrapping_mul(0x9E37_79B9)));
            if ordinal >= MIN_SLOTS as u32 {
                let load = table.len() as f64 / table.slots.len() as f64;
                assert!((0.49..=0.75).contains(&load), "{ordinal}: {load}");
            }
        }
        for ordinal in (0..100_000u32).step_by(7) {
            let h = ordinal.wrapping_mul(0x9E37_79B9);
            assert!(table.find(h, |s| s.ordinal == ordinal).is_some());
        }
    }

    /// Growth moves slots in one pass; with hashes shared by many values (runs of dozens of
    /// slots, some across the end) every value is still found after each growth, and removals
    /// that shift slots back keep the rest findable.
    #[test]
    fn growing_keeps_long_runs_reachable() {
        let hash = |ordinal: u32| (ordinal % 1_500).wrapping_mul(0x2545_F491);
        let mut table = SlotTable::default();
        for ordinal in 0..40_000u32 {
            table.insert(slot(ordinal, hash(ordinal)));
        }
        for ordinal in (0..40_000u32).filter(|o| o % 3 == 0) {
            table.remove(hash(ordinal), ordinal);
        }
        for ordinal in 0..40_000u32 {
            let found = table.find(hash(ordinal), |s| s.ordinal == ordinal);
            assert_eq!(found.is_some(), ordinal % 3 != 0, "{ordinal}");
        }
        assert_eq!(table.len(), 26_666);
    }

    proptest! {
        /// Inserts and removals agree with a plain map after every step. Hashes come from a
        /// range of 8, so probe runs are long, share slots and wrap around the end.
        #[test]
        fn agrees_with_a_map(ops in proptest::collection::vec((any::<bool>(), 0u32..8, 0u32..40), 1..400)) {
            let mut table = SlotTable::default();
            let mut model = std::collections::BTreeMap::<u32, u32>::new();
            for (insert, hash, ordinal) in ops {
                let hash = *model.get(&ordinal).unwrap_or(&hash);
                if insert {
                    model.entry(ordinal).or_insert_with(|| {
                        table.insert(slot(ordinal, hash));
                        hash
                    });
                } else if model.remove(&ordinal).is_some() {
                    table.remove(hash, ordinal);
                }
                for (&o, &h) in &model {
                    prop_assert_eq!(table.find(h, |s| s.ordinal == o).map(|s| s.ordinal), Some(o));
                }
                prop_assert_eq!(table.len(), model.len());
            }
        }
    }
}
