//! Where a producer starts from: the state the store announces, restored from its blobs, and
//! the random tags that tell its new states apart.

use hollow_core::{ReadState, Schema, WriteState};
use hollow_store::layout::BlobName;
use hollow_store::{Announcement, BlobStore};

use crate::error::{Error, Result};

/// The announced state, and the announcement that names it.
pub(crate) struct Announced {
    pub(crate) state: ReadState,
    pub(crate) announcement: Announcement,
}

/// What a producer continues from: the state the store announces and a write state whose
/// committed state it is.
pub(crate) struct Restored {
    pub(crate) announced: Option<Announced>,
    pub(crate) write: WriteState,
    pub(crate) next_version: u64,
}

/// Reads the announced state back from the store, and the highest version any blob names.
/// Refuses a `schema` that breaks readers of the announced state's, unless `allow_breaking`.
pub(crate) async fn restore(
    store: &BlobStore,
    schema: Schema,
    allow_breaking: bool,
) -> Result<Restored> {
    let blobs = store.list().await?;
    let highest = blobs
        .iter()
        .map(BlobName::newest_version)
        .max()
        .unwrap_or(0);
    let announced = match store.announcement().await? {
        None => None,
        Some(announcement) => {
            let (state, plan) =
                hollow_store::load(store, None, announcement.state, usize::MAX).await?;
            tracing::info!(state = %announcement.state, plan = %plan.describe(), "restored the announced state");
            Some(Announced {
                state,
                announcement,
            })
        }
    };
    let write = match &announced {
        None => WriteState::new(schema),
        Some(a) => {
            let mut w = WriteState::restore(&a.state);
            if **a.state.schema() != schema {
                let conflicts = a.state.schema().breaking_changes_to(&schema);
                if !conflicts.is_empty() {
                    if !allow_breaking {
                        return Err(Error::IncompatibleSchema {
                            announced: a.state.id(),
                            conflicts,
                        });
                    }
                    tracing::warn!(
                        announced = %a.state.id(),
                        conflicts = %hollow_core::SchemaConflict::join(&conflicts),
                        "publishing a schema that breaks readers of the announced one, as allowed"
                    );
                }
                w.set_schema(schema)?;
            }
            w
        }
    };
    let announced_version = announced.as_ref().map_or(0, |a| a.state.version());
    Ok(Restored {
        announced,
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
