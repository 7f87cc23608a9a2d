//! A consumer serves only what a producer announced, and nothing a blob, the store or a racing
//! producer does stops it from following: racing producers, lost replies, damaged and deleted
//! announcements, panics.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hollow::consumer::{Consumer, ConsumerBuilder, ConsumerListener, RefreshEvent};
use hollow::core::StateId;
use hollow::movies::{self, Movie};
use hollow::producer::{CycleOutcome, Error, Producer, ProducerBuilder};
use hollow::store::{layout, BlobStore};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use support::{Backend, Fault, FaultyStore};

const PREFIX: &str = "catalog";
const N: u64 = 1_000;
const WAIT: Duration = Duration::from_secs(20);

/// Every state swapped in, and every refresh error.
#[derive(Default)]
struct Record {
    swapped: Mutex<Vec<StateId>>,
    errors: Mutex<Vec<String>>,
}

impl ConsumerListener for Record {
    fn on_refresh(&self, event: &RefreshEvent) {
        self.swapped.lock().unwrap().push(event.state);
    }
    fn on_refresh_failed(&self, error: &hollow::consumer::Error) {
        self.errors.lock().unwrap().push(error.to_string());
    }
}

async fn consumer(dataset: BlobStore, record: &Arc<Record>) -> Consumer {
    ConsumerBuilder::from_blob_store(dataset)
        .with_poll_interval(Duration::from_millis(20))
        .with_max_backoff(Duration::from_millis(200))
        .with_listener(record.clone())
        .build()
        .await
        .unwrap()
}

async fn producer(store: Arc<dyn ObjectStore>, snapshot_every: u64) -> Producer {
    ProducerBuilder::new(store, PREFIX, movies::schema().unwrap())
        .with_snapshot_every(snapshot_every)
        .build()
        .await
        .unwrap()
}

async fn cycle(p: &mut Producer, data: &[Movie]) -> Result<CycleOutcome, Error> {
    p.run_cycle(|w| data.iter().try_for_each(|m| w.add(m)))
        .await
}

async fn announced(store: &Arc<dyn ObjectStore>) -> StateId {
    let dataset = BlobStore::new(store.clone(), PREFIX);
    dataset.announcement().await.unwrap().unwrap().state
}

