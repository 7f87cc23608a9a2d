//! How a write state keeps a record's words in memory: zigzag-encoded (so that small negative
//! numbers are small too), each in as many bytes as the record's largest word needs, after one
//! byte that says how many. Records mostly hold small numbers (ordinals, references, years), so
//! a record takes a few bytes per word instead of eight, and decoding is a fixed-width loop
//! without a branch per byte. The encoding is a bijection: two records are equal exactly when
//! their encodings are, so records are deduplicated, hashed and compared encoded, and decoded
//! only to be read.

#[inline]
fn zigzag(w: u64) -> u64 {
    (w << 1) ^ ((w as i64 >> 63) as u64)
}

#[inline]
fn unzigzag(z: u64) -> u64 {
    (z >> 1) ^ (z & 1).wrapping_neg()
}

/// Appends the encoding of `words` to `out`.
#[inline]
pub(crate) fn encode_words(words: &[u64], out: &mut Vec<u8>) {
    let widest = words.iter().fold(0, |acc, &w| acc | zigzag(w));
    let width = (64 - widest.leading_zeros()).div_ceil(8).max(1) as usize;
    out.reserve(1 + width * words.len() + 8);
    out.push(width as u8);
    for &w in words {
        // Eight bytes written and the unused ones dropped: a store of fixed size, where a
        // copy of `width` bytes would be a call.
        let at = out.len();
        out.extend_from_slice(&zigzag(w).to_le_bytes());
        out.truncate(at + width);
    }
}

/// Decodes `bytes` (a whole encoding made by [`encode_words`]) into `out`, cleared first.
#[inline]
pub(crate) fn decode_words<'a>(bytes: &[u8], out: &'a mut Vec<u64>) -> &'a [u64] {
    out.clear();
    // No bytes at all: an ordinal that holds no record.
    let Some((width, body)) = bytes.split_first() else {
        return out;
    };
    match width {
        1 => decode_fixed::<1>(body, out),
        2 => decode_fixed::<2>(body, out),
        3 => decode_fixed::<3>(body, out),
        4 => decode_fixed::<4>(body, out),
        5 => decode_fixed::<5>(body, out),
        6 => decode_fixed::<6>(body, out),
        7 => decode_fixed::<7>(body, out),
        _ => decode_fixed::<8>(body, out),
    }
    out
}

#[inline]
fn decode_fixed<const W: usize>(body: &[u8], out: &mut Vec<u64>) {
    out.extend(body.chunks_exact(W).map(|chunk| {
        let mut word = [0u8; 8];
        word[..W].copy_from_slice(chunk);
        unzigzag(u64::from_le_bytes(word))
    }));
}

/// The number of words `bytes` encodes.
#[inline]
pub(crate) fn count_words(bytes: &[u8]) -> usize {
    match bytes.split_first() {
        Some((&width, body)) => body.len() / width as usize,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_numbers_of_either_sign_take_one_byte_each() {
        let mut out = Vec::new();
        encode_words(&[0, 1, u64::MAX, 63, (-64i64) as u64], &mut out);
        assert_eq!(out.len(), 1 + 5);
        out.clear();
        encode_words(&[1, 128], &mut out);
        assert_eq!(out.len(), 1 + 2 * 2, "the widest word sets the width");
        out.clear();
        encode_words(&[u64::MAX >> 1, 1 << 63], &mut out);
        assert_eq!(out.len(), 1 + 2 * 8);
        out.clear();
        encode_words(&[], &mut out);
        assert_eq!((out.len(), count_words(&out)), (1, 0));
    }

    proptest! {
        /// Every sequence of words comes back whole, its count is known from the bytes, and
        /// two sequences are equal exactly when their encodings are.
        #[test]
        fn round_trips_and_keeps_equality(
            a in proptest::collection::vec(prop_oneof![any::<u64>(), 0u64..300], 0..20),
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
