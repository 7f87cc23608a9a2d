//! # hollow-core
//!
//! The synchronous heart of hollow: the data model, bit-packed storage, the write and read state
//! engines, the blob format, and the primary key index. It knows nothing of stores, files or
//! networks: it turns records into bytes and bytes into readable states.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use hollow_core::{ReadState, SchemaBuilder, WriteState};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Actor { id: i64, name: String }
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Movie { id: i64, title: String, year: i32, cast: Vec<Actor> }
//!
//! // The schema comes from the types; only the primary key is declared.
//! let schema = SchemaBuilder::new().add::<Movie>().primary_key("Movie", &["id"]).build()?;
//!
//! // Producer side: add the whole dataset, write a snapshot blob.
//! let mut writer = WriteState::new(schema);
//! let heat = Movie { id: 1, title: "Heat".into(), year: 1995, cast: vec![Actor { id: 9, name: "Al Pacino".into() }] };
//! writer.add(&heat)?;
//! let blob = writer.write_snapshot(1)?;
//!
//! // Consumer side: load the blob, look up by primary key, read fields without allocating.
//! let state = ReadState::from_snapshot(blob.into())?;
//! let ordinal = state.primary_key_index("Movie")?.find(&1i64)?.expect("present");
//! let movies = state.object("Movie")?;
//! assert_eq!(movies.string("title")?.get(ordinal), Some("Heat"));
//! assert_eq!(movies.int("year")?.get(ordinal), Some(1995));
//! // Or materialize the whole record through serde.
//! assert_eq!(state.get::<Movie>(ordinal)?, heat);
//! # Ok::<(), hollow_core::Error>(())
//! ```

#![warn(missing_docs)]

mod bitset;
mod blob_kind;
mod byte_io;
mod encoding;
mod entry_table;
mod error;
mod format;
mod hash_index;
mod index;
mod key_path;
mod mapped_words;
mod packed;
mod parallel;
mod prefetch;
mod radix_sort;
pub mod raw;
mod read;
mod row_overlay;
pub mod schema;
mod snapshot_buffer;
mod spare_maps;
mod state_id;
mod table_lineage;
mod type_data;
mod write;

pub use error::{panic_message, CorruptReason, Error, OrdinalProblem, Result, SchemaProblem};
pub use format::{BlobKind, Tags};
pub use hash_index::HashIndex;
pub use index::{Key, KeyMismatch, KeyPart, PrimaryKeyIndex};
pub use read::{
    BoolField, BytesField, CollectionReader, DictionaryStats, Difference, FieldStats, FloatField,
    IntField, ObjectReader, ReadState, RefField, SnapshotCheck, StateDiff, StateLayout, StrField,
    TypeDiff, TypeStats, TypedIndex, UIntField, Value,
};
pub use schema::{Schema, SchemaBuilder, SchemaConflict};
pub use state_id::StateId;
pub use write::{AddBatch, AddedRecords, OnStaged, StagedBatch, WriteState};
