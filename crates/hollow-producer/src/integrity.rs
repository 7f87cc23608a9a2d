//! The integrity check of a cycle's blobs before anything is published.

use bytes::Bytes;
use hollow_core::{ReadState, WriteState};

use crate::error::{Error, Result};

/// The blobs of one cycle, held until published.
pub(crate) struct CycleBlobs {
    /// Written only in a cycle that publishes it (or has no delta).
    pub(crate) snapshot: Option<Bytes>,
    pub(crate) deltas: Option<(Bytes, Bytes)>,
}

/// Loads the cycle's snapshot and checks the deltas against it: the announced state
/// (`previous`) plus the delta must equal the snapshot's state, and that plus the reverse delta
/// the announced state. Returns the new state.
///
/// A cycle without a snapshot is checked in time proportional to its change, apart from the
/// copy of each type the delta touches that applying it makes: the announced state plus the
/// delta must hold what `write` wrote (populations, and every record the cycle added:
/// [`WriteState::verify_changes_in`]), and that plus the reverse delta the announced state,
/// which [`ReadState::apply_delta_checking_reverse`] checks from what the two deltas change.
///
/// The forward chain runs on a second thread while the snapshot is loaded. The forward state
/// must equal the snapshot's bit for bit, so the reverse delta applied to it stands for the
/// reverse delta applied to the snapshot's state, and it is the state returned: its primary key
/// indexes are the previous ones updated, where the snapshot's would have to be built.
pub(crate) fn check_integrity(
    previous: Option<(&ReadState, u64)>,
    blobs: &CycleBlobs,
    version: u64,
    write: &WriteState,
) -> Result<ReadState> {
    let no_snapshot = || {
        Error::Integrity(format!(
            "version {version} has neither a snapshot nor a delta"
        ))
    };
    let Some(((previous, from), (delta, reverse))) = previous.zip(blobs.deltas.as_ref()) else {
        // A copy: states never hold on to the snapshot's buffer, which the next cycle reuses.
        let snapshot = Bytes::copy_from_slice(blobs.snapshot.as_ref().ok_or_else(no_snapshot)?);
        return Ok(ReadState::from_snapshot(snapshot)?);
    };
    let Some(snapshot) = &blobs.snapshot else {
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
        return Ok(forward);
    };
    let (snapshot, chain) = std::thread::scope(|s| {
        let chain =
            s.spawn(|| previous.apply_delta_checking_reverse(delta.clone(), reverse.clone()));
        let snapshot = ReadState::from_snapshot_without_indexes(snapshot.clone());
        let chain = chain
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (snapshot, chain)
    });
    let snapshot = snapshot?;
    let (forward, back_is_previous) = chain?;
    if !forward.same_content_as(&snapshot) {
        return Err(Error::Integrity(format!(
            "version {from} plus its delta differs from the snapshot of {version}"
        )));
    }
    if !back_is_previous {
        return Err(Error::Integrity(format!(
            "version {version} plus its reverse delta differs from version {from}"
        )));
    }
    Ok(forward)
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

    #[test]
    fn consistent_blobs_pass_and_give_the_snapshots_state() {
        let (v1, blobs, w) = cycle(["a", "b"]);
        let state = check_integrity(Some((&v1, 1)), &blobs, 2, &w).unwrap();
        assert_eq!(state.version(), 2);
        assert_eq!(state.record_count("Row").unwrap(), 50);
    }

    #[test]
    fn without_a_snapshot_the_deltas_are_checked_against_the_write_state() {
        let (v1, mut blobs, w) = cycle(["a", "b"]);
        blobs.snapshot = None;
        let state = check_integrity(Some((&v1, 1)), &blobs, 2, &w).unwrap();
        assert_eq!(state.version(), 2);
        assert_eq!(state.record_count("Row").unwrap(), 50);

        // A delta that reaches other records than the ones written.
        let (_, other, _) = cycle(["a", "c"]);
        let mixed = CycleBlobs {
            snapshot: None,
            deltas: other.deltas,
        };
        let e = check_integrity(Some((&v1, 1)), &mixed, 2, &w).unwrap_err();
        assert!(
            matches!(&e, Error::Integrity(m) if m.contains("differs from what version 2 wrote")),
            "{e}"
        );
        // A reverse delta that does not lead back.
        let (_, other, _) = cycle(["z", "b"]);
        let (delta, _) = blobs.deltas.unwrap();
        let mixed = CycleBlobs {
            snapshot: None,
            deltas: Some((delta, other.deltas.unwrap().1)),
        };
        let e = check_integrity(Some((&v1, 1)), &mixed, 2, &w).unwrap_err();
        assert!(
            matches!(&e, Error::Integrity(m) if m.contains("reverse delta")),
            "{e}"
        );
    }

    #[test]
    fn a_snapshot_that_the_delta_does_not_reach_fails() {
        let (v1, blobs, w) = cycle(["a", "b"]);
        let (_, other, _) = cycle(["a", "c"]);
        let mixed = CycleBlobs {
            snapshot: other.snapshot,
            deltas: blobs.deltas,
        };
        let e = check_integrity(Some((&v1, 1)), &mixed, 2, &w).unwrap_err();
        assert!(
            matches!(&e, Error::Integrity(m) if m.contains("plus its delta")),
            "{e}"
        );
    }

    #[test]
    fn a_reverse_delta_that_does_not_lead_back_fails() {
        let (v1, blobs, w) = cycle(["a", "b"]);
        let (_, other, _) = cycle(["z", "b"]);
        let (delta, _) = blobs.deltas.unwrap();
        let (_, wrong_reverse) = other.deltas.unwrap();
        let mixed = CycleBlobs {
            snapshot: blobs.snapshot,
            deltas: Some((delta, wrong_reverse)),
        };
        let e = check_integrity(Some((&v1, 1)), &mixed, 2, &w).unwrap_err();
        assert!(
            matches!(&e, Error::Integrity(m) if m.contains("reverse delta")),
            "{e}"
        );
    }
}
