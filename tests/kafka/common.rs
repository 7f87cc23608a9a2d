//! What the Kafka tests share: a broker (the one `HOLLOW_KAFKA_BOOTSTRAP` names, as
//! `scripts/kafka-broker run` sets, or one started through that script), fresh topics, the
//! messages written and the view they should produce.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hollow::consumer::{Consumer, ConsumerBuilder};
use hollow::core::ReadState;
use hollow::movies::{self, Movie, SplitMix64};
use hollow::producer::{Producer, ProducerBuilder};
use hollow_kafka::{
    KafkaSource, KafkaSourceBuilder, LocalBroker, Offsets, TopicWriter, WriteToken,
};

/// A topic name no other test uses.
pub fn fresh_topic(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{nanos}", std::process::id())
}

/// The broker of the job, or a new one.
pub fn broker() -> LocalBroker {
    LocalBroker::start_or_reuse().expect("a Kafka broker")
}

/// A compacted topic of 4 partitions, and its dead-letter topic (not compacted: dead letters
/// may lack keys).
pub fn topics(broker: &LocalBroker, what: &str) -> (String, String) {
    let topic = fresh_topic(what);
    let dead = format!("{topic}-dead-letters");
    broker
        .create_topic(&topic, 4, &["cleanup.policy=compact"])
        .unwrap();
    broker.create_topic(&dead, 2, &[]).unwrap();
    (topic, dead)
}

/// Movie `id` as written by message `seq`: its runtime is the sequence number, so a value that
/// went back in time shows.
pub fn movie(id: i64, seq: i32, r: &mut SplitMix64) -> Movie {
    let mut m = movies::draw(r, id as u64 - 1);
    m.id = id;
    m.runtime_minutes = seq;
    m
}

/// The messages of a workload: `n` writes over `keys` keys, about one in ten a tombstone.
pub fn workload(n: usize, keys: i64, seed: u64) -> Vec<(i64, Option<Movie>)> {
    let mut r = SplitMix64::new(seed);
    (0..n)
        .map(|seq| {
            let id = 1 + r.pick(keys as u64) as i64;
            let value = (r.pick(10) != 0).then(|| movie(id, seq as i32, &mut r));
            (id, value)
        })
        .collect()
}

/// As Kafka messages: the key is the id's text, the value JSON or a tombstone.
pub fn as_messages(work: &[(i64, Option<Movie>)]) -> Vec<hollow_kafka::Message> {
    work.iter()
        .map(|(id, m)| {
            (
                id.to_string().into_bytes(),
                m.as_ref().map(|m| serde_json::to_vec(m).unwrap()),
            )
        })
        .collect()
}

/// The view a list of messages (in order per key) produces.
pub fn fold<'a>(
    messages: impl IntoIterator<Item = &'a (i64, Option<Movie>)>,
) -> BTreeMap<i64, Movie> {
    let mut view = BTreeMap::new();
    for (id, m) in messages {
        match m {
            Some(m) => view.insert(*id, m.clone()),
            None => view.remove(id),
        };
    }
    view
}

/// Every movie of a state, by id.
pub fn view_of(state: &ReadState) -> BTreeMap<i64, Movie> {
    let movies = state.object("Movie").unwrap();
    movies
        .ordinals()
        .map(|o| {
            let m: Movie = state.get(o).unwrap();
            (m.id, m)
        })
        .collect()
}

/// A producer of the movies dataset in `folder`.
pub async fn producer(folder: &Path) -> Producer {
    producer_builder(folder).build().await.unwrap()
}

/// The settings of [`producer`]: every version snapshotted, nothing deleted.
pub fn producer_builder(folder: &Path) -> ProducerBuilder {
    let store = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(folder).unwrap());
    ProducerBuilder::new(store, "movies", movies::schema().unwrap()).without_retention()
}

/// A Kafka source of `topic` publishing to `folder`.
pub async fn source(
    broker: &str,
    topic: &str,
    dead_letters: Option<&str>,
    folder: &Path,
) -> KafkaSource<Movie> {
    build_source(source_builder(broker, topic, dead_letters), folder).await
}

