//! Blobs are untrusted input: every truncation, every flipped byte and every hostile mutation
//! (with checksums recomputed, so only the structure can catch it) is an error or a state that
//! reads without panicking, never a panic, a hang, or a huge allocation.

use std::collections::BTreeMap;

use bytes::Bytes;
use hollow_core::raw::{
    self, pack_values, BlobWriter, ByteWriter, SectionKind, TypeDelta, TypeSection, FOOTER_LEN,
    HEADER_LEN, SECTION_ENTRY_LEN,
};
use hollow_core::{CorruptReason, Error, ReadState, SchemaBuilder, Value, WriteState};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

#[derive(Serialize, Deserialize, Clone)]
struct Tag {
    label: String,
    weight: Option<f32>,
}

#[derive(Serialize, Deserialize, Clone)]
struct Node {
    id: i64,
    name: String,
    #[serde(with = "serde_bytes")]
    raw: Vec<u8>,
    flag: bool,
    score: f64,
    tags: Vec<Tag>,
    attrs: BTreeMap<String, i32>,
    children: Vec<Node>,
    small: Option<i32>,
}

fn node_schema() -> hollow_core::Schema {
    SchemaBuilder::new()
        .add::<Node>()
        .primary_key("Node", &["id"])
        .build()
        .unwrap()
}

fn sample_blob() -> Vec<u8> {
    let mut w = WriteState::new(node_schema());
    let leaf = |id: i64| Node {
        id,
        name: format!("leaf-{id}"),
        raw: vec![id as u8; 3],
        flag: id % 2 == 0,
        score: id as f64 / 3.0,
        tags: vec![Tag {
            label: "x".into(),
            weight: Some(0.5),
        }],
        attrs: BTreeMap::from([("k".to_string(), id as i32)]),
        children: vec![],
        small: None,
    };
    for id in 0..4 {
        let mut n = leaf(id);
        n.children = vec![leaf(100 + id), leaf(200)];
        n.small = Some(id as i32 - 2);
        w.add(&n).unwrap();
    }
    w.write_snapshot(5).unwrap()
}

/// Where the table entry of section `i` starts (its offset, length and checksum follow at +8,
/// +16 and +24).
fn entry(i: usize) -> usize {
    HEADER_LEN + SECTION_ENTRY_LEN * i
}

/// Recomputes every section checksum and the footer, as a hostile writer would.
fn reseal(blob: &mut [u8]) {
    let n = blob.len();
    if n < HEADER_LEN + FOOTER_LEN {
        return;
    }
    let le = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap());
    let count_at = HEADER_LEN - 8;
    let count = u32::from_le_bytes(blob[count_at..count_at + 4].try_into().unwrap()) as usize;
    for i in 0..count.min((n - HEADER_LEN - FOOTER_LEN) / SECTION_ENTRY_LEN) {
        let e = entry(i);
        let (off, len) = (
            le(&blob[e + 8..e + 16]) as usize,
            le(&blob[e + 16..e + 24]) as usize,
        );
        if off <= n - FOOTER_LEN && len <= n - FOOTER_LEN - off {
            let sum = xxh3_64(&blob[off..off + len]);
            blob[e + 24..e + 32].copy_from_slice(&sum.to_le_bytes());
        }
    }
    let sum = xxh3_64(&blob[..n - FOOTER_LEN]);
    blob[n - 8..].copy_from_slice(&sum.to_le_bytes());
}

/// Reads everything a consumer could read from a state; errors are fine, panics are not.
fn read_everything(state: &ReadState) {
    let schema = state.schema().clone();
    for t in schema.types() {
        let count = state.record_count(t.name()).unwrap();
        assert!(count <= 1 << 20);
        for o in 0..(count as u32 + 2) {
            let _ = state.get_as::<Value>(t.name(), o);
        }
    }
    if let Ok(index) = state.primary_key_index("Node") {
        for id in -1..300i64 {
            let _ = index.find(&id);
        }
    }
    if let Ok(nodes) = state.object("Node") {
        if let (Ok(name), Ok(raw)) = (nodes.string("name"), nodes.bytes("raw")) {
            for o in nodes.ordinals().chain([u32::MAX]) {
                let _ = (name.get(o), raw.get(o));
            }
        }
    }
}

#[test]
fn the_sample_reads_back() {
    let state = ReadState::from_snapshot(Bytes::from(sample_blob())).unwrap();
    assert_eq!(state.record_count("Node").unwrap(), 4 + 5);
    read_everything(&state);
}

#[test]
fn every_truncation_is_an_error() {
    let blob = sample_blob();
    for cut in 0..blob.len() {
        let e = ReadState::from_snapshot(Bytes::copy_from_slice(&blob[..cut])).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Truncated { .. } | Error::BadMagic { .. } | Error::ChecksumMismatch { .. }
            ),
            "cut at {cut}: {e}"
        );
    }
}

