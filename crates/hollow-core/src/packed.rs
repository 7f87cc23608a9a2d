//! Bit-packed storage: values of a fixed bit width laid end to end in little-endian 64-bit words,
//! followed by one padding word so that every read is a branch-free two-word load, shift and mask.
//!
//! Reading is hand-written rather than done with `bitvec`: for this access pattern bitvec measured
//! 2.2–5.5× slower (see DESIGN.md). `bitvec` is not used anywhere on the read path.

use bytes::Bytes;

use crate::mapped_words::{LeWords, Words};

/// Number of bits needed to represent `value` (0 for 0).
#[inline]
pub fn bits_needed(value: u64) -> u8 {
    (64 - value.leading_zeros()) as u8
}

/// The mask of the low `width` bits (`width` ≤ 64).
#[inline]
pub fn low_mask(width: u8) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

/// Number of bytes a packed region of `bits` bits occupies, padding word included.
#[inline]
pub fn packed_len_bytes(bits: u64) -> u64 {
    (bits.div_ceil(64) + 1) * 8
}

/// Read-only bit storage over bytes (a slice of a blob, or an owned buffer).
///
/// Invariant, checked by [`PackedBits::new`]: the bytes are a whole number of words and at least
/// one word longer than the bits in use, so that a read of `width` bits at any in-use bit offset
/// can load two words.
#[derive(Clone, Debug, Default)]
pub struct PackedBits {
    bytes: Bytes,
}

impl PackedBits {
    /// Wraps `bytes` holding `bits` bits of data plus the padding word. Returns `None` when the
    /// bytes are too short.
    pub fn new(bytes: Bytes, bits: u64) -> Option<Self> {
        (bytes.len() as u64 >= packed_len_bytes(bits) && bytes.len().is_multiple_of(8))
            .then_some(Self { bytes })
    }

    /// Reads `width` bits (≤ 64) starting at bit `bit`. Out-of-range reads return 0 (they cannot
    /// happen for offsets validated against the bit count given at construction).
    #[inline(always)]
    pub fn get(&self, bit: u64, width: u8) -> u64 {
        let word = (bit >> 6) as usize;
        let shift = (bit & 63) as u32;
        let Some(chunk) = self.bytes.get(word * 8..word * 8 + 16) else {
            return 0;
        };
        let lo = u64::from_le_bytes(chunk[0..8].try_into().unwrap_or_default());
        let hi = u64::from_le_bytes(chunk[8..16].try_into().unwrap_or_default());
        // `(hi << 1) << (63 - shift)` is `hi << (64 - shift)` without overflowing at shift 0.
        ((lo >> shift) | ((hi << 1) << (63 - shift))) & low_mask(width)
    }

    /// Hints the CPU to load the byte holding bit `bit`, which a later [`PackedBits::get`]
    /// will read.
    #[inline(always)]
    pub fn prefetch(&self, bit: u64) {
        crate::prefetch::prefetch(self.bytes.as_ptr().wrapping_add((bit >> 3) as usize));
    }

    /// The underlying bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The same bits in a buffer of their own, no longer sharing (and keeping allocated) the
    /// buffer these bytes are a slice of.
    pub fn copied(&self) -> Self {
        Self {
            bytes: Bytes::copy_from_slice(&self.bytes),
        }
    }
}

/// Whether `n` bits of `a` from bit `a_at` equal those of `b` from `b_at`.
pub fn same_bits(a: &PackedBits, a_at: u64, b: &PackedBits, b_at: u64, n: u64) -> bool {
    let mut done = 0;
    while done < n {
        let width = (n - done).min(64) as u8;
        if a.get(a_at + done, width) != b.get(b_at + done, width) {
            return false;
        }
        done += width as u64;
    }
    true
}

