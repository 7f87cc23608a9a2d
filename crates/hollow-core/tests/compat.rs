//! Blobs of older format versions stay readable: the files under `tests/frozen/` were written by
//! earlier versions of this library and are never rewritten (see `tests/frozen/README.md`).

use std::collections::BTreeMap;

use bytes::Bytes;
use hollow_core::{ReadState, SchemaBuilder, StateId, Value, WriteState};
use serde::{Deserialize, Serialize};

fn frozen(name: &str) -> Bytes {
    let path = format!("{}/tests/frozen/{name}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn names(state: &ReadState) -> Vec<String> {
    let index = state.primary_key_index("Node").unwrap();
    (0..300i64)
        .filter_map(|id| index.find(&id).unwrap())
        .map(|o| match state.get_as::<Value>("Node", o).unwrap() {
            Value::Map(fields) => format!("{:?}", fields[1].1),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn format_1_snapshots_read_as_they_did() {
    let state = ReadState::from_snapshot(frozen("v1/snapshot-nodes-5")).unwrap();
    assert_eq!(state.id(), StateId::from(5));
    assert_eq!(state.record_count("Node").unwrap(), 4 + 5);
    assert_eq!(state.checksum(), FROZEN_CHECKSUM_5);
    assert_eq!(names(&state).len(), 9);
}

#[test]
fn format_1_deltas_apply_forward_and_back() {
    let v1 = ReadState::from_snapshot(frozen("v1/snapshot-nodes-1")).unwrap();
    let v2 = ReadState::from_snapshot(frozen("v1/snapshot-nodes-2")).unwrap();
    let forward = v1.apply_delta(frozen("v1/delta-nodes-1-2")).unwrap();
    assert_eq!(forward.id(), StateId::from(2));
    assert!(forward.same_content_as(&v2));
    assert_eq!(names(&forward), names(&v2));
    let back = forward
        .apply_delta(frozen("v1/reversedelta-nodes-2-1"))
        .unwrap();
    assert!(back.same_content_as(&v1));
    assert_eq!(back.checksum(), v1.checksum());
}

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

/// Two states of `Node`s and the blobs between them: snapshots of both, a delta and a
/// reverse delta.
fn node_blobs() -> Vec<(&'static str, Vec<u8>)> {
    let schema = SchemaBuilder::new()
        .add::<Node>()
        .primary_key("Node", &["id"])
        .build()
        .unwrap();
    let node = |id: i64, name: &str| Node {
        id,
        name: name.into(),
        raw: vec![id as u8, 2],
        flag: id % 2 == 0,
        score: id as f64 / 3.0,
        tags: vec![Tag {
            label: name.into(),
            weight: (id % 3 == 0).then_some(0.5),
        }],
        attrs: BTreeMap::from([(name.to_string(), id as i32)]),
        children: if id < 3 {
            vec![node_leaf(100 + id)]
        } else {
            vec![]
        },
        small: (id % 2 == 1).then_some(id as i32 - 4),
    };
    fn node_leaf(id: i64) -> Node {
        Node {
            id,
            name: format!("leaf-{id}"),
            raw: vec![],
            flag: false,
            score: 0.0,
            tags: vec![],
            attrs: BTreeMap::new(),
            children: vec![],
            small: None,
        }
    }
    let mut w = WriteState::new(schema);
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
    let reverse = w.write_reverse_delta(2, 1).unwrap();
    let s2 = w.write_snapshot(2).unwrap();
    vec![
        ("snapshot-nodes-1", s1),
        ("delta-nodes-1-2", delta),
        ("reversedelta-nodes-2-1", reverse),
        ("snapshot-nodes-2", s2),
    ]
}

#[test]
fn format_2_is_still_written_byte_for_byte_for_schemas_without_paths() {
    for (name, written) in node_blobs() {
        let path = format!("v2/{name}");
        assert_eq!(&written[8..12], &2u32.to_le_bytes(), "{path}: format");
        assert!(
            written == frozen(&path),
            "{path}: written otherwise than in format 2"
        );
    }
}

#[test]
fn format_2_blobs_read_and_apply_forward_and_back() {
    let v1 = ReadState::from_snapshot(frozen("v2/snapshot-nodes-1")).unwrap();
    let v2 = ReadState::from_snapshot(frozen("v2/snapshot-nodes-2")).unwrap();
    assert_eq!(names(&v1).len(), 6 + 3);
    let forward = v1.apply_delta(frozen("v2/delta-nodes-1-2")).unwrap();
    assert!(forward.same_content_as(&v2));
    assert_eq!(names(&forward), names(&v2));
    let back = forward
        .apply_delta(frozen("v2/reversedelta-nodes-2-1"))
        .unwrap();
    assert!(back.same_content_as(&v1));
    assert_eq!(names(&back), names(&v1));
}

/// The state checksum of `v1/snapshot-nodes-5`, as computed when it was frozen.
const FROZEN_CHECKSUM_5: u64 = 3617530517700629853;
