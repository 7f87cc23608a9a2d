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
    /// offsets going backwards, an unknown code).
    #[error("corrupt blob, {section}: {reason}")]
    Corrupt {
        /// Where: `header`, `schema`, `tags`, a type's name, `Type.field`, or the read that
        /// failed with its offset.
        section: String,
        /// What is impossible there.
        reason: CorruptReason,
    },
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
    /// Saved primary key indexes cannot serve the snapshot they were given with: saved for
    /// another snapshot or by another index layout, or damaged. Load the snapshot with its
    /// indexes built instead.
    #[error("saved indexes unusable: {0}")]
    SavedIndexes(String),
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
    /// A schema cannot be built as declared: two Rust types share a name, a primary key or
    /// hash index is declared where none can be.
    #[error("schema of {type_name}: {problem}")]
    InvalidSchema {
        /// The type the problem is in.
        type_name: String,
        /// What is wrong with it.
        problem: SchemaProblem,
    },
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
    /// An incremental cycle cannot start: the schema of a type changed since the last state,
    /// so its records do not carry over. Run a full cycle (every record added again) first.
    #[error(
        "the schema of {type_name} changed since the last state, so its records do not carry \
         over: run a full cycle (every record added again) before incremental ones"
    )]
    FullCycleRequired {
        /// The type whose schema changed.
        type_name: String,
    },
    /// A record or value of the cycle is past a limit of the format (see the README's limits):
    /// the state is not written; abandon the cycle.
    #[error("type {type_name}: {limit}; the state is not written")]
    LimitExceeded {
        /// The type.
        type_name: String,
        /// What was exceeded.
        limit: String,
    },
    /// A snapshot read as the snapshot of a state let go
    /// ([`ReadState::from_snapshot_laid_out_as`](crate::ReadState::from_snapshot_laid_out_as))
    /// does not hold that state bit for bit.
    #[error(
        "the snapshot of version {version} does not hold version {laid_out_as} as it was laid out"
    )]
    LayoutMismatch {
        /// The snapshot's version.
        version: u64,
        /// The version of the state let go.
        laid_out_as: u64,
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
    /// Reading a record followed references deeper than the reader goes: a reference cycle
    /// (which only a corrupt blob can hold) or data nested deeper than the limit.
    #[error("records of {type_name} nest deeper than {limit} levels (a reference cycle?)")]
    NestedTooDeep {
        /// The type whose record was being read at the limit.
        type_name: String,
        /// The levels followed.
        limit: u32,
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

/// Why a blob that passed its checksums cannot be read: the typed reason of [`Error::Corrupt`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptReason {
    /// A code of an enumeration (a type kind, a field kind, a section kind, a blob kind, a
    /// compression codec, a flag) this reader does not know.
    #[error("unknown {what} {code}")]
    UnknownCode {
        /// What the code names.
        what: &'static str,
        /// The code found.
        code: u64,
    },
    /// Values that must strictly ascend do not (ordinals, offsets, tag names).
    #[error("{what} out of order at #{at}")]
    OutOfOrder {
        /// What must ascend.
        what: &'static str,
        /// The position of the first value out of order.
        at: u64,
    },
    /// Two figures the format ties together disagree (rows against ordinals, columns
    /// against the schema, where a section starts against where the last one ended).
    #[error("{what} is {found}, expected {expected}")]
    Mismatch {
        /// The figure.
        what: &'static str,
        /// What the rest of the blob implies.
        expected: u64,
        /// What is stored.
        found: u64,
    },
    /// A figure is past what it may be (a dictionary entry past the dictionary, a bit width
    /// over 64, a count over 2^32, a size over the decompression limit).
    #[error("{what} {value} exceeds {limit}")]
    OutOfRange {
        /// The figure.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The largest (or, for positions, the end) it may be.
        limit: u64,
    },
    /// Arithmetic on stored sizes overflows 64 bits.
    #[error("{what} overflows")]
    Overflow {
        /// What was computed.
        what: &'static str,
    },
    /// Something the format requires is absent or shorter than its declared size (a
    /// section, a dictionary, a column).
    #[error("{what} missing or too short")]
    Missing {
        /// What is missing.
        what: &'static str,
    },
    /// Bytes left over after everything declared was read.
    #[error("{bytes} unexpected bytes after the {what}")]
    LeftOver {
        /// What was read.
        what: &'static str,
        /// How many bytes remain.
        bytes: u64,
    },
    /// Bytes that must be UTF-8 (a name, a string, a dictionary entry) are not.
    #[error("{what} is not UTF-8")]
    NotUtf8 {
        /// What is not.
        what: &'static str,
    },
    /// Something where the format allows none (a second schema section, end offsets for a
    /// type that is not a collection).
    #[error("{what} where the format allows none")]
    Unexpected {
        /// What is there.
        what: &'static str,
    },
    /// A delta names an ordinal that cannot change as it says.
    #[error("ordinal {ordinal} {problem}")]
    Ordinal {
        /// The ordinal.
        ordinal: u64,
        /// What is wrong with its change.
        problem: OrdinalProblem,
    },
    /// Compressed bytes do not decompress; the message is the decompressor's.
    #[error("does not decompress: {message}")]
    Decompression {
        /// What the decompressor said.
        message: String,
    },
    /// The schema section decodes to a schema that contradicts itself.
    #[error("type {type_name}: {problem}")]
    InvalidSchema {
        /// The type the problem is in.
        type_name: String,
        /// What is wrong with it.
        problem: SchemaProblem,
    },
}

/// What is wrong with an ordinal a delta changes: see [`CorruptReason::Ordinal`].
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrdinalProblem {
    /// Removed, but it holds no record.
    #[error("is removed but holds nothing")]
    RemovedButEmpty,
    /// Added, but it already holds a record.
    #[error("is added but already taken")]
    AddedButTaken,
    /// Past the type's slot count.
    #[error("is past the slot count {slot_count}")]
    PastSlotCount {
        /// The type's slot count.
        slot_count: u64,
    },
    /// Past the new slot count, yet its record is kept.
    #[error("is past the new slot count {slot_count} but not removed")]
    KeptPastSlotCount {
        /// The new slot count.
        slot_count: u64,
    },
}

/// What is wrong with a schema: see [`Error::InvalidSchema`] (declared by the user) and
/// [`CorruptReason::InvalidSchema`] (decoded from a blob).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaProblem {
    /// Two Rust types of different shapes have the same serde name.
    #[error(
        "two different shapes have this name: two Rust types share that serde name \
         (give one another name with #[serde(rename = \"...\")])"
    )]
    ShapeClash,
    /// The name is defined twice.
    #[error("defined twice")]
    DefinedTwice,
    /// Collection types nest deeper than a name can be given to.
    #[error("collections nest too deep to be named")]
    NestedTooDeep,
    /// A list or set needs one column, a map two.
    #[error("a collection type with {columns} columns")]
    CollectionColumns {
        /// The columns it has.
        columns: usize,
    },
    /// An enum type's first column must be the non-null string `variant`.
    #[error("an enum type without its \"variant\" column first")]
    EnumWithoutVariant,
    /// A field references a type the schema does not have.
    #[error("field {field} references type #{type_id} of {types}")]
    DanglingReference {
        /// The field.
        field: String,
        /// The type id it references.
        type_id: u32,
        /// How many types the schema has.
        types: usize,
    },
    /// Primary keys are declared on object types only.
    #[error("a primary key on a type that is not an object type")]
    KeyOnNonObject,
    /// A primary key with no fields.
    #[error("a primary key that names no field")]
    KeyWithoutFields,
    /// A primary key names a column the type does not have.
    #[error("a primary key naming column #{column}")]
    KeyColumnMissing {
        /// The column position named.
        column: usize,
    },
    /// Key fields must be scalars or strings.
    #[error("primary key field {field} is a reference; key fields must be scalars or strings")]
    KeyFieldIsReference {
        /// The field.
        field: String,
    },
    /// A primary key field's path passes through a list or set, so it may reach several
    /// values per record (a hash index takes such paths).
    #[error(
        "primary key field {field} passes through a list or set; a key field reaches one value \
         per record (declare a hash index for paths through collections)"
    )]
    KeyThroughCollection {
        /// The field's path.
        field: String,
    },
    /// A primary key or hash index of a decoded schema names a field path that does not
    /// resolve.
    #[error("an index names the field path {path}, which does not resolve")]
    UnresolvedPath {
        /// The path, and why it does not resolve.
        path: String,
    },
    /// Hash indexes are on object types only.
    #[error("a hash index on a type that is not an object type")]
    HashIndexOnNonObject,
    /// A hash index needs 1 to 32 fields.
    #[error("a hash index of {fields} fields; it needs 1 to 32")]
    HashIndexFieldCount {
        /// The fields given.
        fields: usize,
    },
}

impl Error {
    /// [`Error::Corrupt`] of `section` for `reason`.
    pub(crate) fn corrupt(section: impl Into<String>, reason: CorruptReason) -> Self {
        Error::Corrupt {
            section: section.into(),
            reason,
        }
    }

    /// [`Error::InvalidSchema`] of `type_name`.
    pub(crate) fn invalid_schema(type_name: impl Into<String>, problem: SchemaProblem) -> Self {
        Error::InvalidSchema {
            type_name: type_name.into(),
            problem,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message a caught panic carries (what `panic!` was given), for the errors of the
/// crates that run user code (a populate closure, a listener, a decoder) and report its
/// panics instead of passing them on.
///
/// ```
/// let panic = std::panic::catch_unwind(|| panic!("no movie {}", 7)).unwrap_err();
/// assert_eq!(hollow_core::panic_message(panic.as_ref()), "no movie 7");
/// ```
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

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