/// Whether bits `bits` of `a` equal the same bits of `b`: whole words compared as bytes, at
/// memory speed, the partial words at either end bit by bit.
pub fn same_bit_range(a: &PackedBits, b: &PackedBits, bits: std::ops::Range<u64>) -> bool {
    let (start, end) = (bits.start, bits.end.max(bits.start));
    let first_word = start.div_ceil(64);
    let last_word = end / 64;
    if first_word >= last_word {
        return same_bits(a, start, b, start, end - start);
    }
    let (from, to) = (first_word as usize * 8, last_word as usize * 8);
    same_bits(a, start, b, start, first_word * 64 - start)
        && matches!((a.bytes().get(from..to), b.bytes().get(from..to)), (Some(x), Some(y)) if x == y)
        && same_bits(a, last_word * 64, b, last_word * 64, end - last_word * 64)
}

/// A packed array of `len` unsigned values of one width.
#[derive(Clone, Debug, Default)]
pub struct PackedArray {
    bits: PackedBits,
    len: u64,
    width: u8,
}

impl PackedArray {
    /// Wraps packed bytes holding `len` values of `width` bits. `None` if the bytes are too short
    /// or the width is over 64.
    pub fn new(bytes: Bytes, len: u64, width: u8) -> Option<Self> {
        if width > 64 {
            return None;
        }
        let bits = len.checked_mul(width as u64)?;
        Some(Self {
            bits: PackedBits::new(bytes, bits)?,
            len,
            width,
        })
    }

    /// Value at `index`; 0 when `index` is out of range.
    #[inline(always)]
    pub fn get(&self, index: u64) -> u64 {
        self.bits.get(index * self.width as u64, self.width)
    }

    /// Number of values.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Bit width of each value.
    pub fn width(&self) -> u8 {
        self.width
    }

    /// The underlying storage.
    pub fn bits(&self) -> &PackedBits {
        &self.bits
    }

    /// Bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bits.heap_bytes()
    }

    /// The same values in a buffer of their own (see [`PackedBits::copied`]).
    pub fn copied(&self) -> Self {
        Self {
            bits: self.bits.copied(),
            ..*self
        }
    }
}

/// Builds packed bits: values are written at explicit bit offsets into zeroed words.
#[derive(Debug)]
pub struct BitWriter {
    words: Vec<u64>,
}

impl BitWriter {
    /// A writer for `bits` bits of data (plus the padding word), all zero.
    pub fn with_bits(bits: u64) -> Self {
        Self {
            words: vec![0; (bits.div_ceil(64) + 1) as usize],
        }
    }

    /// A writer for `bits` bits of data with every bit set (padding word included).
    pub fn with_ones(bits: u64) -> Self {
        Self {
            words: vec![u64::MAX; (bits.div_ceil(64) + 1) as usize],
        }
    }

    /// A writer holding a copy of packed little-endian `bytes`, sized for `bits` bits (extra
    /// source bytes are dropped, missing ones are zero).
    pub fn from_le_bytes(bytes: &[u8], bits: u64) -> Self {
        let mut words = vec![0; (bits.div_ceil(64) + 1) as usize];
        fill_from_le_bytes(&mut words, bytes, bits);
        Self { words }
    }

    /// Copies `nbits` bits from `src` at `src_bit` to `dst_bit`, overwriting: the bits up to
    /// the next destination word with a masked write, then whole words (copied as they are
    /// when the source is aligned alike, shifted into place otherwise), then the rest.
    pub fn copy_bits(&mut self, dst_bit: u64, src: &PackedBits, src_bit: u64, nbits: u64) {
        let head = ((64 - dst_bit % 64) % 64).min(nbits);
        if head > 0 {
            self.set(dst_bit, head as u8, src.get(src_bit, head as u8));
        }
        let mut done = head;
        let word = ((dst_bit + done) / 64) as usize;
        let whole = ((nbits - done) / 64) as usize;
        let aligned = (src_bit + done)
            .is_multiple_of(64)
            .then(|| {
                let start = ((src_bit + done) / 64 * 8) as usize;
                src.bytes().get(start..start + whole * 8)
            })
            .flatten();
        match (aligned, self.words.get_mut(word..word + whole)) {
            (Some(from), Some(to)) => {
                for (d, c) in to.iter_mut().zip(from.chunks_exact(8)) {
                    *d = u64::from_le_bytes(c.try_into().unwrap_or_default());
                }
            }
            (None, Some(to)) => {
                for (k, d) in to.iter_mut().enumerate() {
                    *d = src.get(src_bit + done + 64 * k as u64, 64);
                }
            }
            _ => {
                // Past the end: word by word, as `set` would (and panic) anyway.
                for k in 0..whole as u64 {
                    self.set(
                        dst_bit + done + 64 * k,
                        64,
                        src.get(src_bit + done + 64 * k, 64),
                    );
                }
            }
        }
        done += whole as u64 * 64;
        if done < nbits {
            let n = (nbits - done) as u8;
            self.set(dst_bit + done, n, src.get(src_bit + done, n));
        }
    }

