//! # hollow-producer
//!
//! The producer side of hollow: each cycle turns the full dataset into a new state, writes its
//! snapshot, delta and reverse delta, checks them, publishes them to a blob store (any
//! `object_store` backend: a local folder, S3, MinIO, GCS, Azure, in-memory) and then announces
//! the new version, or announces nothing at all.
//!
//! Several producers of one dataset can elect a leader on the store itself
//! ([`ProducerBuilder::with_leader_election`]; how it works, and what it assumes of clocks, is in
//! [`leadership`]): only the leader runs cycles, standbys follow the announced state and take
//! over when it stops renewing its lease, and a producer that lost the lease can never announce.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use serde::{Deserialize, Serialize};
//! use hollow_producer::{CycleOutcome, ProducerBuilder, DuplicatePrimaryKeys};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Movie { id: i64, title: String }
//!
//! let schema = hollow_core::SchemaBuilder::new().add::<Movie>().primary_key("Movie", &["id"]).build()?;
//! let store = Arc::new(object_store::memory::InMemory::new());
//! let mut producer = ProducerBuilder::new(store, "movies", schema)
//!     .with_validator(DuplicatePrimaryKeys)
//!     .build()
//!     .await?;
//! let movies = vec![Movie { id: 1, title: "Heat".into() }];
//! let outcome = producer.run_cycle(|w| { for m in &movies { w.add(m)?; } Ok(()) }).await?;
//! assert!(matches!(outcome, CycleOutcome::Published(ref r) if r.version == 1));
//! // The same data again is no change: nothing is published.
//! let again = producer.run_cycle(|w| { for m in &movies { w.add(m)?; } Ok(()) }).await?;
//! assert!(matches!(again, CycleOutcome::NoChange));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

#![warn(missing_docs)]

mod builder;
mod changes;
mod error;
mod integrity;
pub mod leadership;
mod outcome;
mod producer;
mod restore;
mod retention;
#[cfg(test)]
mod test_rows;
mod validate;

pub use builder::{ProducerBuilder, DEFAULT_RETAINED_VERSIONS};
pub use changes::{Changes, Populator};
pub use error::{Error, Result};
pub use hollow_core as core;
pub use hollow_store as store;
pub use hollow_store::BlobStore;
pub use leadership::Leadership;
pub use outcome::{CycleOutcome, CycleReport, ProducerListener};
pub use producer::Producer;
pub use validate::{
    DuplicatePrimaryKeys, NotEmptied, RecordCountChange, ValidationContext, Validator,
};