/// Waits until the consumer serves `state`; panics with its health if it does not.
async fn wait_for_state(c: &Consumer, state: StateId, what: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    while c.current().map(|s| s.id()) != Some(state) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: waiting for {state}, serving {:?}: {:?}",
            c.current().map(|s| s.id()),
            c.health()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Two producers race every round with different data, snapshots every 4th cycle, through a
/// store that loses the reply of every fifth write it carries out. After every round a
/// following consumer and a fresh one serve exactly the announced state, whose content is the
/// winner's; no state that nobody announced is ever served; a producer restarted at the end
/// restores the announced state.
async fn racing_producers_on(backend: &Backend) {
    let store = backend.store();
    let flaky = FaultyStore::new(store.clone());
    let flaky_store: Arc<dyn ObjectStore> = flaky.clone();
    let mut data = movies::state1(N);
    let mut a = producer(flaky_store.clone(), 4).await;
    cycle(&mut a, &data).await.unwrap();
    let mut b = producer(flaky_store.clone(), 4).await;
    let record = Arc::new(Record::default());
    let follower = consumer(backend.dataset(store.clone(), PREFIX), &record).await;
    // The content of every announced state.
    let mut contents: BTreeMap<StateId, u64> = BTreeMap::new();
    contents.insert(a.state_id().unwrap(), a.state().unwrap().checksum());
    flaky.lose_put_replies_every(5);
    let (mut published, mut failed) = (0, 0);
    for round in 1..=16u64 {
        movies::apply_cycle(&mut data, N, round);
        let mut other = data.clone();
        other.truncate(other.len() - round as usize);
        let (ra, rb) = tokio::join!(cycle(&mut a, &data), cycle(&mut b, &other));
        for (result, p) in [(&ra, &a), (&rb, &b)] {
            match result {
                Ok(CycleOutcome::Published(_)) => {
                    published += 1;
                    contents.insert(p.state_id().unwrap(), p.state().unwrap().checksum());
                }
                Ok(CycleOutcome::NoChange) => {}
                Err(_) => failed += 1,
            }
        }
        let now = announced(&store).await;
        let expected = *contents.get(&now).unwrap_or_else(|| {
            panic!("round {round}: {now} is announced but no cycle reported publishing it: {ra:?} / {rb:?}")
        });
        let what = format!("{} round {round}", backend.name());
        wait_for_state(&follower, now, &what).await;
        assert_eq!(follower.current().unwrap().checksum(), expected, "{what}");
        let fresh = BlobStore::new(store.clone(), PREFIX);
        let (state, _) = hollow::store::load(&fresh, None, now, usize::MAX)
            .await
            .unwrap();
        assert_eq!((state.id(), state.checksum()), (now, expected), "{what}");
    }
    flaky.lose_put_replies_every(0);
    eprintln!(
        "{}: {published} cycles published, {failed} failed (lost race or lost reply)",
        backend.name()
    );
    assert!(published >= 4 && failed >= 4, "{published} / {failed}");
    let unannounced: Vec<_> = record
        .swapped
        .lock()
        .unwrap()
        .iter()
        .filter(|s| !contents.contains_key(s))
        .copied()
        .collect();
    assert_eq!(
        unannounced,
        vec![],
        "states served that no producer announced"
    );
    let restarted = producer(store.clone(), 4).await;
    assert_eq!(restarted.state_id(), Some(announced(&store).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_producers_and_lost_replies_in_memory() {
    racing_producers_on(&Backend::Memory(Arc::new(
        object_store::memory::InMemory::new(),
    )))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_producers_and_lost_replies_over_s3() {
    racing_producers_on(&Backend::S3(support::S3Server::start())).await;
}

/// Regression: when the announcement reached the store but its reply was lost, every later
/// cycle failed with a conflict naming the producer's own version, until a restart.
#[tokio::test]
async fn a_lost_announcement_reply_does_not_wedge_the_producer() {
    for backend in Backend::all() {
        let flaky = FaultyStore::new(backend.store());
        let store: Arc<dyn ObjectStore> = flaky.clone();
        let mut p = producer(store.clone(), 1).await;
        let mut data = movies::state1(N);
        cycle(&mut p, &data).await.unwrap();
        movies::apply_cycle(&mut data, N, 1);
        flaky.lose_next_announcement_reply();
        let outcome = cycle(&mut p, &data).await;
        assert!(
            matches!(outcome, Ok(CycleOutcome::Published(_))),
            "{}: {outcome:?}",
            backend.name()
        );
        assert_eq!(announced(&store).await, p.state_id().unwrap());
        for k in 2..=3 {
            movies::apply_cycle(&mut data, N, k);
            cycle(&mut p, &data).await.unwrap();
            assert_eq!(announced(&store).await, p.state_id().unwrap());
        }
    }
}

/// A producer that lost the announcement to another goes back to the announced state by
/// itself and publishes on top of it at its next cycle.
#[tokio::test]
async fn a_producer_that_lost_the_announcement_restores_and_continues() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let mut data = movies::state1(N);
    let mut a = producer(store.clone(), 1).await;
    cycle(&mut a, &data).await.unwrap();
    let mut b = producer(store.clone(), 1).await;
    movies::apply_cycle(&mut data, N, 1);
    cycle(&mut b, &data).await.unwrap();
    movies::apply_cycle(&mut data, N, 2);
    let e = cycle(&mut a, &data).await.unwrap_err();
    assert!(matches!(e, Error::AnnouncementConflict { .. }), "{e}");
    let outcome = cycle(&mut a, &data).await.unwrap();
    let CycleOutcome::Published(report) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(report.previous, b.version());
    assert_eq!(announced(&store).await, a.state_id().unwrap());
}

/// A panic anywhere in a refresh (here: the store client) is an error in health and metrics;
/// the follow loop goes on and serves the next version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_refresh_is_an_error_and_the_loop_goes_on() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let mut p = producer(store.clone(), 1).await;
    let mut data = movies::state1(N);
    cycle(&mut p, &data).await.unwrap();
    let flaky = FaultyStore::new(store.clone());
    let record = Arc::new(Record::default());
    let c = consumer(BlobStore::new(flaky.clone(), PREFIX), &record).await;
    flaky.fault_nth(1, Fault::Panic);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        record
            .errors
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("panicked") && e.contains("injected panic")),
        "{:?}",
        record.errors.lock().unwrap()
    );
    assert_eq!(c.version(), Some(1), "still serving");
    movies::apply_cycle(&mut data, N, 1);
    cycle(&mut p, &data).await.unwrap();
    wait_for_state(&c, p.state_id().unwrap(), "after a panic").await;
    assert_eq!(c.health().last_error, None);
}

/// A producer whose cycle panics announces nothing, says so, and its next cycle publishes.
#[tokio::test]
async fn a_panicking_cycle_is_an_error_and_the_next_one_publishes() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let mut p = producer(store.clone(), 1).await;
    let mut data = movies::state1(N);
    cycle(&mut p, &data).await.unwrap();
    let e = p
        .run_cycle(|w| {
            w.add(&data[0])?;
            panic!("a bug in the populate closure")
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Panicked { .. }), "{e}");
    assert_eq!(announced(&store).await, p.state_id().unwrap());
    movies::apply_cycle(&mut data, N, 1);
    let CycleOutcome::Published(report) = cycle(&mut p, &data).await.unwrap() else {
        panic!("published")
    };
    assert_eq!(report.previous, Some(1));
}

