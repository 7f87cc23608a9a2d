//! Spreading independent pieces of work (the types of a state, the records of a type) over the
//! machine's cores.

use crate::bitset::Bitset;

/// Ordinals go to the cores in pieces of this many 64-ordinal words...
const PIECE_WORDS: usize = 2048;

/// ...when there are at least this many in all.
const PARALLEL_ORDINALS: u64 = 100_000;

/// Calls `each` with the ordinals of `population` in ascending order, in batches of up to
/// `batch`, on the machine's cores in pieces (each with its own `S`, a scratch space); what
/// each piece appended to its vector, pieces in order.
pub(crate) fn map_ordinals<T: Send, S: Default>(
    population: &Bitset,
    batch: usize,
    each: impl Fn(&[u32], &mut Vec<T>, &mut S) + Sync,
) -> Vec<Vec<T>> {
    map_pieces(population, |w| {
        let mut scratch = S::default();
        let mut out = Vec::with_capacity(w.len() * 64);
        let mut ordinals = Vec::with_capacity(batch);
        for o in population.iter_words(w) {
            ordinals.push(o as u32);
            if ordinals.len() == batch {
                each(&ordinals, &mut out, &mut scratch);
                ordinals.clear();
            }
        }
        if !ordinals.is_empty() {
            each(&ordinals, &mut out, &mut scratch);
        }
        out
    })
}

/// Calls `work` with the words of `population` in pieces (ranges of 64-ordinal words, for
/// [`Bitset::iter_words`]), on the machine's cores; the results, pieces in order.
pub(crate) fn map_pieces<R: Send>(
    population: &Bitset,
    work: impl Fn(std::ops::Range<usize>) -> R + Sync,
) -> Vec<R> {
    let words = (population.len() as usize).div_ceil(64);
    let pieces: Vec<std::ops::Range<usize>> = word_pieces(words, PIECE_WORDS).collect();
    map_balanced(pieces, |w| (w.len() * 64) as u64, PARALLEL_ORDINALS, work)
}

/// `0..words` in ranges of `piece_words`.
fn word_pieces(words: usize, piece_words: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..words)
        .step_by(piece_words)
        .map(move |w| w..(w + piece_words).min(words))
}

/// Calls `work` with the words of `set` (ranges of 64-ordinal words, for
/// [`Bitset::iter_words_minus`]) in pieces that hold ordinals not in `minus`, on the machine's
/// cores when there are `min_total` such ordinals or more; the results, pieces in order. For
/// work on what changed, which may sit in a few pieces of a large set: the pieces are small,
/// and weighed by the ordinals they hold ([`Bitset::count_words_minus`]).
pub(crate) fn map_difference<R: Send>(
    set: &Bitset,
    minus: &Bitset,
    min_total: u64,
    work: impl Fn(std::ops::Range<usize>) -> R + Sync,
) -> Vec<R> {
    const DIFFERENCE_PIECE_WORDS: usize = 256;
    let pieces: Vec<(std::ops::Range<usize>, u64)> =
        word_pieces(set.word_count(), DIFFERENCE_PIECE_WORDS)
            .map(|piece| (piece.clone(), set.count_words_minus(minus, piece)))
            .filter(|piece| piece.1 > 0)
            .collect();
    map_balanced(pieces, |piece| piece.1, min_total, |(piece, _)| work(piece))
}

/// Runs `work` on every item and returns the results in item order. When the items weigh
/// `min_total` or more in all, they are spread over the machine's cores in bins of about equal
/// weight (heaviest first, each into the lightest bin); the caller's thread takes one bin.
pub(crate) fn map_balanced<T: Send, R: Send>(
    items: Vec<T>,
    weight: impl Fn(&T) -> u64,
    min_total: u64,
    work: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let weights: Vec<u64> = items.iter().map(&weight).collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bins_wanted = if weights.iter().sum::<u64>() < min_total {
        1
    } else {
        cores.min(items.len()).max(1)
    };
    let mut order: Vec<(usize, u64, T)> = items
        .into_iter()
        .zip(weights)
        .enumerate()
        .map(|(i, (item, w))| (i, w, item))
        .collect();
    order.sort_by_key(|e| std::cmp::Reverse(e.1));
    let mut bins: Vec<(u64, Vec<(usize, T)>)> = (0..bins_wanted).map(|_| (0, Vec::new())).collect();
    for (i, w, item) in order {
        if let Some(bin) = bins.iter_mut().min_by_key(|b| b.0) {
            bin.0 += w;
            bin.1.push((i, item));
        }
    }
    let run = |bin: Vec<(usize, T)>| -> Vec<(usize, R)> {
        bin.into_iter().map(|(i, item)| (i, work(item))).collect()
    };
    let mut bins = bins.into_iter().map(|b| b.1);
    let first = bins.next().unwrap_or_default();
    let mut results: Vec<(usize, R)> = std::thread::scope(|s| {
        let others: Vec<_> = bins.map(|bin| s.spawn(|| run(bin))).collect();
        let mut results = run(first);
        for other in others {
            results.extend(
                other
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            );
        }
        results
    });
    results.sort_by_key(|r| r.0);
    results.into_iter().map(|r| r.1).collect()
}

#[cfg(test)]
mod tests {
    use super::{map_balanced, map_difference};
    use crate::bitset::Bitset;

    #[test]
    fn the_difference_comes_back_in_order_on_one_thread_or_several() {
        let (mut set, mut minus) = (Bitset::with_len(100_000), Bitset::with_len(60_000));
        (0..100_000).step_by(3).for_each(|o| set.insert(o));
        (0..60_000).for_each(|o| minus.insert(o));
        let expected: Vec<u64> = (60_000..100_000).filter(|o| o % 3 == 0).collect();
        for min_total in [0, u64::MAX] {
            let pieces = map_difference(&set, &minus, min_total, |words| {
                set.iter_words_minus(&minus, words).collect::<Vec<_>>()
            });
            assert!(
                pieces.iter().all(|p| !p.is_empty()),
                "no piece without ordinals"
            );
            assert_eq!(pieces.concat(), expected);
        }
    }

    #[test]
    fn results_come_back_in_item_order_on_one_thread_or_several() {
        let items: Vec<u64> = (0..20).map(|i| (i * 7919) % 101).collect();
        let expected: Vec<u64> = items.iter().map(|i| i * i).collect();
        assert_eq!(
            map_balanced(items.clone(), |&i| i, u64::MAX, |i| i * i),
            expected
        );
        assert_eq!(map_balanced(items, |&i| i, 0, |i| i * i), expected);
        assert!(map_balanced(Vec::<u64>::new(), |&i| i, 0, |i| i).is_empty());
    }
}
