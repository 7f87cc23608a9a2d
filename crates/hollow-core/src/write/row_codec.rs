//! How a write state keeps a record's words in memory: zigzag-encoded (so that small negative
//! numbers are small too), each word in a few bytes instead of eight. Records mostly hold small
//! numbers (ordinals, references, years), and the write state's arenas are the larger part of a
//! producer's memory.
//!
//! Two layouts, chosen by the record's first byte:
//!
//! - **uniform** (first byte 1 to 8): every word in as many bytes as the record's widest word
//!   needs. Collections' elements (ordinals of one type) and short rows take this one; it
//!   decodes in a fixed-width loop.
//! - **mixed** (first byte 8 + n, for n of 1 to [`MIXED_MAX_WORDS`] words): then 3 bits per
//!   word giving its width less one, then each word in its own width. An object row whose
//!   fields differ in size (an id, a year, the bits of a float) takes this one when it is
//!   shorter.
//!
//! The encoding is a function of the words and decodes back to them, so two records are equal
//! exactly when their encodings are: records are deduplicated, hashed and compared encoded, and
//! decoded only to be read.

/// The most words a mixed record holds: their 3-bit widths fit one `u64`.
const MIXED_MAX_WORDS: usize = 21;

#[inline]
fn zigzag(w: u64) -> u64 {
    (w << 1) ^ ((w as i64 >> 63) as u64)
}

#[inline]
fn unzigzag(z: u64) -> u64 {
    (z >> 1) ^ (z & 1).wrapping_neg()
}

/// Bytes that the zigzag-encoded word `z` needs (at least one).
#[inline]
fn width_of(z: u64) -> usize {
    (64 - z.leading_zeros()).div_ceil(8).max(1) as usize
}

/// Appends the low `width` bytes of `z` to `out`.
#[inline]
fn push_word(z: u64, width: usize, out: &mut Vec<u8>) {
    // Eight bytes written and the unused ones dropped: a store of fixed size, where a copy of
    // `width` bytes would be a call.
    let at = out.len();
    out.extend_from_slice(&z.to_le_bytes());
    out.truncate(at + width);
}

/// Appends the encoding of `words` to `out`.
#[inline]
pub(crate) fn encode_words(words: &[u64], out: &mut Vec<u8>) {
    let n = words.len();
    if n > MIXED_MAX_WORDS {
        let widest = words.iter().fold(0, |acc, &w| acc | zigzag(w));
        return encode_uniform(words, width_of(widest), out);
    }
    let mut widths = [0u8; MIXED_MAX_WORDS];
    let (mut widest, mut body, mut codes) = (1, 0, 0u64);
    for (i, &w) in words.iter().enumerate() {
        let width = width_of(zigzag(w));
        widths[i] = width as u8;
        widest = widest.max(width);
        body += width;
        codes |= ((width - 1) as u64) << (3 * i);
    }
    let codes_len = (3 * n).div_ceil(8);
    if codes_len + body >= widest * n {
        return encode_uniform(words, widest, out);
    }
    out.reserve(1 + codes_len + body + 8);
    out.push((8 + n) as u8);
    push_word(codes, codes_len, out);
    for (&w, &width) in words.iter().zip(&widths) {
        push_word(zigzag(w), width as usize, out);
    }
}

/// Appends the uniform encoding of `words`, each in `width` bytes.
#[inline]
fn encode_uniform(words: &[u64], width: usize, out: &mut Vec<u8>) {
    out.reserve(1 + width * words.len() + 8);
    out.push(width as u8);
    for &w in words {
        push_word(zigzag(w), width, out);
    }
}

