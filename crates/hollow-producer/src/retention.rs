//! Retention: deleting the blobs of old versions, never one a consumer needs.

use hollow_core::StateId;
use hollow_store::layout::BlobName;
use hollow_store::BlobStore;

use crate::error::Result;

/// What a retention pass did.
pub(crate) struct Retention {
    /// Blobs deleted.
    pub deleted: usize,
    /// Whether what is kept reaches back to the snapshot a consumer starting now would load
    /// (not only to the newest `keep` versions): then nothing more can go until a newer
    /// snapshot is published, and later passes can wait for one.
    pub waits_for_a_snapshot: bool,
}

/// Deletes blobs of versions older than the newest `keep` ones, keeping the snapshot a
/// consumer starting now would load for the announced state and every delta from it on.
pub(crate) async fn apply_retention(
    store: &BlobStore,
    announced: StateId,
    keep: u64,
) -> Result<Retention> {
    let blobs = store.list().await?;
    let mut versions: Vec<u64> = blobs
        .iter()
        .map(|b| b.destination().version)
        .filter(|&v| v <= announced.version)
        .collect();
    versions.sort_unstable_by(|a, b| b.cmp(a));
    versions.dedup();
    let cutoff = versions
        .get(keep as usize - 1)
        .or(versions.last())
        .copied()
        .unwrap_or(announced.version);
    // The snapshot a fresh consumer starts from; never deleted, nor the deltas after it.
    let anchor = hollow_store::plan(&blobs, None, announced, usize::MAX)?
        .snapshot
        .map_or(announced.version, |s| s.version);
    let floor = cutoff.min(anchor);
    let mut deleted = 0;
    for b in blobs {
        let old = match b {
            BlobName::Snapshot(s) => s.version < floor,
            BlobName::Delta { from, .. } => from.version < floor,
            BlobName::ReverseDelta { to, .. } => to.version < floor,
        };
        if old {
            store.delete(b).await?;
            deleted += 1;
        }
    }
    Ok(Retention {
        deleted,
        waits_for_a_snapshot: anchor <= cutoff,
    })
}
