//! Population bitmaps: which ordinals of a type hold a record.

use bytes::Bytes;

/// A fixed-size set of ordinals, one bit each, stored as little-endian 64-bit words.
#[derive(Clone, Debug, Default)]
pub struct Bitset {
    words: Vec<u64>,
    len: u64,
}

/// Two sets are equal when they hold the same elements, whatever their capacities.
impl PartialEq for Bitset {
    fn eq(&self, other: &Self) -> bool {
        let n = self.words.len().max(other.words.len());
        (0..n).all(|i| {
            self.words.get(i).copied().unwrap_or(0) == other.words.get(i).copied().unwrap_or(0)
        })
    }
}

impl Eq for Bitset {}

impl Bitset {
    /// An empty set able to hold ordinals below `len`.
    pub fn with_len(len: u64) -> Self {
        Self {
            words: vec![0; len.div_ceil(64) as usize],
            len,
        }
    }

    /// Decodes `len` bits from little-endian words. `None` if `bytes` is not exactly the words
    /// needed or bits past `len` are set.
    pub fn from_le_bytes(bytes: &[u8], len: u64) -> Option<Self> {
        if bytes.len() as u64 != len.div_ceil(64) * 8 {
            return None;
        }
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let tail = len % 64;
        if tail != 0 && words.last().is_some_and(|w| w >> tail != 0) {
            return None;
        }
        Some(Self { words, len })
    }

    /// Appends the words, little-endian, to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// The bitmap as bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.words.len() * 8);
        self.write_to(&mut out);
        Bytes::from(out)
    }

    /// Number of ordinals the set can hold.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when it can hold no ordinal.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Grows the capacity to `len` (never shrinks).
    pub fn grow(&mut self, len: u64) {
        if len > self.len {
            self.words.resize(len.div_ceil(64) as usize, 0);
            self.len = len;
        }
    }

    /// True if `i` is in the set.
    #[inline]
    pub fn contains(&self, i: u64) -> bool {
        self.words
            .get((i >> 6) as usize)
            .is_some_and(|w| (w >> (i & 63)) & 1 == 1)
    }

    /// Adds `i`, growing the set if needed.
    #[inline]
    pub fn insert(&mut self, i: u64) {
        if i >= self.len {
            self.grow(i + 1);
        }
        self.words[(i >> 6) as usize] |= 1 << (i & 63);
    }

    /// Removes `i`.
    #[inline]
    pub fn remove(&mut self, i: u64) {
        if let Some(w) = self.words.get_mut((i >> 6) as usize) {
            *w &= !(1 << (i & 63));
        }
    }

    /// Removes every element, keeping the capacity.
    pub fn clear(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
    }

    /// One more than the highest element (0 when empty).
    pub fn end(&self) -> u64 {
        self.words.iter().rposition(|&w| w != 0).map_or(0, |i| {
            i as u64 * 64 + 64 - self.words[i].leading_zeros() as u64
        })
    }

    /// Number of elements.
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| w.count_ones() as u64).sum()
    }

    /// The elements, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter_words(0..self.words.len())
    }

    /// The words, little-endian bit order: bit `i % 64` of word `i / 64` is element `i`.
    #[inline]
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Number of 64-bit words: [`Bitset::iter_words`] takes ranges of them.
    pub fn word_count(&self) -> usize {
        self.words.len()
    }

    /// The elements held by the words in `words` (elements `64 * start` up to `64 * end`; words
    /// past the last are none), ascending: for splitting a set into pieces.
    pub fn iter_words(&self, words: std::ops::Range<usize>) -> impl Iterator<Item = u64> + '_ {
        let end = words.end.min(self.words.len());
        let first = words.start.min(end);
        let words = &self.words[first..end];
        words
            .iter()
            .enumerate()
            .flat_map(move |(i, &w)| elements_of_word(first + i, w))
    }

    /// The elements not in `other`, ascending, a word at a time: for the records new in a
    /// cycle (present, not previous) without visiting every record.
    pub fn iter_minus<'a>(&'a self, other: &'a Bitset) -> impl Iterator<Item = u64> + 'a {
        self.iter_words_minus(other, 0..self.words.len())
    }

    /// The elements not in `other` held by the words in `words` (as [`Bitset::iter_words`]),
    /// ascending: for splitting [`Bitset::iter_minus`] into pieces.
    pub fn iter_words_minus<'a>(
        &'a self,
        other: &'a Bitset,
        words: std::ops::Range<usize>,
    ) -> impl Iterator<Item = u64> + 'a {
        self.words_minus(other, words)
            .flat_map(|(wi, w)| elements_of_word(wi, w))
    }

    /// How many elements not in `other` the words in `words` hold (as
    /// [`Bitset::iter_words_minus`] gives them).
    pub fn count_words_minus(&self, other: &Bitset, words: std::ops::Range<usize>) -> u64 {
        self.words_minus(other, words)
            .map(|(_, w)| w.count_ones() as u64)
            .sum()
    }

    /// The words in `words` (those past the last are none) without the bits of `other`, with
    /// their indices.
    fn words_minus<'a>(
        &'a self,
        other: &'a Bitset,
        words: std::ops::Range<usize>,
    ) -> impl Iterator<Item = (usize, u64)> + 'a {
        let end = words.end.min(self.words.len());
        let first = words.start.min(end);
        (first..end).map(move |wi| {
            let w = self.words[wi] & !other.words.get(wi).copied().unwrap_or(0);
            (wi, w)
        })
    }

    /// Adds every element of `other`, growing the set if needed.
    pub fn union_with(&mut self, other: &Bitset) {
        self.grow(other.len);
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= o;
        }
    }

    /// A copy holding exactly `len` ordinals (elements at or past `len` are dropped).
    pub fn clone_with_len(&self, len: u64) -> Self {
        let mut out = Self::with_len(len);
        let n = out.words.len().min(self.words.len());
        out.words[..n].copy_from_slice(&self.words[..n]);
        if !len.is_multiple_of(64) {
            if let Some(last) = out.words.last_mut() {
                *last &= (1u64 << (len % 64)) - 1;
            }
        }
        out
    }

    /// Bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.words.capacity() * 8
    }

    /// A hash of the elements (not of the length): equal sets have equal fingerprints.
    pub fn fingerprint(&self) -> u64 {
        let used = self
            .words
            .iter()
            .rposition(|&w| w != 0)
            .map_or(0, |i| i + 1);
        xxhash_rust::xxh3::xxh3_64(bytemuck::cast_slice(&self.words[..used]))
    }
}

