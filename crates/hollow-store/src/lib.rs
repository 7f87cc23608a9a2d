//! # hollow-store
//!
//! The store layer of hollow: one dataset's blobs and announcement in any `object_store`
//! backend (a local folder, S3, MinIO, GCS, Azure, in-memory). The producer and the consumer
//! both go through [`BlobStore`]; `hollow-core` knows no store.
//!
//! - [`layout`]: blob names (`snapshot/<state>`, `delta/<from>-<to>`, …) and the checksummed
//!   announcement.
//! - [`BlobStore`]: create-only puts, fetches (with an optional cache folder), listing, the
//!   announcement (read, conditional read, compare-and-swap), the leader lease of producers
//!   that elect one, and retention deletes.
//! - [`plan()`] and [`load()`]: the way from one state to another, and bringing a state there.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use hollow_core::{ReadState, SchemaBuilder, StateId, WriteState};
//! use hollow_store::{layout::BlobName, BlobStore};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Movie { id: i64, title: String }
//!
//! let store = BlobStore::new(Arc::new(object_store::memory::InMemory::new()), "movies");
//! assert!(store.announcement().await?.is_none(), "nothing announced yet");
//!
//! // Publish a snapshot, then announce it: what a producer does each cycle.
//! let mut writer = WriteState::new(SchemaBuilder::new().add::<Movie>().build()?);
//! writer.add(&Movie { id: 1, title: "Heat".into() })?;
//! let state = StateId::new(1, 0x5eed);
//! store.put(BlobName::Snapshot(state), writer.write_snapshot(state)?.into()).await?;
//! store.announce(state, None).await?;
//!
//! // What a consumer does: read the announcement, load the state it names.
//! let announced = store.announcement().await?.expect("announced");
//! let (loaded, plan) = hollow_store::load(&store, None, announced.state, 8).await?;
//! assert_eq!((loaded.id(), plan.describe()), (state, "snapshot 1".to_string()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

#![warn(missing_docs)]

mod error;
mod folder_lock;
pub mod layout;
mod lease;
mod load;
mod plan;
mod sealed_text;
mod store;

pub use error::{Error, Result};
pub use lease::{Lease, LeaseObject};
pub use load::{load, load_listed, load_with_hash_indexes};
/// The object store crate, re-exported so that stores are named with the version hollow uses.
pub use object_store;
pub use plan::{announced_line, plan, resolve_version, Plan};
pub use store::{Announcement, AnnouncementObject, BlobStore};
