//! State tags: key/value metadata a producer records with a state (as the Kafka offsets it
//! contains), carried by its snapshot, its delta and its reverse delta.

use bytes::Bytes;
use hollow_core::raw::{self, BlobWriter, ByteWriter, SectionKind};
use hollow_core::{CorruptReason, Error, ReadState, SchemaBuilder, StateId, WriteState};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Row {
    id: i64,
    name: String,
}

fn write_state() -> WriteState {
    let schema = SchemaBuilder::new()
        .add::<Row>()
        .primary_key("Row", &["id"])
        .build()
        .unwrap();
    WriteState::new(schema)
}

fn add_rows(w: &mut WriteState, n: i64) {
    for id in 0..n {
        w.add(&Row {
            id,
            name: format!("row {id}"),
        })
        .unwrap();
    }
}

#[test]
fn tags_travel_with_snapshots_deltas_and_reverse_deltas() {
    let mut w = write_state();
    add_rows(&mut w, 10);
    w.set_tag("kafka.offsets", "0:5,1:7");
    w.set_tag("build", "a");
    let v1 = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
    assert_eq!(v1.tag("kafka.offsets"), Some("0:5,1:7"));
    assert_eq!(v1.tags().len(), 2);
    w.commit_cycle().unwrap();

    // Tags stay until changed; a cycle with only a tag changed has changes.
    add_rows(&mut w, 10);
    assert!(!w.has_changes());
    w.set_tag("kafka.offsets", "0:6,1:7");
    w.remove_tag("build");
    assert!(w.has_changes());
    let delta = w.write_delta(1, 2).unwrap();
    let reverse = w.write_reverse_delta(2, 1).unwrap();
    let snapshot = ReadState::from_snapshot(w.write_snapshot(2).unwrap().into()).unwrap();
    let v2 = v1.apply_delta(delta.into()).unwrap();
    assert_eq!(v2.tag("kafka.offsets"), Some("0:6,1:7"));
    assert_eq!(v2.tag("build"), None);
    assert!(v2.same_content_as(&snapshot));
    let back = v2.apply_delta(reverse.into()).unwrap();
    assert_eq!(back.tags(), v1.tags());
    assert!(back.same_content_as(&v1));
    // Same records, other tags: not the same state.
    assert!(!v2.same_content_as(&v1));
    w.commit_cycle().unwrap();

    // A restored write state continues with the state's tags.
    let mut restored = WriteState::restore(&v2);
    assert_eq!(restored.tags(), v2.tags());
    add_rows(&mut restored, 10);
    assert!(!restored.has_changes());
}

#[test]
fn an_abandoned_cycle_drops_its_tags() {
    let mut w = write_state();
    add_rows(&mut w, 3);
    w.set_tag("offset", "1");
    w.write_snapshot(1).unwrap();
    w.commit_cycle().unwrap();
    add_rows(&mut w, 3);
    w.set_tag("offset", "2");
    w.abandon_cycle();
    assert_eq!(w.tags().get("offset").map(String::as_str), Some("1"));
}

#[test]
fn a_state_without_tags_reads_as_none_and_its_blob_has_no_tags_section() {
    let mut w = write_state();
    add_rows(&mut w, 3);
    let blob = w.write_snapshot(1).unwrap();
    let parsed = raw::parse(Bytes::from(blob.clone())).unwrap();
    assert!(parsed.sections.iter().all(|s| s.kind != SectionKind::Tags));
    assert!(ReadState::from_snapshot(blob.into())
        .unwrap()
        .tags()
        .is_empty());
}

/// A snapshot of `w` with its tags section replaced by `tags` (checksums valid).
fn with_tags_section(w: &mut WriteState, tags: ByteWriter) -> Bytes {
    let parsed = raw::parse(Bytes::from(w.write_snapshot(StateId::from(1)).unwrap())).unwrap();
    let mut out = BlobWriter::new(parsed.header);
    let mut tags = Some(tags);
    for s in parsed.sections {
        match (s.kind, tags.take_if(|_| s.kind == SectionKind::Tags)) {
            (SectionKind::Tags, Some(tags)) => out.section(SectionKind::Tags, 0, tags),
            (kind, _) => out.section(kind, s.type_id, s.data.to_vec().into()),
        }
    }
    out.finish().into()
}

#[test]
fn damaged_tags_are_an_error() {
    let mut w = write_state();
    add_rows(&mut w, 3);
    w.set_tag("a", "1");
    let mut unsorted = ByteWriter::new();
    unsorted.varint(2);
    for s in ["b", "1", "a", "2"] {
        unsorted.str(s);
    }
    let err = ReadState::from_snapshot(with_tags_section(&mut w, unsorted)).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Corrupt {
                reason: CorruptReason::OutOfOrder {
                    what: "tag names",
                    at: 1
                },
                ..
            }
        ),
        "{err}"
    );

    let mut too_many = ByteWriter::new();
    too_many.varint(1 << 40);
    too_many.str("a");
    too_many.str("1");
    assert!(ReadState::from_snapshot(with_tags_section(&mut w, too_many)).is_err());

    let mut not_utf8 = ByteWriter::new();
    not_utf8.varint(1);
    not_utf8.u32(2);
    not_utf8.bytes(&[0xff, 0xfe]);
    not_utf8.str("1");
    let err = ReadState::from_snapshot(with_tags_section(&mut w, not_utf8)).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Corrupt {
                reason: CorruptReason::NotUtf8 { .. },
                ..
            }
        ),
        "{err}"
    );
}
