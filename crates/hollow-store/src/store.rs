//! [`BlobStore`]: one dataset in any `object_store` backend, and every operation on it.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use hollow_core::StateId;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutPayload, UpdateVersion};

use crate::error::{Error, Result};
use crate::layout::{self, BlobName};

/// What the store announces, and the store's version of the announcement object (for
/// compare-and-swap and cheap conditional reads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The announced state.
    pub state: StateId,
    /// The store's e-tag / version of the announcement object.
    pub object_version: UpdateVersion,
}

impl Announcement {
    /// The announced version.
    pub fn version(&self) -> u64 {
        self.state.version
    }
}

/// One dataset: a store and the prefix its blobs live under (see [`crate::layout`]), with an
/// optional local cache folder for blobs. Every read and write of a dataset goes through here:
/// blob names, create-only puts, fetches, listing, the announcement (read, watch,
/// compare-and-swap) and retention deletes.
#[derive(Clone, Debug)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    cache: Option<PathBuf>,
    /// For a local folder: the folder the store is rooted at.
    folder: Option<PathBuf>,
}

/// Writes `bytes` to `file` through a temporary file and a rename, so a reader never sees a
/// partial copy.
async fn write_atomically(file: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = file.with_extension(format!("partial-{}", std::process::id()));
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, file).await
}

/// How many objects under the prefix a hint for a missing announcement looks at, at most.
const HINT_LISTING_LIMIT: usize = 1000;

