//! Any bytes given to `apply_delta` of a valid state yield an error or a state that reads
//! without panics, and never change the state they were applied to.
//!
//! The origin is the seed `seeds/origin-nodes` (the state the seed `seeds/delta-nodes` applies
//! to); checksums of the input are recomputed first, so the fuzzer explores the structure.
#![no_main]

use std::sync::LazyLock;

use hollow_core::ReadState;
use libfuzzer_sys::fuzz_target;
use hollow_fuzz::{read_everything, reseal};

static ORIGIN: LazyLock<(ReadState, u64)> = LazyLock::new(|| {
    let blob = include_bytes!("../seeds/origin-nodes");
    let state = ReadState::from_snapshot(bytes::Bytes::from_static(blob)).expect("the seed loads");
    let checksum = state.checksum();
    (state, checksum)
});

fuzz_target!(|data: &[u8]| {
    let (origin, checksum) = &*ORIGIN;
    let mut blob = data.to_vec();
    reseal(&mut blob);
    if let Ok(next) = origin.apply_delta(bytes::Bytes::from(blob)) {
        read_everything(&next);
    }
    assert_eq!(origin.checksum(), *checksum, "the origin state changed");
});
