//! Writing keyed messages to a topic, partitioned as Kafka's Java producer does, and getting
//! back where each landed (a [`WriteToken`] to wait for).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::offsets::WriteToken;
use crate::source::{client_backoff, topic_partitions};

/// Writes messages to one topic. A key goes to the partition Kafka's default partitioner picks
/// (murmur2 of the key), so writers in Java and Rust keep each key's messages in one partition,
/// in order.
///
/// Concurrent [`TopicWriter::send`]s to one partition share produce requests: while a request
/// is in flight, the messages sent meanwhile wait and go together in the next one. A lone
/// message goes at once; under load, the broker sees a request per round trip instead of one
/// per message (at 1,000 messages/s on a 2-core machine, acknowledgements went from a median
/// of 290 ms to a few ms).
#[derive(Clone)]
pub struct TopicWriter {
    topic: String,
    bootstrap: String,
    partitions: Arc<Vec<PartitionClient>>,
    /// Per partition: the messages waiting for the next request.
    queues: Arc<Vec<Mutex<Queue>>>,
}

/// The messages of one partition waiting for a request, and whether a request is in flight.
#[derive(Default)]
struct Queue {
    waiting: Vec<(Record, tokio::sync::oneshot::Sender<Result<i64>>)>,
    in_flight: bool,
}

/// The most bytes of records one produce request carries: below the broker's default
/// `message.max.bytes` (1 MiB), which bounds a request's batch.
pub const REQUEST_BYTES: usize = 512 << 10;

/// A message to write: a key and a value, or no value (a tombstone, deleting the key).
pub type Message = (Vec<u8>, Option<Vec<u8>>);

impl TopicWriter {
    /// A writer to `topic` on the cluster at `bootstrap` (`host:port`, comma-separated); the
    /// topic must exist.
    pub async fn connect(bootstrap: &str, topic: &str) -> Result<Self> {
        let servers: Vec<String> = bootstrap.split(',').map(|s| s.trim().to_string()).collect();
        let client = ClientBuilder::new(servers)
            .backoff_config(client_backoff(Duration::from_secs(2)))
            .build()
            .await
            .map_err(|source| Error::Kafka {
                what: "connecting".into(),
                bootstrap: bootstrap.to_string(),
                source: Box::new(source),
            })?;
        Self::with_client(&Arc::new(client), bootstrap, topic).await
    }

    pub(crate) async fn with_client(client: &Client, bootstrap: &str, topic: &str) -> Result<Self> {
        let mut partitions = Vec::new();
        for p in topic_partitions(client, bootstrap, topic).await? {
            partitions.push(
                client
                    .partition_client(topic, p, UnknownTopicHandling::Retry)
                    .await
                    .map_err(|source| Error::Kafka {
                        what: format!("connecting to {topic}/{p}"),
                        bootstrap: bootstrap.to_string(),
                        source: Box::new(source),
                    })?,
            );
        }
        partitions.sort_by_key(|p| p.partition());
        let queues = partitions.iter().map(|_| Mutex::default()).collect();
        Ok(Self {
            topic: topic.to_string(),
            bootstrap: bootstrap.to_string(),
            partitions: Arc::new(partitions),
            queues: Arc::new(queues),
        })
    }

    /// The topic written to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition `key` goes to.
    pub fn partition_of(&self, key: &[u8]) -> i32 {
        (murmur2(key) & 0x7fff_ffff) as i32 % self.partitions.len() as i32
    }

    /// Writes one message and returns where it landed, once the broker acknowledged it.
    /// Messages sent to one partition while a request is in flight go together in the next
    /// (see [`TopicWriter`]), in the order they were sent; when that request fails, each of
    /// them fails with [`Error::Write`].
    pub async fn send(&self, key: &[u8], value: Option<&[u8]>) -> Result<WriteToken> {
        let partition = self.partition_of(key);
        let message = (key.to_vec(), value.map(<[u8]>::to_vec));
        let (done, landed) = tokio::sync::oneshot::channel();
        let start_request = {
            let mut queue = lock(&self.queues[partition as usize]);
            queue
                .waiting
                .push((record(message, Default::default()), done));
            !std::mem::replace(&mut queue.in_flight, true)
        };
        if start_request {
            // A task of its own, so that a caller giving up on its write does not strand the
            // messages that joined it.
            tokio::spawn(self.clone().send_waiting(partition));
        }
        let offset = landed.await.map_err(|_| Error::Write {
            what: format!("writing to {}/{partition}", self.topic),
            bootstrap: self.bootstrap.clone(),
            reason: "the writer's runtime stopped".into(),
        })??;
        Ok(WriteToken { partition, offset })
    }

