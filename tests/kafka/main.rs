//! The Kafka pipeline against a real Apache Kafka broker (`scripts/kafka-broker`): a topic of
//! keyed messages, updates and tombstones, materialized by a `KafkaSource` and read by
//! consumers. Ignored by `cargo test`; `.ci/kafka-job` runs them with a broker.

mod bad_input;
mod common;
mod materialize;
mod read_your_writes;
mod restarts;
mod standbys;
