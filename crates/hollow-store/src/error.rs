//! Errors of the store layer. Each one names the object (or the dataset) it is about.

use hollow_core::StateId;

use crate::layout::AnnouncementBody;

/// What went wrong while reading or writing a dataset in its store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed on an object (network, permissions, a missing object).
    #[error("blob store, at {path}: {source}")]
    Store {
        /// The object (or prefix) the operation was on.
        path: String,
        /// What the store said.
        source: object_store::Error,
    },
    /// A blob could not be read or applied (corrupt, truncated, not leading where its name says).
    #[error("blob {path}: {source}")]
    Blob {
        /// The blob.
        path: String,
        /// Why it was rejected.
        source: hollow_core::Error,
    },
    /// The announcement is damaged or not an announcement.
    #[error("the announcement at {path} is rejected: {reason}")]
    BadAnnouncement {
        /// Where the announcement is.
        path: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Nothing is announced where the consumer looks.
    #[error("no announcement at {path}{}", hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default())]
    NoAnnouncement {
        /// Where the announcement was looked for.
        path: String,
        /// What was found nearby, if anything (`did you mean …?`).
        hint: Option<String>,
    },
    /// No blobs lead to the state: no snapshot at or before it, or a delta link is missing.
    #[error("no blobs lead to state {target}: {reason}")]
    Unreachable {
        /// The state asked for.
        target: StateId,
        /// What is missing.
        reason: String,
    },
    /// The announcement changed while this producer was announcing: another producer won.
    #[error("the announcement at {path} changed (now {found:?}); {state:?} was not announced")]
    AnnouncementConflict {
        /// Where the announcement is.
        path: String,
        /// The state that was not announced (none: a leader's fence).
        state: Option<StateId>,
        /// What the store announces now, if it could be read.
        found: Option<AnnouncementBody>,
    },
    /// The leader lease is damaged or not a lease.
    #[error("the leader lease at {path} is rejected: {reason}")]
    BadLease {
        /// Where the lease is.
        path: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The leader lease changed since this producer last read it: another producer renewed or
    /// took it.
    #[error("the leader lease at {path} changed (now held by {found:?})")]
    LeaseConflict {
        /// Where the lease is.
        path: String,
        /// Its holder and epoch now, if it could be read.
        found: Option<(String, u64)>,
    },
    /// The lock file that makes a local folder's compare-and-swap safe between processes could
    /// not be taken.
    #[error("the lock file {path}: {source}")]
    Lock {
        /// The lock file.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The store accepted an update conditional on an object version that cannot exist: it
    /// ignores conditions, so nothing can keep two producers from writing at once.
    #[error(
        "the store {store} ignores conditional updates (it accepted one against a version that \
         does not exist): it cannot keep two producers from announcing at once"
    )]
    BrokenConditionalUpdate {
        /// The store.
        store: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
