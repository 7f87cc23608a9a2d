//! Errors of the Kafka source and writer.

/// Why the Kafka source stopped, or a write or set-up failed. Each names the topic, and the
/// partition and offset where one is involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Kafka client failed (connecting, listing, fetching, producing).
    #[error("Kafka {what} failed (bootstrap {bootstrap}): {source}")]
    Kafka {
        /// What was being done, with the topic and partition.
        what: String,
        /// The bootstrap servers.
        bootstrap: String,
        /// The client's error (boxed: it is large).
        #[source]
        source: Box<rskafka::client::error::Error>,
    },
    /// A message sent with `TopicWriter::send` was not written: the produce request it shared
    /// with the messages sent with it failed.
    #[error("Kafka {what} failed (bootstrap {bootstrap}): {reason}")]
    Write {
        /// What was being done, with the topic and partition.
        what: String,
        /// The bootstrap servers.
        bootstrap: String,
        /// Why the request failed.
        reason: String,
    },
    /// The topic does not exist on the cluster.
    #[error("topic {topic:?} does not exist on {bootstrap} (topics there: {existing})")]
    TopicMissing {
        /// The topic asked for.
        topic: String,
        /// The bootstrap servers.
        bootstrap: String,
        /// The topics that do exist, comma-separated.
        existing: String,
    },
    /// A message could not be applied and the source is configured to stop on bad messages
    /// (no dead-letter topic).
    #[error("bad message at {topic}/{partition}@{offset}: {reason}")]
    BadMessage {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The message's offset.
        offset: i64,
        /// Why it is bad.
        reason: String,
    },
    /// The messages the announced state would resume from are gone (retention deleted them):
    /// resuming would skip messages, so the source stops.
    #[error("{topic}/{partition}: the announced state resumes at offset {next}, but the log holds offsets {earliest}..{latest}: messages are gone (retention) or the topic was recreated")]
    OffsetsGone {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset the announced state resumes from.
        next: i64,
        /// The earliest offset the broker still has (-1 if it could not be read).
        earliest: i64,
        /// The offset the next message will get (-1 if it could not be read).
        latest: i64,
    },
    /// A partition's fetching task panicked (in the Kafka client: a panic of the user's code a
    /// message runs through, its decoder, `Serialize` or validators, makes the message a bad
    /// one instead), so the source stops rather than follow the other partitions alone.
    #[error("{topic}/{partition}: fetching stopped: {reason}")]
    FetchingStopped {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The panic's message.
        reason: String,
    },
    /// The source was stopped while consumed messages could not be published; they are not
    /// lost: the next run consumes them again from the announced offsets.
    #[error("stopped with {messages} messages of {topic:?} unpublished: {reason}")]
    Unpublished {
        /// The topic.
        topic: String,
        /// How many messages.
        messages: u64,
        /// Why the last cycle failed.
        reason: String,
    },
    /// The announced state's offsets tag is damaged.
    #[error("the announced state's offsets of {topic:?} are unreadable: {reason}")]
    Offsets {
        /// The topic.
        topic: String,
        /// What is wrong.
        reason: String,
    },
    /// The record type cannot be materialized from a topic (no primary key, not in the
    /// schema), or a setting is invalid.
    #[error("{0}")]
    Config(String),
    /// The producer failed outside of a cycle (restoring the announced state).
    #[error(transparent)]
    Producer(#[from] hollow_producer::Error),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
