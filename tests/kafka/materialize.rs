//! 200,000 keyed messages with updates and tombstones: every consumer equals the map built from
//! the same messages.

use std::time::Duration;

use hollow_kafka::{ReadYourWrites, TopicWriter};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: run .ci/kafka-job"]
async fn every_consumer_equals_the_map_of_the_messages() {
    let broker = broker();
    let (topic, _) = topics(&broker, "materialize");
    let dir = tempfile::tempdir().unwrap();
    let writer = TopicWriter::connect(broker.bootstrap(), &topic)
        .await
        .unwrap();
    let work = workload(200_000, 20_000, 7);
    let (first, second) = work.split_at(150_000);

    // A consumer that follows from the first state on, by deltas.
    let mut tokens = Vec::new();
    for chunk in as_messages(first).chunks(10_000) {
        tokens.extend(writer.send_batch(chunk.to_vec()).await.unwrap());
    }
    // Snapshots only when something asks for one: the first version's, and the one the source
    // asks for once it has caught up.
    let producer = producer_builder(dir.path())
        .with_snapshot_every(1_000)
        .build()
        .await
        .unwrap();
    let mut source = source_builder(broker.bootstrap(), &topic, None)
        .build(producer)
        .await
        .unwrap();
    let status = source.status();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        source
            .run_until(async {
                let _ = stopped.await;
            })
            .await
            .map(|_| source)
    });
    // The source publishes the first 150,000; a consumer starts and waits for them all.
    let follower = consumer(dir.path()).await;
    let last_of = |tokens: &[hollow_kafka::WriteToken]| {
        let mut last = std::collections::BTreeMap::new();
        for t in tokens {
            last.insert(t.partition, t.offset);
        }
        last.into_iter().collect::<Vec<_>>()
    };
    let state = follower
        .wait_for_offsets(&topic, &last_of(&tokens), Duration::from_secs(60))
        .await
        .unwrap_or_else(|| {
            panic!(
                "the first 150,000 messages published: {:?}, consumer at {:?}, expecting {:?}",
                status.lock().unwrap(),
                follower.offsets(&topic),
                last_of(&tokens)
            )
        });
    assert_eq!(view_of(&state), fold(first));
    // Caught up on a backlog of more than a cycle: the source had the state it reached
    // snapshotted, so that a reader starting cold loads it instead of following deltas.
    let store = hollow::store::BlobStore::local(dir.path(), "movies").unwrap();
    let snapshot_of_reached = || async {
        let blobs = store.list().await.unwrap();
        blobs.iter().any(|b| {
            matches!(b, hollow::store::layout::BlobName::Snapshot(id) if id.version == state.version())
        })
    };
    let waited = std::time::Instant::now();
    while !snapshot_of_reached().await {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "no snapshot of version {} after catching up: {:?}",
            state.version(),
            store.list().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut more = Vec::new();
    for chunk in as_messages(second).chunks(5_000) {
        more.extend(writer.send_batch(chunk.to_vec()).await.unwrap());
    }
    let state = follower
        .wait_for_offsets(&topic, &last_of(&more), Duration::from_secs(60))
        .await
        .expect("all 200,000 messages published");
    let expected = fold(&work);
    assert_eq!(view_of(&state), expected);
    // The follower got there by deltas; a new consumer from the snapshot chain agrees.
    let fresh = consumer(dir.path()).await;
    assert_eq!(view_of(&fresh.current().unwrap()), expected);
    assert_eq!(
        fresh.offsets(&topic).unwrap(),
        follower.offsets(&topic).unwrap()
    );

    stop.send(()).unwrap();
    let source = running.await.unwrap().unwrap();
    let s = status.lock().unwrap().clone();
    assert_eq!(s.messages, 200_000);
    assert_eq!(s.upserts + s.deletes, 200_000);
    assert_eq!(s.dead_lettered, 0);
    assert!(s.cycles >= 2, "{s:?}");
    assert_eq!(
        source
            .producer()
            .state()
            .unwrap()
            .object("Movie")
            .unwrap()
            .len(),
        expected.len() as u64
    );
}
