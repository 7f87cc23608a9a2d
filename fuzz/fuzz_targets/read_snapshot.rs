//! Any bytes given to the snapshot reader yield an error or a state that reads without panics.
//!
//! Random bytes almost never carry valid checksums, so the input's section checksums and footer
//! are recomputed first (as a hostile writer would): the fuzzer then explores the structure.
#![no_main]

use hollow_core::ReadState;
use hollow_fuzz::{read_everything, reseal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut blob = data.to_vec();
    reseal(&mut blob);
    if let Ok(state) = ReadState::from_snapshot(bytes::Bytes::from(blob)) {
        read_everything(&state);
    }
});
