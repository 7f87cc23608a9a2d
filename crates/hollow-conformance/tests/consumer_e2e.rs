//! Producer and consumers end to end: consumers converge on every announced version, readers
//! never see a mix of versions, faults never stop a consumer from serving, pinning works.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hollow::consumer::{Consumer, ConsumerBuilder};
use hollow::core::StateId;
use hollow::movies::{self, Movie, SplitMix64};
use hollow::producer::{Producer, ProducerBuilder};
use hollow::store::layout::{self, BlobName};
use hollow::store::BlobStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use support::{assert_serves, Backend, FaultyStore};

const PREFIX: &str = "catalog";
const WAIT: Duration = Duration::from_secs(20);

async fn consumer(backend: &Backend, store: Arc<dyn ObjectStore>) -> Consumer {
    ConsumerBuilder::from_blob_store(backend.dataset(store, PREFIX))
        .with_poll_interval(Duration::from_millis(20))
        .with_max_backoff(Duration::from_millis(200))
        .build()
        .await
        .unwrap()
}

async fn movie_producer(store: Arc<dyn ObjectStore>) -> Producer {
    ProducerBuilder::new(store, PREFIX, movies::schema().unwrap())
        .build()
        .await
        .unwrap()
}

async fn publish(p: &mut Producer, data: &[Movie]) -> u64 {
    p.run_cycle(|w| data.iter().try_for_each(|m| w.add(m)))
        .await
        .unwrap();
    p.version().unwrap()
}

