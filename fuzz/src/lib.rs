//! What the fuzz targets share: re-sealing checksums as a hostile writer would, and reading
//! everything a state offers.

use hollow_core::raw::{FOOTER_LEN, HEADER_LEN, SECTION_ENTRY_LEN};
use hollow_core::{ReadState, Value};
use xxhash_rust::xxh3::xxh3_64;

/// Recomputes every section checksum and the footer, with the format's own layout constants.
pub fn reseal(blob: &mut [u8]) {
    let n = blob.len();
    if n < HEADER_LEN + FOOTER_LEN {
        return;
    }
    let le = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    let count_at = HEADER_LEN - 8;
    let count = u32::from_le_bytes(blob[count_at..count_at + 4].try_into().unwrap_or_default());
    for i in 0..(count as usize).min((n - HEADER_LEN - FOOTER_LEN) / SECTION_ENTRY_LEN) {
        let e = HEADER_LEN + SECTION_ENTRY_LEN * i;
        let (off, len) = (le(&blob[e + 8..e + 16]) as usize, le(&blob[e + 16..e + 24]) as usize);
        if off <= n - FOOTER_LEN && len <= n - FOOTER_LEN - off {
            let sum = xxh3_64(&blob[off..off + len]);
            blob[e + 24..e + 32].copy_from_slice(&sum.to_le_bytes());
        }
    }
    let sum = xxh3_64(&blob[..n - FOOTER_LEN]);
    blob[n - 8..].copy_from_slice(&sum.to_le_bytes());
}

/// Reads everything a state offers; errors are fine, panics are not.
pub fn read_everything(state: &ReadState) {
    let schema = state.schema().clone();
    for t in schema.types() {
        let count = state.record_count(t.name()).unwrap_or(0).min(256) as u32;
        for o in 0..count + 1 {
            let _ = state.get_as::<Value>(t.name(), o);
        }
        if let Ok(index) = state.primary_key_index(t.name()) {
            for k in -2..4i64 {
                let _ = index.find(&k);
            }
            let _ = index.find(&"key");
        }
    }
    let _ = state.checksum();
}


/// `content` as one zstd frame of raw (stored) blocks: what a hostile writer could put in a
/// compressed envelope without a compressor.
pub fn zstd_raw_frame(content: &[u8]) -> Vec<u8> {
    const MAX_BLOCK: usize = 128 << 10;
    let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD, 0xE0]; // magic; single segment, 8-byte size
    frame.extend_from_slice(&(content.len() as u64).to_le_bytes());
    let mut blocks = content.chunks(MAX_BLOCK).peekable();
    if blocks.peek().is_none() {
        frame.extend_from_slice(&[1, 0, 0]); // one last, empty raw block
    }
    while let Some(block) = blocks.next() {
        let header = ((block.len() as u32) << 3) | u32::from(blocks.peek().is_none());
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
        frame.extend_from_slice(block);
    }
    frame
}

/// A compressed envelope of codec 2 (a snapshot laid out by columns) around `laid_out`, whose
/// restored blob is declared `len` bytes long, its checksum valid.
pub fn columns_envelope(len: u64, laid_out: &[u8]) -> Vec<u8> {
    let mut b = b"HOLLOWZS".to_vec();
    b.extend_from_slice(&2u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&(laid_out.len() as u64).to_le_bytes());
    b.extend_from_slice(&zstd_raw_frame(laid_out));
    let sum = xxh3_64(&b);
    b.extend_from_slice(&sum.to_le_bytes());
    b
}
