//! Memory given back to the system as soon as it is done with, for large arrays that are let
//! go while others grow (the chunks of a snapshot being assembled, the entries of an index
//! being sorted and placed): a large buffer is mapped from the system rather than allocated,
//! so that dropping it gives its pages back at once, and the pages of a part already read can
//! be given back before the rest. Freed heap memory may stay resident (glibc keeps a block
//! freed on one thread in the arena of the thread that allocated it), which would keep what
//! was let go after all. The exception, [`Words::overwritten`], is for arrays every version
//! rewrites whole (a primary key table a delta writes all over): its mapping is kept as a
//! spare once let go, for the next version to reuse (see [`crate::spare_maps`]).

use bytes::Bytes;

use crate::spare_maps::{self, Recycled, SPARE_MIN_BYTES};

/// Buffers that are (part of) arrays of at least this many words (32 MiB) are mapped. Smaller
/// ones come from the heap, whose freed memory the next array of their size reuses without
/// faulting its pages in again (glibc maps blocks this large anyway).
const MAPPED_WORDS: usize = 1 << 22;

/// Zeroed words, in pages of their own when there are many, of which the first `len` are in use.
pub(crate) struct Words {
    storage: Storage,
    len: usize,
}

enum Storage {
    Heap(Vec<u64>),
    Mapped(memmap2::MmapMut),
    /// Mapped, and kept as a spare once its bytes are let go (see [`crate::spare_maps`]).
    Spare(memmap2::MmapMut),
}

impl Words {
    /// `len` zero words. Mapped pages are zero when fresh, and resident only once written.
    pub(crate) fn zeroed(len: usize) -> Self {
        Self::zeroed_in(len, len)
    }

    /// `len` zero words, a part of an array of `whole` words in all: mapped when the whole
    /// array is large, so that each part gives its pages back when dropped.
    pub(crate) fn zeroed_in(len: usize, whole: usize) -> Self {
        match whole >= MAPPED_WORDS {
            true => Self::mapped(len),
            false => Self::on_heap(len),
        }
    }

    /// `len` zero words, mapped whatever their number (on the heap if the system refuses).
    pub(crate) fn mapped(len: usize) -> Self {
        let storage = memmap2::MmapMut::map_anon(len * 8)
            .map_or_else(|_| Storage::Heap(vec![0; len]), Storage::Mapped);
        Self { storage, len }
    }

    /// `len` words set by `write`: when many, in a spare of the same size if one is kept (its
    /// pages resident already), and kept as one once let go (see [`crate::spare_maps`]).
    ///
    /// # Safety
    /// `write` writes each word before it reads it: until a spare's pages are written, the
    /// kernel may take them back, and what they read may change to zeros.
    pub(crate) unsafe fn overwritten(len: usize, write: impl FnOnce(&mut [u64])) -> Self {
        let spare = match len * 8 >= SPARE_MIN_BYTES {
            true => spare_maps::take(len * 8).or_else(|| memmap2::MmapMut::map_anon(len * 8).ok()),
            false => None,
        };
        let mut words = Self {
            storage: spare.map_or_else(|| Storage::Heap(vec![0; len]), Storage::Spare),
            len,
        };
        write(words.as_mut_slice());
        words
    }

    fn on_heap(len: usize) -> Self {
        Self {
            storage: Storage::Heap(vec![0; len]),
            len,
        }
    }

    /// Whether the words are mapped (else on the heap).
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped(_) | Storage::Spare(_))
    }

    /// The words in use.
    #[inline(always)]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u64] {
        let words: &mut [u64] = match &mut self.storage {
            Storage::Heap(words) => words,
            // A map starts on a page boundary and holds whole words.
            Storage::Mapped(map) | Storage::Spare(map) => bytemuck::cast_slice_mut(&mut map[..]),
        };
        &mut words[..self.len]
    }

    /// Keeps the first `len` words in use (no more than are).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Lets the words go: a spare's mapping is kept as a spare again (see
    /// [`crate::spare_maps`]), any other storage freed.
    pub(crate) fn let_go(self) {
        if let Storage::Spare(map) = self.storage {
            drop(Recycled::new(map));
        }
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
            Storage::Spare(map) => Bytes::from_owner(Recycled::new(map)).slice(..bytes),
        }
    }
}

