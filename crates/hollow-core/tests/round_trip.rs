//! Records of every field kind go through a snapshot and come back equal.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hollow_core::{ReadState, SchemaBuilder, Value, WriteState};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Color {
    Red,
    Green,
    Blue,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Inner {
    x: i32,
    name: String,
    tags: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Everything {
    id: i64,
    a: i32,
    b: u64,
    c: f32,
    d: f64,
    e: bool,
    f: String,
    g: Option<String>,
    #[serde(with = "serde_bytes")]
    h: Vec<u8>,
    i: Option<i64>,
    j: Vec<Option<String>>,
    k: BTreeSet<String>,
    l: BTreeMap<String, i32>,
    m: Vec<Inner>,
    n: Option<Box<Inner>>,
    o: Color,
    p: HashMap<i64, Vec<String>>,
    q: Vec<i16>,
    r: Option<f64>,
    s: char,
}

fn float32() -> impl Strategy<Value = f32> {
    prop::num::f32::NORMAL
        | prop::num::f32::SUBNORMAL
        | prop::num::f32::ZERO
        | prop::num::f32::INFINITE
}

fn float64() -> impl Strategy<Value = f64> {
    prop::num::f64::NORMAL
        | prop::num::f64::SUBNORMAL
        | prop::num::f64::ZERO
        | prop::num::f64::INFINITE
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-c]{1,3}",
        "\\PC{0,12}",
        Just("日本語 ✓ émoji 🎬".to_string()),
    ]
}

fn inner() -> impl Strategy<Value = Inner> {
    (any::<i32>(), text(), prop::collection::vec(text(), 0..4)).prop_map(|(x, name, tags)| Inner {
        x,
        name,
        tags,
    })
}

fn everything() -> impl Strategy<Value = Everything> {
    let scalars = (
        any::<i64>(),
        any::<i32>(),
        any::<u64>(),
        float32(),
        float64(),
        any::<bool>(),
        text(),
        prop::option::of(text()),
        prop::collection::vec(any::<u8>(), 0..20),
        prop::option::of(any::<i64>()),
    );
    let collections = (
        prop::collection::vec(prop::option::of(text()), 0..5),
        prop::collection::btree_set(text(), 0..5),
        prop::collection::btree_map(text(), any::<i32>(), 0..5),
        prop::collection::vec(inner(), 0..4),
        prop::option::of(inner().prop_map(Box::new)),
        prop_oneof![Just(Color::Red), Just(Color::Green), Just(Color::Blue)],
        prop::collection::hash_map(-3i64..3, prop::collection::vec(text(), 0..3), 0..4),
        prop::collection::vec(any::<i16>(), 0..300),
        prop::option::of(float64()),
        any::<char>(),
    );
    (scalars, collections).prop_map(
        |((id, a, b, c, d, e, f, g, h, i), (j, k, l, m, n, o, p, q, r, s))| Everything {
            id,
            a,
            b,
            c,
            d,
            e,
            f,
            g,
            h,
            i,
            j,
            k,
            l,
            m,
            n,
            o,
            p,
            q,
            r,
            s,
        },
    )
}

fn schema() -> hollow_core::Schema {
    SchemaBuilder::new()
        .add::<Everything>()
        .primary_key("Everything", &["id"])
        .build()
        .unwrap()
}

