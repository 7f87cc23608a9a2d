//! The hash table behind an [`super::interner::Interner`]: open addressing with linear probing
//! over 8-byte slots that carry the value's hash and ordinal. A lookup costs one cache line of
//! the table, and for the candidate whose hash matches one of the interner's spans and one of
//! its arena; lookups of a batch can prefetch the lines they will touch. (Slots that also held
//! the value's place in the arena would save the span's line but double the table, which is
//! the larger part of a producer's memory.)

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

/// Spreads a 32-bit hash over 64 bits; the home slot takes the top bits.
#[inline]
fn spread(h: u32) -> u64 {
    (h as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Hints the CPU to load the cache line at `ptr`.
#[inline(always)]
pub(super) fn prefetch<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults and reads nothing the program can see,
    // whatever the address (the callers pass addresses inside live slices anyway). SSE is part of
    // the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// Open-addressing table of [`Slot`]s, at most half full.
#[derive(Debug, Default)]
pub(super) struct SlotTable {
    slots: Vec<Slot>,
    /// 64 minus log2 of the slot count.
    shift: u32,
    len: usize,
}

impl SlotTable {
    #[inline]
    fn home(&self, hash: u32) -> usize {
        (spread(hash) >> self.shift) as usize
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
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
            i = (i + 1) & self.mask();
        }
    }

    /// Inserts a slot for a value that is not in the table.
    pub fn insert(&mut self, slot: Slot) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        self.place(slot);
        self.len += 1;
    }

    fn place(&mut self, slot: Slot) {
        let mut i = self.home(slot.hash);
        while self.slots[i].ordinal != EMPTY {
            i = (i + 1) & self.mask();
        }
        self.slots[i] = slot;
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![VACANT; capacity]);
        self.shift = 64 - capacity.trailing_zeros();
        for s in old.into_iter().filter(|s| s.ordinal != EMPTY) {
            self.place(s);
        }
    }

    /// Removes the slot of `ordinal` (whose value hashes to `hash`), if present. Later slots of
    /// the probe run shift back, so lookups never need tombstones.
    pub fn remove(&mut self, hash: u32, ordinal: u32) {
        if self.slots.is_empty() {
            return;
        }
        let mask = self.mask();
        let mut hole = self.home(hash);
        loop {
            let s = self.slots[hole];
            if s.ordinal == EMPTY {
                return;
            }
            if s.ordinal == ordinal {
                break;
            }
            hole = (hole + 1) & mask;
        }
        self.len -= 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
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
        prefetch(std::ptr::null::<u8>());
        prefetch(usize::MAX as *const u64);
        let t = SlotTable::default();
        t.prefetch_home(7);
        assert!(t.first_candidate(7).is_none());
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
