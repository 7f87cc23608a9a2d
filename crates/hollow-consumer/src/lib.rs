//! # hollow-consumer
//!
//! The consumer side of hollow: watches the announcement, fetches blobs, applies them and swaps
//! the new state in while readers keep reading. It serves only what a producer announced: every
//! blob must lead to the announced state exactly (by version and the state's random tag), a
//! damaged announcement is rejected whole, and it never moves back on its own. Whatever fails,
//! including a panic, the current state keeps serving and [`Consumer::health`] says why.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use hollow_consumer::ConsumerBuilder;
//!
//! let store = Arc::new(object_store::memory::InMemory::new());
//! let consumer = ConsumerBuilder::new(store, "movies").build().await?;
//! // Nothing is announced yet: nothing is served, and the health says where it looked.
//! assert!(consumer.current().is_none());
//! let error = consumer.health().last_error.expect("an error");
//! assert!(error.contains("no announcement at"), "{error}");
//! # Ok::<(), hollow_consumer::Error>(())
//! # }).unwrap();
//! ```

#![warn(missing_docs)]

mod consumer;
mod error;

pub use consumer::{Consumer, ConsumerBuilder, ConsumerListener, Health, RefreshEvent};
pub use error::{Error, Result};
pub use hollow_core as core;
pub use hollow_store as store;
pub use hollow_store::{load, plan, Announcement, BlobStore, Plan};