#[test]
fn every_flipped_byte_is_an_error() {
    let blob = sample_blob();
    for i in 0..blob.len() {
        for mask in [0x01u8, 0x80] {
            let mut b = blob.clone();
            b[i] ^= mask;
            assert!(
                ReadState::from_snapshot(Bytes::from(b)).is_err(),
                "byte {i} ^ {mask:#x}"
            );
        }
    }
}

#[test]
fn hostile_mutations_with_valid_checksums_never_panic() {
    let blob = sample_blob();
    let mut accepted = 0;
    for i in 0..blob.len() - 16 {
        for mask in [0x01u8, 0x10, 0x80, 0xff] {
            let mut b = blob.clone();
            b[i] ^= mask;
            reseal(&mut b);
            if let Ok(state) = ReadState::from_snapshot(Bytes::from(b)) {
                accepted += 1;
                read_everything(&state);
            }
        }
    }
    // Some mutations (a value bit, a version) are legitimately readable; most structure is not.
    assert!(accepted > 0);
}

#[test]
fn huge_counts_fail_fast_without_allocating() {
    let blob = sample_blob();
    // Find a type section and claim 2^32 - 1 slots; then a huge pool length.
    let le = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap()) as usize;
    let entry = entry(1); // the first type section's table entry
    let offset = le(&blob[entry + 8..entry + 16]);
    for (at, value) in [
        (offset, u32::MAX as u64),
        (offset, u64::MAX),
        (offset, 1 << 40),
    ] {
        let mut b = blob.clone();
        b[at..at + 8].copy_from_slice(&value.to_le_bytes());
        reseal(&mut b);
        let start = std::time::Instant::now();
        let e = ReadState::from_snapshot(Bytes::from(b)).unwrap_err();
        assert!(
            matches!(e, Error::Truncated { .. } | Error::Corrupt { .. }),
            "{e}"
        );
        assert!(start.elapsed().as_millis() < 500);
    }
}

#[test]
fn a_reference_cycle_is_an_error_not_a_hang() {
    #[derive(Serialize, Deserialize, Debug)]
    struct Tree {
        id: i32,
        kids: Vec<Tree>,
    }
    let mut w = WriteState::new(SchemaBuilder::new().add::<Tree>().build().unwrap());
    let leaf = |id| Tree { id, kids: vec![] };
    w.add(&Tree {
        id: 1,
        kids: vec![leaf(2), leaf(3), leaf(4)],
    })
    .unwrap();
    let mut blob = w.write_snapshot(1).unwrap();
    // Ordinals: leaves 0, 1, 2; root 3. ListOfTree (type 1): ordinal 0 = [], ordinal 1 =
    // [0, 1, 2] packed at 2 bits each. Point its first element at the root (3): a cycle.
    let entry = entry(2); // table entry of section 2 (schema, Tree, ListOfTree)
    let offset = u64::from_le_bytes(blob[entry + 8..entry + 16].try_into().unwrap()) as usize;
    let rows = offset + 8 + 8 + 8 + 16 + 8; // slot count, population, column count, 1 column, row count
    assert_eq!(blob[rows], 0b10_01_00, "the layout this test patches");
    blob[rows] |= 0b11;
    reseal(&mut blob);
    let state = ReadState::from_snapshot(Bytes::from(blob)).unwrap();
    let e = state.get::<Tree>(3).unwrap_err();
    assert!(
        matches!(&e, Error::NestedTooDeep { type_name, .. } if type_name == "ListOfTree"),
        "{e}"
    );
    assert!(state.get_as::<Value>("Tree", 3).is_err());
    // A leaf is still readable.
    assert_eq!(state.get::<Tree>(1).unwrap().id, 3);
}

/// A state and a delta from it, from the sample dataset with a few changes.
fn sample_delta() -> (ReadState, Vec<u8>) {
    let (origin, delta) = sample_delta_blobs();
    (
        ReadState::from_snapshot(Bytes::from(origin)).unwrap(),
        delta,
    )
}

/// The snapshot of a state and a delta from it.
fn sample_delta_blobs() -> (Vec<u8>, Vec<u8>) {
    let mut w = WriteState::new(node_schema());
    let node = |id: i64, name: &str| Node {
        id,
        name: name.into(),
        raw: vec![1, 2],
        flag: true,
        score: 1.5,
        tags: vec![Tag {
            label: name.into(),
            weight: None,
        }],
        attrs: BTreeMap::from([(name.to_string(), 1)]),
        children: vec![],
        small: Some(id as i32),
    };
    for id in 0..6 {
        w.add(&node(id, "a")).unwrap();
    }
    let s1 = w.write_snapshot(1).unwrap();
    w.commit_cycle().unwrap();
    for id in 2..9 {
        w.add(&node(id, if id % 2 == 0 { "b" } else { "a" }))
            .unwrap();
    }
    let delta = w.write_delta(1, 2).unwrap();
    (s1, delta)
}

