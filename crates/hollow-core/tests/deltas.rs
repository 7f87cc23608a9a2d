//! Deltas: a state reached by applying deltas equals the snapshot of the same version, by
//! checksum and by content, forwards and backwards, over many cycles of random changes.

use std::collections::BTreeMap;

use bytes::Bytes;
use hollow_core::{Error, ReadState, SchemaBuilder, StateId, WriteState};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Part {
    sku: String,
    qty: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Item {
    id: i64,
    name: String,
    price: Option<i32>,
    tags: Vec<String>,
    parts: Vec<Part>,
    attrs: BTreeMap<String, i64>,
    flag: bool,
}

fn schema() -> hollow_core::Schema {
    SchemaBuilder::new()
        .add::<Item>()
        .primary_key("Item", &["id"])
        .build()
        .unwrap()
}

struct Blobs {
    snapshot: Vec<u8>,
    delta: Option<Vec<u8>>,
    reverse: Option<Vec<u8>>,
}

/// One producer cycle: add the whole dataset, write the blobs, commit.
fn cycle(w: &mut WriteState, items: &BTreeMap<i64, Item>, version: u64) -> Blobs {
    for item in items.values() {
        w.add(item).unwrap();
    }
    let first = version == 1;
    let blobs = Blobs {
        snapshot: w.write_snapshot(version).unwrap(),
        delta: (!first).then(|| w.write_delta(version - 1, version).unwrap()),
        reverse: (!first).then(|| w.write_reverse_delta(version, version - 1).unwrap()),
    };
    w.commit_cycle().unwrap();
    blobs
}

/// A cycle on top of `chain` (the committed state): also applies the delta to it and checks the
/// result against the write state before committing, as a producer does when it writes no
/// snapshot. Returns the blobs and the state the delta reaches.
fn cycle_on(
    w: &mut WriteState,
    items: &BTreeMap<i64, Item>,
    version: u64,
    chain: &ReadState,
) -> (Blobs, ReadState) {
    for item in items.values() {
        w.add(item).unwrap();
    }
    let blobs = Blobs {
        snapshot: w.write_snapshot(version).unwrap(),
        delta: Some(w.write_delta(version - 1, version).unwrap()),
        reverse: Some(w.write_reverse_delta(version, version - 1).unwrap()),
    };
    let next = chain
        .apply_delta(Bytes::from(blobs.delta.clone().unwrap()))
        .unwrap();
    w.verify_changes_in(&next).unwrap();
    assert_eq!(
        next.layout_digest(),
        load(&blobs.snapshot).layout_digest(),
        "a state reached by a delta is laid out as the snapshot of its version"
    );
    // The state reached by the delta writes a snapshot of itself that reads back the same.
    let rewritten = ReadState::from_snapshot(Bytes::from(next.write_snapshot())).unwrap();
    assert_eq!(rewritten.id(), next.id());
    assert_eq!(rewritten.tags(), next.tags());
    assert!(rewritten.same_content_as(&next));
    assert_eq!(rewritten.checksum(), next.checksum());
    // The committed state is not the current one (unless nothing changed).
    if w.has_changes() {
        assert!(w.verify_changes_in(chain).is_err());
    }
    w.commit_cycle().unwrap();
    (blobs, next)
}

fn load(blob: &[u8]) -> ReadState {
    ReadState::from_snapshot(Bytes::copy_from_slice(blob)).unwrap()
}

/// Every item of the model is found by key with equal content, and no other item is.
fn assert_holds(state: &ReadState, items: &BTreeMap<i64, Item>) {
    let index = state.primary_key_index("Item").unwrap();
    assert_eq!(state.record_count("Item").unwrap(), items.len() as u64);
    for (id, item) in items {
        let o = index
            .find(id)
            .unwrap()
            .unwrap_or_else(|| panic!("id {id} missing at v{}", state.version()));
        assert_eq!(&state.get::<Item>(o).unwrap(), item);
    }
    assert_eq!(index.find(&-1i64), Ok(None));
}

fn item(id: i64, seed: u64) -> Item {
    Item {
        id,
        name: format!("item {}", seed % 50),
        price: (!seed.is_multiple_of(7)).then_some((seed % 1000) as i32 - 10),
        tags: (0..seed % 4)
            .map(|t| format!("tag{}", seed.wrapping_add(t) % 9))
            .collect(),
        parts: (0..seed % 3)
            .map(|p| Part {
                sku: format!("sku-{}", seed.wrapping_mul(31).wrapping_add(p) % 40),
                qty: (p as i32) + 1,
            })
            .collect(),
        attrs: (0..seed % 3)
            .map(|a| (format!("k{a}"), (seed as i64).wrapping_shl(a as u32)))
            .collect(),
        flag: seed.is_multiple_of(2),
    }
}

#[test]
fn snapshot_plus_delta_equals_the_next_snapshot_and_back() {
    let mut w = WriteState::new(schema());
    let mut items: BTreeMap<i64, Item> = (0..200).map(|i| (i, item(i, i as u64))).collect();
    let v1 = cycle(&mut w, &items, 1);
    let before = items.clone();
    // Change some, remove some, add some.
    for i in (0..200).step_by(7) {
        items.get_mut(&i).unwrap().price = Some(-5);
    }
    for i in 0..20 {
        items.remove(&i);
    }
    for i in 200..230 {
        items.insert(i, item(i, i as u64 * 13));
    }
    let v2 = cycle(&mut w, &items, 2);

    let s1 = load(&v1.snapshot);
    let s2 = load(&v2.snapshot);
    let chained = s1
        .apply_delta(Bytes::from(v2.delta.clone().unwrap()))
        .unwrap();
    assert_eq!(chained.version(), 2);
    assert_eq!(chained.checksum(), s2.checksum());
    assert_ne!(s1.checksum(), s2.checksum());
    assert_holds(&chained, &items);
    // The old state is untouched and still readable.
    assert_holds(&s1, &before);

    let back = chained
        .apply_delta(Bytes::from(v2.reverse.clone().unwrap()))
        .unwrap();
    assert_eq!(back.version(), 1);
    assert_eq!(back.checksum(), s1.checksum());
    assert_holds(&back, &before);

    // The delta carries far less than the snapshot.
    assert!(v2.delta.as_ref().unwrap().len() * 3 < v2.snapshot.len());
}

/// Two producers that mint the same version for different content give their states different
/// tags: a delta of one never applies to the other's state, and the state reached carries the
/// delta's destination tag.
#[test]
fn a_delta_applies_only_to_the_state_with_its_origin_tag() {
    let items: BTreeMap<i64, Item> = (0..10).map(|i| (i, item(i, i as u64))).collect();
    let (ours, theirs) = (StateId::new(1, 0xA1), StateId::new(1, 0xB1));
    let mut w = WriteState::new(schema());
    items.values().for_each(|i| {
        w.add(i).unwrap();
    });
    let snapshot = w.write_snapshot(ours).unwrap();
    w.commit_cycle().unwrap();
    let mut w2 = WriteState::new(schema());
    items.values().for_each(|i| {
        w2.add(i).unwrap();
    });
    let their_snapshot = w2.write_snapshot(theirs).unwrap();
    w2.commit_cycle().unwrap();
    items.values().take(5).for_each(|i| {
        w.add(i).unwrap();
    });
    let next = StateId::new(2, 0xA2);
    let delta = Bytes::from(w.write_delta(ours, next).unwrap());

    let s1 = load(&snapshot);
    assert_eq!(s1.id(), ours);
    assert_eq!(s1.apply_delta(delta.clone()).unwrap().id(), next);
    let e = load(&their_snapshot).apply_delta(delta).unwrap_err();
    assert_eq!(
        e,
        Error::DeltaOriginMismatch {
            state: theirs,
            delta_origin: ours
        }
    );
}

/// `delta_leads_to` compares tags as `same_content_as` does: the same records under other
/// tags are another state.
#[test]
fn a_delta_leads_only_to_a_state_with_its_tags() {
    let mut w = WriteState::new(schema());
    let items: BTreeMap<i64, Item> = (0..5).map(|i| (i, item(i, i as u64))).collect();
    let first = cycle(&mut w, &items, 1);
    w.set_tag("source", "a");
    let second = cycle(&mut w, &items, 2);
    let (s1, s2) = (load(&first.snapshot), load(&second.snapshot));
    let delta = Bytes::from(second.delta.unwrap());
    assert!(s1.delta_leads_to(delta.clone(), &s2).unwrap());
    assert!(!s1.delta_leads_to(delta, &s1).unwrap());
}

#[test]
fn a_delta_applies_only_to_its_origin() {
    let mut w = WriteState::new(schema());
    let mut items: BTreeMap<i64, Item> = (0..10).map(|i| (i, item(i, i as u64))).collect();
    let v1 = cycle(&mut w, &items, 1);
    items.remove(&3);
    let v2 = cycle(&mut w, &items, 2);
    items.remove(&4);
    let v3 = cycle(&mut w, &items, 3);
    let s1 = load(&v1.snapshot);
    let e = s1.apply_delta(Bytes::from(v3.delta.unwrap())).unwrap_err();
    assert!(
        matches!(
            e,
            Error::DeltaOriginMismatch {
                state: StateId { version: 1, tag: 0 },
                delta_origin: StateId { version: 2, tag: 0 }
            }
        ),
        "{e}"
    );
    let e = s1.apply_delta(Bytes::from(v2.snapshot)).unwrap_err();
    assert_eq!(
        e,
        Error::WrongBlobKind {
            expected: hollow_core::BlobKind::Delta,
            found: hollow_core::BlobKind::Snapshot
        }
    );
    let e = ReadState::from_snapshot(Bytes::from(v2.delta.unwrap())).unwrap_err();
    assert_eq!(
        e,
        Error::WrongBlobKind {
            expected: hollow_core::BlobKind::Snapshot,
            found: hollow_core::BlobKind::Delta
        }
    );
}

#[test]
fn unchanged_types_are_shared_and_an_identical_cycle_is_an_empty_delta() {
    let mut w = WriteState::new(schema());
    let items: BTreeMap<i64, Item> = (0..50).map(|i| (i, item(i, i as u64))).collect();
    let v1 = cycle(&mut w, &items, 1);
    let v2 = cycle(&mut w, &items, 2);
    let s1 = load(&v1.snapshot);
    let s2 = s1
        .apply_delta(Bytes::from(v2.delta.clone().unwrap()))
        .unwrap();
    assert_eq!(s1.checksum(), s2.checksum());
    // Header, table, schema and footer only: no type section.
    assert!(v2.delta.unwrap().len() < 600);
    assert_eq!(s2.heap_bytes(), s1.heap_bytes());
}

/// A snapshot buffer that says when it is freed.
struct TrackedBuffer {
    bytes: Vec<u8>,
    freed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl AsRef<[u8]> for TrackedBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for TrackedBuffer {
    fn drop(&mut self) {
        self.freed.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// 2,000 items whose names, long enough to fill most of a snapshot, start with `prefix`.
fn named_items(prefix: &str) -> BTreeMap<i64, Item> {
    (0..2000)
        .map(|i| {
            let mut it = item(i, i as u64);
            it.name = format!("{prefix} {i:040}");
            (i, it)
        })
        .collect()
}

/// A type a delta leaves untouched is read in place from the snapshot buffer, and that slice
/// would keep the whole buffer allocated after deltas replaced the rest: once most of it is
/// no longer read, what is still read is copied out and the buffer goes with the last state
/// that reads it. A delta that changes little keeps sharing the buffer.
#[test]
fn a_delta_that_replaces_most_of_a_snapshot_lets_its_buffer_go() {
    let (before, renamed) = (named_items("first"), named_items("renamed"));
    let mut one_changed = before.clone();
    let flag = &mut one_changed.get_mut(&7).unwrap().flag;
    *flag = !*flag;
    let mut w = WriteState::new(schema());
    let v1 = cycle(&mut w, &before, 1);
    let v2 = cycle(&mut w, &renamed, 2);
    let mut w = WriteState::new(schema());
    cycle(&mut w, &before, 1);
    let v2_small = cycle(&mut w, &one_changed, 2);

    let load_tracked = || {
        let freed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let buffer = TrackedBuffer {
            bytes: v1.snapshot.clone(),
            freed: freed.clone(),
        };
        (
            ReadState::from_snapshot(Bytes::from_owner(buffer)).unwrap(),
            freed,
        )
    };
    let is_freed = |f: &std::sync::atomic::AtomicBool| f.load(std::sync::atomic::Ordering::SeqCst);

    // Every name changed: the untouched types (tags, parts, attributes) are copied out.
    let (s1, freed) = load_tracked();
    let s2 = s1.apply_delta(Bytes::from(v2.delta.unwrap())).unwrap();
    drop(s1);
    assert!(
        is_freed(&freed),
        "the snapshot buffer outlived its last reader"
    );
    assert_holds(&s2, &renamed);
    let snapshot = load(&v2.snapshot);
    assert_eq!(s2.checksum(), snapshot.checksum());
    assert!(
        s2.heap_bytes() < snapshot.heap_bytes(),
        "{} bytes counted for a state that no longer holds its first snapshot, {} for the snapshot of its version",
        s2.heap_bytes(),
        snapshot.heap_bytes()
    );

    // One flag changed: the names, most of the buffer, are still read from it, and shared.
    let (s1, freed) = load_tracked();
    let s2 = s1
        .apply_delta(Bytes::from(v2_small.delta.unwrap()))
        .unwrap();
    drop(s1);
    assert!(!is_freed(&freed));
    assert_holds(&s2, &one_changed);
    drop(s2);
    assert!(is_freed(&freed));
}

/// A producer's first state reads its snapshot in place and publishes the same memory: the
/// blob it gets back stays whole while deltas replace the sections the state read, and the
/// buffer goes with the last of the blob and the states that read it.
#[test]
fn a_snapshot_kept_while_read_in_place_stays_whole() {
    let (before, renamed) = (named_items("first"), named_items("renamed"));
    let mut w = WriteState::new(schema());
    let v1 = cycle(&mut w, &before, 1);
    let v2 = cycle(&mut w, &renamed, 2);

    let owned = v1.snapshot.clone();
    let at = owned.as_ptr();
    let (s1, blob) = ReadState::from_snapshot_keeping_blob(owned).unwrap();
    assert_eq!(blob.as_ptr(), at, "read in place, not copied");
    assert_holds(&s1, &before);
    let s2 = s1.apply_delta(Bytes::from(v2.delta.unwrap())).unwrap();
    drop(s1);
    assert!(blob[..] == v1.snapshot[..], "the kept blob changed");
    drop(blob);
    assert_holds(&s2, &renamed);
    assert_eq!(s2.checksum(), load(&v2.snapshot).checksum());
    assert!(ReadState::from_snapshot_keeping_blob(b"not a blob".to_vec()).is_err());
}

/// A producer lets the state its deltas reach go before writing the snapshot of its version,
/// and reads that snapshot back with the state's indexes: every key is found as before. A
/// snapshot of anything else is refused.
#[test]
fn a_snapshot_read_as_the_state_it_replaces_takes_its_indexes() {
    let mut w = WriteState::new(schema());
    let mut items: BTreeMap<i64, Item> = (0..3000).map(|i| (i, item(i, i as u64))).collect();
    let v1 = cycle(&mut w, &items, 1);
    for i in 0..300 {
        items.remove(&(i * 7));
        items.insert(5000 + i, item(5000 + i, i as u64 * 3));
    }
    let chain = load(&v1.snapshot);
    let (v2, reached) = cycle_on(&mut w, &items, 2, &chain);
    drop(chain);
    let layout = reached.into_layout();
    let digest = layout.digest();
    let (s2, blob) = ReadState::from_snapshot_laid_out_as(v2.snapshot.clone(), layout).unwrap();
    assert!(blob[..] == v2.snapshot[..]);
    assert_eq!(s2.layout_digest(), digest);
    assert_holds(&s2, &items);

    let other = load(&v2.snapshot).into_layout();
    match ReadState::from_snapshot_laid_out_as(v1.snapshot, other) {
        Err(Error::LayoutMismatch {
            version: 1,
            laid_out_as: 2,
        }) => {}
        r => panic!("{:?}", r.map(|(s, _)| s.version())),
    }
}

#[test]
fn writing_a_delta_needs_a_committed_state() {
    let mut w = WriteState::new(schema());
    w.add(&item(1, 1)).unwrap();
    assert!(w.write_delta(0, 1).is_err());
}

#[test]
fn an_abandoned_cycle_leaves_the_previous_state_as_origin() {
    let mut w = WriteState::new(schema());
    let mut items: BTreeMap<i64, Item> = (0..30).map(|i| (i, item(i, i as u64))).collect();
    let v1 = cycle(&mut w, &items, 1);
    // A failed cycle: some records added, then abandoned.
    for i in 100..110 {
        w.add(&item(i, 5)).unwrap();
    }
    w.abandon_cycle();
    items.remove(&0);
    items.insert(99, item(99, 99));
    let v2 = cycle(&mut w, &items, 2);
    let chained = load(&v1.snapshot)
        .apply_delta(Bytes::from(v2.delta.unwrap()))
        .unwrap();
    assert_eq!(chained.checksum(), load(&v2.snapshot).checksum());
    assert_holds(&chained, &items);
}

#[derive(Debug, Clone)]
enum Op {
    Add(u64),
    Change(usize, u64),
    Remove(usize),
}

fn ops() -> impl Strategy<Value = Vec<Vec<Op>>> {
    let op = prop_oneof![
        3 => any::<u64>().prop_map(Op::Add),
        4 => (any::<usize>(), any::<u64>()).prop_map(|(i, s)| Op::Change(i, s)),
        2 => any::<usize>().prop_map(Op::Remove),
    ];
    prop::collection::vec(prop::collection::vec(op, 0..12), 100..130)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    #[test]
    fn a_hundred_cycles_of_random_changes_agree_with_snapshots_both_ways(cycles in ops()) {
        let mut w = WriteState::new(schema());
        let mut items: BTreeMap<i64, Item> = (0..40).map(|i| (i, item(i, i as u64 * 3))).collect();
        let mut next_id = 40;
        let first = cycle(&mut w, &items, 1);
        let mut chain = load(&first.snapshot);
        let mut previous_checksum = chain.checksum();
        for (k, ops) in cycles.iter().enumerate() {
            for op in ops {
                match *op {
                    Op::Add(seed) => {
                        items.insert(next_id, item(next_id, seed));
                        next_id += 1;
                    }
                    Op::Change(i, seed) if !items.is_empty() => {
                        let id = *items.keys().nth(i % items.len()).unwrap();
                        items.insert(id, item(id, seed));
                    }
                    Op::Remove(i) if !items.is_empty() => {
                        let id = *items.keys().nth(i % items.len()).unwrap();
                        items.remove(&id);
                    }
                    _ => {}
                }
            }
            let version = k as u64 + 2;
            let (blobs, next) = cycle_on(&mut w, &items, version, &chain);
            let snapshot = load(&blobs.snapshot);
            prop_assert_eq!(next.checksum(), snapshot.checksum(), "forward at v{}", version);
            prop_assert_eq!(next.layout_digest(), snapshot.layout_digest(), "layout at v{}", version);
            let reverse = Bytes::from(blobs.reverse.unwrap());
            let back = next.apply_delta(reverse.clone()).unwrap();
            prop_assert_eq!(back.checksum(), previous_checksum, "reverse at v{}", version);
            // The check without the state says the same as the state.
            prop_assert!(next.delta_leads_to(reverse, &chain).unwrap());
            let delta = Bytes::from(blobs.delta.unwrap());
            prop_assert_eq!(
                chain.delta_leads_to(delta.clone(), &chain).unwrap(),
                next.same_content_as(&chain)
            );
            prop_assert!(chain.delta_leads_to(delta, &next).unwrap());
            if k % 10 == 0 {
                assert_holds(&next, &items);
            }
            previous_checksum = snapshot.checksum();
            chain = next;
        }
        assert_holds(&chain, &items);
    }
}

mod v1 {
    use serde::{Deserialize, Serialize};
    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[serde(rename = "Item")]
    pub struct Item {
        pub id: i64,
        pub name: String,
        pub parts: Vec<super::Part>,
    }
}

mod v2 {
    use serde::{Deserialize, Serialize};
    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    pub struct Label {
        pub text: String,
    }
    /// v1 plus a field, and a field of a new type.
    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[serde(rename = "Item")]
    pub struct Item {
        pub id: i64,
        pub name: String,
        pub parts: Vec<super::Part>,
        pub color: Option<String>,
        pub labels: Vec<Label>,
    }
}

fn schema_v1() -> hollow_core::Schema {
    SchemaBuilder::new()
        .add::<v1::Item>()
        .primary_key("Item", &["id"])
        .build()
        .unwrap()
}

fn schema_v2() -> hollow_core::Schema {
    SchemaBuilder::new()
        .add::<v2::Item>()
        .primary_key("Item", &["id"])
        .build()
        .unwrap()
}

fn items_v1(n: i64) -> Vec<v1::Item> {
    (0..n)
        .map(|id| v1::Item {
            id,
            name: format!("n{}", id % 5),
            parts: vec![Part {
                sku: format!("s{}", id % 3),
                qty: 1,
            }],
        })
        .collect()
}

fn items_v2(n: i64) -> Vec<v2::Item> {
    items_v1(n)
        .into_iter()
        .map(|i| v2::Item {
            id: i.id,
            name: i.name,
            parts: i.parts,
            color: (i.id % 2 == 0).then(|| "red".to_string()),
            labels: vec![v2::Label {
                text: format!("l{}", i.id % 4),
            }],
        })
        .collect()
}

/// Writes one cycle of `records` at `version` and returns (snapshot, delta, reverse delta).
fn cycle_of<T: Serialize>(
    w: &mut WriteState,
    records: &[T],
    version: u64,
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    for r in records {
        w.add(r).unwrap();
    }
    let out = (
        w.write_snapshot(version).unwrap(),
        w.write_delta(version - 1, version).unwrap(),
        w.write_reverse_delta(version, version - 1).unwrap(),
    );
    w.commit_cycle().unwrap();
    out
}

#[test]
fn adding_and_removing_fields_and_types_follows_the_delta_chain() {
    let mut w = WriteState::new(schema_v1());
    for r in items_v1(30) {
        w.add(&r).unwrap();
    }
    let s1 = load(&w.write_snapshot(1).unwrap());
    w.commit_cycle().unwrap();

    // Cycle 2: a field and a type are added.
    w.set_schema(schema_v2()).unwrap();
    let (snap2, d12, r21) = cycle_of(&mut w, &items_v2(30), 2);
    let s2 = load(&snap2);
    assert!(s2.schema().type_id("Label").is_some());
    let chain2 = s1.apply_delta(Bytes::from(d12.clone())).unwrap();
    assert_eq!(chain2.checksum(), s2.checksum());
    assert!(s1.delta_leads_to(Bytes::from(d12.clone()), &s2).unwrap());
    assert!(!s1.delta_leads_to(Bytes::from(d12), &s1).unwrap());
    assert_eq!(chain2.schema(), s2.schema());
    let o = chain2
        .primary_key_index("Item")
        .unwrap()
        .find(&4i64)
        .unwrap()
        .unwrap();
    assert_eq!(chain2.get::<v2::Item>(o).unwrap(), items_v2(30)[4]);
    let back1 = chain2.apply_delta(Bytes::from(r21.clone())).unwrap();
    assert_eq!(back1.checksum(), s1.checksum());
    assert!(chain2.delta_leads_to(Bytes::from(r21), &s1).unwrap());
    assert_eq!(back1.schema(), s1.schema());

    // Cycle 3: same schema, ordinary changes.
    let (snap3, d23, _) = cycle_of(&mut w, &items_v2(35), 3);
    let chain3 = chain2.apply_delta(Bytes::from(d23)).unwrap();
    assert_eq!(chain3.checksum(), load(&snap3).checksum());

    // Cycle 4: back to v1: the field and the type are removed.
    w.set_schema(schema_v1()).unwrap();
    let (snap4, d34, r43) = cycle_of(&mut w, &items_v1(35), 4);
    let s4 = load(&snap4);
    let chain4 = chain3.apply_delta(Bytes::from(d34)).unwrap();
    assert_eq!(chain4.checksum(), s4.checksum());
    assert!(chain4.schema().type_id("Label").is_none());
    assert_eq!(
        chain4
            .get::<v1::Item>(
                chain4
                    .primary_key_index("Item")
                    .unwrap()
                    .find(&34i64)
                    .unwrap()
                    .unwrap()
            )
            .unwrap(),
        items_v1(35)[34]
    );
    let back3 = chain4.apply_delta(Bytes::from(r43.clone())).unwrap();
    assert_eq!(back3.checksum(), chain3.checksum());
    assert!(chain4
        .delta_leads_to(Bytes::from(r43.clone()), &chain3)
        .unwrap());
    assert!(!chain4
        .delta_leads_to(Bytes::from(r43.clone()), &s2)
        .unwrap());
    assert!(matches!(
        s2.delta_leads_to(Bytes::from(r43), &chain3),
        Err(Error::DeltaOriginMismatch { .. })
    ));
}

#[test]
fn the_schema_changes_only_between_cycles() {
    let mut w = WriteState::new(schema_v1());
    w.add(&items_v1(1)[0]).unwrap();
    assert!(w.set_schema(schema_v2()).is_err());
    w.abandon_cycle();
    w.set_schema(schema_v2()).unwrap();
}

#[test]
fn a_restored_write_state_continues_the_delta_chain() {
    let mut w = WriteState::new(schema());
    let mut items: BTreeMap<i64, Item> = (0..300).map(|i| (i, item(i, i as u64 * 7))).collect();
    // Two cycles so the state has holes and freed ordinals.
    cycle(&mut w, &items, 1);
    for i in 0..50 {
        items.remove(&i);
    }
    let v2 = cycle(&mut w, &items, 2);
    let s2 = load(&v2.snapshot);

    let mut restored = WriteState::restore(&s2);
    for it in items.values() {
        restored.add(it).unwrap();
    }
    assert!(!restored.has_changes(), "the same dataset is no change");
    assert_eq!(
        load(&restored.write_snapshot(2).unwrap()).checksum(),
        s2.checksum(),
        "the restored state is the state"
    );
    restored.abandon_cycle();

    for i in 300..320 {
        items.insert(i, item(i, i as u64));
    }
    items.get_mut(&100).unwrap().name = "renamed".into();
    let v3 = cycle(&mut restored, &items, 3);
    let chained = s2.apply_delta(Bytes::from(v3.delta.unwrap())).unwrap();
    assert_eq!(chained.checksum(), load(&v3.snapshot).checksum());
    assert_holds(&chained, &items);
    let back = chained
        .apply_delta(Bytes::from(v3.reverse.unwrap()))
        .unwrap();
    assert_eq!(back.checksum(), s2.checksum());
}

#[test]
fn a_state_reached_by_deltas_is_bit_for_bit_its_snapshot() {
    let mut w = WriteState::new(schema());
    let mut items: BTreeMap<i64, Item> = (0..500).map(|i| (i, item(i, i as u64))).collect();
    let v1 = cycle(&mut w, &items, 1);
    for i in 0..40 {
        items.remove(&(i * 7));
        items.insert(1000 + i, item(1000 + i, i as u64 * 11));
    }
    let v2 = cycle(&mut w, &items, 2);
    let s1 = load(&v1.snapshot);
    let s2 = load(&v2.snapshot);
    let chained = s1.apply_delta(Bytes::from(v2.delta.unwrap())).unwrap();
    assert!(chained.same_content_as(&s2));
    assert!(s2.same_content_as(&chained));
    assert!(!s1.same_content_as(&s2));
    let back = s2.apply_delta(Bytes::from(v2.reverse.unwrap())).unwrap();
    assert!(back.same_content_as(&s1));
    // The same by digest, which a producer compares once it no longer holds the other state.
    assert_eq!(chained.layout_digest(), s2.layout_digest());
    assert_eq!(back.layout_digest(), s1.layout_digest());
    assert_ne!(s1.layout_digest(), s2.layout_digest());
    w.set_tag("source", "elsewhere");
    let v3 = cycle(&mut w, &items, 3);
    let s3 = load(&v3.snapshot);
    assert!(s3.tags() != s2.tags());
    assert_ne!(
        s3.layout_digest(),
        s2.layout_digest(),
        "tags are in the digest"
    );
}

/// Regression: after the producer changed the type of a key field (i64 → string), lookups
/// with the old key type returned "not found" for every key. They are an error now.
#[test]
fn a_lookup_with_the_old_key_type_after_a_key_type_change_is_an_error() {
    mod keyed_by_name {
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(rename = "Item")]
        pub struct Item {
            pub id: String,
        }
    }
    let mut w = WriteState::new(schema_v1());
    for item in items_v1(3) {
        w.add(&item).unwrap();
    }
    let snapshot = w.write_snapshot(1).unwrap();
    w.commit_cycle().unwrap();
    let v1 = load(&snapshot);
    assert!(v1
        .primary_key_index("Item")
        .unwrap()
        .find(&1i64)
        .unwrap()
        .is_some());
    w.set_schema(
        SchemaBuilder::new()
            .add::<keyed_by_name::Item>()
            .primary_key("Item", &["id"])
            .build()
            .unwrap(),
    )
    .unwrap();
    w.add(&keyed_by_name::Item { id: "1".into() }).unwrap();
    let delta = w.write_delta(1, 2).unwrap();
    let v2 = v1.apply_delta(Bytes::from(delta)).unwrap();
    let index = v2.primary_key_index("Item").unwrap();
    assert_eq!(index.find("1").unwrap(), Some(0));
    let e = index.find(&1i64).unwrap_err();
    assert_eq!(
        e.to_string(),
        "a key of (integer) cannot be looked up in an index of (string)"
    );
    assert!(matches!(Error::from(e), Error::KeyMismatch { .. }));
}
