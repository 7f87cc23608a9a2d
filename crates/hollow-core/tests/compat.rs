//! Blobs of older format versions stay readable: the files under `tests/frozen/` were written by
//! earlier versions of this library and are never rewritten (see `tests/frozen/README.md`).

use bytes::Bytes;
use hollow_core::{ReadState, StateId, Value};

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

/// The state checksum of `v1/snapshot-nodes-5`, as computed when it was frozen.
const FROZEN_CHECKSUM_5: u64 = 3617530517700629853;
