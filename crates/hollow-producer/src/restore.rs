//! Where a producer starts from: the state the store announces, restored from its blobs, and
//! the random tags that tell its new states apart.

use hollow_core::{ReadState, Schema, WriteState};
use hollow_store::layout::BlobName;
use hollow_store::{AnnouncementObject, BlobStore};

use crate::error::{Error, Result};

/// What a producer continues from: the state the store announces, the announcement object as
/// read (to compare-and-swap against; it may be a leader's fence without a state), and a write
/// state whose committed state the announced one is.
pub(crate) struct Restored {
    pub(crate) announced: Option<ReadState>,
    pub(crate) announcement: Option<AnnouncementObject>,
    pub(crate) write: WriteState,
    pub(crate) next_version: u64,
}

/// Reads the announced state back from the store (by deltas from `current` where it can, or
/// not at all when `current` is the announced state), and the highest version any blob names.
/// Refuses a `schema` that breaks readers of the announced state's, unless `allow_breaking`.
pub(crate) async fn restore(
    store: &BlobStore,
    schema: Schema,
    allow_breaking: bool,
    current: Option<&ReadState>,
) -> Result<Restored> {
    let blobs = store.list().await?;
    let highest = blobs
        .iter()
        .map(BlobName::newest_version)
        .max()
        .unwrap_or(0);
    let announcement = store.announcement_object().await?;
    let announced = match announcement.as_ref().and_then(|a| a.body.state) {
        None => None,
        Some(id) => {
            let (state, plan) = hollow_store::load(store, current, id, usize::MAX).await?;
            tracing::info!(state = %id, plan = %plan.describe(), "restored the announced state");
            Some(state)
        }
    };
    let write = match &announced {
        None => WriteState::new(schema),
        Some(a) => {
            let mut w = WriteState::restore(a);
            if **a.schema() != schema {
                let conflicts = a.schema().breaking_changes_to(&schema);
                if !conflicts.is_empty() {
                    if !allow_breaking {
                        return Err(Error::IncompatibleSchema {
                            announced: a.id(),
                            conflicts,
                        });
                    }
                    tracing::warn!(
                        announced = %a.id(),
                        conflicts = %hollow_core::SchemaConflict::join(&conflicts),
                        "publishing a schema that breaks readers of the announced one, as allowed"
                    );
                }
                w.set_schema(schema)?;
            }
            w
        }
    };
    let announced_version = announced.as_ref().map_or(0, ReadState::version);
    Ok(Restored {
        announced,
        announcement,
        write,
        next_version: highest.max(announced_version) + 1,
    })
}

/// A random tag for a new state: two producers (or two runs of one) that mint the same version
/// give it different tags, so their blobs never mix (see [`StateId`](hollow_core::StateId)).
pub(crate) fn random_tag() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWN: AtomicU64 = AtomicU64::new(0);
    let seed = (
        std::time::SystemTime::now(),
        std::process::id(),
        DRAWN.fetch_add(1, Ordering::Relaxed),
    );
    RandomState::new().hash_one(seed).max(1)
}
