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

/// Every movie of `data` is found by id in the consumer's state, with its title.
fn assert_serves(consumer: &hollow::consumer::Consumer, data: &[movies::Movie]) {
    let state = consumer.current().unwrap();
    let index = state.index::<movies::Movie>().unwrap();
    for m in data {
        assert_eq!(index.get(&m.id).unwrap().unwrap().title, m.title);
    }
}

/// A store in `folder` where a producer published 5,000 movies; the producer and the movies.
async fn published(
    folder: &std::path::Path,
) -> (
    std::sync::Arc<object_store::local::LocalFileSystem>,
    hollow::producer::Producer,
    Vec<movies::Movie>,
) {
    let store =
        std::sync::Arc::new(object_store::local::LocalFileSystem::new_with_prefix(folder).unwrap());
    let mut producer = ProducerBuilder::new(store.clone(), "movies", movies::schema().unwrap())
        .build()
        .await
        .unwrap();
    let data = movies::state1(5_000);
    producer
        .run_cycle(|w| data.iter().try_for_each(|m| w.add(m)))
        .await
        .unwrap();
    (store, producer, data)
}

/// A consumer saves the primary key indexes it built beside the cached snapshot; the next one
/// on that cache maps them. Saved indexes that are damaged are rebuilt and saved again, and a
/// snapshot file changed in place after they were saved is caught by its checksums (its stamp
/// changed), fetched again, and served right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_maps_the_indexes_saved_beside_the_snapshot() {
    let (data_dir, cache_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (store, producer, data) = published(data_dir.path()).await;
    let expected = producer.state().unwrap().checksum();
    let start = || {
        ConsumerBuilder::new(store.clone(), "movies")
            .with_mapped_blob_cache(cache_dir.path())
            .build()
    };

    // The first consumer builds the indexes and saves them beside the snapshot.
    drop(start().await.unwrap());
    let indexes = std::fs::read_dir(cache_dir.path().join("snapshot"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".indexes"))
        .expect("indexes saved beside the snapshot");
    let snapshot = indexes.to_string_lossy().replace(".indexes", "");
    let saved = std::fs::read(&indexes).unwrap();

    // The next maps them.
    let consumer = start().await.unwrap();
    assert_eq!(consumer.current().unwrap().checksum(), expected);
    assert!(
        mapped_under(cache_dir.path())
            .iter()
            .any(|p| p.ends_with(".indexes")),
        "the saved indexes are not mapped"
    );
    assert_serves(&consumer, &data);
    drop(consumer);

    // Damaged indexes: rebuilt, and saved again as they were.
    let mut damaged = saved.clone();
    let at = damaged.len() / 2;
    damaged[at] ^= 0x55;
    std::fs::write(&indexes, &damaged).unwrap();
    let consumer = start().await.unwrap();
    assert_serves(&consumer, &data);
    drop(consumer);
    assert_eq!(std::fs::read(&indexes).unwrap(), saved[..]);

    // The snapshot changed in place (one letter of a title): its stamp no longer matches the
    // one its indexes were saved with, so its checksums are verified, fail, and the snapshot
    // is fetched again.
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let title = data[0].title.as_bytes();
    let at = bytes
        .windows(title.len())
        .position(|w| w == title)
        .expect("the title in the snapshot");
    bytes[at] ^= 0x01;
    {
        use std::io::{Seek, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&snapshot)
            .unwrap();
        f.seek(std::io::SeekFrom::Start(at as u64)).unwrap();
        f.write_all(&bytes[at..=at]).unwrap();
    }
    let consumer = start().await.unwrap();
    assert_eq!(consumer.current().unwrap().checksum(), expected);
    assert_serves(&consumer, &data);
}

/// A consumer's own hash indexes are saved beside the cached snapshot with its primary key
/// indexes; the next consumer on that cache reads them back (the file is not saved again) and
/// answers as the first; one that asks for another index builds it and saves it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reads_the_hash_indexes_saved_beside_the_snapshot() {
    let (data_dir, cache_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (store, _producer, data) = published(data_dir.path()).await;
    let start = |fields: &'static [&'static str]| {
        ConsumerBuilder::new(store.clone(), "movies")
            .with_mapped_blob_cache(cache_dir.path())
            .with_hash_index("Movie", fields)
            .build()
    };
    let by_actor = |consumer: &hollow::consumer::Consumer| -> Vec<Vec<u32>> {
        let state = consumer.current().unwrap();
        let index = state.hash_index("Movie", &["cast.id"]).unwrap();
        (0..2_000i64)
            .map(|actor| index.find(&actor).unwrap().to_vec())
            .collect()
    };
    let saved_file = || {
        let path = std::fs::read_dir(cache_dir.path().join("snapshot"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".indexes"))
            .expect("indexes saved beside the snapshot");
        std::fs::read(path).unwrap()
    };
    let holds =
        |saved: &[u8], field: &str| saved.windows(field.len()).any(|w| w == field.as_bytes());

    let first = start(&["cast.id"]).await.unwrap();
    let expected = by_actor(&first);
    assert!(expected.iter().any(|movies| movies.len() > 1));
    drop(first);
    let saved = saved_file();
    assert!(holds(&saved, "cast.id"), "the hash index is saved");

    let second = start(&["cast.id"]).await.unwrap();
    assert_eq!(by_actor(&second), expected);
    assert_serves(&second, &data);
    drop(second);
    assert_eq!(saved_file(), saved, "read back, not saved again");

    let third = start(&["country"]).await.unwrap();
    assert_eq!(by_actor(&third), expected);
    drop(third);
    let again = saved_file();
    assert!(holds(&again, "cast.id") && holds(&again, "country"));
}
