//! The one error type of `hollow-core`: every malformed blob, schema problem and misuse is a
//! variant that carries what went wrong and where.

/// What went wrong. Blobs are untrusted input: every way a blob can be malformed is one of these
/// variants, never a panic.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The blob does not start (or end) with the hollow magic bytes.
    #[error("not a hollow blob: expected magic {expected:?} at offset {offset}, found {found:?}")]
    BadMagic {
        /// Where the magic was expected.
        offset: usize,
        /// The magic this reader knows.
        expected: [u8; 8],
        /// What the blob holds there.
        found: [u8; 8],
    },
    /// The blob was written in a format version this reader does not know.
    #[error("unsupported blob format version {found} (this reader knows {supported})")]
    UnsupportedFormatVersion {
        /// Version found in the blob.
        found: u32,
        /// Version this reader supports.
        supported: u32,
    },
    /// The blob is shorter than what it describes.
    #[error("blob truncated while reading {what}: needed {needed} bytes at offset {offset}, {available} available")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Offset of the read.
        offset: usize,
        /// Bytes needed.
        needed: u64,
        /// Bytes left.
        available: u64,
    },
    /// A checksum does not match the bytes it covers.
    #[error("checksum mismatch in {what}: stored {stored:#018x}, computed {computed:#018x}")]
    ChecksumMismatch {
        /// The section (or `footer`) whose checksum failed.
        what: String,
        /// Checksum stored in the blob.
        stored: u64,
        /// Checksum of the bytes as they are.
        computed: u64,
    },
    /// The blob passed its checksums but describes something impossible (a count past the end,
    /// offsets going backwards, an unknown code). Carries what was wrong.
    #[error("corrupt blob: {0}")]
    Corrupt(String),
    /// The blob is of another kind than the operation needs (a delta where a snapshot was expected).
    #[error("wrong blob kind: expected {expected}, found {found}")]
    WrongBlobKind {
        /// Kind the operation needs.
        expected: crate::BlobKind,
        /// Kind found in the blob.
        found: crate::BlobKind,
    },
    /// A delta was applied to another state than its origin (another version, or the same
    /// version made by another producer: another tag).
    #[error("delta from state {delta_origin} cannot apply to state {state}")]
    DeltaOriginMismatch {
        /// The state the delta was applied to.
        state: crate::StateId,
        /// The state the delta starts from.
        delta_origin: crate::StateId,
    },
    /// The change cannot be followed by a delta: load a snapshot of the destination instead.
    #[error("a snapshot is required: {0}")]
    SnapshotRequired(String),
    /// A Rust type cannot be mapped onto the hollow data model.
    #[error("unsupported type {type_name}: {reason}")]
    UnsupportedType {
        /// The type (or type path) that cannot be mapped.
        type_name: String,
        /// Why.
        reason: String,
    },
    /// The same type name was derived twice with different shapes, or a key names no field.
    #[error("schema error: {0}")]
    Schema(String),
    /// A type name is not in the schema.
    #[error("no type named {0:?} in the schema")]
    UnknownType(String),
    /// A field name is not in the type.
    #[error("type {type_name:?} has no field {field:?}")]
    UnknownField {
        /// The type.
        type_name: String,
        /// The missing field.
        field: String,
    },
    /// An accessor of one kind was asked of a field of another kind.
    #[error("field {type_name}.{field} is {actual}, not {requested}")]
    FieldKindMismatch {
        /// The type.
        type_name: String,
        /// The field.
        field: String,
        /// The kind asked for.
        requested: &'static str,
        /// The kind the field has.
        actual: String,
    },
    /// A record could not be written (serde reported a problem, or the value does not fit the schema).
    #[error("cannot write record: {0}")]
    Write(String),
    /// A record or value of the cycle is past a limit of the format (see the README's limits):
    /// the state is not written; abandon the cycle.
    #[error("type {type_name}: {limit}; the state is not written")]
    LimitExceeded {
        /// The type.
        type_name: String,
        /// What was exceeded.
        limit: String,
    },
    /// A record could not be read back into the requested Rust type.
    #[error("cannot read record: {0}")]
    Read(String),
    /// An index lookup (primary key or hash index) with a key that cannot be the type's: another number of fields, or
    /// a value of another kind (a string for an integer field, as after the producer changed
    /// the key's type). See [`KeyMismatch`](crate::KeyMismatch).
    #[error("a key of {found} cannot be looked up in an index of {expected}")]
    KeyMismatch {
        /// The kinds of the key's fields.
        expected: String,
        /// The kinds of the key given.
        found: String,
    },
    /// A primary key was needed of a type that declares none (to look records up, or to
    /// upsert or delete them by key).
    #[error("type {type_name} declares no primary key")]
    NoPrimaryKey {
        /// The type.
        type_name: String,
    },
    /// The state was loaded without its primary key indexes
    /// ([`ReadState::from_snapshot_without_indexes`](crate::ReadState::from_snapshot_without_indexes)).
    #[error("the state was loaded without its primary key indexes; {type_name} has none")]
    IndexesNotLoaded {
        /// The type whose index was asked for.
        type_name: String,
    },
    /// No hash index of the type on those fields was added to the state.
    #[error("no hash index of {type_name} on ({}) was added to this state", fields.join(", "))]
    NoHashIndex {
        /// The type.
        type_name: String,
        /// The fields asked for.
        fields: Vec<String>,
    },
    /// An ordinal is not populated in the type.
    #[error("type {type_name:?} has no record at ordinal {ordinal}")]
    NoSuchOrdinal {
        /// The type.
        type_name: String,
        /// The ordinal asked for.
        ordinal: u32,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl serde::ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error::Write(msg.to_string())
    }
}

impl serde::de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error::Read(msg.to_string())
    }
}
