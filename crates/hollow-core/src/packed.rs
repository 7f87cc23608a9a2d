//! Bit-packed storage: values of a fixed bit width laid end to end in little-endian 64-bit words,
//! followed by one padding word so that every read is a branch-free two-word load, shift and mask.
//!
//! Reading is hand-written rather than done with `bitvec`: for this access pattern bitvec measured
//! 2.2–5.5× slower (see DESIGN.md). `bitvec` is not used anywhere on the read path.

use bytes::Bytes;

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
        let mut w = Self::with_bits(bits);
        let view: &mut [u8] = bytemuck::cast_slice_mut(&mut w.words);
        let n = view.len().min(bytes.len());
        view[..n].copy_from_slice(&bytes[..n]);
        w.words.iter_mut().for_each(|x| *x = u64::from_le(*x));
        let data_words = bits.div_ceil(64) as usize;
        if let Some(last) = w.words.get_mut(data_words.saturating_sub(1)) {
            if !bits.is_multiple_of(64) && data_words > 0 {
                *last &= low_mask((bits % 64) as u8);
            }
        }
        w.words[data_words..].iter_mut().for_each(|x| *x = 0);
        w
    }

    /// Copies `nbits` bits from `src` at `src_bit` to `dst_bit`, overwriting, 64 bits at a time.
    pub fn copy_bits(&mut self, dst_bit: u64, src: &PackedBits, src_bit: u64, nbits: u64) {
        let mut done = 0;
        while done < nbits {
            let n = (nbits - done).min(64) as u8;
            self.set(dst_bit + done, n, src.get(src_bit + done, n));
            done += n as u64;
        }
    }

    /// Reads `width` bits at bit `bit`.
    #[inline(always)]
    pub fn get(&self, bit: u64, width: u8) -> u64 {
        let word = (bit >> 6) as usize;
        let shift = (bit & 63) as u32;
        let lo = self.words[word];
        let hi = self.words.get(word + 1).copied().unwrap_or(0);
        ((lo >> shift) | ((hi << 1) << (63 - shift))) & low_mask(width)
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
        if width == 0 {
            return;
        }
        let word = (bit >> 6) as usize;
        let shift = (bit & 63) as u32;
        let mask = low_mask(width);
        self.words[word] = (self.words[word] & !(mask << shift)) | (value << shift);
        if shift + width as u32 > 64 {
            let spill = 64 - shift;
            let hi_mask = mask >> spill;
            self.words[word + 1] = (self.words[word + 1] & !hi_mask) | (value >> spill);
        }
    }

    /// The words as little-endian bytes, without copying them.
    pub fn into_bytes(mut self) -> Bytes {
        self.words.iter_mut().for_each(|x| *x = x.to_le());
        Bytes::from_owner(LeWords(self.words))
    }
}

/// Words already in little-endian byte order, viewed as bytes.
struct LeWords(Vec<u64>);

impl AsRef<[u8]> for LeWords {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
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
            let src_bits = raw.len() as u64 * 64;
            let src = PackedBits::new(pack_values(raw.iter().copied(), 64), src_bits).unwrap();
            let n = n.min(src_bits.saturating_sub(from));
            let from = from.min(src_bits);
            let mut dst = BitWriter::with_ones(to + n);
            dst.copy_bits(to, &src, from, n);
            for k in 0..n {
                prop_assert_eq!(dst.get(to + k, 1), src.get(from + k, 1));
            }
            if to > 0 { prop_assert_eq!(dst.get(to - 1, 1), 1, "bits before stay"); }
            prop_assert_eq!(dst.get(to + n, 1), 1, "bits after stay");
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
