//! # hollow-kafka
//!
//! From a log-compacted Kafka topic to every reader's memory. A [`KafkaSource`] follows every
//! partition of a topic (one message per key, the latest wins, a tombstone deletes the key),
//! and publishes the records through an incremental hollow producer: each cycle upserts the
//! values, deletes the tombstoned keys, and records in the new state's tags the offsets it
//! contains ([`Offsets`]). So:
//!
//! - a new reader starts from a snapshot instead of replaying the topic;
//! - a restarted producer (or a standby taking over) resumes from exactly the offsets the
//!   announced state contains: no message is lost or applied twice, however it was stopped;
//! - a writer gets a [`WriteToken`] for its message ([`TopicWriter::send`]) and a reader waits
//!   until its consumer serves a state containing it ([`ReadYourWrites::wait_for_write`]);
//! - a message that does not decode, whose key is not the record's primary key, that a
//!   validator refuses, or on which the user's code panics goes to a dead-letter topic with the
//!   reason in its headers (or stops the source, naming its partition and offset).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::{sync::Arc, time::Duration};
//! use serde::{Deserialize, Serialize};
//! use hollow_kafka::{KafkaSourceBuilder, ReadYourWrites, TopicWriter};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Movie { id: u64, title: String }
//!
//! let schema = hollow_core::SchemaBuilder::new().add::<Movie>().primary_key("Movie", &["id"]).build()?;
//! let store = Arc::new(object_store::local::LocalFileSystem::new_with_prefix("/tmp/movies")?);
//! let producer = hollow_producer::ProducerBuilder::new(store.clone(), "movies", schema).build().await?;
//! let mut source = KafkaSourceBuilder::<Movie>::new("127.0.0.1:9092", "movies")
//!     .with_dead_letter_topic("movies-dead-letters")
//!     .with_max_delay(Duration::from_millis(50))
//!     .build(producer)
//!     .await?;
//! tokio::spawn(async move { source.run_until(std::future::pending()).await });
//!
//! // Elsewhere: write, then read the write back.
//! let writer = TopicWriter::connect("127.0.0.1:9092", "movies").await?;
//! let token = writer.send_json("42", Some(&Movie { id: 42, title: "Heat".into() })).await?;
//! let consumer = hollow_consumer::ConsumerBuilder::new(store, "movies").build().await?;
//! let state = consumer.wait_for_write("movies", token, Duration::from_secs(5)).await;
//! assert!(state.is_some());
//! # Ok(()) }
//! ```
//!
//! Without a broker: how message keys map to primary keys, and what a state's offsets say.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use hollow_kafka::{KeyShape, Offsets, OwnedKeyPart, WriteToken};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Price { sku: String, region: String, cents: u32 }
//!
//! let schema = hollow_core::SchemaBuilder::new()
//!     .add::<Price>()
//!     .primary_key("Price", &["sku", "region"])
//!     .build()?;
//! let shape = KeyShape::of::<Price>(&schema)?;
//! let key = shape.parse(br#"{"sku": "A-1", "region": "fr"}"#)?;
//! let price = Price { sku: "A-1".into(), region: "fr".into(), cents: 250 };
//! assert_eq!(shape.key_of(&price)?, key);
//! assert_eq!(key[1], OwnedKeyPart::Bytes(b"fr".to_vec()));
//!
//! // A state whose offsets tag says "0=120,1=98" contains the message at 1:97, not 1:98.
//! let offsets: Offsets = "0=120,1=98".parse()?;
//! let token: WriteToken = "1:97".parse()?;
//! assert!(offsets.contains(token.partition, token.offset));
//! assert!(!offsets.contains(1, 98));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod dead_letter;
mod decode;
mod error;
mod key;
pub mod local_broker;
mod offsets;
mod source;
mod writer;

pub use dead_letter::headers as dead_letter_headers;
pub use decode::{Decoder, Json};
pub use error::{Error, Result};
pub use key::{KeyShape, OwnedKeyPart};
pub use local_broker::LocalBroker;
pub use offsets::{Offsets, ReadYourWrites, WriteToken};
pub use source::{KafkaSource, KafkaSourceBuilder, RecordValidator, SourceStatus};
pub use writer::{murmur2, Message, TopicWriter};