/// The settings of [`source`].
pub fn source_builder(
    broker: &str,
    topic: &str,
    dead_letters: Option<&str>,
) -> KafkaSourceBuilder<Movie> {
    source_builder_of(broker, topic, dead_letters)
}

/// The settings of [`source`], for records of `T`.
pub fn source_builder_of<T>(
    broker: &str,
    topic: &str,
    dead_letters: Option<&str>,
) -> KafkaSourceBuilder<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let mut b = KafkaSourceBuilder::<T>::new(broker, topic)
        .with_max_delay(Duration::from_millis(50))
        .with_fetch_max_wait(Duration::from_millis(50))
        .with_max_backoff(Duration::from_secs(1));
    if let Some(d) = dead_letters {
        b = b.with_dead_letter_topic(d);
    }
    b
}

/// A source with these settings, publishing to `folder`.
pub async fn build_source(b: KafkaSourceBuilder<Movie>, folder: &Path) -> KafkaSource<Movie> {
    b.build(producer(folder).await).await.unwrap()
}

/// A consumer of the movies dataset in `folder`.
pub async fn consumer(folder: &Path) -> Consumer {
    consumer_of(folder, "movies").await
}

/// A consumer of `dataset` in `folder`.
pub async fn consumer_of(folder: &Path, dataset: &str) -> Consumer {
    ConsumerBuilder::local(folder, dataset)
        .unwrap()
        .with_poll_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap()
}

/// The offsets a state contains.
pub fn offsets(state: &ReadState, topic: &str) -> Offsets {
    Offsets::of_state(state, topic).unwrap()
}

/// A message written, and where it landed.
pub type Written = (WriteToken, (i64, Option<Movie>));

/// Writes `work` as messages keep coming in production: 200 every 25 ms.
pub fn write_steadily(
    writer: TopicWriter,
    work: Vec<(i64, Option<Movie>)>,
) -> tokio::task::JoinHandle<Vec<Written>> {
    tokio::spawn(async move {
        let mut written = Vec::new();
        for chunk in work.chunks(200) {
            let tokens = writer.send_batch(as_messages(chunk)).await.unwrap();
            written.extend(tokens.into_iter().zip(chunk.iter().cloned()));
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        written
    })
}

/// The last offset written to each partition.
pub fn last_offsets(written: &[Written]) -> Vec<(i32, i64)> {
    let mut last = BTreeMap::new();
    for (t, _) in written {
        last.insert(t.partition, t.offset);
    }
    last.into_iter().collect()
}

/// Every announced version, up to the one `consumer` serves, reached by pinning (which
/// follows the line of announced states back from the announced one). Leaves the consumer
/// pinned.
pub async fn every_version(consumer: &Consumer) -> Vec<Arc<ReadState>> {
    let latest = consumer.version().unwrap();
    let mut states = Vec::new();
    for v in 1..=latest {
        // A version spent by a cycle that did not announce (killed before publishing, or
        // between publishing and announcing) is refused.
        if consumer.pin(v).await.is_ok() {
            states.push(consumer.current().unwrap());
        }
    }
    states
}

/// Each state holds exactly the messages before the offsets it records (none lost, none
/// applied twice), and offsets never go back from one state to the next.
pub fn assert_states_exact(states: &[Arc<ReadState>], topic: &str, written: &[Written]) {
    let mut previous = Offsets::default();
    for state in states {
        let v = state.version();
        let offsets = offsets(state, topic);
        for (p, next) in previous.iter() {
            assert!(
                offsets.next(p).unwrap_or(0) >= next,
                "v{v}: offsets went back"
            );
        }
        let contained = written
            .iter()
            .filter(|(t, _)| offsets.contains(t.partition, t.offset))
            .map(|(_, m)| m);
        assert_eq!(view_of(state), fold(contained), "version {v} ({offsets})");
        previous = offsets;
    }
    eprintln!(
        "{} announced versions checked, {} messages",
        states.len(),
        written.len()
    );
}
