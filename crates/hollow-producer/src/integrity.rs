//! The integrity checks of a cycle's blobs before anything is published.

use bytes::Bytes;
use hollow_core::{ReadState, StateLayout, WriteState};

use crate::error::{Error, Result};

/// The blobs of one cycle, held until published.
pub(crate) struct CycleBlobs {
    /// Written only in a cycle that publishes it (or has no delta).
    pub(crate) snapshot: Option<Bytes>,
    pub(crate) deltas: Option<(Bytes, Bytes)>,
}

/// Checks a cycle's deltas in time proportional to its change, apart from the copy of each
/// type the delta touches that applying it makes: the announced state (`previous`) plus the
/// delta must hold what `write` wrote (populations, and every record the
/// cycle added: [`WriteState::verify_changes_in`]), and that plus the reverse delta the
/// announced state, which [`ReadState::apply_delta_checking_reverse`] checks from what the two
/// deltas change. Returns the new state: its primary key indexes are the previous ones
/// updated, where a snapshot's would have to be built.
pub(crate) fn check_deltas(
    previous: &ReadState,
    (delta, reverse): &(Bytes, Bytes),
    version: u64,
    write: &WriteState,
) -> Result<ReadState> {
    let from = previous.version();
    let (forward, back_is_previous) =
        previous.apply_delta_checking_reverse(delta.clone(), reverse.clone())?;
    write.verify_changes_in(&forward).map_err(|difference| {
        Error::Integrity(format!(
            "version {from} plus its delta differs from what version {version} wrote: {difference}"
        ))
    })?;
    if !back_is_previous {
        return Err(Error::Integrity(format!(
            "version {version} plus its reverse delta differs from version {from}"
        )));
    }
    Ok(forward)
}

/// The state read from a cycle's snapshot, which must hold bit for bit the state version
/// `from` plus its delta reached (checked by [`check_deltas`]) and was let go as `reached`: so
/// that a reader starting from the snapshot and one following the deltas serve the same. It
/// reads the snapshot in place and takes the indexes of the state it replaces; the snapshot
/// comes back as a view of the same memory, to publish.
pub(crate) fn snapshot_state(
    snapshot: Vec<u8>,
    reached: StateLayout,
    from: u64,
) -> Result<(ReadState, Bytes)> {
    ReadState::from_snapshot_laid_out_as(snapshot, reached).map_err(|e| match e {
        hollow_core::Error::LayoutMismatch { version, .. } => Error::Integrity(format!(
            "version {from} plus its delta differs from the snapshot of {version}"
        )),
        e => e.into(),
    })
}

#[cfg(test)]
mod tests {
    use hollow_core::WriteState;

    use super::*;
    use crate::test_rows::{schema, Row};

    /// Versions 1 and 2 of a dataset whose rows are named with `names`: the state of version 1
    /// and the blobs of the cycle to version 2.
    fn cycle(names: [&str; 2]) -> (ReadState, CycleBlobs, WriteState) {
        let mut w = WriteState::new(schema());
        let rows = |v: i64| {
            (0..50).map(move |id| Row {
                id,
                name: format!("{} {}", names[(v - 1) as usize], id % (7 + v)),
            })
        };
        w.add_all(&rows(1).collect::<Vec<_>>()).unwrap();
        let v1 = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
        w.commit_cycle().unwrap();
        w.add_all(&rows(2).collect::<Vec<_>>()).unwrap();
        let blobs = CycleBlobs {
            snapshot: Some(w.write_snapshot(2).unwrap().into()),
            deltas: Some((
                w.write_delta(1, 2).unwrap().into(),
                w.write_reverse_delta(2, 1).unwrap().into(),
            )),
        };
        (v1, blobs, w)
    }