    /// Reads `width` bits at bit `bit`.
    #[inline(always)]
    pub fn get(&self, bit: u64, width: u8) -> u64 {
        get_bits(&self.words, bit, width)
    }

    /// Hints the CPU to load the word holding bit `bit`, which a later [`BitWriter::get`] or
    /// [`BitWriter::set`] will touch.
    #[inline(always)]
    pub fn prefetch(&self, bit: u64) {
        crate::prefetch::prefetch(self.words.as_ptr().wrapping_add((bit >> 6) as usize));
    }

    /// Writes the low `width` bits of `value` at bit `bit`. The value must fit in `width` bits and
    /// the range must lie inside the bits given at construction.
    #[inline(always)]
    pub fn put(&mut self, bit: u64, width: u8, value: u64) {
        if width == 0 {
            return;
        }
        debug_assert!(value & !low_mask(width) == 0, "value wider than its width");
        let word = (bit >> 6) as usize;
        let shift = (bit & 63) as u32;
        self.words[word] |= value << shift;
        if shift + width as u32 > 64 {
            self.words[word + 1] |= value >> (64 - shift);
        }
    }

    /// Overwrites the `width` bits at `bit` with `value`.
    #[inline]
    pub fn set(&mut self, bit: u64, width: u8, value: u64) {
        set_bits(&mut self.words, bit, width, value);
    }

    /// The words written so far (the padding word last), for writing disjoint ranges of them
    /// at once with [`set_bits`].
    pub fn words_mut(&mut self) -> &mut [u64] {
        &mut self.words
    }

    /// The words as little-endian bytes, without copying them.
    pub fn into_bytes(mut self) -> Bytes {
        self.words.iter_mut().for_each(|x| *x = x.to_le());
        Bytes::from_owner(LeWords(self.words))
    }
}

/// Where values are packed at given bit positions, into bits that are zero so far.
pub trait PutBits {
    /// Writes the low `width` bits of `value` at bit `bit`.
    fn put_bits(&mut self, bit: u64, width: u8, value: u64);
}

impl PutBits for BitWriter {
    #[inline(always)]
    fn put_bits(&mut self, bit: u64, width: u8, value: u64) {
        self.put(bit, width, value)
    }
}

/// Words in one chunk of a [`ChunkedBitWriter`] (1 MiB).
const CHUNK_WORDS: usize = 1 << 17;

/// Builds packed bits front to back in chunks of [`CHUNK_WORDS`] words, each given away (as
/// little-endian [`Bytes`]) once a put moves past it. Whoever copies the chunks into a blob
/// lets each go in turn, so a large array is never held twice, as one [`BitWriter`] would be
/// while its copy is made. Puts must come at non-decreasing positions.
#[derive(Debug)]
pub struct ChunkedBitWriter {
    /// The chunks written.
    done: Vec<Bytes>,
    /// The chunk being written, then the first word of the next one if there is one (a value
    /// may straddle them).
    words: Words,
    /// The index of the chunk's first word among all words.
    base: usize,
    /// Words in all, the padding word included.
    total: usize,
}