/// The elements word `wi` holds, ascending.
fn elements_of_word(wi: usize, mut w: u64) -> impl Iterator<Item = u64> {
    std::iter::from_fn(move || {
        if w == 0 {
            return None;
        }
        let bit = w.trailing_zeros() as u64;
        w &= w - 1;
        Some(wi as u64 * 64 + bit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_not_in_another_set() {
        let mut a = Bitset::with_len(10);
        let mut b = Bitset::with_len(70);
        for i in [1, 5, 63, 64, 200, 300] {
            a.insert(i);
        }
        for i in [5, 64, 65] {
            b.insert(i);
        }
        assert_eq!(a.iter_minus(&b).collect::<Vec<_>>(), vec![1, 63, 200, 300]);
        assert_eq!(b.iter_minus(&a).collect::<Vec<_>>(), vec![65]);
        assert_eq!(a.iter_minus(&a).count(), 0);
        // In pieces of words, past the last word included.
        let pieces = [0..1, 1..4, 4..9].map(|w| a.iter_words_minus(&b, w).collect::<Vec<_>>());
        assert_eq!(pieces.concat(), vec![1, 63, 200, 300]);
        assert_eq!(a.iter_words_minus(&b, 3..4).collect::<Vec<_>>(), vec![200]);
        assert_eq!(
            [0..1, 1..4, 4..9].map(|w| a.count_words_minus(&b, w)),
            [2, 1, 1]
        );
    }

    #[test]
    fn insert_iterate_and_round_trip() {
        let mut s = Bitset::with_len(10);
        for i in [0, 3, 9, 64, 130] {
            s.insert(i);
        }
        s.remove(3);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 9, 64, 130]);
        assert_eq!(s.count(), 4);
        assert_eq!(s.end(), 131);
        assert_eq!(Bitset::with_len(500).end(), 0);
        assert_eq!(s.len(), 131);
        let back = Bitset::from_le_bytes(&s.to_bytes(), s.len()).unwrap();
        assert_eq!(back, s);
        assert!(!back.contains(1000));
    }

    #[test]
    fn pieces_and_unions() {
        let mut s = Bitset::with_len(300);
        for i in [1, 63, 64, 200, 299] {
            s.insert(i);
        }
        assert_eq!(s.word_count(), 5);
        assert_eq!(s.iter_words(1..4).collect::<Vec<_>>(), vec![64, 200]);
        assert_eq!(s.iter_words(4..9).collect::<Vec<_>>(), vec![299]);
        assert_eq!(s.iter_words(7..9).count(), 0);
        let mut u = Bitset::with_len(10);
        u.insert(5);
        u.union_with(&s);
        assert_eq!(u.iter().collect::<Vec<_>>(), vec![1, 5, 63, 64, 200, 299]);
        assert_eq!(u.len(), 300);
    }

    #[test]
    fn rejects_bits_past_len_and_wrong_sizes() {
        let mut s = Bitset::with_len(64);
        s.insert(63);
        assert!(Bitset::from_le_bytes(&s.to_bytes(), 63).is_none());
        assert!(Bitset::from_le_bytes(&s.to_bytes(), 200).is_none());
        assert!(Bitset::from_le_bytes(&s.to_bytes(), 64).is_some());
    }
}
