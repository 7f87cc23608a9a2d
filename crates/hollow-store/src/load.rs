//! Fetching and applying a plan.

use bytes::Bytes;
use hollow_core::{ReadState, StateId};

use crate::error::{Error, Result};
use crate::layout::BlobName;
use crate::plan::{plan, Plan};
use crate::store::BlobStore;

/// Brings a state to `target`: plans from `current` (if any) with the blobs the store lists,
/// fetches them and applies them off to the side. Every blob must hold the states its name
/// says, and the state reached must be `target` exactly. `current` is never modified; on any
/// error nothing is returned but the error.
pub async fn load(
    store: &BlobStore,
    current: Option<&ReadState>,
    target: StateId,
    max_chain: usize,
) -> Result<(ReadState, Plan)> {
    load_with_hash_indexes(store, current, target, max_chain, &[]).await
}

/// [`load`], for a reader that adds the hash indexes `hash_indexes` (type name, field paths)
/// to the states it serves: a snapshot loaded has them added before its indexes are saved in
/// the blob cache, so that the next load of it copies them instead of building them. An index
/// that cannot be added is left for the caller to add, and to report.
pub async fn load_with_hash_indexes(
    store: &BlobStore,
    current: Option<&ReadState>,
    target: StateId,
    max_chain: usize,
    hash_indexes: &[(String, Vec<String>)],
) -> Result<(ReadState, Plan)> {
    let blobs = store.list().await?;
    load_planned(store, &blobs, current, target, max_chain, hash_indexes).await
}

/// [`load`] with the store's blobs listed already (`blobs`, from [`BlobStore::list`]): for a
/// tool that loads state after state of one listing, without listing the store each time.
pub async fn load_listed(
    store: &BlobStore,
    blobs: &[BlobName],
    current: Option<&ReadState>,
    target: StateId,
    max_chain: usize,
) -> Result<(ReadState, Plan)> {
    load_planned(store, blobs, current, target, max_chain, &[]).await
}

async fn load_planned(
    store: &BlobStore,
    blobs: &[BlobName],
    current: Option<&ReadState>,
    target: StateId,
    max_chain: usize,
    hash_indexes: &[(String, Vec<String>)],
) -> Result<(ReadState, Plan)> {
    let plan = plan(blobs, current.map(ReadState::id), target, max_chain)?;
    let mut state = match (plan.snapshot, current) {
        (Some(id), _) => open_snapshot(store, id, hash_indexes).await?,
        (None, Some(c)) => c.clone(),
        (None, None) => {
            return Err(Error::Unreachable {
                target,
                reason: "no state and no snapshot to start from".into(),
            })
        }
    };
    check(store, plan.snapshot.map(BlobName::Snapshot), &state, target)?;
    for &step in &plan.steps {
        state = open(store, step, |bytes| state.apply_delta(bytes)).await?;
        check(store, Some(step), &state, target)?;
    }
    if state.id() != target {
        return Err(Error::Unreachable {
            target,
            reason: format!("the blobs lead to state {}", state.id()),
        });
    }
    Ok((state, plan))
}

/// Loads the snapshot of state `id` with the hash indexes `hash_indexes` added: from the cache
/// with the indexes saved beside it when it can, otherwise as any blob; then saves its indexes
/// in the cache for the next load, unless the saved ones were all there.
async fn open_snapshot(
    store: &BlobStore,
    id: StateId,
    hash_indexes: &[(String, Vec<String>)],
) -> Result<ReadState> {
    let blob = BlobName::Snapshot(id);
    let before = store.cached_stamp(blob);
    let (mut state, from_saved) = match store.load_cached_with_indexes(blob).await {
        Some(state) => (state, true),
        None => (open(store, blob, ReadState::from_snapshot).await?, false),
    };
    let mut added = false;
    for (type_name, fields) in hash_indexes {
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        if state.hash_index(type_name, &fields).is_err() {
            added |= state.add_hash_index(type_name, &fields).is_ok();
        }
    }
    if !from_saved || added {
        store.save_cached_indexes(blob, &state, before).await;
    }
    Ok(state)
}

/// Fetches `blob` and reads it with `read`. A cached copy that cannot be read is dropped and
/// the blob fetched again, once.
async fn open(
    store: &BlobStore,
    blob: BlobName,
    read: impl Fn(Bytes) -> hollow_core::Result<ReadState>,
) -> Result<ReadState> {
    let error = |source| Error::Blob {
        path: store.location(&blob.path()),
        source,
    };
    match read(store.get(blob).await?) {
        Ok(state) => Ok(state),
        Err(_) if store.evict_cached(blob).await => read(store.get(blob).await?).map_err(error),
        Err(e) => Err(error(e)),
    }
}

/// The state a blob gave must be the one its name says.
fn check(
    store: &BlobStore,
    blob: Option<BlobName>,
    state: &ReadState,
    target: StateId,
) -> Result<()> {
    match blob {
        Some(b) if b.destination() != state.id() => Err(Error::Unreachable {
            target,
            reason: format!(
                "{} holds state {}, not the one its name says",
                store.location(&b.path()),
                state.id()
            ),
        }),
        _ => Ok(()),
    }
}
