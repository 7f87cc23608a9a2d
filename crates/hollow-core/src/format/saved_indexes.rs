//! Indexes saved beside the snapshot they were built on, so that loading that snapshot again
//! maps its primary key indexes and copies its hash indexes instead of building them.
//!
//! ```text
//! header  (40 B)  magic "HOLLOWIX" | layout version u32 | table count u32 |
//!                 snapshot destination version u64 | tag u64 | footer checksum u64
//! tables  each:   type id u32 | ordinal bits u8 | entry bits u8 | has duplicate u8 | 0 u8 |
//!                 capacity u64 | an empty bucket u64 | duplicate ordinals u32 u32 |
//!                 bucket bytes u64 | the buckets (a multiple of 8 bytes)
//! hash indexes    count u32 | each: type id u32 | shard bits u32 | field count u32 |
//!                 per field: byte length u32, UTF-8 | per shard: key count u64 |
//!                 posting count u64 | per key: hash u64, hash low u32, run length u32 |
//!                 the postings, u32 each | padding to 8 bytes
//! footer  (8 B)   xxh3 of every byte before it
//! ```
//! All integers are little-endian; the buckets start 8-byte aligned. The layout version names
//! how keys are hashed and placed ([`LAYOUT_VERSION`]): a table saved by a library that hashed
//! otherwise would answer lookups wrongly, so one of another version is refused, never read.
//! A hash index is saved as its keys (their hashes, in order) and postings, and its tables are
//! laid out again on load. Anything wrong is an [`Error::SavedIndexes`]; the caller then builds
//! the indexes instead.

use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_64;

use crate::byte_io::{ByteReader, ByteWriter};
use crate::error::{Error, Result};
use crate::StateId;

/// The version of the primary key index's hashing and bucket layout, and of the hash index's
/// key hashing. Bump it with any change to how a key is hashed, which bucket or shard it goes
/// to or how a bucket is packed; the tests `index::tests::the_saved_layout_is_frozen` and
/// `hash_index::tests::the_saved_key_hashes_are_frozen` fail until it is. (2: hash indexes
/// saved too.)
pub const LAYOUT_VERSION: u32 = 2;

const MAGIC: [u8; 8] = *b"HOLLOWIX";

/// One primary key index's table, as saved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedTable {
    /// The type indexed.
    pub type_id: u32,
    /// Bits of the ordinal part of a bucket.
    pub ordinal_bits: u8,
    /// Bits of a bucket.
    pub entry_bits: u8,
    /// Number of buckets.
    pub capacity: u64,
    /// A bucket that is empty, so that every probe ends.
    pub empty_bucket: u64,
    /// Two ordinals with the same key, as found while building.
    pub duplicate: Option<(u32, u32)>,
    /// The packed buckets, padding word included.
    pub buckets: Bytes,
}

/// One hash index, as saved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedHashIndex {
    /// The type indexed.
    pub type_id: u32,
    /// Its key's field paths.
    pub fields: Vec<String>,
    /// The index has `1 << shard_bits` shards.
    pub shard_bits: u32,
    /// Per shard, its keys and their records.
    pub shards: Vec<SavedShard>,
}

/// One shard of a saved hash index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SavedShard {
    /// Per key, in the order of the table: the two words of its hash and the length of its run
    /// of the postings.
    pub keys: Vec<(u64, u32, u32)>,
    /// The ordinals of the keys' records, run after run.
    pub postings: Vec<u32>,
}

/// Saved indexes: which snapshot they belong to, and their tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedIndexes {
    /// The state the snapshot holds.
    pub snapshot: StateId,
    /// The snapshot's footer checksum.
    pub footer_checksum: u64,
    /// One table per indexed type, by type id.
    pub tables: Vec<SavedTable>,
    /// The hash indexes the state had.
    pub hash_indexes: Vec<SavedHashIndex>,
}

