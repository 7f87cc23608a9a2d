//! How fast the machine runs when the bench starts, so that figures of two runs can be told
//! apart from the machine's own drift: a virtual machine's speed moves by up to 2× from one
//! hour to the next, and a run whose `machine_*` figures read slow is a slow run of the
//! machine, not of the code. Two figures, each a chain of dependent steps that no core can
//! overlap: shifts and multiplications (the core's speed) and loads that miss the caches (memory's).

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