impl BlobStore {
    /// The dataset under `prefix` (`""` for the store's root) of `store`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        Self {
            store,
            prefix: Path::from(prefix),
            cache: None,
            folder: None,
        }
    }

    /// The dataset under `prefix` in the local folder `folder`, which must exist. The store
    /// knows its folder, so a consumer watches the announcement with file-system events.
    pub fn local(folder: impl Into<PathBuf>, prefix: &str) -> Result<Self> {
        let folder = folder.into();
        let store =
            object_store::local::LocalFileSystem::new_with_prefix(&folder).map_err(|source| {
                Error::Store {
                    path: folder.display().to_string(),
                    source,
                }
            })?;
        Ok(Self::new(Arc::new(store), prefix).with_folder(folder))
    }

    /// For a store rooted at a local folder (a `LocalFileSystem` made with
    /// `new_with_prefix(root)`, or a wrapper of one): the folder, so that a consumer watches
    /// the announcement with file-system events and messages name files. [`BlobStore::local`]
    /// sets it.
    pub fn with_folder(mut self, root: impl Into<PathBuf>) -> Self {
        self.folder = Some(root.into());
        self
    }

    /// Keeps a copy of every blob fetched in `folder` and reads it from there next time (a
    /// consumer restarting, or several sharing a machine, fetch each blob once). Blobs never
    /// change once published, so a copy is good for as long as it verifies: a copy that fails
    /// its checksums is deleted and fetched again.
    pub fn with_cache(mut self, folder: impl Into<PathBuf>) -> Self {
        self.cache = Some(folder.into());
        self
    }

    /// The underlying store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The prefix.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The full path of `name` (a name under the prefix).
    pub fn path(&self, name: &str) -> Path {
        self.prefix
            .parts()
            .chain(Path::from(name).parts())
            .collect()
    }

    /// For a local folder store: the folder that holds the dataset (and its announcement).
    pub fn dataset_folder(&self) -> Option<PathBuf> {
        let root = self.folder.clone()?;
        Some(
            self.prefix
                .parts()
                .fold(root, |dir, part| dir.join(part.as_ref())),
        )
    }

    /// Where `name` is, for messages: a file path for a local folder, otherwise the store and
    /// the object's path.
    pub fn location(&self, name: &str) -> String {
        self.location_of(&self.path(name))
    }

    fn store_error(&self, name: &str, source: object_store::Error) -> Error {
        Error::Store {
            path: self.location(name),
            source,
        }
    }

    async fn fetch(&self, blob: BlobName) -> Result<Bytes> {
        let name = blob.path();
        let get = async { self.store.get(&self.path(&name)).await?.bytes().await };
        get.await.map_err(|e| self.store_error(&name, e))
    }

    /// Fetches a blob whole, from the cache folder when it holds a copy. A cached copy is not
    /// verified here: reading the blob verifies its checksums anyway, and a copy that fails
    /// them is dropped with [`BlobStore::evict_cached`] and fetched again (as [`crate::load`]
    /// does), so a good copy is checksummed once.
    pub async fn get(&self, blob: BlobName) -> Result<Bytes> {
        let Some(folder) = &self.cache else {
            return self.fetch(blob).await;
        };
        let file = folder.join(blob.path());
        if let Ok(bytes) = tokio::fs::read(&file).await {
            metrics::counter!("hollow_consumer_cache_hits_total").increment(1);
            return Ok(Bytes::from(bytes));
        }
        let bytes = self.fetch(blob).await?;
        if let Err(e) = write_atomically(&file, &bytes).await {
            tracing::warn!(error = %e, file = %file.display(), "cannot cache a blob");
        }
        Ok(bytes)
    }

    /// Drops the cached copy of `blob`, if there is one (it failed its checksums); true when a
    /// copy was dropped, so that fetching the blob again may give another result.
    pub async fn evict_cached(&self, blob: BlobName) -> bool {
        let Some(folder) = &self.cache else {
            return false;
        };
        let file = folder.join(blob.path());
        let dropped = tokio::fs::remove_file(&file).await.is_ok();
        if dropped {
            tracing::warn!(file = %file.display(), "a cached blob failed its checks; fetching it again");
        }
        dropped
    }

    /// Writes a blob that must not exist yet: blobs are written once, never overwritten.
    pub async fn put(&self, blob: BlobName, bytes: Bytes) -> Result<()> {
        metrics::counter!("hollow_producer_blob_bytes_total", "kind" => blob.kind())
            .increment(bytes.len() as u64);
        let name = blob.path();
        self.store
            .put_opts(
                &self.path(&name),
                PutPayload::from(bytes),
                PutMode::Create.into(),
            )
            .await
            .map_err(|e| self.store_error(&name, e))?;
        Ok(())
    }

    /// Deletes a blob; one already gone is not an error.
    pub async fn delete(&self, blob: BlobName) -> Result<()> {
        let name = blob.path();
        match self.store.delete(&self.path(&name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_error(&name, e)),
        }
    }

    /// Every blob of the dataset (objects under the prefix that are not blobs are ignored).
    pub async fn list(&self) -> Result<Vec<BlobName>> {
        let metas: Vec<_> = self
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .map_err(|e| self.store_error("", e))?;
        let mut blobs: Vec<BlobName> = metas
            .iter()
            .filter_map(|m| {
                let rest: Vec<_> = m.location.prefix_match(&self.prefix)?.collect();
                let name: Vec<&str> = rest.iter().map(|p| p.as_ref()).collect();
                BlobName::parse(&name.join("/"))
            })
            .collect();
        blobs.sort();
        Ok(blobs)
    }

    /// The current announcement, `None` when nothing is announced.
    pub async fn announcement(&self) -> Result<Option<Announcement>> {
        self.announcement_if_changed(None)
            .await
            .map(|a| a.flatten())
    }

    /// The announcement, unless its object version is still `known` (a cheap conditional
    /// request): `Ok(None)` = unchanged, `Ok(Some(None))` = nothing announced.
    pub async fn announcement_if_changed(
        &self,
        known: Option<&UpdateVersion>,
    ) -> Result<Option<Option<Announcement>>> {
        let path = self.path(layout::ANNOUNCEMENT);
        let options = GetOptions {
            if_none_match: known.and_then(|k| k.e_tag.clone()),
            ..GetOptions::default()
        };
        let result = match self.store.get_opts(&path, options).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(Some(None)),
            Err(object_store::Error::NotModified { .. }) => return Ok(None),
            Err(e) => return Err(self.store_error(layout::ANNOUNCEMENT, e)),
        };
        let object_version = UpdateVersion {
            e_tag: result.meta.e_tag.clone(),
            version: result.meta.version.clone(),
        };
        if known == Some(&object_version) {
            return Ok(None);
        }
        let bytes = result
            .bytes()
            .await
            .map_err(|e| self.store_error(layout::ANNOUNCEMENT, e))?;
        let state =
            layout::parse_announcement(&bytes).map_err(|reason| Error::BadAnnouncement {
                path: self.location(layout::ANNOUNCEMENT),
                reason,
            })?;
        Ok(Some(Some(Announcement {
            state,
            object_version,
        })))
    }

    /// Points the announcement at `state`. `previous` is the announcement this producer last
    /// saw (`None`: it saw none). Where the store supports it, this is a compare-and-swap
    /// against `previous`, so of two producers only one can win; on a store without
    /// conditional updates (a local folder) it is a check followed by an atomic replace.
    /// Returns the object version of the new announcement.
    pub async fn announce(
        &self,
        state: StateId,
        previous: Option<&Announcement>,
    ) -> Result<UpdateVersion> {
        let path = self.path(layout::ANNOUNCEMENT);
        let payload = PutPayload::from(layout::announcement(state));
        let mode = match previous {
            None => PutMode::Create,
            Some(a) => PutMode::Update(a.object_version.clone()),
        };
        let conflict = |found: Option<StateId>| Error::AnnouncementConflict {
            path: self.location(layout::ANNOUNCEMENT),
            state,
            found,
        };
        match self
            .store
            .put_opts(&path, payload.clone(), mode.into())
            .await
        {
            Ok(r) => Ok(r.into()),
            Err(object_store::Error::NotImplemented { .. }) => {
                let found = self.announcement().await?.map(|a| a.state);
                if found != previous.map(|a| a.state) {
                    return Err(conflict(found));
                }
                self.store
                    .put_opts(&path, payload, PutMode::Overwrite.into())
                    .await
                    .map(Into::into)
                    .map_err(|e| self.store_error(layout::ANNOUNCEMENT, e))
            }
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => {
                let found = self.announcement().await.ok().flatten().map(|a| a.state);
                Err(conflict(found))
            }
            Err(e) => Err(self.store_error(layout::ANNOUNCEMENT, e)),
        }
    }

    /// The error for a dataset without an announcement, with `hint` (see
    /// [`BlobStore::hint_for_missing_announcement`]).
    pub fn no_announcement(&self, hint: Option<String>) -> Error {
        Error::NoAnnouncement {
            path: self.location(layout::ANNOUNCEMENT),
            hint,
        }
    }

    /// What is near a missing announcement: one a level up, or under a folder below the prefix
    /// (a prefix one level off), or blobs without an announcement. It lists up to a thousand
    /// objects, so a caller that asks again and again keeps the answer.
    pub async fn hint_for_missing_announcement(&self) -> Option<String> {
        let below: Vec<Path> = self
            .store
            .list(Some(&self.prefix))
            .take(HINT_LISTING_LIMIT)
            .filter_map(|m| async move { m.ok().map(|m| m.location) })
            .collect()
            .await;
        if let Some(found) = below
            .iter()
            .find(|p| p.filename() == Some(layout::ANNOUNCEMENT))
        {
            let dataset: Path = found
                .parts()
                .take(found.parts().count().saturating_sub(1))
                .collect();
            return Some(format!(
                "did you mean the prefix \"{dataset}\"? An announcement is at {}",
                self.location_of(found)
            ));
        }
        let parts: Vec<_> = self.prefix.parts().collect();
        if let Some((_, parent)) = parts.split_last() {
            let parent: Path = parent.iter().cloned().collect();
            let up = parent.clone().join(layout::ANNOUNCEMENT);
            if self.store.head(&up).await.is_ok() {
                return Some(format!(
                    "did you mean the prefix \"{parent}\"? An announcement is at {}",
                    self.location_of(&up)
                ));
            }
        }
        if below.is_empty() {
            Some("nothing is stored under this prefix (is the producer running, and is this the right store and prefix?)".into())
        } else {
            Some(format!(
                "{} objects are stored under this prefix but none is an announcement: no producer has announced yet",
                below.len()
            ))
        }
    }

    fn location_of(&self, path: &Path) -> String {
        match &self.folder {
            Some(root) => path
                .parts()
                .fold(root.clone(), |dir, part| dir.join(part.as_ref()))
                .display()
                .to_string(),
            None => format!("{}/{path}", self.store),
        }
    }
}
