//! [`BlobStore`]: one dataset in any `object_store` backend, and every operation on it.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use hollow_core::StateId;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutPayload, UpdateVersion};

use crate::error::{Error, Result};
use crate::folder_lock::FolderLock;
use crate::layout::{self, AnnouncementBody, BlobName};

mod cache;

/// What the store announces, and the store's version of the announcement object (for
/// compare-and-swap and cheap conditional reads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The announced state.
    pub state: StateId,
    /// The leadership epoch of the producer that announced it (0 without leader election).
    pub epoch: u64,
    /// The store's e-tag / version of the announcement object.
    pub object_version: UpdateVersion,
}

/// The announcement object as stored: what it says (a state, or only a leader's fence before
/// the first version) and its object version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnouncementObject {
    /// What it says.
    pub body: AnnouncementBody,
    /// The store's e-tag / version of the object.
    pub object_version: UpdateVersion,
}

impl AnnouncementObject {
    /// The announcement it makes, if it names a state.
    pub fn announcement(self) -> Option<Announcement> {
        Some(Announcement {
            state: self.body.state?,
            epoch: self.body.epoch,
            object_version: self.object_version,
        })
    }
}

/// Why a compare-and-swap did not write.
#[derive(Debug)]
pub(crate) enum Swap {
    /// The object is not what the caller last saw.
    Conflict,
    /// The store failed.
    Failed(Error),
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
    /// Blobs in the cache are memory-mapped instead of read into the heap.
    map_cache: bool,
    /// For a local folder: the folder the store is rooted at.
    folder: Option<PathBuf>,
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
            map_cache: false,
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
    ///
    /// Beside a cached snapshot, a load saves the primary key indexes it built and the hash
    /// indexes of the state (`<snapshot>.indexes`; see [`crate::load_with_hash_indexes`]), so
    /// that the next load of that snapshot reads (or maps) them instead of building them. They record the snapshot file's size, modification and change
    /// times and inode as they were when its checksums were verified; while the file still has
    /// them, a load does not hash it again (its structure is validated at every load). Saved
    /// indexes that are damaged, or from a library that hashes keys otherwise, are rebuilt.
    pub fn with_cache(mut self, folder: impl Into<PathBuf>) -> Self {
        self.cache = Some(folder.into());
        self
    }