/// Float fields compare by bits (so -0.0 and 0.0 differ, as they do when stored).
fn same(a: &Everything, b: &Everything) -> bool {
    a.c.to_bits() == b.c.to_bits()
        && a.d.to_bits() == b.d.to_bits()
        && a.r.map(f64::to_bits) == b.r.map(f64::to_bits)
        && a == b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_field_kind_round_trips(records in prop::collection::vec(everything(), 0..40)) {
        let mut w = WriteState::new(schema());
        let mut ordinals = Vec::new();
        for r in &records {
            ordinals.push(w.add(r).unwrap());
        }
        let blob = bytes::Bytes::from(w.write_snapshot(3).unwrap());
        // Compressed, the snapshot is laid out by columns and comes back byte for byte.
        #[cfg(feature = "zstd")]
        {
            use hollow_core::raw::compressed;
            let packed = compressed::compress(&blob, 3).unwrap();
            prop_assert_eq!(&packed[8..12], &2u32.to_le_bytes(), "codec: zstd by columns");
            prop_assert!(compressed::decompress_if_compressed(packed.into()).unwrap() == blob);
        }
        let state = ReadState::from_snapshot(blob).unwrap();
        prop_assert_eq!(state.version(), 3);
        for (r, &o) in records.iter().zip(&ordinals) {
            let back: Everything = state.get(o).unwrap();
            prop_assert!(same(&back, r), "{:?}\n!=\n{:?}", back, r);
            // The generic view walks the same record.
            let value: Value = state.get_as("Everything", o).unwrap();
            prop_assert_eq!(value.field("id"), Some(&Value::Int(r.id)));
            prop_assert_eq!(value.field("h"), Some(&Value::Bytes(r.h.clone())));
        }
        // Equal records share an ordinal; the record count is the number of distinct records.
        let mut distinct: Vec<u32> = ordinals.clone();
        distinct.sort_unstable();
        distinct.dedup();
        prop_assert_eq!(state.record_count("Everything").unwrap(), distinct.len() as u64);
        let read: Vec<Everything> = state.iter::<Everything>().unwrap().map(Result::unwrap).collect();
        prop_assert_eq!(read.len(), distinct.len());
    }

    /// Adding in batches builds the same state as adding one by one: the same ordinals
    /// everywhere, so the same snapshot bytes (sets and maps are ordered by interned values).
    #[test]
    fn batches_build_the_same_state_as_single_adds(
        records in prop::collection::vec(everything(), 0..40),
        committed in prop::collection::vec(everything(), 0..10),
        tape_bytes in 1usize..600,
    ) {
        let mut one_by_one = WriteState::new(schema());
        let mut batched = WriteState::new(schema());
        for w in [&mut one_by_one, &mut batched] {
            for r in &committed {
                w.add(r).unwrap();
            }
            w.write_snapshot(1).unwrap();
            w.commit_cycle().unwrap();
        }
        for r in &records {
            one_by_one.add(r).unwrap();
        }
        // Tapes of a few hundred bytes: records cross to the interning thread every few adds,
        // through every tape in circulation.
        let mut batch = batched.batch().with_tape_bytes(tape_bytes);
        for r in &records {
            batch.add(r).unwrap();
        }
        drop(batch);
        prop_assert_eq!(one_by_one.write_snapshot(2).unwrap(), batched.write_snapshot(2).unwrap());
        prop_assert_eq!(one_by_one.write_delta(1, 2).unwrap(), batched.write_delta(1, 2).unwrap());
    }
}

/// A recursive type (its records reference records of their own type, at any depth) is
/// batched value by value, and still equals adding one by one.
#[test]
fn recursive_types_batch_like_single_adds() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Tree {
        label: String,
        children: Vec<Tree>,
    }
    fn tree(seed: u64, depth: u32) -> Tree {
        Tree {
            label: format!("node {}", seed % 7),
            children: (0..if depth == 0 { 0 } else { seed % 3 })
                .map(|i| tree(seed.wrapping_mul(31).wrapping_add(i), depth - 1))
                .collect(),
        }
    }
    let trees: Vec<Tree> = (0..200).map(|s| tree(s, 1 + (s % 5) as u32)).collect();
    let schema = || SchemaBuilder::new().add::<Tree>().build().unwrap();
    let mut one_by_one = WriteState::new(schema());
    let ordinals: Vec<u32> = trees.iter().map(|t| one_by_one.add(t).unwrap()).collect();
    let mut batched = WriteState::new(schema());
    batched.add_all(&trees).unwrap();
    let blob = batched.write_snapshot(1).unwrap();
    assert_eq!(one_by_one.write_snapshot(1).unwrap(), blob);
    let state = ReadState::from_snapshot(blob.into()).unwrap();
    for (t, &o) in trees.iter().zip(&ordinals) {
        assert_eq!(&state.get::<Tree>(o).unwrap(), t);
    }
}

