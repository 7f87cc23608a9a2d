//! An LSD radix sort of entries by a range of the bits of a word they carry: linear time and
//! sequential memory traffic, for the index builds, whose keys are hashes.

/// Sorts `entries` by bits `low..low + bits` of `key(entry)` (stable), in 11-bit digits.
pub(crate) fn sort_by_bits<T: Copy + Default>(
    entries: &mut Vec<T>,
    key: impl Fn(&T) -> u64,
    low: u32,
    bits: u32,
) {
    const DIGIT: u32 = 11;
    let mut scratch = vec![T::default(); entries.len()];
    let mut shift = low;
    while shift < low + bits {
        let width = DIGIT.min(low + bits - shift);
        let mask = (1u64 << width) - 1;
        let mut counts = vec![0usize; 1 << width];
        for e in entries.iter() {
            counts[((key(e) >> shift) & mask) as usize] += 1;
        }
        let mut total = 0;
        for c in counts.iter_mut() {
            let here = *c;
            *c = total;
            total += here;
        }
        for &e in entries.iter() {
            let d = ((key(&e) >> shift) & mask) as usize;
            scratch[counts[d]] = e;
            counts[d] += 1;
        }
        std::mem::swap(entries, &mut scratch);
        shift += width;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_by_the_bits_asked_for_and_keeps_ties_in_order() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut entries: Vec<(u64, u64)> = (0..5000)
            .map(|i| {
                x = x.rotate_left(17).wrapping_mul(0xff51_afd7_ed55_8ccd);
                (x, i)
            })
            .collect();
        let mut expected = entries.clone();
        expected.sort_by_key(|e| e.0 >> 40);
        sort_by_bits(&mut entries, |e| e.0, 40, 24);
        assert_eq!(entries, expected);
        let mut small: Vec<(u64, u64)> = vec![(5, 0), (1, 1), (3, 2), (1, 3)];
        sort_by_bits(&mut small, |e| e.0, 0, 3);
        assert_eq!(small, vec![(1, 1), (1, 3), (3, 2), (5, 0)]);
    }
}
