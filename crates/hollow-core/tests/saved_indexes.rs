//! Indexes saved beside their snapshot and read back instead of built: the same lookups as
//! built indexes; refused (never misread) when saved for another snapshot, damaged, or when
//! the snapshot changed; and never a panic, whatever the bytes (nor a wrong record from a
//! primary key index).

use bytes::Bytes;
use hollow_core::{Error, ReadState, SchemaBuilder, SnapshotCheck, WriteState};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Category {
    id: i64,
    name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Product {
    category: Category,
    sku: String,
    price: i64,
}

/// Products keyed by a path and a string, categories by an int.
fn snapshot(version: u64, products: u32) -> Vec<u8> {
    write(schema().build().unwrap(), version, products)
}

fn schema() -> SchemaBuilder {
    SchemaBuilder::new()
        .add::<Product>()
        .primary_key("Product", &["category.id", "sku"])
        .primary_key("Category", &["id"])
}

/// `products` products in 40 categories, at 1,000 prices.
fn write(schema: hollow_core::Schema, version: u64, products: u32) -> Vec<u8> {
    let mut w = WriteState::new(schema);
    for i in 0..products {
        w.add(&Product {
            category: Category {
                id: (i % 40) as i64,
                name: format!("category {}", i % 40),
            },
            sku: format!("sku-{i}"),
            price: (i % 1000) as i64,
        })
        .unwrap();
    }
    w.write_snapshot(version).unwrap()
}

/// Every product and category is found at its own ordinal.
fn assert_finds_everything(state: &ReadState, products: u32) {
    let index = state.primary_key_index("Product").unwrap();
    for i in 0..products {
        let o = index
            .find(&((i % 40) as i64, format!("sku-{i}")))
            .unwrap()
            .unwrap();
        let p: Product = state.get_as("Product", o).unwrap();
        assert_eq!(p.price, (i % 1000) as i64);
    }
    assert_eq!(index.find(&(3i64, "sku-none")).unwrap(), None);
    let categories = state.primary_key_index("Category").unwrap();
    for id in 0..40i64 {
        let o = categories.find(&id).unwrap().unwrap();
        assert_eq!(state.get_as::<Category>("Category", o).unwrap().id, id);
    }
}

#[test]
fn saved_indexes_answer_as_built_ones() {
    let blob = Bytes::from(snapshot(1, 5000));
    let built = ReadState::from_snapshot(blob.clone()).unwrap();
    let saved = Bytes::from(built.save_indexes().unwrap());
    for check in [SnapshotCheck::Checksums, SnapshotCheck::UnchangedSinceSaved] {
        let read = ReadState::from_snapshot_with_saved_indexes(blob.clone(), saved.clone(), check)
            .unwrap();
        assert_finds_everything(&read, 5000);
        for t in ["Product", "Category"] {
            let (a, b) = (read.primary_key_index(t), built.primary_key_index(t));
            assert_eq!(a.unwrap().first_duplicate(), b.unwrap().first_duplicate());
        }
        // Saved again, they are the same bytes.
        assert_eq!(read.save_indexes().unwrap(), &saved[..]);
    }
}

/// A state reached by a delta has no snapshot to save indexes for.
#[test]
fn only_a_state_loaded_from_a_snapshot_saves_indexes() {
    let state = ReadState::from_snapshot(Bytes::from(snapshot(1, 100))).unwrap();
    let bare = ReadState::from_snapshot_without_indexes(Bytes::from(snapshot(1, 100))).unwrap();
    assert!(state.save_indexes().is_some());
    assert!(bare.save_indexes().is_none());
}

#[test]
fn indexes_saved_for_another_snapshot_are_refused() {
    let one = Bytes::from(snapshot(1, 1000));
    let saved = Bytes::from(
        ReadState::from_snapshot(one)
            .unwrap()
            .save_indexes()
            .unwrap(),
    );
    // Another version, and the same version with other records.
    for other in [snapshot(2, 1000), snapshot(1, 999)] {
        for check in [SnapshotCheck::Checksums, SnapshotCheck::UnchangedSinceSaved] {
            let e = ReadState::from_snapshot_with_saved_indexes(
                Bytes::from(other.clone()),
                saved.clone(),
                check,
            )
            .unwrap_err();
            assert!(
                matches!(e, Error::SavedIndexes(_) | Error::ChecksumMismatch { .. }),
                "{e}"
            );
        }
    }
}

/// A snapshot changed since its indexes were saved: verified, the change is caught; trusted
/// as unchanged (the caller's promise broken), it is still validated whole, never a panic.
#[test]
fn a_changed_snapshot_is_caught_by_its_checksums() {
    let blob = snapshot(1, 1000);
    let saved = Bytes::from(
        ReadState::from_snapshot(Bytes::from(blob.clone()))
            .unwrap()
            .save_indexes()
            .unwrap(),
    );
    let mut changed = blob.clone();
    let at = changed.len() / 2;
    changed[at] ^= 0x40;
    let e = ReadState::from_snapshot_with_saved_indexes(
        Bytes::from(changed.clone()),
        saved.clone(),
        SnapshotCheck::Checksums,
    )
    .unwrap_err();
    assert!(matches!(e, Error::ChecksumMismatch { .. }), "{e}");
    let _ = ReadState::from_snapshot_with_saved_indexes(
        Bytes::from(changed),
        saved,
        SnapshotCheck::UnchangedSinceSaved,
    );
}

/// Damaged saved indexes are refused; damaged ones whose checksum was made good again (as a
/// hostile writer would) are refused or answer lookups with the right record or none: a
/// candidate's key is always compared, and every probe ends.
#[test]
fn damaged_saved_indexes_never_answer_a_wrong_record() {
    let products = 300;
    let blob = Bytes::from(snapshot(1, products));
    let saved = ReadState::from_snapshot(blob.clone())
        .unwrap()
        .save_indexes()
        .unwrap();
    let footer_at = saved.len() - 8;
    let mut accepted = 0;
    for i in 0..footer_at {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut b = saved.clone();
            b[i] ^= mask;
            let read = |b: Vec<u8>| {
                ReadState::from_snapshot_with_saved_indexes(
                    blob.clone(),
                    Bytes::from(b),
                    SnapshotCheck::Checksums,
                )
            };
            assert!(
                matches!(read(b.clone()), Err(Error::SavedIndexes(_))),
                "byte {i}"
            );
            let checksum = xxhash_rust::xxh3::xxh3_64(&b[..footer_at]);
            b[footer_at..].copy_from_slice(&checksum.to_le_bytes());
            let Ok(state) = read(b) else { continue };
            accepted += 1;
            let index = state.primary_key_index("Product").unwrap();
            for i in 0..products + 20 {
                let key = ((i % 40) as i64, format!("sku-{i}"));
                if let Some(o) = index.find(&key).unwrap() {
                    let p: Product = state.get_as("Product", o).unwrap();
                    assert_eq!((p.category.id, p.sku), key);
                }
            }
        }
    }
    // Bucket bits flipped are accepted (a lookup may then miss); sizes and versions are not.
    assert!(accepted > 0);
}