/// A record that fails half way (after some of its strings were serialized) adds nothing, in a
/// batch or alone, and the batch goes on.
#[test]
fn a_failed_record_adds_nothing() {
    #[derive(Serialize, Deserialize)]
    struct Item {
        name: String,
        #[serde(skip_serializing_if = "Vec::is_empty", default)]
        tags: Vec<String>,
    }
    let item = |name: &str, tags: &[&str]| Item {
        name: name.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
    };
    let schema = || SchemaBuilder::new().add::<Item>().build().unwrap();
    let mut clean = WriteState::new(schema());
    clean.add(&item("a", &["x"])).unwrap();
    clean.add(&item("c", &["y"])).unwrap();

    let mut single = WriteState::new(schema());
    single.add(&item("a", &["x"])).unwrap();
    assert!(single.add(&item("only in the failed record", &[])).is_err());
    single.add(&item("c", &["y"])).unwrap();

    let mut batched = WriteState::new(schema());
    let mut batch = batched.batch();
    batch.add(&item("a", &["x"])).unwrap();
    assert!(batch.add(&item("only in the failed record", &[])).is_err());
    batch.add(&item("c", &["y"])).unwrap();
    drop(batch);

    let expected = clean.write_snapshot(1).unwrap();
    assert_eq!(single.write_snapshot(1).unwrap(), expected);
    assert_eq!(batched.write_snapshot(1).unwrap(), expected);
}

#[test]
fn borrowed_fields_read_without_copying() {
    #[derive(Serialize, Deserialize)]
    struct Owned {
        name: String,
        #[serde(with = "serde_bytes")]
        blob: Vec<u8>,
    }
    #[derive(Deserialize)]
    struct Borrowed<'a> {
        name: &'a str,
        #[serde(borrow)]
        blob: &'a [u8],
    }
    let mut w = WriteState::new(SchemaBuilder::new().add::<Owned>().build().unwrap());
    let o = w
        .add(&Owned {
            name: "zero-copy".into(),
            blob: vec![1, 2, 3],
        })
        .unwrap();
    let state = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
    // A view type under another name is read with the type named explicitly...
    let b: Borrowed<'_> = state.get_as("Owned", o).unwrap();
    assert_eq!(b.name, "zero-copy");
    assert_eq!(b.blob, &[1, 2, 3]);
    // ...or carries the type's name.
    #[derive(Deserialize)]
    #[serde(rename = "Owned")]
    struct Renamed<'a> {
        name: &'a str,
    }
    let r: Renamed<'_> = state.get(o).unwrap();
    assert!(
        std::ptr::eq(r.name, b.name),
        "both borrow the same bytes of the state"
    );
}

#[test]
fn large_collections_and_nan_bits_round_trip() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Big {
        values: Vec<i64>,
        names: BTreeSet<String>,
        x: f64,
    }
    let big = Big {
        values: (0..200_000).map(|i| i * i - 7).collect(),
        names: (0..5_000).map(|i| format!("name-{i}")).collect(),
        x: f64::from_bits(0x7ff8_0000_dead_beef),
    };
    let mut w = WriteState::new(SchemaBuilder::new().add::<Big>().build().unwrap());
    let o = w.add(&big).unwrap();
    let state = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
    let back: Big = state.get(o).unwrap();
    assert_eq!(back.values, big.values);
    assert_eq!(back.names, big.names);
    assert_eq!(back.x.to_bits(), big.x.to_bits());
}

#[test]
fn composite_and_string_primary_keys() {
    #[derive(Serialize, Deserialize)]
    struct Price {
        sku: String,
        region: i32,
        cents: i64,
    }
    let schema = SchemaBuilder::new()
        .add::<Price>()
        .primary_key("Price", &["sku", "region"])
        .build()
        .unwrap();
    let mut w = WriteState::new(schema);
    for (i, sku) in ["a", "b", "ü"].iter().enumerate() {
        for region in 0..3 {
            w.add(&Price {
                sku: sku.to_string(),
                region,
                cents: (i as i64) * 100 + region as i64,
            })
            .unwrap();
        }
    }
    let state = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
    let index = state.primary_key_index("Price").unwrap();
    let cents = state.object("Price").unwrap().int("cents").unwrap();
    assert_eq!(
        cents.get(index.find(&("ü", 2)).unwrap().unwrap()),
        Some(202)
    );
    assert_eq!(
        cents.get(index.find(&("a".to_string(), 0)).unwrap().unwrap()),
        Some(0)
    );
    assert_eq!(index.find(&("a", 3)), Ok(None));
    // A key of the wrong arity or kind is an error, not a silent "not found".
    for e in [
        index.find(&"a").unwrap_err(),
        index.find(&(2, "a")).unwrap_err(),
        index.find(&("a", 2.5f64)).unwrap_err(),
    ] {
        assert!(e.to_string().starts_with("a key of"), "{e}");
    }
}