/// Regression: a damaged read of the announcement ("277" read as "3") rolled consumers back or
/// onto leftover states. The announcement carries its own checksum: a damaged read is an
/// error in health, the consumer stays, and it moves on once reads are whole again. An intact
/// announcement of an older state does not move it back either, and a deleted one is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_stale_or_deleted_announcements_never_move_a_consumer() {
    for backend in Backend::all() {
        let store = backend.store();
        let mut p = producer(store.clone(), 1).await;
        let mut data = movies::state1(N);
        let mut states = Vec::new();
        for k in 1..=3 {
            if k > 1 {
                movies::apply_cycle(&mut data, N, k - 1);
            }
            cycle(&mut p, &data).await.unwrap();
            states.push(p.state_id().unwrap());
        }
        let flaky = FaultyStore::new(store.clone());
        let record = Arc::new(Record::default());
        let c = consumer(backend.dataset(flaky.clone(), PREFIX), &record).await;
        assert_eq!(c.current().unwrap().id(), states[2]);

        flaky.damage_announcement_reads(true);
        movies::apply_cycle(&mut data, N, 3);
        cycle(&mut p, &data).await.unwrap();
        let what = backend.name();
        let deadline = std::time::Instant::now() + WAIT;
        while !record
            .errors
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("announced.version is rejected"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: {:?}",
                c.health()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(c.current().unwrap().id(), states[2], "{what}: stays");
        flaky.damage_announcement_reads(false);
        wait_for_state(&c, p.state_id().unwrap(), what).await;
        assert!(
            record
                .swapped
                .lock()
                .unwrap()
                .iter()
                .all(|s| s.version >= 3),
            "{what}: moved back"
        );

        // An older state announced again (not a pin): the consumer stays and says why.
        let path = BlobStore::new(store.clone(), PREFIX).path(layout::ANNOUNCEMENT);
        let newest = p.state_id().unwrap();
        store
            .put(&path, PutPayload::from(layout::announcement(states[0])))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(c.current().unwrap().id(), newest, "{what}");
        let error = c.health().last_error.unwrap_or_default();
        assert!(error.contains("older than the state"), "{what}: {error}");

        // The announcement deleted: still serving, and the health names the path.
        store.delete(&path).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(c.current().unwrap().id(), newest, "{what}");
        let h = c.health();
        let error = h.last_error.unwrap_or_default();
        assert!(
            error.contains("no announcement at") && error.contains("announced.version"),
            "{what}: {error}"
        );
        assert!(error.contains(PREFIX), "{what}: {error}");
    }
}