impl ChunkedBitWriter {
    /// A writer for `bits` bits of data (plus the padding word), all zero.
    pub fn with_bits(bits: u64) -> Self {
        let total = (bits.div_ceil(64) + 1) as usize;
        Self {
            done: Vec::new(),
            words: Self::chunk(total),
            base: 0,
            total,
        }
    }

    /// The buffer of the chunk starting `left` words before the end: a whole chunk is mapped,
    /// to give its pages back as soon as it is copied and dropped, whatever its array's size
    /// (a freed heap block stays resident, and the copy would be held twice after all).
    fn chunk(left: usize) -> Words {
        match left > CHUNK_WORDS {
            true => Words::mapped(CHUNK_WORDS + 1),
            false => Words::zeroed(left),
        }
    }

    /// Gives the chunk being written away and starts the next one.
    #[cold]
    fn next_chunk(&mut self) {
        assert!(
            self.base < self.total,
            "a put past the end of a ChunkedBitWriter"
        );
        let len = (self.total - self.base).min(CHUNK_WORDS);
        let base = self.base + len;
        let mut next = Self::chunk(self.total - base);
        if let (Some(first), Some(&carried)) =
            (next.as_mut_slice().first_mut(), self.words().get(len))
        {
            *first = carried;
        }
        let mut chunk = std::mem::replace(&mut self.words, next);
        chunk.truncate(len);
        self.done.push(chunk.into_le_bytes());
        self.base = base;
    }

    #[inline(always)]
    fn words(&mut self) -> &mut [u64] {
        self.words.as_mut_slice()
    }

    /// The chunks, in order; their bytes end to end are the packed bits.
    pub fn into_parts(mut self) -> Vec<Bytes> {
        while self.base < self.total {
            self.next_chunk();
        }
        self.done
    }
}

impl PutBits for ChunkedBitWriter {
    /// Writes the low `width` bits of `value` at bit `bit`, which must not lie in a chunk
    /// given away already.
    #[inline(always)]
    fn put_bits(&mut self, bit: u64, width: u8, value: u64) {
        if width == 0 {
            return;
        }
        debug_assert!(value & !low_mask(width) == 0, "value wider than its width");
        let mut word = ((bit >> 6) as usize)
            .checked_sub(self.base)
            .expect("a ChunkedBitWriter is written front to back");
        while word >= CHUNK_WORDS {
            self.next_chunk();
            word -= CHUNK_WORDS;
        }
        let shift = (bit & 63) as u32;
        let words = self.words();
        words[word] |= value << shift;
        if shift + width as u32 > 64 {
            words[word + 1] |= value >> (64 - shift);
        }
    }
}

/// Reads the `width` bits at `bit` of `words`.
#[inline(always)]
pub fn get_bits(words: &[u64], bit: u64, width: u8) -> u64 {
    let word = (bit >> 6) as usize;
    let shift = (bit & 63) as u32;
    let lo = words[word];
    let hi = words.get(word + 1).copied().unwrap_or(0);
    ((lo >> shift) | ((hi << 1) << (63 - shift))) & low_mask(width)
}

/// Writes into every word of `words` a copy of packed little-endian `bytes` as `bits` bits
/// of data (extra source bytes are dropped, missing ones are zero), then zeros.
pub fn fill_from_le_bytes(words: &mut [u64], bytes: &[u8], bits: u64) {
    let data_words = (bits.div_ceil(64) as usize).min(words.len());
    let whole = (bytes.len() / 8).min(data_words);
    let source = &bytes[..whole * 8];
    match bytemuck::try_cast_slice::<u8, u64>(source) {
        // Bytes aligned as words (a blob buffer, a mapped file): a plain copy.
        Ok(aligned) => {
            words[..whole].copy_from_slice(aligned);
            words[..whole]
                .iter_mut()
                .for_each(|w| *w = u64::from_le(*w));
        }
        Err(_) => (words[..whole].iter_mut().zip(source.chunks_exact(8)))
            .for_each(|(w, c)| *w = u64::from_le_bytes(c.try_into().unwrap_or_default())),
    }
    let mut zeros = whole;
    if whole < data_words {
        // A last partial word.
        let mut last = [0u8; 8];
        let rest = &bytes[whole * 8..];
        last[..rest.len()].copy_from_slice(rest);
        words[whole] = u64::from_le_bytes(last);
        zeros += 1;
    }
    words[zeros..].fill(0);
    if !bits.is_multiple_of(64) && data_words > 0 {
        words[data_words - 1] &= low_mask((bits % 64) as u8);
    }
}