#[test]
fn malformed_deltas_are_errors_and_never_panic() {
    let (state, delta) = sample_delta();
    let good = state.apply_delta(Bytes::from(delta.clone())).unwrap();
    read_everything(&good);
    for cut in 0..delta.len() {
        assert!(
            state
                .apply_delta(Bytes::copy_from_slice(&delta[..cut]))
                .is_err(),
            "cut {cut}"
        );
    }
    let mut accepted = 0;
    for i in 0..delta.len() - 16 {
        for mask in [0x01u8, 0x10, 0x80, 0xff] {
            let mut b = delta.clone();
            b[i] ^= mask;
            assert!(
                state.apply_delta(Bytes::from(b.clone())).is_err(),
                "flip {i}"
            );
            reseal(&mut b);
            if let Ok(next) = state.apply_delta(Bytes::from(b)) {
                accepted += 1;
                read_everything(&next);
            }
        }
    }
    assert!(accepted > 0);
    // The origin state is untouched by all of it.
    read_everything(&state);
}

/// The fuzzer's seed corpus (`fuzz/seeds`) is what the current writer produces, so the fuzzer
/// starts from valid structure. After a format change, refresh it with
/// `HOLLOW_REFRESH_FUZZ_SEEDS=1 cargo test -p hollow-core --test malformed_blobs`.
#[test]
fn fuzz_seeds_are_current() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds");
    let (origin, delta) = sample_delta_blobs();
    #[cfg_attr(not(feature = "zstd"), allow(unused_mut))] // the laid-out seed needs zstd
    let mut seeds = vec![
        ("snapshot-nodes", sample_blob()),
        ("origin-nodes", origin),
        ("delta-nodes", delta),
    ];
    // The `compressed_snapshot` target's input: the restored length, then the snapshot laid
    // out by columns (the zstd frame of a codec-2 envelope, after its header and the
    // layout's length, decoded).
    #[cfg(feature = "zstd")]
    {
        let blob = Bytes::from(sample_blob());
        let envelope = hollow_core::raw::compressed::compress(&blob, 3).unwrap();
        let laid_out = zstd::decode_all(&envelope[32..envelope.len() - 8]).unwrap();
        let len = (blob.len() as u64).to_le_bytes();
        seeds.push(("columns-nodes", [&len[..], &laid_out].concat()));
    }
    for (name, blob) in seeds {
        let path = format!("{dir}/{name}");
        if std::env::var_os("HOLLOW_REFRESH_FUZZ_SEEDS").is_some() {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(&path, &blob).unwrap();
        }
        let stored = std::fs::read(&path).unwrap_or_default();
        assert!(
            stored == blob,
            "{path} is stale: refresh it (see this test's doc)"
        );
    }
}

#[derive(Serialize, Deserialize, Clone)]
struct Bag {
    id: i64,
    items: Vec<Tag>,
}

/// A blob rebuilt from `blob`'s sections by the format's own writer, with the section of type
/// `type_name` replaced by what `replace` makes of it: what a hostile producer could publish,
/// every checksum valid.
fn rewrite(
    blob: Vec<u8>,
    type_name: &str,
    replace: impl FnOnce(&hollow_core::schema::TypeDef, raw::Section) -> ByteWriter,
) -> Bytes {
    let parsed = raw::parse(Bytes::from(blob)).unwrap();
    let header = parsed.header;
    let schema_section = parsed.sections[0].clone();
    let raw::SplitBlob {
        schema, sections, ..
    } = parsed.split_schema().unwrap();
    let target = schema.require(type_name).unwrap();
    let mut out = BlobWriter::new(header);
    out.section(SectionKind::Schema, 0, schema_section.data.to_vec().into());
    let mut replace = Some(replace);
    for s in sections {
        let data = if s.type_id as usize == target.index() {
            (replace.take().unwrap())(schema.get(target), s.clone())
        } else {
            s.data.to_vec().into()
        };
        out.section(s.kind, s.type_id, data);
    }
    Bytes::from(out.finish())
}

/// `blob` with the snapshot section of `type_name` decoded, changed by `change`, encoded again.
fn rewrite_type_section(
    blob: Vec<u8>,
    type_name: &str,
    change: impl FnOnce(&mut TypeSection),
) -> Bytes {
    rewrite(blob, type_name, |def, s| {
        let mut t = TypeSection::decode(s.data, s.offset, def).unwrap();
        change(&mut t);
        let mut out = ByteWriter::new();
        t.encode(&mut out);
        out
    })
}

