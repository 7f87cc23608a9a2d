//! Fetching and applying a plan.

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
    let blobs = store.list().await?;
    let plan = plan(&blobs, current.map(ReadState::id), target, max_chain)?;
    let blob_error = |blob: BlobName| {
        move |source| Error::Blob {
            path: store.location(&blob.path()),
            source,
        }
    };
    let mut state = match (plan.snapshot, current) {
        (Some(id), _) => {
            let blob = BlobName::Snapshot(id);
            let bytes = store.get(blob).await?;
            ReadState::from_snapshot(bytes).map_err(blob_error(blob))?
        }
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
        let bytes = store.get(step).await?;
        state = state.apply_delta(bytes).map_err(blob_error(step))?;
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