    /// Versions 1 and 2 of `n` rows, all of them renamed in version 2, the last one to
    /// `last_name`: the state of version 1, the deltas to version 2, and the write state.
    fn large_cycle(n: i64, last_name: &str) -> (ReadState, (Bytes, Bytes), WriteState) {
        let mut w = WriteState::new(schema());
        let rows = |prefix: &'static str| {
            (0..n).map(move |id| Row {
                id,
                name: format!("{prefix} {id}"),
            })
        };
        w.add_all(&rows("a").collect::<Vec<_>>()).unwrap();
        let v1 = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
        w.commit_cycle().unwrap();
        let mut renamed: Vec<Row> = rows("b").collect();
        renamed.last_mut().unwrap().name = last_name.to_string();
        w.add_all(&renamed).unwrap();
        let deltas = (
            w.write_delta(1, 2).unwrap().into(),
            w.write_reverse_delta(2, 1).unwrap().into(),
        );
        (v1, deltas, w)
    }

    /// Enough changed records for the check to spread over the cores: consistent deltas pass,
    /// and a single record that differs, in the last piece, is found.
    #[test]
    fn a_large_cycle_is_checked_record_by_record() {
        let n = 40_000;
        let (v1, deltas, w) = large_cycle(n, "b last");
        let state = check_deltas(&v1, &deltas, 2, &w).unwrap();
        assert_eq!(state.record_count("Row").unwrap(), n as u64);
        let (_, other, _) = large_cycle(n, "z last");
        let e = check_deltas(&v1, &other, 2, &w).unwrap_err();
        assert!(
            matches!(&e, Error::Integrity(m) if m.contains("differs from what version 2 wrote")
                && m.contains("column name differs")),
            "{e}"
        );
    }

    #[test]
    fn consistent_blobs_pass_and_give_the_new_state() {
        let (v1, blobs, w) = cycle(["a", "b"]);
        let deltas = blobs.deltas.as_ref().unwrap();
        let state = check_deltas(&v1, deltas, 2, &w).unwrap();
        assert_eq!(state.version(), 2);
        assert_eq!(state.record_count("Row").unwrap(), 50);
        let checksum = state.checksum();
        let snapshot = blobs.snapshot.unwrap().to_vec();
        let (first, blob) = snapshot_state(snapshot.clone(), state.into_layout(), 1).unwrap();
        assert_eq!(first.checksum(), checksum);
        assert_eq!(blob[..], snapshot[..]);
        // The index it took from the state it replaces finds the keys it has, and no other.
        let index = first.primary_key_index("Row").unwrap();
        assert!((0..50i64).all(|id| index.find(&id).unwrap().is_some()));
        assert_eq!(index.find(&50i64).unwrap(), None);
    }

    #[test]
    fn deltas_that_reach_other_records_than_the_ones_written_fail() {
        let (v1, blobs, w) = cycle(["a", "b"]);
        let (_, other, _) = cycle(["a", "c"]);
        let e = check_deltas(&v1, other.deltas.as_ref().unwrap(), 2, &w).unwrap_err();
        assert!(
            matches!(&e, Error::Integrity(m) if m.contains("differs from what version 2 wrote")),
            "{e}"
        );
        // A reverse delta that does not lead back.
        let (_, other, _) = cycle(["z", "b"]);
        let (delta, _) = blobs.deltas.unwrap();
        let mixed = (delta, other.deltas.unwrap().1);
        let e = check_deltas(&v1, &mixed, 2, &w).unwrap_err();
        assert!(
            matches!(&e, Error::Integrity(m) if m.contains("reverse delta")),
            "{e}"
        );
    }

    #[test]
    fn a_snapshot_that_the_delta_does_not_reach_fails() {
        let (v1, blobs, w) = cycle(["a", "b"]);
        let (_, other, _) = cycle(["a", "c"]);
        let state = check_deltas(&v1, blobs.deltas.as_ref().unwrap(), 2, &w).unwrap();
        let snapshot = other.snapshot.unwrap().to_vec();
        let e = snapshot_state(snapshot, state.into_layout(), 1).unwrap_err();
        assert!(
            matches!(&e, Error::Integrity(m) if m.contains("plus its delta differs from the snapshot")),
            "{e}"
        );
    }
}
