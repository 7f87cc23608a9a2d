#![doc = include_str!("../README.md")]
//!
//! This facade re-exports the crates: [`core`] (data model, state engines, blob format),
//! [`store`] (one dataset in a blob store: names, announcement, fetching, planning),
//! [`producer`] and [`consumer`]. [`movies`] is the benchmark dataset every benchmark, test and
//! example of the project uses.

#![warn(missing_docs)]

pub use hollow_consumer as consumer;
pub use hollow_core as core;
/// The Kafka source and read-your-writes (feature `kafka`).
#[cfg(feature = "kafka")]
pub use hollow_kafka as kafka;
pub use hollow_producer as producer;
pub use hollow_store as store;
/// The object store crate, re-exported: stores are named with the version hollow uses. Cloud
/// backends are cargo features of this crate (`aws`, `gcp`, `azure`).
pub use object_store;

pub mod movies;
