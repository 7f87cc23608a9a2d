//! Errors of the consumer side.

use hollow_core::StateId;

/// Why a consumer could not start or a refresh failed. After a failed refresh the consumer
/// keeps serving the state it has, and says why in its [`Health`](crate::Health).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the dataset failed: the store, a blob, the announcement, or no way to the
    /// announced state. Each names the object involved.
    #[error(transparent)]
    Store(#[from] hollow_store::Error),
    /// The announcement names a state older than the one served. A consumer never moves back on
    /// its own (a damaged or stale announcement could otherwise roll it back); pin a version to
    /// go back on purpose.
    #[error("the announcement names state {announced}, older than the state {current} served; staying (pin a version to go back)")]
    WouldGoBack {
        /// The state served.
        current: StateId,
        /// The state announced.
        announced: StateId,
    },
    /// The state to serve cannot be read with the Rust types the consumer declared
    /// (`ConsumerBuilder::reads`); the last readable state keeps serving.
    #[error(
        "state {state} cannot be read with the types this consumer reads: {}; keeping the last \
         readable state",
        hollow_core::SchemaConflict::join(conflicts)
    )]
    Unreadable {
        /// The state not swapped in.
        state: StateId,
        /// Why.
        conflicts: Vec<hollow_core::SchemaConflict>,
    },
    /// A hash index the consumer keeps (`ConsumerBuilder::with_hash_index`) cannot be built on
    /// the state to serve (a field on its path is gone); the last state keeps serving.
    #[error("hash index {index} cannot be built on state {state}: {source}")]
    HashIndex {
        /// The state not swapped in.
        state: StateId,
        /// The index: type and field paths.
        index: String,
        /// Why.
        source: Box<hollow_core::Error>,
    },
    /// A refresh panicked (a bug, or an input no check caught); the current state keeps serving.
    #[error("a refresh panicked: {message}")]
    Panicked {
        /// The panic's message.
        message: String,
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

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when nothing is announced where the consumer looks.
    pub fn is_no_announcement(&self) -> bool {
        matches!(
            self,
            Error::Store(hollow_store::Error::NoAnnouncement { .. })
        )
    }
}