/// Overwrites the `width` bits at `bit` of `words` with `value` (which fits in `width` bits).
#[inline]
pub fn set_bits(words: &mut [u64], bit: u64, width: u8, value: u64) {
    if width == 0 {
        return;
    }
    let word = (bit >> 6) as usize;
    let shift = (bit & 63) as u32;
    let mask = low_mask(width);
    words[word] = (words[word] & !(mask << shift)) | (value << shift);
    if shift + width as u32 > 64 {
        let spill = 64 - shift;
        let hi_mask = mask >> spill;
        words[word + 1] = (words[word + 1] & !hi_mask) | (value >> spill);
    }
}

/// Packs `values` at `width` bits each into bytes (padding word included).
pub fn pack_values(values: impl ExactSizeIterator<Item = u64>, width: u8) -> Bytes {
    let len = values.len() as u64;
    let mut w = BitWriter::with_bits(len * width as u64);
    for (i, v) in values.enumerate() {
        w.put(i as u64 * width as u64, width, v);
    }
    w.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bits_needed_and_masks() {
        assert_eq!(bits_needed(0), 0);
        assert_eq!(bits_needed(1), 1);
        assert_eq!(bits_needed(255), 8);
        assert_eq!(bits_needed(256), 9);
        assert_eq!(bits_needed(u64::MAX), 64);
        assert_eq!(low_mask(0), 0);
        assert_eq!(low_mask(7), 127);
        assert_eq!(low_mask(64), u64::MAX);
    }

    #[test]
    fn too_short_storage_is_refused() {
        assert!(PackedArray::new(Bytes::from(vec![0u8; 8]), 1, 1).is_none());
        assert!(PackedArray::new(Bytes::from(vec![0u8; 16]), 64, 1).is_some());
        assert!(PackedArray::new(Bytes::from(vec![0u8; 16]), 65, 1).is_none());
        assert!(PackedArray::new(Bytes::from(vec![0u8; 24]), 1, 65).is_none());
        assert!(PackedArray::new(Bytes::from(vec![0u8; 16]), u64::MAX, 64).is_none());
    }

    #[test]
    fn out_of_range_reads_are_zero_not_panics() {
        let a = PackedArray::new(pack_values([u64::MAX].into_iter(), 64), 1, 64).unwrap();
        assert_eq!(a.get(0), u64::MAX);
        assert_eq!(a.get(5), 0);
        assert_eq!(a.get(u64::MAX / 64), 0);
    }

    /// Puts at random widths and gaps, some gaps past whole chunks, and values straddling the
    /// chunks' ends: the chunks end to end are what one `BitWriter` packs.
    #[test]
    fn chunks_hold_what_one_writer_packs() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let bits = (CHUNK_WORDS as u64 * 64) * 5 / 2 + 13;
        let mut puts = Vec::new();
        let mut at = 0u64;
        loop {
            let width = (next() % 65) as u8;
            at += match next() % 1000 {
                0 => CHUNK_WORDS as u64 * 64 + next() % 64,
                _ => next() % 8,
            };
            if at + width as u64 > bits {
                break;
            }
            puts.push((at, width, next() & low_mask(width)));
            at += width as u64;
        }
        // Values whose bits cross from a chunk into the next.
        let chunk_bits = CHUNK_WORDS as u64 * 64;
        let crossing = [(chunk_bits - 3, 9), (2 * chunk_bits - 64, 64)];
        for bits_at in [
            puts.clone(),
            crossing.map(|(a, w)| (a, w, low_mask(w))).to_vec(),
        ] {
            let mut one = BitWriter::with_bits(bits);
            let mut chunked = ChunkedBitWriter::with_bits(bits);
            for &(at, width, value) in &bits_at {
                one.put(at, width, value);
                chunked.put_bits(at, width, value);
            }
            let parts = chunked.into_parts();
            assert_eq!(parts.len(), 3);
            assert_eq!(parts.concat(), one.into_bytes().to_vec());
        }
    }

    /// Copies `n` bits (fewer past the end of `raw`) from bit `from` of `raw` to bit `to` of a
    /// writer full of ones: the bits copied arrive, the ones around them stay.
    fn check_copy_bits(raw: &[u64], from: u64, to: u64, n: u64) -> Result<(), TestCaseError> {
        let src_bits = raw.len() as u64 * 64;
        let src = PackedBits::new(pack_values(raw.iter().copied(), 64), src_bits).unwrap();
        let from = from.min(src_bits);
        let n = n.min(src_bits - from);
        let mut dst = BitWriter::with_ones(to + n);
        dst.copy_bits(to, &src, from, n);
        for k in 0..n {
            prop_assert_eq!(dst.get(to + k, 1), src.get(from + k, 1));
        }
        if to > 0 {
            prop_assert_eq!(dst.get(to - 1, 1), 1, "bits before stay");
        }
        prop_assert_eq!(dst.get(to + n, 1), 1, "bits after stay");
        Ok(())
    }

    proptest! {
        #[test]
        fn pack_then_read_round_trips(width in 0u8..=64, raw in prop::collection::vec(any::<u64>(), 0..300)) {
            let values: Vec<u64> = raw.iter().map(|v| v & low_mask(width)).collect();
            let a = PackedArray::new(pack_values(values.iter().copied(), width), values.len() as u64, width).unwrap();
            for (i, v) in values.iter().enumerate() {
                prop_assert_eq!(a.get(i as u64), *v);
            }
        }

        #[test]
        fn copy_bits_moves_any_range(raw in prop::collection::vec(any::<u64>(), 1..20), from in 0u64..640, to in 0u64..640, n in 0u64..600) {
            check_copy_bits(&raw, from, to, n)?;
        }

        #[test]
        fn copy_bits_moves_ranges_aligned_alike(raw in prop::collection::vec(any::<u64>(), 1..20), words in 0u64..4, to in 0u64..640, n in 0u64..1200) {
            check_copy_bits(&raw, to % 64 + 64 * words, to, n)?;
        }

        #[test]
        fn from_le_bytes_copies_the_bits_asked_for(bytes in prop::collection::vec(any::<u8>(), 0..100), bits in 0u64..900) {
            let w = BitWriter::from_le_bytes(&bytes, bits);
            prop_assert_eq!(w.words.len() as u64, bits.div_ceil(64) + 1);
            for b in 0..(w.words.len() as u64 * 64) {
                let byte = (b / 8) as usize;
                let expected = b < bits && bytes.get(byte).is_some_and(|v| v >> (b % 8) & 1 == 1);
                prop_assert_eq!(w.get(b, 1) == 1, expected, "bit {}", b);
            }
        }

        #[test]
        fn set_overwrites_only_its_bits(width in 1u8..=64, raw in prop::collection::vec(any::<u64>(), 1..100), at in any::<prop::sample::Index>(), new in any::<u64>()) {
            let values: Vec<u64> = raw.iter().map(|v| v & low_mask(width)).collect();
            let mut w = BitWriter::with_bits(values.len() as u64 * width as u64);
            for (i, v) in values.iter().enumerate() { w.put(i as u64 * width as u64, width, *v); }
            let i = at.index(values.len());
            let new = new & low_mask(width);
            w.set(i as u64 * width as u64, width, new);
            let a = PackedArray::new(w.into_bytes(), values.len() as u64, width).unwrap();
            for (j, v) in values.iter().enumerate() {
                prop_assert_eq!(a.get(j as u64), if j == i { new } else { *v });
            }
        }
    }
}
