//! The view built the GlobalKTable way, for comparison: every message of the topic read from
//! offset 0 with the same client and folded into a map.

use std::collections::HashMap;

use hollow::movies::Movie;
use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::client::ClientBuilder;

/// Reads every partition of `topic` from its earliest offset to its end at the start, decoding
/// each JSON value; a tombstone removes its key. Returns the view and the messages read.
pub async fn replay(
    bootstrap: &str,
    topic: &str,
) -> Result<(HashMap<i64, Movie>, u64), Box<dyn std::error::Error>> {
    let client = ClientBuilder::new(vec![bootstrap.to_string()])
        .build()
        .await?;
    let partitions: Vec<i32> = client
        .list_topics()
        .await?
        .into_iter()
        .find(|t| t.name == topic)
        .ok_or_else(|| format!("no topic {topic}"))?
        .partitions
        .into_iter()
        .collect();
    let mut view = HashMap::new();
    let mut read = 0;
    for p in partitions {
        let pc = client
            .partition_client(topic, p, UnknownTopicHandling::Error)
            .await?;
        let end = pc.get_offset(OffsetAt::Latest).await?;
        let mut next = pc.get_offset(OffsetAt::Earliest).await?;
        while next < end {
            let (records, _) = pc.fetch_records(next, 1..(8 << 20), 100).await?;
            let from = next;
            for r in records.into_iter().filter(|r| r.offset >= from) {
                next = r.offset + 1;
                read += 1;
                let key: i64 =
                    String::from_utf8_lossy(&r.record.key.unwrap_or_default()).parse()?;
                match r.record.value {
                    Some(v) => view.insert(key, serde_json::from_slice::<Movie>(&v)?),
                    None => view.remove(&key),
                };
            }
        }
    }
    Ok((view, read))
}
