//! Buffers of words for large arrays that are let go one after another while others grow (the
//! chunks of a snapshot being assembled, the pieces of an index being sorted): a large buffer
//! is mapped from the system rather than allocated, so that dropping it gives its pages back at
//! once. Freed heap memory may stay resident (glibc keeps a block freed on one thread in the
//! arena of the thread that allocated it), which would keep what was let go after all.

use bytes::Bytes;

/// Buffers of at least this many words (512 KiB) are mapped.
const MAPPED_WORDS: usize = 1 << 16;

/// Zeroed words, in pages of their own when there are many, of which the first `len` are in use.
pub(crate) struct Words {
    storage: Storage,
    len: usize,
}

enum Storage {
    Heap(Vec<u64>),
    Mapped(memmap2::MmapMut),
}

impl Words {
    /// `len` zero words. Mapped pages are zero when fresh, and resident only once written.
    pub(crate) fn zeroed(len: usize) -> Self {
        let storage = match len >= MAPPED_WORDS {
            true => memmap2::MmapMut::map_anon(len * 8)
                .map_or_else(|_| Storage::Heap(vec![0; len]), Storage::Mapped),
            false => Storage::Heap(vec![0; len]),
        };
        Self { storage, len }
    }

    /// The words in use.
    #[inline(always)]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u64] {
        let words: &mut [u64] = match &mut self.storage {
            Storage::Heap(words) => words,
            // A map starts on a page boundary and holds whole words.
            Storage::Mapped(map) => bytemuck::cast_slice_mut(&mut map[..]),
        };
        &mut words[..self.len]
    }

    /// Keeps the first `len` words in use (no more than are).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The words in use, as little-endian bytes.
    pub(crate) fn into_le_bytes(mut self) -> Bytes {
        self.as_mut_slice().iter_mut().for_each(|x| *x = x.to_le());
        let bytes = self.len * 8;
        match self.storage {
            Storage::Heap(mut words) => {
                words.truncate(self.len);
                Bytes::from_owner(LeWords(words))
            }
            Storage::Mapped(map) => Bytes::from_owner(map).slice(..bytes),
        }
    }
}

impl AsRef<[u64]> for Words {
    fn as_ref(&self) -> &[u64] {
        let words: &[u64] = match &self.storage {
            Storage::Heap(words) => words,
            Storage::Mapped(map) => bytemuck::cast_slice(&map[..]),
        };
        &words[..self.len]
    }
}

impl std::fmt::Debug for Words {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.storage {
            Storage::Heap(_) => "heap",
            Storage::Mapped(_) => "mapped",
        };
        write!(f, "Words({} {kind})", self.len)
    }
}

/// Words already in little-endian order, viewed as bytes.
pub(crate) struct LeWords(pub(crate) Vec<u64>);

impl AsRef<[u8]> for LeWords {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_buffers_hold_what_is_written() {
        for len in [3, MAPPED_WORDS + 5] {
            let mut words = Words::zeroed(len);
            assert!(words.as_ref().iter().all(|&w| w == 0));
            words.as_mut_slice()[len - 1] = 0x0102_0304_0506_0708;
            words.truncate(len + 10);
            assert_eq!(words.as_ref().len(), len);
            words.truncate(len - 1 + 1);
            let bytes = words.into_le_bytes();
            assert_eq!(bytes.len(), len * 8);
            assert_eq!(bytes[len * 8 - 8..], 0x0102_0304_0506_0708u64.to_le_bytes());
        }
        assert!(format!("{:?}", Words::zeroed(MAPPED_WORDS)).contains("mapped"));
    }
}
