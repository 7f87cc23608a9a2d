//! The versions of a table that a delta writes all over (a primary key table that a delta
//! changing 1 % of the records writes in every chunk), each written whole from the one before,
//! and the buffer of the last version let go, kept to make the next version from.
//!
//! Copying a 10 M-record key table (47 MB) for each delta is a third of applying it, and
//! grows with the records, not with the delta. But the buffer of a version let go differs
//! from a live version of its line only where one of the two was written: where the live
//! version was written, if the buffer held its parent (a consumer that moved on from it), or
//! where the buffer's version was, if it held the live one's child (a state derived from it
//! and let go). Overwriting those entries with the live version's turns the buffer into a
//! copy of it in time proportional to the two versions' writes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::mapped_words::Words;

/// Ids of versions, unique in the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Restoring costs a random write per entry, copying a sequential pass: a buffer is restored
/// only when it differs at no more than one entry in this many.
const RESTORE_AT_MOST_ONE_IN: u64 = 16;

/// One line of versions of a table, and the buffer of the last one let go.
#[derive(Debug, Default)]
struct Lineage {
    returned: Mutex<Option<Returned>>,
}

/// The buffer of a version let go.
#[derive(Debug)]
struct Returned {
    /// Taken out only to be used or let go.
    words: Option<Words>,
    id: u64,
    parent: Option<u64>,
    written: Arc<[u64]>,
}

/// Where a version of a table sits in its line: its id, its parent's, and the entries written
/// since its parent.
#[derive(Clone, Debug)]
pub(crate) struct Version {
    id: u64,
    parent: Option<u64>,
    written: Arc<[u64]>,
    lineage: Arc<Lineage>,
}

impl Default for Version {
    fn default() -> Self {
        Self::first()
    }
}

impl Version {
    /// The first version of a new line.
    pub(crate) fn first() -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            parent: None,
            written: Arc::from([]),
            lineage: Arc::default(),
        }
    }

    /// A version made from `self` by writing the entries at `written`.
    pub(crate) fn child(&self, written: Vec<u64>) -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            parent: Some(self.id),
            written: written.into(),
            lineage: self.lineage.clone(),
        }
    }

    /// Entries written since the parent.
    pub(crate) fn written(&self) -> usize {
        self.written.len()
    }

    /// The buffer of `len` words kept by this version's line, if any, and when it is this
    /// version's parent or child, the entries at which the two may differ (unless they are
    /// more than one in [`RESTORE_AT_MOST_ONE_IN`] of the table's `entries`). A buffer of
    /// another length is let go.
    pub(crate) fn take_returned(
        &self,
        len: usize,
        entries: u64,
    ) -> Option<(Words, Option<Arc<[u64]>>)> {
        let mut r = self.lineage.lock().take()?;
        let words = r.words.take()?;
        if words.as_ref().len() != len {
            words.let_go();
            return None;
        }
        let differ = match () {
            _ if r.parent == Some(self.id) => Some(r.written.clone()),
            _ if Some(r.id) == self.parent => Some(self.written.clone()),
            _ => None,
        };
        let few = |d: &Arc<[u64]>| d.len() as u64 * RESTORE_AT_MOST_ONE_IN <= entries;
        Some((words, differ.filter(few)))
    }

    /// Keeps `words`, this version's buffer, for the next version of the line (letting go
    /// of the one kept before). Kept as they are, not lazily freed as spares are: every page
    /// holds what the version read, until a later version takes them.
    pub(crate) fn give_back(&self, words: Words) {
        let earlier = self.lineage.lock().replace(Returned {
            words: Some(words),
            id: self.id,
            parent: self.parent,
            written: self.written.clone(),
        });
        drop(earlier); // let go outside the lock
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        if let Some(words) = self.words.take() {
            words.let_go();
        }
    }
}

impl Lineage {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Returned>> {
        self.returned.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The buffer of a version, as the owner of its bytes: given back to its line when the last
/// reader lets go.
pub(crate) struct Owned {
    words: Option<Words>,
    version: Version,
}

impl Owned {
    /// `words`, little-endian already, owned by `version`.
    pub(crate) fn new(words: Words, version: Version) -> Self {
        Self {
            words: Some(words),
            version,
        }
    }
}

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        self.words
            .as_ref()
            .map_or(&[], |w| bytemuck::cast_slice(w.as_ref()))
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(words) = self.words.take() {
            self.version.give_back(words);
        }
    }
}
