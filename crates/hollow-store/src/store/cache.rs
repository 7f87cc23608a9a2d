//! The local blob cache: a copy of every blob fetched, read (or mapped) instead of fetched
//! again; and beside a cached snapshot, the primary key indexes a load built on it, so that
//! the next load maps them instead of building them.
//!
//! A snapshot's indexes are saved in `<snapshot file>.indexes`, behind a stamp of the snapshot
//! file as it was when its checksums were verified: size, modification and change times and
//! inode. While the file still has that stamp, a load does not hash its bytes again (a change
//! to a file's content changes its change time); its structure is validated at every load.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use hollow_core::{ReadState, SnapshotCheck};
use xxhash_rust::xxh3::xxh3_64;

use super::BlobStore;
use crate::error::Result;
use crate::layout::BlobName;

/// Writes `bytes` to `file` through a temporary file and a rename, so a reader never sees a
/// partial copy.
async fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    if let Some(dir) = file.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut tmp = file.as_os_str().to_owned();
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    tmp.push(format!(".partial-{}-{n}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    if let Err(e) = tokio::fs::write(&tmp, bytes).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    tokio::fs::rename(&tmp, file).await
}

/// What a cache file's content is known by without reading it: its size, modification and
/// change times and (on Unix) inode. Rewriting the file in place, or renaming another over
/// it, changes the stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp([u64; 6]);

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let (m, c) = (meta.mtime(), meta.ctime());
            Self([
                meta.len(),
                m as u64,
                meta.mtime_nsec() as u64,
                c as u64,
                meta.ctime_nsec() as u64,
                meta.ino(),
            ])
        }
        #[cfg(not(unix))]
        {
            let nanos = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as u64);
            Self([meta.len(), nanos, 0, 0, 0, 0])
        }
    }

    /// The stamp of the file at `path` now.
    fn at(path: &Path) -> Option<Self> {
        std::fs::metadata(path).ok().map(|m| Self::of(&m))
    }
}

/// `file`'s bytes, mapped into memory (`map`) or read into the heap, with the stamp of the
/// very file opened.
fn read_stamped(file: &Path, map: bool) -> std::io::Result<(Bytes, FileStamp)> {
    let mut f = std::fs::File::open(file)?;
    let stamp = FileStamp::of(&f.metadata()?);
    let bytes = if map {
        // SAFETY: the mapping is read-only (nothing writes through it); hollow never changes a
        // cache file in place (it renames complete files over them and unlinks them, which
        // leaves this mapping on the old file), so the bytes do not change while `Bytes` holds
        // the map. What another program could do to the file is documented at
        // `with_mapped_cache`.
        let map = unsafe { memmap2::Mmap::map(&f)? };
        Bytes::from_owner(map)
    } else {
        let mut v = Vec::with_capacity(stamp.0[0] as usize);
        std::io::Read::read_to_end(&mut f, &mut v)?;
        Bytes::from(v)
    };
    Ok((bytes, stamp))
}

/// The saved-indexes file of a cached snapshot: the stamp of the snapshot file its indexes were
/// built on, then the indexes as `hollow_core` saves them.
///
/// ```text
/// magic "HOLLOWST" | stamp 6 × u64 | xxh3 of the 56 bytes before it | saved indexes
/// ```
struct IndexesFile;

impl IndexesFile {
    const MAGIC: [u8; 8] = *b"HOLLOWST";
    const HEADER: usize = 64;

    fn path(snapshot_file: &Path) -> PathBuf {
        let mut p = snapshot_file.as_os_str().to_owned();
        p.push(".indexes");
        PathBuf::from(p)
    }

    fn encode(stamp: FileStamp, saved: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::HEADER + saved.len());
        out.extend_from_slice(&Self::MAGIC);
        stamp
            .0
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        let checksum = xxh3_64(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out.extend_from_slice(saved);
        out
    }