/// Products with a hash index the schema declares (by category); tests add one by price.
fn hashed_snapshot(products: u32) -> Bytes {
    let schema = schema().hash_index("Product", &["category.name"]);
    Bytes::from(write(schema.build().unwrap(), 1, products))
}

/// Every lookup of both hash indexes answers as on `built`.
fn assert_hash_lookups_match(read: &ReadState, built: &ReadState) {
    for (fields, keys) in [(["category.name"], 0..45), (["price"], 0..1005)] {
        let (a, b) = (
            read.hash_index("Product", &fields).unwrap(),
            built.hash_index("Product", &fields).unwrap(),
        );
        for k in keys {
            let (x, y) = match fields[0] {
                "price" => (a.find(&(k as i64)), b.find(&(k as i64))),
                _ => (
                    a.find(format!("category {k}").as_str()),
                    b.find(format!("category {k}").as_str()),
                ),
            };
            assert_eq!(x.unwrap(), y.unwrap(), "{fields:?} {k}");
        }
    }
}

/// Hash indexes, declared or added, are saved with the primary key indexes and read back as
/// they were built: the same lookups, the same bytes saved again.
#[test]
fn saved_hash_indexes_answer_as_built_ones() {
    let blob = hashed_snapshot(20_000);
    let mut built = ReadState::from_snapshot(blob.clone()).unwrap();
    built.add_hash_index("Product", &["price"]).unwrap();
    let saved = Bytes::from(built.save_indexes().unwrap());
    let read = ReadState::from_snapshot_with_saved_indexes(
        blob.clone(),
        saved.clone(),
        SnapshotCheck::Checksums,
    )
    .unwrap();
    assert_hash_lookups_match(&read, &built);
    assert_eq!(read.save_indexes().unwrap(), &saved[..]);

    // Saved without the declared one (by an older save), it is built on load.
    let mut bare = ReadState::from_snapshot_without_indexes(blob.clone()).unwrap();
    assert!(bare.save_indexes().is_none());
    bare = ReadState::from_snapshot(blob.clone()).unwrap();
    let only_declared = Bytes::from(bare.save_indexes().unwrap());
    let read =
        ReadState::from_snapshot_with_saved_indexes(blob, only_declared, SnapshotCheck::Checksums)
            .unwrap();
    assert!(read.hash_index("Product", &["category.name"]).is_ok());
    assert!(read.hash_index("Product", &["price"]).is_err());
}

/// Saved hash indexes damaged are refused; damaged ones whose checksum was made good again are
/// refused or read, and a lookup then never panics nor names a record the type does not have.
/// (The cache folder is trusted as far as its checksums: whoever can write it with a good
/// checksum can change the cached snapshot too.)
#[test]
fn damaged_saved_hash_indexes_never_panic() {
    let blob = hashed_snapshot(600);
    let built = ReadState::from_snapshot(blob.clone()).unwrap();
    let saved = built.save_indexes().unwrap();
    let footer_at = saved.len() - 8;
    let products = built.record_count("Product").unwrap();
    // The hash indexes come after the primary key tables: damage only those bytes.
    let magic = saved
        .windows(13)
        .position(|w| w == b"category.name")
        .unwrap();
    let mut refused = 0;
    for i in magic - 12..footer_at {
        for mask in [0x01u8, 0x80] {
            let mut b = saved.clone();
            b[i] ^= mask;
            let checksum = xxhash_rust::xxh3::xxh3_64(&b[..footer_at]);
            b[footer_at..].copy_from_slice(&checksum.to_le_bytes());
            let read = ReadState::from_snapshot_with_saved_indexes(
                blob.clone(),
                Bytes::from(b),
                SnapshotCheck::Checksums,
            );
            let Ok(state) = read else {
                refused += 1;
                continue;
            };
            let index = state.hash_index("Product", &["category.name"]).unwrap();
            for k in 0..45 {
                let found = index.find(format!("category {k}").as_str()).unwrap();
                assert!(found.iter().all(|&o| (o as u64) < products), "byte {i}");
            }
        }
    }
    assert!(refused > 0);
}
