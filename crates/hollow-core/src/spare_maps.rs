//! Large buffers kept for the next version of what they held. A table copied whole on every
//! refresh (a primary key table that a delta writes all over) would otherwise fault in every
//! page of a fresh mapping each time: at 10 M records, 11,500 pages, half the time of
//! applying the delta. A buffer let go is kept as a spare with its pages lazily freed
//! (`MADV_FREE`): the kernel takes them back whenever it needs the memory, and until it does,
//! the next buffer of the same size reuses them without a fault. Where pages cannot be freed
//! lazily, a buffer let go is unmapped as any other.

use std::sync::{Mutex, MutexGuard, PoisonError};

use memmap2::MmapMut;

/// Buffers of fewer bytes come from the heap, whose freed blocks the next ones reuse alike.
pub(crate) const SPARE_MIN_BYTES: usize = 1 << 20;

/// Spares kept at most (the oldest goes first): a few keyed types refreshed together.
const MAX_SPARES: usize = 8;

static SPARES: Mutex<Vec<MmapMut>> = Mutex::new(Vec::new());

fn spares() -> MutexGuard<'static, Vec<MmapMut>> {
    SPARES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A spare of exactly `len` bytes, if one is kept. Its bytes are unspecified (what it held,
/// or zeros where the kernel took its pages back): the caller writes every page before it
/// reads any.
pub(crate) fn take(len: usize) -> Option<MmapMut> {
    let mut spares = spares();
    let at = spares.iter().position(|map| map.len() == len)?;
    Some(spares.remove(at))
}

/// Keeps `map` as a spare, its pages lazily freed (unmaps it where they cannot be).
fn keep(map: MmapMut) {
    #[cfg(any(target_os = "linux", target_vendor = "apple"))]
    {
        // SAFETY: the map is owned here and nothing borrows it; whoever takes it back
        // (`take`) writes each page before reading it, and a page written after `MADV_FREE`
        // is kept by the kernel, so no read ever sees a page change underneath it.
        if unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::Free) }.is_ok() {
            let mut spares = spares();
            let evicted = (spares.len() == MAX_SPARES).then(|| spares.remove(0));
            spares.push(map);
            drop(spares);
            drop(evicted); // unmapped outside the lock
        }
    }
    #[cfg(not(any(target_os = "linux", target_vendor = "apple")))]
    drop(map);
}

/// The bytes of a map that becomes a spare when dropped (as the owner of [`bytes::Bytes`]).
pub(crate) struct Recycled(Option<MmapMut>);

impl Recycled {
    pub(crate) fn new(map: MmapMut) -> Self {
        Self(Some(map))
    }
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        if let Some(map) = self.0.take() {
            keep(map);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::mapped_words::Words;
    use crate::packed::{fill_from_le_bytes, BitWriter};

    /// A large copy let go leaves its pages as a spare, and the next copy of the same size
    /// reuses them, holding exactly what it copied whatever they held before.
    #[test]
    #[cfg(target_os = "linux")]
    fn a_copy_let_go_is_reused_by_the_next_of_its_size() {
        // A size no other test uses, so that no other takes the spare meanwhile.
        let bits = (super::SPARE_MIN_BYTES as u64 + 8 * 1237) * 8 - 64 - 13;
        let source = |seed: u64| -> Vec<u8> {
            (0..bits.div_ceil(8) + 8)
                .map(|i| (i.wrapping_mul(seed) >> 3) as u8)
                .collect()
        };
        let copy = |seed: u64| {
            let len = (bits.div_ceil(64) + 1) as usize;
            // SAFETY: `fill_from_le_bytes` writes every word and reads none.
            let words =
                unsafe { Words::overwritten(len, |w| fill_from_le_bytes(w, &source(seed), bits)) };
            words.into_le_bytes()
        };
        let first = copy(7);
        let address = first.as_ptr();
        drop(first);
        let second = copy(11);
        assert_eq!(second.as_ptr(), address, "the spare was reused");
        let expected = BitWriter::from_le_bytes(&source(11), bits).into_bytes();
        assert_eq!(second, expected);
    }
}