/// Decodes `bytes` (a whole encoding made by [`encode_words`]) into `out`, cleared first.
#[inline]
pub(crate) fn decode_words<'a>(bytes: &[u8], out: &'a mut Vec<u64>) -> &'a [u64] {
    out.clear();
    // No bytes at all: an ordinal that holds no record.
    let Some((&first, body)) = bytes.split_first() else {
        return out;
    };
    match first {
        1 => decode_fixed::<1>(body, out),
        2 => decode_fixed::<2>(body, out),
        3 => decode_fixed::<3>(body, out),
        4 => decode_fixed::<4>(body, out),
        5 => decode_fixed::<5>(body, out),
        6 => decode_fixed::<6>(body, out),
        7 => decode_fixed::<7>(body, out),
        8 => decode_fixed::<8>(body, out),
        _ => decode_mixed(first as usize - 8, body, out),
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

/// The little-endian number in `bytes[at..at + width]`.
#[inline]
fn read_word(bytes: &[u8], at: usize, width: usize) -> u64 {
    let eight = |from: usize| u64::from_le_bytes(bytes[from..from + 8].try_into().expect("8"));
    let mask = u64::MAX >> (64 - 8 * width);
    // Eight bytes loaded and the ones outside the word dropped: one load, no call. A word
    // near the end is read from the last eight bytes.
    if at + 8 <= bytes.len() {
        eight(at) & mask
    } else if let Some(last) = bytes.len().checked_sub(8) {
        (eight(last) >> (8 * (at - last))) & mask
    } else {
        bytes[at..at + width]
            .iter()
            .rev()
            .fold(0, |word, &b| word << 8 | b as u64)
    }
}

#[inline]
fn decode_mixed(n: usize, body: &[u8], out: &mut Vec<u64>) {
    let codes_len = (3 * n).div_ceil(8);
    let mut codes = read_word(body, 0, codes_len);
    let mut at = codes_len;
    out.reserve(n);
    for _ in 0..n {
        let width = (codes & 7) as usize + 1;
        codes >>= 3;
        out.push(unzigzag(read_word(body, at, width)));
        at += width;
    }
}

/// The number of words `bytes` encodes.
#[inline]
pub(crate) fn count_words(bytes: &[u8]) -> usize {
    match bytes.split_first() {
        Some((&width @ 1..=8, body)) => body.len() / width as usize,
        Some((&mixed, _)) => mixed as usize - 8,
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

    /// A row whose words differ in size (a movie: id, title, year, runtime, the bits of a
    /// float rating, country, genres, cast) takes each word in its own width when that is
    /// shorter, and comes back whole.
    #[test]
    fn rows_of_mixed_widths_take_each_word_in_its_own() {
        let row = [
            9_000_000,
            150_000,
            1994,
            142,
            0x4090_0000,
            3,
            4_000,
            6_000_000,
        ];
        let mut out = Vec::new();
        encode_words(&row, &mut out);
        // Widths of the zigzag-encoded words: 4, 3, 2, 2, 4, 1, 2, 3 bytes; 3 bytes of widths.
        assert_eq!(out.len(), 1 + 3 + 21, "against 1 + 8 * 4 uniform");
        assert_eq!((out[0], count_words(&out)), (8 + 8, 8));
        let mut words = Vec::new();
        assert_eq!(decode_words(&out, &mut words), &row[..]);
        // Read from inside a larger buffer, as from an arena, where eight-byte loads reach on.
        let mut arena = out.clone();
        arena.extend_from_slice(&[0xff; 16]);
        assert_eq!(decode_words(&arena[..out.len()], &mut words), &row[..]);

        // Words of one width stay uniform, and so do rows longer than a mixed one holds.
        for row in [
            vec![300u64; 8],
            vec![1; 30].into_iter().chain([1 << 40]).collect(),
        ] {
            out.clear();
            encode_words(&row, &mut out);
            assert!((1..=8).contains(&out[0]), "{row:?}");
            assert_eq!(decode_words(&out, &mut words), &row[..]);
        }
    }

    /// Words of every width, small ones (of either sign) most often.
    fn words() -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            0u64..300,
            (0u32..64).prop_map(|bits| 1u64 << bits),
            (-300i64..0).prop_map(|w| w as u64),
        ]
    }

    proptest! {
        /// Every sequence of words comes back whole, its count is known from the bytes, and
        /// two sequences are equal exactly when their encodings are.
        #[test]
        fn round_trips_and_keeps_equality(
            a in proptest::collection::vec(words(), 0..26),
            b in proptest::collection::vec(words(), 0..26),
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