    /// The stamp and the saved indexes; `None` for a file that is not one.
    fn decode(file: &Bytes) -> Option<(FileStamp, Bytes)> {
        let header = file.get(..Self::HEADER)?;
        let word =
            |i: usize| u64::from_le_bytes(header[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        if header[..8] != Self::MAGIC || word(7) != xxh3_64(&header[..56]) {
            return None;
        }
        let stamp = FileStamp([word(1), word(2), word(3), word(4), word(5), word(6)]);
        Some((stamp, file.slice(Self::HEADER..)))
    }
}

impl BlobStore {
    /// Fetches a blob whole, from the cache folder when it holds a copy. A cached copy is not
    /// verified here: reading the blob verifies its checksums anyway, and a copy that fails
    /// them is dropped with [`BlobStore::evict_cached`] and fetched again (as [`crate::load`]
    /// does), so a good copy is checksummed once.
    pub async fn get(&self, blob: BlobName) -> Result<Bytes> {
        let Some(folder) = &self.cache else {
            return self.fetch(blob).await;
        };
        let file = folder.join(blob.path());
        if let Ok((bytes, _)) = read_stamped(&file, self.map_cache) {
            metrics::counter!("hollow_consumer_cache_hits_total").increment(1);
            return Ok(bytes);
        }
        let bytes = self.fetch(blob).await?;
        if let Err(e) = write_atomically(&file, &bytes).await {
            tracing::warn!(error = %e, file = %file.display(), "cannot cache a blob");
            return Ok(bytes);
        }
        match self.map_cache {
            true => Ok(read_stamped(&file, true).map_or(bytes, |(mapped, _)| mapped)),
            false => Ok(bytes),
        }
    }

    /// Drops the cached copy of `blob`, if there is one (it failed its checksums), with the
    /// indexes saved beside it; true when a copy was dropped, so that fetching the blob again
    /// may give another result.
    pub async fn evict_cached(&self, blob: BlobName) -> bool {
        let Some(folder) = &self.cache else {
            return false;
        };
        let file = folder.join(blob.path());
        let _ = tokio::fs::remove_file(IndexesFile::path(&file)).await;
        let dropped = tokio::fs::remove_file(&file).await.is_ok();
        if dropped {
            tracing::warn!(file = %file.display(), "a cached blob failed its checks; fetching it again");
        }
        dropped
    }

    /// Loads the snapshot `blob` from the cache with the indexes saved beside it, if both are
    /// there and the indexes are usable: without hashing its bytes when the snapshot file is
    /// unchanged since they were saved. `None` otherwise (the caller loads it as usual); saved
    /// indexes found unusable are dropped, and a snapshot that fails to load is left to the
    /// caller's usual load to find and evict.
    pub(crate) async fn load_cached_with_indexes(&self, blob: BlobName) -> Option<ReadState> {
        let file = self.cache.as_ref()?.join(blob.path());
        let indexes = IndexesFile::path(&file);
        let (saved, _) = read_stamped(&indexes, self.map_cache).ok()?;
        let (bytes, stamp) = read_stamped(&file, self.map_cache).ok()?;
        let Some((saved_stamp, saved)) = IndexesFile::decode(&saved) else {
            tracing::warn!(file = %indexes.display(), "not a saved-indexes file; dropping it");
            let _ = tokio::fs::remove_file(&indexes).await;
            return None;
        };
        let check = match saved_stamp == stamp {
            true => SnapshotCheck::UnchangedSinceSaved,
            false => SnapshotCheck::Checksums,
        };
        match ReadState::from_snapshot_with_saved_indexes(bytes, saved, check) {
            Ok(state) => {
                metrics::counter!("hollow_consumer_saved_index_loads_total").increment(1);
                Some(state)
            }
            Err(e) => {
                tracing::warn!(error = %e, file = %indexes.display(), "saved indexes unusable; building them");
                let _ = tokio::fs::remove_file(&indexes).await;
                None
            }
        }
    }

    /// Saves the indexes of `state`, just loaded from the cached snapshot `blob`, beside it,
    /// stamped with the snapshot file as it was before (`before`, `None` when it was fetched
    /// for this load) and is now: nothing is saved if the file changed in between.
    pub(crate) async fn save_cached_indexes(
        &self,
        blob: BlobName,
        state: &ReadState,
        before: Option<FileStamp>,
    ) {
        let Some(folder) = &self.cache else { return };
        let file = folder.join(blob.path());
        let Some(now) = FileStamp::at(&file) else {
            return;
        };
        if before.is_some_and(|b| b != now) {
            return;
        }
        let Some(saved) = state.save_indexes() else {
            return;
        };
        let indexes = IndexesFile::path(&file);
        if let Err(e) = write_atomically(&indexes, &IndexesFile::encode(now, &saved)).await {
            tracing::warn!(error = %e, file = %indexes.display(), "cannot save indexes beside a cached snapshot");
        }
    }

    /// The stamp of the cached copy of `blob` now, to hand to
    /// [`BlobStore::save_cached_indexes`] after loading it.
    pub(crate) fn cached_stamp(&self, blob: BlobName) -> Option<FileStamp> {
        FileStamp::at(&self.cache.as_ref()?.join(blob.path()))
    }
}