    /// Sends the messages waiting for `partition`, request after request, until none wait.
    async fn send_waiting(self, partition: i32) {
        loop {
            let waiting = {
                let mut queue = lock(&self.queues[partition as usize]);
                if queue.waiting.is_empty() {
                    queue.in_flight = false;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            let (records, senders): (Vec<Record>, Vec<_>) = waiting.into_iter().unzip();
            match self.send_to(partition, records).await {
                Ok(offsets) => {
                    for (done, offset) in senders.into_iter().zip(offsets) {
                        let _ = done.send(Ok(offset));
                    }
                }
                Err(e) => {
                    for done in senders {
                        let _ = done.send(Err(Error::Write {
                            what: format!("writing to {}/{partition}", self.topic),
                            bootstrap: self.bootstrap.clone(),
                            reason: e.to_string(),
                        }));
                    }
                }
            }
        }
    }

    /// Writes `value` as JSON under the key `key` (its text), or a tombstone for `None`.
    pub async fn send_json<V: Serialize>(
        &self,
        key: &str,
        value: Option<&V>,
    ) -> Result<WriteToken> {
        let value = value
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| Error::Config(format!("the value is not JSON-serializable: {e}")))?;
        self.send(key.as_bytes(), value.as_deref()).await
    }

    /// Writes many messages, each partition's in one request, all partitions at once; returns
    /// their tokens in the order given.
    pub async fn send_batch(&self, messages: Vec<Message>) -> Result<Vec<WriteToken>> {
        let mut by_partition: Vec<(Vec<usize>, Vec<Record>)> = (0..self.partitions.len())
            .map(|_| Default::default())
            .collect();
        for (i, m) in messages.into_iter().enumerate() {
            let p = self.partition_of(&m.0) as usize;
            by_partition[p].0.push(i);
            by_partition[p].1.push(record(m, Default::default()));
        }
        let total: usize = by_partition.iter().map(|(i, _)| i.len()).sum();
        let sends =
            by_partition
                .into_iter()
                .enumerate()
                .map(|(p, (indices, records))| async move {
                    let offsets = self.send_to(p as i32, records).await?;
                    Ok::<_, Error>((p as i32, indices, offsets))
                });
        let mut tokens = vec![
            WriteToken {
                partition: 0,
                offset: 0
            };
            total
        ];
        for result in futures::future::join_all(sends).await {
            let (partition, indices, offsets) = result?;
            for (i, offset) in indices.into_iter().zip(offsets) {
                tokens[i] = WriteToken { partition, offset };
            }
        }
        Ok(tokens)
    }

    /// Writes records to one partition, in requests of at most [`REQUEST_BYTES`]; their offsets.
    pub(crate) async fn send_to(&self, partition: i32, records: Vec<Record>) -> Result<Vec<i64>> {
        let client = &self.partitions[partition as usize % self.partitions.len()];
        let mut offsets = Vec::with_capacity(records.len());
        let mut request = Vec::new();
        let mut bytes = 0;
        let mut records = records.into_iter().peekable();
        while let Some(r) = records.next() {
            bytes += r.approximate_size();
            request.push(r);
            let full = records
                .peek()
                .is_none_or(|next| bytes + next.approximate_size() > REQUEST_BYTES);
            if full {
                let sent = client
                    .produce(std::mem::take(&mut request), Compression::NoCompression)
                    .await
                    .map_err(|source| Error::Kafka {
                        what: format!("writing to {}/{}", self.topic, client.partition()),
                        bootstrap: self.bootstrap.clone(),
                        source: Box::new(source),
                    })?;
                offsets.extend(sent);
                bytes = 0;
            }
        }
        Ok(offsets)
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }
}

fn lock(queue: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn record(
    (key, value): Message,
    headers: std::collections::BTreeMap<String, Vec<u8>>,
) -> Record {
    Record {
        key: Some(key),
        value,
        headers,
        timestamp: Utc::now(),
    }
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), as its default partitioner
/// hashes keys.
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, &b) in rest.iter().enumerate().rev() {
            h ^= (b as u32) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::murmur2;

    /// The values of Kafka's own test of `Utils.murmur2` (UtilsTest).
    #[test]
    fn murmur2_matches_kafka() {
        for (key, expected) in [
            ("21", -973932308i32),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ] {
            assert_eq!(murmur2(key.as_bytes()) as i32, expected, "{key}");
        }
    }
}