/// Regression: a delta of a list type whose sizes add up to the row count only modulo 2^64
/// panicked in the packed-array code; it is a corrupt blob.
#[test]
fn collection_delta_sizes_that_wrap_around_are_an_error() {
    let mut w = WriteState::new(SchemaBuilder::new().add::<Bag>().build().unwrap());
    let tag = |label: &str| Tag {
        label: label.into(),
        weight: None,
    };
    w.add(&Bag {
        id: 1,
        items: vec![tag("a")],
    })
    .unwrap();
    let state = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
    w.commit_cycle().unwrap();
    for (id, labels) in [(2, vec!["b", "c"]), (3, vec!["d", "e", "f"])] {
        w.add(&Bag {
            id,
            items: labels.into_iter().map(tag).collect(),
        })
        .unwrap();
    }
    let delta = w.write_delta(1, 2).unwrap();
    state.apply_delta(Bytes::from(delta.clone())).unwrap();
    let hostile = rewrite(delta, "ListOfTag", |def, s| {
        let mut d = TypeDelta::decode(s.data, s.offset, def).unwrap();
        assert_eq!(
            (d.added.len(), d.row_count),
            (2, 5),
            "the delta this test patches"
        );
        d.sizes = Some((64, pack_values([u64::MAX, d.row_count + 1].into_iter(), 64)));
        let mut out = ByteWriter::new();
        d.encode(&mut out);
        out
    });
    let e = state.apply_delta(hostile).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Corrupt {
                section,
                reason: CorruptReason::Mismatch { what: "row count", .. }
            } if section == "ListOfTag"
        ),
        "{e}"
    );
}

/// Regression: a few hundred bytes could claim a list of 2^40 zero-width elements, which then
/// took hours to read or checksum. The claim is rejected when the snapshot loads.
#[test]
fn a_snapshot_cannot_claim_more_zero_width_elements_than_its_bytes_bound() {
    let mut w = WriteState::new(SchemaBuilder::new().add::<Bag>().build().unwrap());
    w.add(&Bag {
        id: 1,
        items: vec![],
    })
    .unwrap();
    let claimed = 1u64 << 40;
    let hostile = rewrite_type_section(w.write_snapshot(1).unwrap(), "ListOfTag", |t| {
        t.encodings.iter_mut().for_each(|e| e.width = 0);
        t.row_count = claimed;
        t.rows = Bytes::from(vec![0u8; 8]);
        let width = 41;
        t.ends = Some((
            width,
            pack_values(
                vec![claimed; t.population.len() as usize].into_iter(),
                width,
            ),
        ));
    });
    assert!(hostile.len() < 1024, "{} bytes", hostile.len());
    let started = std::time::Instant::now();
    let e = ReadState::from_snapshot(hostile).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Corrupt {
                section,
                reason: CorruptReason::OutOfRange { what: "rows of zero bits", value, .. }
            } if section == "ListOfTag" && *value == claimed
        ),
        "{e}"
    );
    assert!(started.elapsed().as_secs() < 1);
}

/// An empty slot of a collection type holds no elements: a snapshot that gives one some (every
/// checksum valid, the ends still in order) is refused, so that states stay laid out alike and
/// a delta can copy the rows between two changes as one run.
#[test]
fn elements_in_an_empty_collection_slot_are_refused() {
    let mut w = WriteState::new(SchemaBuilder::new().add::<Bag>().build().unwrap());
    let bag = |id: i64, labels: &[&str]| Bag {
        id,
        items: labels
            .iter()
            .map(|l| Tag {
                label: l.to_string(),
                weight: None,
            })
            .collect(),
    };
    for (id, labels) in [(1, &["a"][..]), (2, &["b"]), (3, &["c", "d", "e"])] {
        w.add(&bag(id, labels)).unwrap();
    }
    w.write_snapshot(1).unwrap();
    w.commit_cycle().unwrap();
    for (id, labels) in [(1, &["a"][..]), (3, &["c", "d", "e"])] {
        w.add(&bag(id, labels)).unwrap();
    }
    let snapshot = w.write_snapshot(2).unwrap();
    ReadState::from_snapshot(Bytes::from(snapshot.clone())).unwrap();
    let hostile = rewrite_type_section(snapshot, "ListOfTag", |t| {
        let (width, ends) = t.ends.clone().unwrap();
        let expected = pack_values([1, 1, 4].into_iter(), width);
        assert_eq!(
            ends[..],
            expected[..ends.len()],
            "the layout this test changes: ordinal 1 is empty"
        );
        t.ends = Some((width, pack_values([1, 2, 4].into_iter(), width)));
    });
    let e = ReadState::from_snapshot(hostile).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Corrupt {
                section,
                reason: CorruptReason::Unexpected { what: "elements in an empty slot" }
            } if section == "ListOfTag, ordinal 1"
        ),
        "{e}"
    );
}
