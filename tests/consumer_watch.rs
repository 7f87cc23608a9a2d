//! A consumer of a local folder started before its producer made the dataset's folder in it
//! (`movies/` under the folder) still follows by file-system events once that folder appears,
//! not only at its poll interval.

use std::time::{Duration, Instant};

use hollow::consumer::ConsumerBuilder;
use hollow::movies;
use hollow::producer::ProducerBuilder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_started_before_the_folder_exists_follows_by_events() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path();
    let poll = Duration::from_secs(2);
    let consumer = ConsumerBuilder::local(folder, "movies")
        .unwrap()
        .with_poll_interval(poll)
        .build()
        .await
        .unwrap();
    assert!(consumer.current().is_none());

    assert!(!folder.join("movies").exists());
    let store =
        std::sync::Arc::new(object_store::local::LocalFileSystem::new_with_prefix(folder).unwrap());
    let mut producer = ProducerBuilder::new(store, "movies", movies::schema().unwrap())
        .build()
        .await
        .unwrap();
    let mut data = movies::state1(100);
    producer
        .run_cycle(|w| data.iter().try_for_each(|m| w.add(m)))
        .await
        .unwrap();
    // The first version arrives by polling, which also starts the watch.
    assert!(consumer.wait_for_version(1, 3 * poll).await);
    for v in 2..=4 {
        movies::apply_cycle(&mut data, 100, v);
        producer
            .run_cycle(|w| data.iter().try_for_each(|m| w.add(m)))
            .await
            .unwrap();
        let t = Instant::now();
        assert!(consumer.wait_for_version(v, poll).await, "version {v}");
        assert!(
            t.elapsed() < poll / 2,
            "version {v} took {:?}: polled, not woken",
            t.elapsed()
        );
    }
}
