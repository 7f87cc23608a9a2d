//! A consumer whose blob cache is memory-mapped: it serves the producer's states from mapped
//! cache files, follows deltas (types they leave alone stay mapped), and keeps serving the same
//! data after a cached file is deleted under it; a consumer restarted on the same cache starts
//! from the cache.

use std::time::Duration;

use hollow::consumer::ConsumerBuilder;
use hollow::movies;
use hollow::producer::ProducerBuilder;

/// The mapped files of this process under `folder`.
fn mapped_under(folder: &std::path::Path) -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let folder = folder.to_string_lossy().into_owned();
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with(&folder))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_serves_and_follows_from_a_mapped_cache() {
    let (data_dir, cache_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = std::sync::Arc::new(
        object_store::local::LocalFileSystem::new_with_prefix(data_dir.path()).unwrap(),
    );
    let mut producer = ProducerBuilder::new(store.clone(), "movies", movies::schema().unwrap())
        .with_snapshot_every(10)
        .build()
        .await
        .unwrap();
    let n = 20_000;
    let mut data = movies::state1(n);
    producer
        .run_cycle(|w| data.iter().try_for_each(|m| w.add(m)))
        .await
        .unwrap();

    let consumer = ConsumerBuilder::new(store.clone(), "movies")
        .with_mapped_blob_cache(cache_dir.path())
        .with_poll_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    let state = consumer.current().unwrap();
    assert_eq!(state.checksum(), producer.state().unwrap().checksum());
    let mapped = mapped_under(cache_dir.path());
    assert!(
        mapped.iter().any(|p| p.contains("snapshot/1.")),
        "the snapshot is not mapped: {mapped:?}"
    );

    // A delta that changes ratings only: the consumer applies it, rebuilding the movies on the
    // heap; the types it leaves alone (actors, casts, genres) stay mapped from the snapshot.
    for m in data.iter_mut().step_by(50) {
        m.rating = (m.rating + 1.0) % 10.0;
    }
    producer
        .run_cycle(|w| data.iter().try_for_each(|m| w.add(m)))
        .await
        .unwrap();
    assert!(consumer.wait_for_version(2, Duration::from_secs(10)).await);
    drop(state);
    let state = consumer.current().unwrap();
    assert_eq!(state.checksum(), producer.state().unwrap().checksum());
    let mapped = mapped_under(cache_dir.path());
    assert!(
        mapped.iter().any(|p| p.contains("snapshot/1.")),
        "{mapped:?}"
    );

    // The cached files deleted under it: the mapping keeps the data.
    std::fs::remove_dir_all(cache_dir.path().join("snapshot")).unwrap();
    let expected = producer.state().unwrap().checksum();
    assert_eq!(state.checksum(), expected);
    let movies_index = state.index::<movies::Movie>().unwrap();
    for m in &data {
        let found = movies_index
            .get(&m.id)
            .unwrap()
            .expect("every movie is there");
        assert_eq!(found.title, m.title);
    }
    drop((state, consumer));

    // A restart on the same cache: the delta is cached, the snapshot fetched again.
    let again = ConsumerBuilder::new(store, "movies")
        .with_mapped_blob_cache(cache_dir.path())
        .build()
        .await
        .unwrap();
    assert_eq!(again.current().unwrap().checksum(), expected);
}