impl SavedIndexes {
    /// The saved form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = ByteWriter::new();
        w.bytes(&MAGIC);
        w.u32(LAYOUT_VERSION);
        w.u32(self.tables.len() as u32);
        w.u64(self.snapshot.version);
        w.u64(self.snapshot.tag);
        w.u64(self.footer_checksum);
        for t in &self.tables {
            w.u32(t.type_id);
            w.u8(t.ordinal_bits);
            w.u8(t.entry_bits);
            w.u8(t.duplicate.is_some() as u8);
            w.u8(0);
            w.u64(t.capacity);
            w.u64(t.empty_bucket);
            let (a, b) = t.duplicate.unwrap_or_default();
            w.u32(a);
            w.u32(b);
            w.u64(t.buckets.len() as u64);
            w.bytes(&t.buckets);
            w.align8();
        }
        w.u32(self.hash_indexes.len() as u32);
        for h in &self.hash_indexes {
            w.u32(h.type_id);
            w.u32(h.shard_bits);
            w.u32(h.fields.len() as u32);
            for f in &h.fields {
                w.u32(f.len() as u32);
                w.bytes(f.as_bytes());
            }
            for shard in &h.shards {
                w.u64(shard.keys.len() as u64);
                w.u64(shard.postings.len() as u64);
                for &(hash, low, run) in &shard.keys {
                    w.u64(hash);
                    w.u32(low);
                    w.u32(run);
                }
                shard.postings.iter().for_each(|&o| w.u32(o));
            }
            w.align8();
        }
        let mut bytes = w.into_inner();
        let checksum = xxh3_64(&bytes);
        bytes.extend_from_slice(&checksum.to_le_bytes());
        bytes
    }

    /// Reads saved indexes, checking their checksum and layout version. The tables' buckets are
    /// slices of `saved` (a mapped file stays mapped).
    pub fn decode(saved: Bytes) -> Result<Self> {
        let unusable = |why: String| Error::SavedIndexes(why);
        let Some(footer_at) = saved.len().checked_sub(8) else {
            return Err(unusable(format!("{} bytes is too short", saved.len())));
        };
        let stored = u64::from_le_bytes(saved[footer_at..].try_into().unwrap_or_default());
        let computed = xxh3_64(&saved[..footer_at]);
        if stored != computed {
            return Err(unusable(format!(
                "checksum mismatch: stored {stored:#018x}, computed {computed:#018x}"
            )));
        }
        let mut r = ByteReader::new(saved.slice(..footer_at), 0);
        let read = |r: &mut ByteReader| -> Result<Self> {
            let magic = r.take_slice("magic", 8)?;
            if magic != MAGIC.as_slice() {
                return Err(unusable(format!("not saved indexes (magic {magic:?})")));
            }
            let layout = r.u32("layout version")?;
            if layout != LAYOUT_VERSION {
                return Err(unusable(format!(
                    "saved with index layout {layout}, this library uses {LAYOUT_VERSION}"
                )));
            }
            let count = r.u32("table count")?;
            let snapshot = StateId::new(r.u64("snapshot version")?, r.u64("snapshot tag")?);
            let footer_checksum = r.u64("footer checksum")?;
            let mut tables = Vec::new();
            for _ in 0..count {
                let type_id = r.u32("type id")?;
                let ordinal_bits = r.u8("ordinal bits")?;
                let entry_bits = r.u8("entry bits")?;
                let has_duplicate = r.u8("has duplicate")? != 0;
                r.u8("reserved")?;
                let capacity = r.u64("capacity")?;
                let empty_bucket = r.u64("empty bucket")?;
                let duplicate = (r.u32("duplicate")?, r.u32("duplicate")?);
                let len = r.u64("bucket bytes")?;
                let buckets = r.take("buckets", len)?;
                r.align8("buckets")?;
                tables.push(SavedTable {
                    type_id,
                    ordinal_bits,
                    entry_bits,
                    capacity,
                    empty_bucket,
                    duplicate: has_duplicate.then_some(duplicate),
                    buckets,
                });
            }
            let mut hash_indexes = Vec::new();
            for _ in 0..r.u32("hash index count")? {
                hash_indexes.push(read_hash_index(r)?);
            }
            r.finish("saved indexes")?;
            Ok(Self {
                snapshot,
                footer_checksum,
                tables,
                hash_indexes,
            })
        };
        read(&mut r).map_err(|e| match e {
            Error::SavedIndexes(_) => e,
            other => unusable(other.to_string()),
        })
    }
}