    /// Maps the blobs of the cache folder (see [`BlobStore::with_cache`]) into memory instead
    /// of reading them into the heap: a state loaded from a cached snapshot keeps its data in
    /// the page cache, which the operating system can drop and reload, and which consumers of
    /// one machine sharing the folder share. Deltas still apply: a type they change is
    /// rebuilt on the heap, the others stay mapped. A blob fetched from the store is written
    /// to the cache first, then mapped.
    ///
    /// A mapped file must not change underneath: hollow only ever replaces cache files by
    /// renaming a complete new file over them and deletes them by unlinking, both of which
    /// leave an existing mapping intact (it keeps the old file until the state is dropped).
    /// Another program truncating or rewriting a cached file in place would make reads of the
    /// mapping fail (`SIGBUS`) or change under the checksums, which are verified when a blob is
    /// loaded, not at every read. A file changed in place while no state maps it gets a new
    /// change time: the next load verifies its checksums, fails, and fetches it again. What no
    /// stamp sees is the disk itself changing a file's bytes after they were verified; a
    /// mapping read back from such a disk is not verified again either way.
    pub fn with_mapped_cache(mut self) -> Self {
        self.map_cache = true;
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

    pub(crate) fn store_error(&self, name: &str, source: object_store::Error) -> Error {
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
        Ok(self
            .list_with_sizes()
            .await?
            .into_iter()
            .map(|(blob, _)| blob)
            .collect())
    }

    /// Every blob of the dataset with its size in bytes as stored, sorted by name.
    pub async fn list_with_sizes(&self) -> Result<Vec<(BlobName, u64)>> {
        let metas: Vec<_> = self
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .map_err(|e| self.store_error("", e))?;
        let mut blobs: Vec<(BlobName, u64)> = metas
            .iter()
            .filter_map(|m| {
                let rest: Vec<_> = m.location.prefix_match(&self.prefix)?.collect();
                let name: Vec<&str> = rest.iter().map(|p| p.as_ref()).collect();
                Some((BlobName::parse(&name.join("/"))?, m.size))
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
    /// request): `Ok(None)` = unchanged, `Ok(Some(None))` = nothing announced (no object, or
    /// only a leader's fence before the first version).
    pub async fn announcement_if_changed(
        &self,
        known: Option<&UpdateVersion>,
    ) -> Result<Option<Option<Announcement>>> {
        let object = self.announcement_object_if_changed(known).await?;
        Ok(object.map(|o| o.and_then(AnnouncementObject::announcement)))
    }

    /// The announcement object as stored, fences included (what producers compare-and-swap
    /// against); `None` when there is none.
    pub async fn announcement_object(&self) -> Result<Option<AnnouncementObject>> {
        self.announcement_object_if_changed(None)
            .await
            .map(|a| a.flatten())
    }

    /// The announcement object, unless its object version is still `known` (a cheap
    /// conditional request): `Ok(None)` = unchanged, `Ok(Some(None))` = none.
    pub async fn announcement_object_if_changed(
        &self,
        known: Option<&UpdateVersion>,
    ) -> Result<Option<Option<AnnouncementObject>>> {
        let Some(read) = self.read_if_changed(layout::ANNOUNCEMENT, known).await? else {
            return Ok(None);
        };
        let Some((bytes, object_version)) = read else {
            return Ok(Some(None));
        };
        let body = layout::parse_announcement(&bytes).map_err(|reason| Error::BadAnnouncement {
            path: self.location(layout::ANNOUNCEMENT),
            reason,
        })?;
        Ok(Some(Some(AnnouncementObject {
            body,
            object_version,
        })))
    }

    /// A small object under the prefix, unless its object version is still `known`:
    /// `Ok(None)` = unchanged, `Ok(Some(None))` = no such object.
    pub(crate) async fn read_if_changed(
        &self,
        name: &str,
        known: Option<&UpdateVersion>,
    ) -> Result<Option<Option<(Bytes, UpdateVersion)>>> {
        let options = GetOptions {
            if_none_match: known.and_then(|k| k.e_tag.clone()),
            ..GetOptions::default()
        };
        let result = match self.store.get_opts(&self.path(name), options).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(Some(None)),
            Err(object_store::Error::NotModified { .. }) => return Ok(None),
            Err(e) => return Err(self.store_error(name, e)),
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
            .map_err(|e| self.store_error(name, e))?;
        Ok(Some(Some((bytes, object_version))))
    }

    /// Points the announcement at `state` (epoch 0: a producer without leader election).
    /// `previous` is the announcement this producer last saw (`None`: it saw none). See
    /// [`BlobStore::swap_announcement`].
    pub async fn announce(
        &self,
        state: StateId,
        previous: Option<&Announcement>,
    ) -> Result<UpdateVersion> {
        let body = AnnouncementBody {
            state: Some(state),
            epoch: previous.map_or(0, |p| p.epoch),
        };
        let previous = previous.map(|p| AnnouncementObject {
            body: AnnouncementBody {
                state: Some(p.state),
                epoch: p.epoch,
            },
            object_version: p.object_version.clone(),
        });
        let swapped = self.swap_announcement(body, previous.as_ref()).await?;
        Ok(swapped.object_version)
    }

    /// Replaces the announcement `previous` (`None`: there was none) with `body`, or fails with
    /// [`Error::AnnouncementConflict`] when the store holds anything else by then, so that of
    /// two producers only one can win. Where the store supports it this is a compare-and-swap;
    /// on a local folder it is a check and an atomic replace under an exclusive file lock
    /// (between processes of one machine); on any other store without conditional updates, a
    /// check followed by a replace (racy: two producers need leader election there, which
    /// refuses such a store).
    pub async fn swap_announcement(
        &self,
        body: AnnouncementBody,
        previous: Option<&AnnouncementObject>,
    ) -> Result<AnnouncementObject> {
        let expected = previous.map(|p| (&p.object_version, layout::announcement_of(p.body)));
        match self
            .swap(
                layout::ANNOUNCEMENT,
                layout::announcement_of(body),
                expected,
            )
            .await
        {
            Ok(object_version) => Ok(AnnouncementObject {
                body,
                object_version,
            }),
            Err(Swap::Conflict) => {
                let found = self.announcement_object().await.ok().flatten();
                Err(Error::AnnouncementConflict {
                    path: self.location(layout::ANNOUNCEMENT),
                    state: body.state,
                    found: found.map(|f| f.body),
                })
            }
            Err(Swap::Failed(e)) => Err(e),
        }
    }

    /// Writes `bytes` as the object `name` if it still is what the caller last saw: `expected`
    /// is its object version and content, `None` when there was no object.
    pub(crate) async fn swap(
        &self,
        name: &str,
        bytes: Vec<u8>,
        expected: Option<(&UpdateVersion, Vec<u8>)>,
    ) -> Result<UpdateVersion, Swap> {
        let path = self.path(name);
        let payload = PutPayload::from(bytes);
        let mode = match &expected {
            None => PutMode::Create,
            Some((version, _)) => PutMode::Update((*version).clone()),
        };
        match self
            .store
            .put_opts(&path, payload.clone(), mode.into())
            .await
        {
            Ok(r) => Ok(r.into()),
            Err(object_store::Error::NotImplemented { .. }) => {
                let content = expected.map(|e| e.1);
                let _lock = match self.dataset_folder() {
                    Some(folder) => Some(
                        FolderLock::acquire(&folder)
                            .await
                            .map_err(|e| Swap::Failed(self.lock_error(&folder, e)))?,
                    ),
                    None => None,
                };
                let current = self
                    .read_if_changed(name, None)
                    .await
                    .map_err(Swap::Failed)?
                    .flatten();
                if current.map(|c| c.0).as_deref() != content.as_deref() {
                    return Err(Swap::Conflict);
                }
                self.store
                    .put_opts(&path, payload, PutMode::Overwrite.into())
                    .await
                    .map(Into::into)
                    .map_err(|e| Swap::Failed(self.store_error(name, e)))
            }
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(Swap::Conflict),
            // An update of an object that is gone: someone else changed it.
            Err(object_store::Error::NotFound { .. }) if expected.is_some() => Err(Swap::Conflict),
            Err(e) => Err(Swap::Failed(self.store_error(name, e))),
        }
    }

    /// True when a compare-and-swap through [`BlobStore`] is safe between processes: the store
    /// has conditional updates, or it is a local folder (see [`BlobStore::swap_announcement`]).
    /// Asks the store once (an update of an object that does not exist).
    pub async fn has_safe_swap(&self) -> Result<bool> {
        if self.dataset_folder().is_some() {
            return Ok(true);
        }
        let probe = UpdateVersion {
            e_tag: Some("hollow-probe".into()),
            version: None,
        };
        let path = self.path(".hollow-conditional-update-probe");
        match self
            .store
            .put_opts(&path, PutPayload::new(), PutMode::Update(probe).into())
            .await
        {
            Err(object_store::Error::NotImplemented { .. }) => Ok(false),
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
            ) => Ok(true),
            Err(e) => Err(self.store_error(".hollow-conditional-update-probe", e)),
            Ok(_) => {
                // It wrote the probe: take it away again before saying so.
                let _ = self.store.delete(&path).await;
                Err(Error::BrokenConditionalUpdate {
                    store: self.store.to_string(),
                })
            }
        }
    }

    fn lock_error(&self, folder: &std::path::Path, source: std::io::Error) -> Error {
        Error::Lock {
            path: folder.join(FolderLock::NAME).display().to_string(),
            source,
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
