//! An exclusive lock on a local dataset folder, between processes of one machine: what makes a
//! compare-and-swap on a folder (which has create-only writes but no conditional updates) safe.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

/// Held while a compare-and-swap reads, compares and replaces an object of the folder; the
/// operating system releases it when the file is closed, also when the process is killed.
pub(crate) struct FolderLock {
    _file: File,
}

/// How long a compare-and-swap waits for another process's to finish before it gives up.
const WAIT: Duration = Duration::from_secs(10);

impl FolderLock {
    /// The lock file's name in the dataset folder.
    pub(crate) const NAME: &'static str = crate::layout::FOLDER_LOCK;

    /// Takes the lock of `folder` (created if missing), waiting up to ten seconds.
    pub(crate) async fn acquire(folder: &Path) -> std::io::Result<FolderLock> {
        tokio::fs::create_dir_all(folder).await?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(folder.join(Self::NAME))?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(FolderLock { _file: file }),
                Err(TryLockError::WouldBlock) if started.elapsed() < WAIT => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("another process held it for more than {WAIT:?}"),
                    ))
                }
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
    }
}
