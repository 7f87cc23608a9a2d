//! Any laid-out bytes in a compressed envelope of codec 2 (a snapshot laid out by columns, see
//! `hollow_core::raw::compressed`) yield an error or a state that reads without panics.
//!
//! The input's first 8 bytes are the length the envelope declares for the restored blob; the
//! rest is the layout, stored in raw zstd blocks with the envelope's checksum valid, so that
//! the fuzzer explores the layout rather than zstd or the checksum.
#![no_main]

use hollow_core::ReadState;
use hollow_fuzz::{columns_envelope, read_everything};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, laid_out)) = data.split_first_chunk::<8>() else {
        return;
    };
    // A length the layout does not justify is refused before anything is allocated for it.
    let envelope = columns_envelope(u64::from_le_bytes(*len), laid_out);
    if let Ok(state) = ReadState::from_snapshot(bytes::Bytes::from(envelope)) {
        read_everything(&state);
    }
});
