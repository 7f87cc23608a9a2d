//! How fast the machine runs when the bench starts, so that figures of two runs can be told
//! apart from the machine's own drift: a virtual machine's speed moves by up to 2× from one
//! hour to the next, and a run whose `machine_*` figures read slow is a slow run of the
//! machine, not of the code. Two figures, each a chain of dependent steps that no core can
//! overlap: shifts and multiplications (the core's speed) and loads that miss the caches
//! (memory's). And two of the least index of the run's record count ([`LeastIndex`]): what
//! this machine lets lookups and a delta's update cost as the records grow.

use std::hint::black_box;
use std::time::Instant;

/// Steps of the core's chain timed: about a tenth of a second.
const CORE_STEPS: u64 = 100_000_000;
/// The pointer chase's buffer: past the caches of most machines (on this project's VM, a chase
/// over 8 MB reads 40 ns a load and over 32 MB 130-170).
const CHASE_BYTES: usize = 64 << 20;
/// A cache line: the chase visits one word of each line.
const LINE_WORDS: usize = 64 / std::mem::size_of::<u32>();

/// Nanoseconds per step of a chain of dependent shift-xor-multiplies.
pub fn core_ns() -> f64 {
    let mut x = black_box(1u64);
    let t = Instant::now();
    for _ in 0..CORE_STEPS {
        // Not linear, so that no compiler folds the chain into fewer steps.
        x = (x ^ (x >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    black_box(x);
    t.elapsed().as_secs_f64() * 1e9 / CORE_STEPS as f64
}

/// Nanoseconds per load of a chase through every cache line of [`CHASE_BYTES`] in a random
/// order (one cycle through all lines, Sattolo's shuffle), each load's address read by the one
/// before.
pub fn memory_ns() -> f64 {
    let lines = CHASE_BYTES / 64;
    let mut order: Vec<u32> = (0..lines as u32).collect();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..lines).rev() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        order.swap(i, (rng % i as u64) as usize);
    }
    // Sattolo's shuffle leaves one cycle: line `i` leads to line `order[i]`.
    let mut words = vec![0u32; lines * LINE_WORDS];
    for (line, &next) in order.iter().enumerate() {
        words[line * LINE_WORDS] = next * LINE_WORDS as u32;
    }
    let mut at = black_box(0u32);
    let t = Instant::now();
    for _ in 0..lines {
        at = words[at as usize];
    }
    black_box(at);
    t.elapsed().as_secs_f64() * 1e9 / lines as f64
}

/// The least an index of `n` integer keys can be: buckets of 4-byte ordinals, three quarters
/// full (as the primary key index's), probed linearly, each candidate's key compared in an
/// array of the keys (key `i + 1` at ordinal `i`, as the movies' ids). No index of `n` records
/// reads or writes less memory per key, so how its figures grow from 1 M to 10 M records is how
/// this machine's caches and memory let any index grow.
pub struct LeastIndex {
    /// The keys the index was built with, `1..=records`.
    records: u64,
    /// The key of each ordinal: the built ones, then those updates appended.
    keys: Vec<i64>,
    buckets: Vec<u32>,
}

impl LeastIndex {
    const EMPTY: u32 = u32::MAX;

    /// The index of the keys `1..=n`.
    pub fn of(n: u64) -> Self {
        let mut index = LeastIndex {
            records: n,
            keys: (1..=n as i64).collect(),
            buckets: vec![Self::EMPTY; (n + n / 3 + 1) as usize],
        };
        for ordinal in 0..n as usize {
            let mut at = index.home(index.keys[ordinal]);
            while index.buckets[at] != Self::EMPTY {
                at = index.next(at);
            }
            index.buckets[at] = ordinal as u32;
        }
        index
    }

    fn home(&self, key: i64) -> usize {
        let h = (key as u64 ^ (key as u64 >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        let h = (h ^ (h >> 33)).wrapping_mul(0xC4CE_B9FE_1A85_EC53);
        ((h as u128 * self.buckets.len() as u128) >> 64) as usize
    }

    fn next(&self, at: usize) -> usize {
        if at + 1 == self.buckets.len() {
            0
        } else {
            at + 1
        }
    }

    /// The bucket holding `key`'s ordinal.
    fn find(&self, key: i64) -> Option<usize> {
        let mut at = self.home(key);
        loop {
            let ordinal = self.buckets[at];
            if ordinal == Self::EMPTY {
                return None;
            }
            if self.keys[ordinal as usize] == key {
                return Some(at);
            }
            at = self.next(at);
        }
    }

    /// Nanoseconds per lookup of `ids`.
    pub fn lookup_ns(&self, ids: &[i64]) -> f64 {
        let t = Instant::now();
        let mut found = 0u64;
        for &id in ids {
            if let Some(at) = self.find(id) {
                found += self.buckets[at] as u64;
            }
        }
        black_box(found);
        t.elapsed().as_secs_f64() * 1e9 / ids.len().max(1) as f64
    }

    /// Milliseconds to give 1% of the keys (spread over the table) new ordinals, as a delta
    /// that changes 1% of the records under their keys does: each key found, its record
    /// appended, its bucket pointed at it, one key after another (nothing read ahead). The
    /// least memory any index's update by the bench's delta touches, so its growth from 1 M to
    /// 10 M records is how this machine lets a plain update grow, to set beside
    /// `apply_delta_ms`. The median of five rounds, each over other keys.
    pub fn update_ms(&mut self) -> f64 {
        const ROUNDS: u64 = 5;
        let n = self.records;
        let count = n / 100;
        self.keys.reserve((count * ROUNDS) as usize);
        let mut times: Vec<f64> = (0..ROUNDS)
            .map(|round| {
                let t = Instant::now();
                for i in round * count..(round + 1) * count {
                    // A multiplicative spread of the keys.
                    let key = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % n) as i64 + 1;
                    if let Some(at) = self.find(key) {
                        self.buckets[at] = self.keys.len() as u32;
                        self.keys.push(key);
                    }
                }
                black_box(&self.buckets);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    }
}