#[test]
fn write_errors_are_clear() {
    #[derive(Serialize, Deserialize)]
    struct Item {
        id: i32,
        #[serde(skip_serializing_if = "Vec::is_empty", default)]
        tags: Vec<String>,
    }
    let mut w = WriteState::new(SchemaBuilder::new().add::<Item>().build().unwrap());
    let e = w
        .add(&Item {
            id: 1,
            tags: vec![],
        })
        .unwrap_err();
    assert!(e.to_string().contains("Item.tags was skipped"), "{e}");
    #[derive(Serialize)]
    struct Other {
        id: i32,
    }
    let e = w.add(&Other { id: 1 }).unwrap_err();
    assert!(matches!(e, hollow_core::Error::UnknownType(_)), "{e}");
}

#[test]
fn duplicate_primary_keys_are_found() {
    #[derive(Serialize, Deserialize)]
    struct Row {
        id: i32,
        v: i32,
    }
    let schema = || {
        SchemaBuilder::new()
            .add::<Row>()
            .primary_key("Row", &["id"])
            .build()
            .unwrap()
    };
    let mut w = WriteState::new(schema());
    for i in 0..1000 {
        w.add(&Row { id: i, v: i }).unwrap();
    }
    let state = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
    assert_eq!(
        state.primary_key_index("Row").unwrap().first_duplicate(),
        None
    );
    let mut w = WriteState::new(schema());
    for i in 0..1000 {
        w.add(&Row { id: i, v: i }).unwrap();
    }
    w.add(&Row { id: 500, v: -1 }).unwrap();
    let state = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
    assert_eq!(
        state.primary_key_index("Row").unwrap().first_duplicate(),
        Some((500, 1000))
    );

    // An index updated by a delta (not built) finds them too.
    let mut w = WriteState::new(schema());
    w.add_all(&(0..1000).map(|i| Row { id: i, v: i }).collect::<Vec<_>>())
        .unwrap();
    let v1 = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
    w.commit_cycle().unwrap();
    w.add_all(&(0..1000).map(|i| Row { id: i, v: i }).collect::<Vec<_>>())
        .unwrap();
    w.add(&Row { id: 7, v: -7 }).unwrap();
    let v2 = v1.apply_delta(w.write_delta(1, 2).unwrap().into()).unwrap();
    assert_eq!(
        v2.primary_key_index("Row").unwrap().first_duplicate(),
        Some((7, 1000))
    );

    // A record replaced by one with the same key (removed, then added) is no duplicate.
    w.abandon_cycle();
    w.add_all(
        &(0..1000)
            .map(|i| Row {
                id: i,
                v: i + (i == 7) as i32,
            })
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let v2 = v1.apply_delta(w.write_delta(1, 2).unwrap().into()).unwrap();
    assert_eq!(v2.primary_key_index("Row").unwrap().first_duplicate(), None);
}

/// Staged records get the ordinals that adding them one by one gives, are added by a snapshot
/// written before `add_staged`, and are dropped with an abandoned cycle.
#[test]
fn staged_records_are_added_together() {
    let people: Vec<Inner> = (0..300)
        .map(|i| Inner {
            x: i % 40,
            name: format!("n{}", i % 7),
            tags: (0..i % 3).map(|t| format!("t{t}")).collect(),
        })
        .collect();
    let schema = || {
        SchemaBuilder::new()
            .add::<Inner>()
            .primary_key("Inner", &["x"])
            .build()
            .unwrap()
    };
    let mut one_by_one = WriteState::new(schema());
    let expected: Vec<u32> = people.iter().map(|p| one_by_one.add(p).unwrap()).collect();

    let mut staged = WriteState::new(schema());
    for p in &people[..100] {
        staged.stage(p).unwrap();
    }
    let mut ordinals = staged.add_staged();
    for p in &people[100..] {
        staged.stage(p).unwrap();
    }
    ordinals.extend(staged.add_staged());
    assert_eq!(ordinals, expected);
    assert!(staged.add_staged().is_empty());

    let mut held_back = WriteState::new(schema());
    for p in &people {
        held_back.stage(p).unwrap();
    }
    assert_eq!(
        held_back.write_snapshot(1).unwrap(),
        one_by_one.write_snapshot(1).unwrap()
    );
    held_back.commit_cycle().unwrap();
    assert_eq!(
        held_back.add_staged(),
        expected,
        "the ordinals wait for add_staged"
    );
    held_back.stage(&people[0]).unwrap();
    held_back.abandon_cycle();
    assert!(held_back.add_staged().is_empty());
}
