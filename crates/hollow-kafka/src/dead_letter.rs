//! Bad messages, kept: written to a dead-letter topic with why and where from in their headers.

use std::collections::BTreeMap;
use std::sync::Arc;

use rskafka::client::Client;

use crate::error::{Error, Result};
use crate::writer::TopicWriter;

/// A message that could not be applied.
#[derive(Clone, Debug)]
pub(crate) struct DeadLetter {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) reason: String,
}

impl DeadLetter {
    pub(crate) fn to_error(&self, topic: &str) -> Error {
        Error::BadMessage {
            topic: topic.to_string(),
            partition: self.partition,
            offset: self.offset,
            reason: self.reason.clone(),
        }
    }
}

/// Header names of a dead letter.
pub mod headers {
    /// Why the message was not applied.
    pub const REASON: &str = "hollow.reason";
    /// The topic it came from.
    pub const TOPIC: &str = "hollow.source.topic";
    /// Its partition there.
    pub const PARTITION: &str = "hollow.source.partition";
    /// Its offset there.
    pub const OFFSET: &str = "hollow.source.offset";
}

/// The dead-letter topic of a source.
pub(crate) struct DeadLetters {
    writer: TopicWriter,
    source_topic: String,
}

impl DeadLetters {
    pub(crate) async fn new(
        client: Arc<Client>,
        topic: &str,
        bootstrap: &str,
        source_topic: &str,
    ) -> Result<Self> {
        Ok(Self {
            writer: TopicWriter::with_client(&client, bootstrap, topic).await?,
            source_topic: source_topic.to_string(),
        })
    }

    /// Writes the letters, each source partition's to one dead-letter partition, in order; done
    /// once the broker acknowledged them all.
    pub(crate) async fn send(&self, letters: &[DeadLetter]) -> Result<()> {
        let n = self.writer.partition_count() as i32;
        let mut by_partition: BTreeMap<i32, Vec<rskafka::record::Record>> = BTreeMap::new();
        for d in letters {
            tracing::warn!(
                topic = %self.source_topic,
                partition = d.partition,
                offset = d.offset,
                reason = %d.reason,
                dead_letter_topic = %self.writer.topic(),
                "bad message dead-lettered"
            );
            let headers = BTreeMap::from([
                (headers::REASON.to_string(), d.reason.clone().into_bytes()),
                (
                    headers::TOPIC.to_string(),
                    self.source_topic.clone().into_bytes(),
                ),
                (
                    headers::PARTITION.to_string(),
                    d.partition.to_string().into_bytes(),
                ),
                (
                    headers::OFFSET.to_string(),
                    d.offset.to_string().into_bytes(),
                ),
            ]);
            by_partition
                .entry(d.partition % n)
                .or_default()
                .push(rskafka::record::Record {
                    key: d.key.clone(),
                    value: d.value.clone(),
                    headers,
                    timestamp: chrono::Utc::now(),
                });
        }
        for (partition, records) in by_partition {
            self.writer.send_to(partition, records).await?;
        }
        Ok(())
    }
}