impl AsRef<[u64]> for Words {
    fn as_ref(&self) -> &[u64] {
        let words: &[u64] = match &self.storage {
            Storage::Heap(words) => words,
            Storage::Mapped(map) | Storage::Spare(map) => bytemuck::cast_slice(&map[..]),
        };
        &words[..self.len]
    }
}

impl std::fmt::Debug for Words {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.storage {
            Storage::Heap(_) => "heap",
            Storage::Mapped(_) => "mapped",
            Storage::Spare(_) => "spare",
        };
        write!(f, "Words({} {kind})", self.len)
    }
}

/// Gives the whole pages inside `words` back to the system: their values are unspecified
/// afterwards (zero, for private anonymous memory), and resident again only once written.
pub(crate) fn release_words(words: &mut [u64]) {
    // SAFETY: the words are borrowed exclusively, so no one else reads them, and they are
    // private memory of this process (a heap block or an anonymous map): the pages given back
    // read as zero if touched again, as if the caller had written them.
    unsafe { release_pages(words.as_mut_ptr() as usize, std::mem::size_of_val(words)) }
}

/// Gives back to the operating system the whole pages in `len` bytes from address `at`.
///
/// # Safety
/// The bytes must be private anonymous memory of this process that nothing reads again
/// (or that may read as zero).
#[cfg(unix)]
pub(crate) unsafe fn release_pages(at: usize, len: usize) {
    // SAFETY: sysconf only reads a system constant.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => return,
    };
    let first = at.next_multiple_of(page);
    let end = (at + len) / page * page;
    if end <= first {
        return;
    }
    // SAFETY: whole pages inside the caller's range, which nothing reads again (the caller's
    // contract); MADV_DONTNEED on private anonymous memory makes them read as zeros.
    unsafe {
        libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_DONTNEED);
    }
}

/// Without `madvise`, nothing is given back.
///
/// # Safety
/// None needed; the same contract as the Unix version, for callers.
#[cfg(not(unix))]
pub(crate) unsafe fn release_pages(_at: usize, _len: usize) {}

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
        for (len, whole) in [(3, 3), (5, MAPPED_WORDS), (MAPPED_WORDS + 5, 0)] {
            let mut words = Words::zeroed_in(len, whole.max(len));
            assert!(words.as_ref().iter().all(|&w| w == 0));
            words.as_mut_slice()[len - 1] = 0x0102_0304_0506_0708;
            words.truncate(len + 10);
            assert_eq!(words.as_ref().len(), len);
            words.truncate(len - 1 + 1);
            let bytes = words.into_le_bytes();
            assert_eq!(bytes.len(), len * 8);
            assert_eq!(bytes[len * 8 - 8..], 0x0102_0304_0506_0708u64.to_le_bytes());
        }
        assert!(Words::zeroed_in(8, MAPPED_WORDS).is_mapped());
        assert!(!Words::zeroed(8).is_mapped());
        assert!(Words::mapped(8).is_mapped());
    }

    /// The whole pages given back read as zero and can be written again; the words on pages
    /// only partly inside the range are kept.
    #[test]
    fn words_given_back_read_as_zero_and_stay_usable() {
        let mut words = Words::mapped(5 * 1024);
        words.as_mut_slice().fill(7);
        release_words(&mut words.as_mut_slice()[100..4000]);
        let w = words.as_ref();
        assert!(w[..100].iter().chain(&w[4000..]).all(|&x| x == 7));
        #[cfg(unix)]
        {
            // SAFETY: sysconf only reads a system constant.
            let page_words = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize / 8;
            let first = 100usize.next_multiple_of(page_words).min(4000);
            let end = (4000 / page_words * page_words).max(first);
            assert!(w[first..end].iter().all(|&x| x == 0));
            assert!(w[100..first].iter().chain(&w[end..4000]).all(|&x| x == 7));
        }
        words.as_mut_slice()[1000] = 9;
        assert_eq!(words.as_ref()[1000], 9);
    }
}