/// Random changes: some movies change, some go, some arrive.
fn mutate(data: &mut Vec<Movie>, rng: &mut SplitMix64, next_id: &mut i64) {
    for _ in 0..rng.pick(20) {
        let i = rng.pick(data.len() as u64) as usize;
        data[i].release_year = 1920 + rng.pick(105) as i32;
        data[i].title = format!("Title {}", rng.pick(1000));
    }
    for _ in 0..rng.pick(5) {
        let i = rng.pick(data.len() as u64) as usize;
        data.remove(i);
    }
    for _ in 0..rng.pick(5) {
        let mut m = movies::draw(rng, *next_id as u64);
        m.id = *next_id;
        *next_id += 1;
        data.push(m);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_consumers_converge_on_every_version_over_fifty_cycles() {
    for backend in Backend::all() {
        let store = backend.store();
        let mut producer = movie_producer(store.clone()).await;
        let mut data = movies::state1(1_000);
        let mut next_id = 10_000;
        let mut rng = SplitMix64::new(99);
        publish(&mut producer, &data).await;
        let consumers = [
            consumer(&backend, backend.store()).await,
            consumer(&backend, backend.store()).await,
            consumer(&backend, backend.store()).await,
        ];
        for _ in 0..50 {
            mutate(&mut data, &mut rng, &mut next_id);
            let v = publish(&mut producer, &data).await;
            let expected = (v, producer.state().unwrap().checksum());
            for c in &consumers {
                assert_serves(c, expected, WAIT, backend.name()).await;
            }
        }
        for c in &consumers {
            let h = c.health();
            assert_eq!(
                (h.current, h.announced, h.last_error.as_deref()),
                (producer.version(), producer.version(), None)
            );
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Tick {
    id: i64,
    version: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_during_swaps_never_see_a_mix_of_versions() {
    let backend = Backend::LocalFolder(tempfile::tempdir().unwrap());
    let store = backend.store();
    let schema = hollow::core::SchemaBuilder::new()
        .add::<Tick>()
        .build()
        .unwrap();
    let mut producer = ProducerBuilder::new(store.clone(), PREFIX, schema)
        .build()
        .await
        .unwrap();
    // Every record of version v says v.
    let ticks = |v: i64| (0..2_000).map(move |id| Tick { id, version: v });
    producer
        .run_cycle(|w| ticks(1).try_for_each(|t| w.add(&t)))
        .await
        .unwrap();
    let consumer = Arc::new(consumer(&backend, store.clone()).await);
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (consumer, stop, seen) = (consumer.clone(), stop.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut versions = std::collections::BTreeSet::new();
                while !stop.load(Ordering::Relaxed) {
                    let state = consumer.current().unwrap();
                    let reader = state.object("Tick").unwrap();
                    let field = reader.int("version").unwrap();
                    for o in reader.ordinals() {
                        assert_eq!(field.get(o), Some(state.version() as i64), "a torn read");
                    }
                    versions.insert(state.version());
                }
                seen.fetch_max(versions.len() as u64, Ordering::Relaxed);
            })
        })
        .collect();
    for v in 2..=30i64 {
        producer
            .run_cycle(|w| ticks(v).try_for_each(|t| w.add(&t)))
            .await
            .unwrap();
        assert!(consumer.wait_for_version(v as u64, WAIT).await);
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(
        seen.load(Ordering::Relaxed) > 1,
        "readers saw several versions swap under them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_never_stop_a_consumer_from_serving_and_it_recovers() {
    for backend in Backend::all() {
        let store = backend.store();
        let blobs = BlobStore::new(store.clone(), PREFIX);
        let mut producer = movie_producer(store.clone()).await;
        let mut data = movies::state1(1_000);
        publish(&mut producer, &data).await;
        let faulty = FaultyStore::new(backend.store());
        let c = consumer(&backend, faulty.clone()).await;
        assert_eq!(c.version(), Some(1));
        let path = |b: BlobName| blobs.path(&b.path());
        let s1 = producer.state_id().unwrap();

        // A deleted delta: the consumer loads the new snapshot instead.
        movies::apply_cycle(&mut data, 1_000, 1);
        let v2 = publish(&mut producer, &data).await;
        let s2 = producer.state_id().unwrap();
        store
            .delete(&path(BlobName::Delta { from: s1, to: s2 }))
            .await
            .unwrap();
        assert!(
            c.wait_for_version(v2, WAIT).await,
            "{}: {:?}",
            backend.name(),
            c.health()
        );

        // A corrupted delta: the checksum catches it, the snapshot is used.
        movies::apply_cycle(&mut data, 1_000, 2);
        let v3 = publish(&mut producer, &data).await;
        let s3 = producer.state_id().unwrap();
        let delta = path(BlobName::Delta { from: s2, to: s3 });
        let mut bytes = store
            .get(&delta)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        store.put(&delta, PutPayload::from(bytes)).await.unwrap();
        let expected = (v3, producer.state().unwrap().checksum());
        assert_serves(&c, expected, WAIT, backend.name()).await;

        // Delta and snapshot both unreadable: it keeps serving v3 and says why. (The consumer's
        // view of the store is down while the version is published and broken, so it cannot
        // fetch the good blobs first.)
        faulty.set_down(true);
        movies::apply_cycle(&mut data, 1_000, 3);
        let v4 = publish(&mut producer, &data).await;
        let s4 = producer.state_id().unwrap();
        store
            .put(
                &path(BlobName::Delta { from: s3, to: s4 }),
                PutPayload::from(Bytes::from_static(b"junk")),
            )
            .await
            .unwrap();
        store
            .put(
                &path(BlobName::Snapshot(s4)),
                PutPayload::from(Bytes::from_static(b"junk")),
            )
            .await
            .unwrap();
        faulty.set_down(false);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let h = c.health();
        assert_eq!(h.current, Some(v3));
        assert_eq!(h.announced, Some(v4));
        assert!(
            h.last_error.is_some() && h.consecutive_failures > 0,
            "{h:?}"
        );
        assert!(h.versions_behind() >= 1);
        assert_eq!(c.current().unwrap().version(), v3, "still serving");

        // The next good version heals it.
        movies::apply_cycle(&mut data, 1_000, 4);
        let v5 = publish(&mut producer, &data).await;
        assert!(
            c.wait_for_version(v5, WAIT).await,
            "{}: {:?}",
            backend.name(),
            c.health()
        );
        assert_eq!(c.health().last_error, None);

        // The store is down for a while: serving goes on; the new version arrives after.
        faulty.set_down(true);
        movies::apply_cycle(&mut data, 1_000, 5);
        let v6 = publish(&mut producer, &data).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(c.version(), Some(v5));
        assert!(c.health().last_error.is_some());
        faulty.set_down(false);
        assert!(
            c.wait_for_version(v6, WAIT).await,
            "{}: {:?}",
            backend.name(),
            c.health()
        );

        // An announcement that is not one, then one naming a state no blob leads to.
        let announcement = blobs.path(layout::ANNOUNCEMENT);
        let s6 = producer.state_id().unwrap();
        let unpublished = layout::announcement(StateId::new(999_999, 0xabc));
        for bogus in [&b"not a version"[..], &unpublished] {
            store
                .put(
                    &announcement,
                    PutPayload::from(Bytes::copy_from_slice(bogus)),
                )
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(c.version(), Some(v6), "still serving");
            assert!(c.health().last_error.is_some(), "{:?}", c.health());
        }
        store
            .put(&announcement, PutPayload::from(layout::announcement(s6)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(c.health().last_error, None, "{}", backend.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_goes_back_and_stays_until_unpinned() {
    for backend in Backend::all() {
        let store = backend.store();
        let mut producer = movie_producer(store.clone()).await;
        let mut data = movies::state1(1_000);
        let mut checksums = vec![0];
        for k in 1..=5 {
            if k > 1 {
                movies::apply_cycle(&mut data, 1_000, k - 1);
            }
            publish(&mut producer, &data).await;
            checksums.push(producer.state().unwrap().checksum());
        }
        let c = consumer(&backend, backend.store()).await;
        assert_eq!(c.version(), Some(5));
        let event = c.pin(3).await.unwrap().unwrap();
        assert_eq!(event.plan, "2 reverse deltas");
        assert_eq!(c.current().unwrap().checksum(), checksums[3]);
        movies::apply_cycle(&mut data, 1_000, 5);
        let v6 = publish(&mut producer, &data).await;
        // The follow loop goes on while pinned: it sees version 6 announced, and stays at 3.
        let deadline = std::time::Instant::now() + WAIT;
        while c.health().announced != Some(v6) {
            assert!(std::time::Instant::now() < deadline, "{:?}", c.health());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(c.version(), Some(3), "pinned");
        assert_eq!(c.health().pinned, Some(3));
        c.unpin().await.unwrap();
        assert_eq!(c.version(), Some(6));
        assert_eq!(
            c.current().unwrap().checksum(),
            producer.state().unwrap().checksum()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_cache_serves_restarts_and_heals_damaged_copies() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let cache = tempfile::tempdir().unwrap();
    let mut producer = movie_producer(store.clone()).await;
    let mut data = movies::state1(1_000);
    publish(&mut producer, &data).await;
    movies::apply_cycle(&mut data, 1_000, 1);
    publish(&mut producer, &data).await;
    let expected = producer.state().unwrap().checksum();
    let snapshot = BlobName::Snapshot(producer.state_id().unwrap()).path();
    let faulty = FaultyStore::new(store.clone());
    let cached = || {
        ConsumerBuilder::new(faulty.clone(), PREFIX)
            .with_blob_cache(cache.path())
            .with_poll_interval(Duration::from_secs(60))
    };
    let first = cached().build().await.unwrap();
    assert_eq!(first.current().unwrap().checksum(), expected);
    let fetched = faulty.operations();
    drop(first);
    assert!(cache.path().join(&snapshot).exists(), "{snapshot} cached");
    // A restart reads the announcement and the listing, but no blob.
    let before = faulty.operations();
    let second = cached().build().await.unwrap();
    assert_eq!(second.current().unwrap().checksum(), expected);
    let restart = faulty.operations() - before;
    assert!(
        restart < fetched,
        "{restart} operations on restart, {fetched} the first time"
    );
    drop(second);
    // A damaged copy is noticed, dropped and fetched again.
    std::fs::write(cache.path().join(&snapshot), b"damaged").unwrap();
    let third = cached().build().await.unwrap();
    assert_eq!(third.current().unwrap().checksum(), expected);
    assert!(
        faulty.operations() - before > restart + 2,
        "the snapshot was fetched again"
    );
}
