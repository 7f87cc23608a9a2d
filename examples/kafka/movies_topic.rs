//! Movies on a topic, as the Kafka examples write them: keyed by id, JSON values.

use hollow::movies::Movie;
use hollow_kafka::{Offsets, TopicWriter};

/// Writes every movie, in batches; returns the offsets just past them, per partition.
pub async fn write_movies(writer: &TopicWriter, movies: &[Movie]) -> hollow_kafka::Result<Offsets> {
    let mut end = Offsets::default();
    for chunk in movies.chunks(50_000) {
        let messages = chunk
            .iter()
            .map(|m| {
                let value = serde_json::to_vec(m).expect("a movie is JSON");
                (m.id.to_string().into_bytes(), Some(value))
            })
            .collect();
        for t in writer.send_batch(messages).await? {
            if end.next(t.partition).is_none_or(|next| next <= t.offset) {
                end.set_next(t.partition, t.offset + 1);
            }
        }
    }
    Ok(end)
}