/// A little-endian integer of up to 8 bytes.
fn le(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0, |v, &b| v << 8 | b as u64)
}

/// Reads one saved hash index (its counts bounded by the bytes there are).
fn read_hash_index(r: &mut ByteReader) -> Result<SavedHashIndex> {
    let type_id = r.u32("hash index type id")?;
    let shard_bits = r.u32("hash index shard bits")?;
    if shard_bits > 16 {
        return Err(Error::SavedIndexes(format!(
            "a hash index of 2^{shard_bits} shards"
        )));
    }
    let mut fields = Vec::new();
    for _ in 0..r.u32("hash index field count")? {
        let len = r.u32("field name length")?;
        let name = r.take_slice("field name", len as u64)?;
        let name = std::str::from_utf8(name)
            .map_err(|_| Error::SavedIndexes("a field name that is not UTF-8".into()))?;
        fields.push(name.to_string());
    }
    let mut shards = Vec::with_capacity(1 << shard_bits);
    for _ in 0..1u32 << shard_bits {
        let keys = r.u64("key count")?;
        let postings = r.u64("posting count")?;
        let key_bytes = r.take_slice("keys", keys.saturating_mul(16))?;
        let keys = key_bytes
            .chunks_exact(16)
            .map(|k| (le(&k[..8]), le(&k[8..12]) as u32, le(&k[12..]) as u32))
            .collect();
        let posting_bytes = r.take_slice("postings", postings.saturating_mul(4))?;
        let postings = posting_bytes
            .chunks_exact(4)
            .map(|p| le(p) as u32)
            .collect();
        shards.push(SavedShard { keys, postings });
    }
    r.align8("hash index")?;
    Ok(SavedHashIndex {
        type_id,
        fields,
        shard_bits,
        shards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SavedIndexes {
        SavedIndexes {
            snapshot: StateId::new(7, 0xA7),
            footer_checksum: 0xF00,
            tables: vec![SavedTable {
                type_id: 2,
                ordinal_bits: 5,
                entry_bits: 9,
                capacity: 11,
                empty_bucket: 3,
                duplicate: Some((1, 4)),
                buckets: Bytes::from(vec![0xFF; 24]),
            }],
            hash_indexes: vec![SavedHashIndex {
                type_id: 1,
                fields: vec!["cast.id".into(), "country".into()],
                shard_bits: 1,
                shards: vec![
                    SavedShard {
                        keys: vec![(0x13, 7, 2), (0x8001, 9, 1)],
                        postings: vec![3, 5, 4],
                    },
                    SavedShard::default(),
                ],
            }],
        }
    }

    #[test]
    fn round_trip() {
        let saved = sample();
        let bytes = saved.encode();
        assert_eq!(bytes.len() % 8, 0);
        assert_eq!(SavedIndexes::decode(Bytes::from(bytes)).unwrap(), saved);
    }

    /// Every truncation and every flipped byte is an error, and a version of another layout
    /// is refused even with its checksum made good.
    #[test]
    fn damage_and_other_layouts_are_refused() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            let e = SavedIndexes::decode(Bytes::copy_from_slice(&bytes[..cut])).unwrap_err();
            assert!(matches!(e, Error::SavedIndexes(_)), "cut {cut}: {e}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(SavedIndexes::decode(Bytes::from(b)).is_err(), "flip {i}");
        }
        let mut other = bytes.clone();
        other[8] = 3;
        let at = other.len() - 8;
        let checksum = xxh3_64(&other[..at]);
        other[at..].copy_from_slice(&checksum.to_le_bytes());
        let e = SavedIndexes::decode(Bytes::from(other)).unwrap_err();
        assert!(e.to_string().contains("index layout 3"), "{e}");
    }
}
