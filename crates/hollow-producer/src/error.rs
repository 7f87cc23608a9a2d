//! Errors of the producer side.

/// Why a producer could not start or a cycle failed. After a failed cycle nothing new is
/// announced and the producer is back at its last announced state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed, or reading the dataset back (restore) failed; names the object.
    #[error(transparent)]
    Store(hollow_store::Error),
    /// The state engine refused a record or a blob.
    #[error(transparent)]
    Core(#[from] hollow_core::Error),
    /// The closure that adds the dataset failed.
    #[error("populating the cycle failed: {0}")]
    Populate(hollow_core::Error),
    /// The new state plus the reverse delta is not the announced state, or the announced state
    /// plus the delta is not the new state.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// A validator rejected the new state.
    #[error("validator {validator} rejected version {version}: {message}")]
    Validation {
        /// The validator's name.
        validator: String,
        /// The version that was not announced.
        version: u64,
        /// Why.
        message: String,
    },
    /// Another producer announced first: this cycle's version was not announced. The producer
    /// restores the announced state before its next cycle.
    #[error("another producer announced {found:?} while this one was announcing {version}; not announced")]
    AnnouncementConflict {
        /// The version this producer tried to announce.
        version: u64,
        /// The version the store announces now, if it could be read.
        found: Option<u64>,
    },
    /// This producer does not lead (leader election): it is a standby, its lease ran out, or
    /// a newer leader fenced the announcement before this producer could announce. Nothing was
    /// announced; the producer restores the announced state when it leads again (see
    /// `Producer::wait_for_leadership`).
    #[error(
        "not the leader: this producer's epoch is {epoch}, the current one {current_epoch}{}; \
         nothing was announced",
        holder.as_deref().map(|h| format!(" (held by {h})")).unwrap_or_default()
    )]
    NotLeader {
        /// The epoch this producer announces with (0 if it never led).
        epoch: u64,
        /// The epoch of the leader as last seen.
        current_epoch: u64,
        /// The leader's id as last seen, if any.
        holder: Option<String>,
    },
    /// A cycle panicked (a bug, or an input no check caught). Nothing was announced; the
    /// producer restores the announced state before its next cycle.
    #[error("a cycle panicked: {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// This producer's schema changes the announced state's in ways its readers may fail on
    /// (see `ProducerBuilder::allow_breaking_schema_changes`).
    #[error(
        "the schema breaks readers of the announced state {announced}: {}; publish it under \
         another prefix, make the change compatible (add a field or type instead of changing \
         one), or allow it with ProducerBuilder::allow_breaking_schema_changes",
        hollow_core::SchemaConflict::join(conflicts)
    )]
    IncompatibleSchema {
        /// The announced state.
        announced: hollow_core::StateId,
        /// What changed.
        conflicts: Vec<hollow_core::SchemaConflict>,
    },
    /// A builder setting makes no sense.
    #[error("invalid setting {setting}: {reason}")]
    InvalidSetting {
        /// The setting.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<hollow_store::Error> for Error {
    fn from(e: hollow_store::Error) -> Self {
        match e {
            hollow_store::Error::AnnouncementConflict { state, found, .. } => {
                Error::AnnouncementConflict {
                    version: state.map_or(0, |s| s.version),
                    found: found.and_then(|f| f.state).map(|f| f.version),
                }
            }
            e => Error::Store(e),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
