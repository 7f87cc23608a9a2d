//! How a write state keeps a record's words in memory: each word as a zigzag LEB128 varint, so
//! that the small numbers records mostly hold (ordinals, references, years, small negative
//! numbers) take one to three bytes instead of eight. The encoding is a bijection: two records
//! are equal exactly when their encodings are, so records are deduplicated, hashed and compared
//! encoded, and decoded only to be written out.

/// Appends the encoding of `words` to `out`.
#[inline]
pub(crate) fn encode_words(words: &[u64], out: &mut Vec<u8>) {
    for &w in words {
        let mut v = (w << 1) ^ ((w as i64 >> 63) as u64);
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
}

/// Decodes `bytes` (a whole encoding made by [`encode_words`]) into `out`, cleared first.
#[inline]
pub(crate) fn decode_words<'a>(bytes: &[u8], out: &'a mut Vec<u64>) -> &'a [u64] {
    out.clear();
    let mut v = 0u64;
    let mut shift = 0;
    for &b in bytes {
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            out.push((v >> 1) ^ (v & 1).wrapping_neg());
            v = 0;
            shift = 0;
        } else {
            shift += 7;
        }
    }
    out
}

/// The number of words `bytes` encodes: one per byte that ends a varint.
#[inline]
pub(crate) fn count_words(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b < 0x80).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_numbers_of_either_sign_take_few_bytes() {
        let mut out = Vec::new();
        encode_words(&[0, 1, u64::MAX, 63, 64, (-64i64) as u64], &mut out);
        assert_eq!(out.len(), 1 + 1 + 1 + 1 + 2 + 1);
        out.clear();
        encode_words(&[u64::MAX >> 1, 1 << 63], &mut out);
        assert_eq!(out.len(), 20, "the extremes take ten bytes each");
    }

    proptest! {
        /// Every sequence of words comes back whole, its count is known from the bytes, and
        /// two sequences are equal exactly when their encodings are.
        #[test]
        fn round_trips_and_keeps_equality(
            a in proptest::collection::vec(any::<u64>(), 0..20),
            b in proptest::collection::vec(prop_oneof![any::<u64>(), 0u64..300], 0..20),
        ) {
            let (mut ea, mut eb, mut words) = (Vec::new(), Vec::new(), Vec::new());
            encode_words(&a, &mut ea);
            encode_words(&b, &mut eb);
            prop_assert_eq!(decode_words(&ea, &mut words), &a[..]);
            prop_assert_eq!(count_words(&ea), a.len());
            prop_assert_eq!(decode_words(&eb, &mut words), &b[..]);
            prop_assert_eq!(a == b, ea == eb);
        }
    }
}