/// A consumer pointed one level off the dataset says so, naming the path it looked at and the
/// prefix it probably meant.
#[tokio::test]
async fn a_wrong_prefix_is_reported_with_what_is_nearby() {
    let backend = Backend::LocalFolder(tempfile::tempdir().unwrap());
    let store = backend.store();
    let mut p = producer(store.clone(), 1).await;
    cycle(&mut p, &movies::state1(N)).await.unwrap();
    for (prefix, meant) in [("catalog/catalog", "\"catalog\""), ("", "\"catalog\"")] {
        let record = Arc::new(Record::default());
        let c = consumer(backend.dataset(store.clone(), prefix), &record).await;
        assert!(c.current().is_none());
        let error = c.health().last_error.unwrap_or_default();
        assert!(error.contains("no announcement at"), "{error}");
        assert!(
            error.contains(&format!("did you mean the prefix {meant}")),
            "{error}"
        );
    }
    // Nothing at all under the prefix.
    let record = Arc::new(Record::default());
    let c = consumer(backend.dataset(store.clone(), "elsewhere"), &record).await;
    let error = c.health().last_error.unwrap_or_default();
    assert!(
        error.contains("nothing is stored under this prefix"),
        "{error}"
    );
}

/// A producer killed between publishing a version and announcing it leaves that version's
/// blobs behind; the one restarted in its place spends a new version. Pinning the abandoned
/// version is refused, on the line of the announced states or off it, and every announced
/// version is pinned.
#[tokio::test]
async fn a_version_published_but_never_announced_is_never_pinned() {
    for backend in Backend::all() {
        let faulty = FaultyStore::new(backend.store());
        let store: Arc<dyn ObjectStore> = faulty.clone();
        let mut data = movies::state1(N);
        let mut p = producer(store.clone(), 1).await;
        for k in 1..=2 {
            cycle(&mut p, &data).await.unwrap();
            movies::apply_cycle(&mut data, N, k);
        }
        // Killed with every blob of version 3 published, before the announcement.
        faulty.halt_at(support::Halt::Before("announced.version"));
        let killed = tokio::time::timeout(Duration::from_millis(500), cycle(&mut p, &data)).await;
        assert!(killed.is_err(), "{}: {killed:?}", backend.name());
        drop(p);
        let dataset = BlobStore::new(store.clone(), PREFIX);
        let blobs = dataset.list().await.unwrap();
        assert!(blobs.iter().any(|b| b.newest_version() == 3), "{blobs:?}");

        let mut restarted = producer(backend.store(), 1).await;
        movies::apply_cycle(&mut data, N, 3);
        cycle(&mut restarted, &data).await.unwrap();
        assert_eq!(restarted.version(), Some(4), "{}", backend.name());

        let record = Arc::new(Record::default());
        let c = consumer(BlobStore::new(backend.store(), PREFIX), &record).await;
        for pinned_from in [4, 2] {
            c.pin(pinned_from).await.unwrap();
            let e = c.pin(3).await.unwrap_err();
            assert!(e.to_string().contains("never announced"), "{e}");
            assert_eq!(c.version(), Some(pinned_from), "still serving");
        }
        for v in [1, 2, 4] {
            c.pin(v).await.unwrap();
            assert_eq!(c.version(), Some(v));
        }
        assert!(c.pin(5).await.is_err());
        c.unpin().await.unwrap();
        assert_eq!(c.current().unwrap().id(), restarted.state_id().unwrap());
    }
}
