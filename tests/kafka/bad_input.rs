//! Bad messages lose nothing and stop nothing silently: with a dead-letter topic they land there
//! with the reason and their origin in headers, counted, and the stream goes on; without one the
//! source stops with an error naming the partition and offset. A broker that goes away: readers
//! keep serving, the source retries and catches up.

use std::collections::BTreeMap;
use std::time::Duration;

use hollow::movies::SplitMix64;
use hollow_kafka::{dead_letter_headers, Error, ReadYourWrites, TopicWriter, WriteToken};
use rskafka::client::partition::UnknownTopicHandling;

use crate::common::*;

/// Every message of `topic` (all partitions), with its headers.
async fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> Vec<rskafka::record::Record> {
    let client = rskafka::client::ClientBuilder::new(vec![bootstrap.to_string()])
        .build()
        .await
        .unwrap();
    let mut out = Vec::new();
    for p in 0..partitions {
        let pc = client
            .partition_client(topic, p, UnknownTopicHandling::Error)
            .await
            .unwrap();
        let (records, _) = pc.fetch_records(0, 1..10 << 20, 100).await.unwrap();
        out.extend(records.into_iter().map(|r| r.record));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: run .ci/kafka-job"]
async fn bad_messages_go_to_the_dead_letter_topic_and_the_stream_goes_on() {
    let broker = broker();
    let (topic, dead_topic) = topics(&broker, "poison");
    let dir = tempfile::tempdir().unwrap();
    let writer = TopicWriter::connect(broker.bootstrap(), &topic)
        .await
        .unwrap();
    let mut r = SplitMix64::new(5);
    let good = |id: i64, r: &mut SplitMix64| serde_json::to_vec(&movie(id, 1, r)).unwrap();
    // Key, value, and why it is bad (none: good).
    type Case = (Vec<u8>, Option<Vec<u8>>, Option<&'static str>);
    let messages: Vec<Case> = vec![
        (b"1".to_vec(), Some(good(1, &mut r)), None),
        (
            b"2".to_vec(),
            Some(b"{not json".to_vec()),
            Some("not a valid record"),
        ),
        (
            b"3".to_vec(),
            Some(good(4, &mut r)),
            Some("not the record's primary key"),
        ),
        (b"x".to_vec(), Some(good(5, &mut r)), Some("bad key")),
        (
            b"6".to_vec(),
            Some(br#"{"id": 6}"#.to_vec()),
            Some("missing field"),
        ),
        (b"7".to_vec(), Some(good(7, &mut r)), Some("rated too high")),
        (
            b"10".to_vec(),
            Some(good(10, &mut r)),
            Some("panicked: no movie 10"),
        ),
        (b"8".to_vec(), Some(good(8, &mut r)), None),
        (b"1".to_vec(), None, None),
    ];
    for (key, value, _) in &messages {
        writer.send(key, value.as_deref()).await.unwrap();
    }
    let settings =
        source_builder(broker.bootstrap(), &topic, Some(&dead_topic)).with_validator(|m| {
            match m.id {
                7 => Err("rated too high".into()),
                // A validator's bug is the user's, but the message that set it off is
                // dead-lettered like one refused: its partition's fetching goes on.
                10 => panic!("no movie 10"),
                _ => Ok(()),
            }
        });
    let mut source = build_source(settings, dir.path()).await;
    let status = source.status();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running =
        tokio::spawn(async move { source.run_until(async { drop(stopped.await) }).await });
    // After the bad ones, a good message still gets through.
    let token = writer.send(b"9", Some(&good(9, &mut r))).await.unwrap();
    let consumer = consumer(dir.path()).await;
    let state = consumer
        .wait_for_write(&topic, token, Duration::from_secs(30))
        .await
        .expect("the stream goes on after bad messages");
    let ids: Vec<i64> = view_of(&state).into_keys().collect();
    assert_eq!(
        ids,
        vec![8, 9],
        "1 was deleted by its tombstone; the bad ones are not in"
    );
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    let s = status.lock().unwrap().clone();
    assert_eq!((s.dead_lettered, s.upserts, s.deletes), (6, 3, 1), "{s:?}");

    let dead = read_all(broker.bootstrap(), &dead_topic, 2).await;
    let expected: BTreeMap<Vec<u8>, &str> = messages
        .iter()
        .filter_map(|(k, _, why)| Some((k.clone(), (*why)?)))
        .collect();
    assert_eq!(dead.len(), expected.len());
    for d in &dead {
        let key = d.key.clone().unwrap();
        let reason = String::from_utf8(d.headers[dead_letter_headers::REASON].clone()).unwrap();
        assert!(reason.contains(expected[&key]), "{reason}");
        assert_eq!(d.headers[dead_letter_headers::TOPIC], topic.as_bytes());
        let original = messages.iter().find(|m| m.0 == key).unwrap();
        assert_eq!(d.value, original.1, "the message is kept as it was");
        let offset: i64 = String::from_utf8_lossy(&d.headers[dead_letter_headers::OFFSET])
            .parse()
            .unwrap();
        assert!(offset >= 0);
    }
}

/// A record type whose `Serialize` has a bug: it panics on the note `boom`. Its key, `id`, is
/// read without serializing the note, so the panic comes in the producer's cycle.
#[derive(serde::Serialize, serde::Deserialize)]
struct Listing {
    id: i64,
    #[serde(serialize_with = "fragile")]
    note: String,
}

fn fragile<S: serde::Serializer>(note: &str, s: S) -> Result<S::Ok, S::Error> {
    if note == "boom" {
        panic!("no boom here");
    }
    s.serialize_str(note)
}

/// A JSON message of a listing.
fn listing(id: i64, note: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"id": id, "note": note})).unwrap()
}

/// A source of listings from `topic`, publishing to `folder`.
async fn listing_source(
    bootstrap: &str,
    topic: &str,
    dead_letters: Option<&str>,
    folder: &std::path::Path,
) -> hollow_kafka::KafkaSource<Listing> {
    let schema = hollow::core::SchemaBuilder::new()
        .add::<Listing>()
        .primary_key("Listing", &["id"])
        .build()
        .unwrap();
    let store =
        std::sync::Arc::new(object_store::local::LocalFileSystem::new_with_prefix(folder).unwrap());
    let producer = hollow::producer::ProducerBuilder::new(store, "listings", schema)
        .without_retention()
        .build()
        .await
        .unwrap();
    source_builder_of::<Listing>(bootstrap, topic, dead_letters)
        .build(producer)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: run .ci/kafka-job"]
async fn a_record_whose_serialize_panics_is_dead_lettered_and_the_stream_goes_on() {
    let broker = broker();
    let (topic, dead_topic) = topics(&broker, "fragile");
    let dir = tempfile::tempdir().unwrap();
    let writer = TopicWriter::connect(broker.bootstrap(), &topic)
        .await
        .unwrap();
    writer.send(b"1", Some(&listing(1, "fine"))).await.unwrap();
    let bad = writer.send(b"2", Some(&listing(2, "boom"))).await.unwrap();
    let mut source =
        listing_source(broker.bootstrap(), &topic, Some(&dead_topic), dir.path()).await;
    let status = source.status();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running =
        tokio::spawn(async move { source.run_until(async { drop(stopped.await) }).await });
    let token = writer.send(b"3", Some(&listing(3, "fine"))).await.unwrap();
    let consumer = consumer_of(dir.path(), "listings").await;
    let state = consumer
        .wait_for_write(&topic, token, Duration::from_secs(30))
        .await
        .expect("the stream goes on after a record whose Serialize panics");
    let index = state.primary_key_index("Listing").unwrap();
    let present: Vec<bool> = (1..=3i64)
        .map(|id| index.find(&id).unwrap().is_some())
        .collect();
    assert_eq!(present, [true, false, true]);
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(status.lock().unwrap().dead_lettered, 1);
    let dead = read_all(broker.bootstrap(), &dead_topic, 2).await;
    assert_eq!(dead.len(), 1);
    let reason = String::from_utf8(dead[0].headers[dead_letter_headers::REASON].clone()).unwrap();
    assert!(
        reason.contains("writing the record panicked: no boom here"),
        "{reason}"
    );
    let offset = String::from_utf8_lossy(&dead[0].headers[dead_letter_headers::OFFSET]).to_string();
    assert_eq!(offset, bad.offset.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: run .ci/kafka-job"]
async fn without_a_dead_letter_topic_a_record_the_cycle_cannot_write_stops_the_source() {
    let broker = broker();
    let (topic, _) = topics(&broker, "fragile-stop");
    let dir = tempfile::tempdir().unwrap();
    let writer = TopicWriter::connect(broker.bootstrap(), &topic)
        .await
        .unwrap();
    let bad = writer.send(b"2", Some(&listing(2, "boom"))).await.unwrap();
    let mut source = listing_source(broker.bootstrap(), &topic, None, dir.path()).await;
    let err = stops_at(&mut source, &bad).await;
    assert!(err.to_string().contains("no boom here"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: run .ci/kafka-job"]
async fn without_a_dead_letter_topic_a_bad_message_stops_the_source_naming_it() {
    let broker = broker();
    let (topic, _) = topics(&broker, "stop");
    let dir = tempfile::tempdir().unwrap();
    let writer = TopicWriter::connect(broker.bootstrap(), &topic)
        .await
        .unwrap();
    let bad = writer.send(b"2", Some(b"{not json")).await.unwrap();
    let mut source = source(broker.bootstrap(), &topic, None, dir.path()).await;
    let err = stops_at(&mut source, &bad).await;
    assert!(err
        .to_string()
        .contains(&format!("{topic}/{}@{}", bad.partition, bad.offset)));
}

/// Runs `source` until it stops, which must be on the bad message `bad`, with nothing
/// announced; its error.
async fn stops_at<T, D>(source: &mut hollow_kafka::KafkaSource<T, D>, bad: &WriteToken) -> Error
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    D: hollow_kafka::Decoder<T>,
{
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        source.run_until(std::future::pending()),
    )
    .await
    .expect("the source stops")
    .unwrap_err();
    match &err {
        Error::BadMessage {
            partition, offset, ..
        } => assert_eq!((*partition, *offset), (bad.partition, bad.offset)),
        other => panic!("{other}"),
    }
    assert!(
        source.producer().state().is_none(),
        "nothing is announced past it"
    );
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: run .ci/kafka-job"]
async fn a_broker_that_goes_away_and_comes_back() {
    // A broker of its own, to stop and start.
    let broker = hollow_kafka::LocalBroker::start().unwrap();
    let (topic, _) = topics(&broker, "outage");
    let dir = tempfile::tempdir().unwrap();
    let writer = TopicWriter::connect(broker.bootstrap(), &topic)
        .await
        .unwrap();
    let work = workload(2_000, 500, 13);
    let (before, after) = work.split_at(1_000);
    let tokens = writer.send_batch(as_messages(before)).await.unwrap();
    let mut source = source(broker.bootstrap(), &topic, None, dir.path()).await;
    let status = source.status();
    let running = tokio::spawn(async move { source.run_until(std::future::pending()).await });
    let consumer = consumer(dir.path()).await;
    let last = tokens
        .iter()
        .map(|t| (t.partition, t.offset))
        .collect::<Vec<_>>();
    consumer
        .wait_for_offsets(&topic, &last, Duration::from_secs(30))
        .await
        .unwrap();
    drop(writer);

    broker.stop().unwrap();
    // Readers keep serving; the source says what is wrong.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let served = consumer.current().unwrap();
    assert_eq!(view_of(&served), fold(before));
    assert!(!running.is_finished());
    let error = status.lock().unwrap().last_error.clone();
    assert!(error.is_some(), "the outage shows in the source's status");

    broker.restart().unwrap();
    // Back: the status says so, before any new message.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let Some(error) = status.lock().unwrap().last_error.clone() else {
            break;
        };
        assert!(
            std::time::Instant::now() < deadline,
            "the broker is back, and the status still says {error:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let writer = TopicWriter::connect(broker.bootstrap(), &topic)
        .await
        .unwrap();
    let tokens = writer.send_batch(as_messages(after)).await.unwrap();
    let last = tokens
        .iter()
        .map(|t| (t.partition, t.offset))
        .collect::<Vec<_>>();
    let state = consumer
        .wait_for_offsets(&topic, &last, Duration::from_secs(60))
        .await
        .expect("the source catches up after the broker is back");
    assert_eq!(view_of(&state), fold(&work));
    running.abort();
}

/// A misconfigured source says so at once, naming what is wrong: no broker at the address (no
/// broker needed for this test), or no such topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = free.local_addr().unwrap().to_string();
    drop(free);
    let started = std::time::Instant::now();
    let err = source_builder(&address, "movies", None)
        .build(producer(dir.path()).await)
        .await
        .err()
        .expect("no broker there");
    assert!(matches!(err, Error::Kafka { .. }), "{err}");
    assert!(err.to_string().contains(&address), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: run .ci/kafka-job"]
async fn a_missing_topic_is_an_error_naming_it() {
    let broker = broker();
    let dir = tempfile::tempdir().unwrap();
    let topic = fresh_topic("never-created");
    let err = source_builder(broker.bootstrap(), &topic, None)
        .build(producer(dir.path()).await)
        .await
        .err()
        .expect("no such topic");
    assert!(matches!(err, Error::TopicMissing { .. }), "{err}");
    assert!(err.to_string().contains(&topic), "{err}");
}

/// `LocalBroker::delete_topic`, with which the bench and the demo remove the topics they
/// created: the topic is gone (a source of it is refused), and deleting it again is no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: run .ci/kafka-job"]
async fn a_deleted_topic_is_gone() {
    let broker = broker();
    let dir = tempfile::tempdir().unwrap();
    let (topic, _) = topics(&broker, "deleted");
    broker.delete_topic(&topic).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let built = source_builder(broker.bootstrap(), &topic, None)
            .build(producer(dir.path()).await)
            .await;
        match built {
            Err(Error::TopicMissing { .. }) => break,
            Ok(_) if std::time::Instant::now() < deadline => {
                // Deleting is asynchronous in Kafka: the metadata follows shortly.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(_) => panic!("{topic} is still there"),
            Err(e) => panic!("{e}"),
        }
    }
    broker.delete_topic(&topic).unwrap();
}
