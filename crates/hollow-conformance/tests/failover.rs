//! Producer failover on every store kind (in-memory, a local folder, a real S3 wire-protocol
//! server): leader election, takeover after a crash, a clean hand-over, fencing of a leader
//! that was partitioned or paused, and three producers racing through a hundred takeovers.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hollow::consumer::ConsumerBuilder;
use hollow::core::StateId;
use hollow::producer::{CycleOutcome, Error, Producer, ProducerBuilder};
use hollow::store::BlobStore;
use object_store::ObjectStore;
use support::{rows_schema as schema, Backend, FaultyStore, Row, Served};

const PREFIX: &str = "rows";

/// A producer of `backend`'s dataset through `store` (the backend's, or a wrapper of it),
/// electing a leader as `id`.
async fn elected(
    backend: &Backend,
    store: Arc<dyn ObjectStore>,
    id: &str,
    lease: Duration,
) -> Producer {
    ProducerBuilder::from_blob_store(backend.dataset(store, PREFIX), schema())
        .with_leader_election(id, lease)
        .without_retention()
        .build()
        .await
        .unwrap()
}

/// A cycle whose 50 rows all carry `value`.
async fn cycle(p: &mut Producer, value: u64) -> Result<CycleOutcome, Error> {
    p.run_cycle(|w| (0..50).try_for_each(|id| w.add(&Row { id, value })))
        .await
}

fn published(outcome: Result<CycleOutcome, Error>) -> u64 {
    match outcome {
        Ok(CycleOutcome::Published(r)) => r.version,
        other => panic!("not published: {other:?}"),
    }
}

/// Waits up to `within` for `p` to lead; how long that took.
async fn lead(p: &mut Producer, within: Duration) -> Duration {
    let started = Instant::now();
    tokio::time::timeout(within, p.wait_for_leadership())
        .await
        .unwrap_or_else(|_| panic!("no leadership within {within:?}: {:?}", p.leadership()))
        .unwrap();
    started.elapsed()
}

/// Waits until `p` knows `holder` leads.
async fn sees_leader(p: &Producer, holder: &str) {
    for _ in 0..200 {
        if p.leadership().unwrap().holder.as_deref() == Some(holder) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{:?} never saw {holder} lead", p.leadership());
}

async fn takeover_on(backend: Backend) {
    let what = backend.name();
    // Leases long enough that a leader on a loaded two-core machine (this file's tests run
    // side by side, with an S3 server) keeps renewing in time: these tests are about fencing,
    // not renewal under load (the racing tests below are).
    let lease = Duration::from_millis(600);
    let mut a = elected(&backend, backend.store(), "a", lease).await;
    lead(&mut a, Duration::from_secs(2)).await;
    assert_eq!((a.epoch(), a.is_leader()), (1, true), "{what}");

    let mut b = elected(&backend, backend.store(), "b", lease).await;
    sees_leader(&b, "a").await;
    assert!(!b.is_leader());
    match cycle(&mut b, 1).await {
        Err(Error::NotLeader {
            epoch: 0,
            current_epoch: 1,
            holder,
        }) => assert_eq!(holder.as_deref(), Some("a"), "{what}"),
        other => panic!("{what}: a standby ran a cycle: {other:?}"),
    }
    assert_eq!(published(cycle(&mut a, 1).await), 1, "{what}");
    assert_eq!(published(cycle(&mut a, 2).await), 2, "{what}");
    let consumer = ConsumerBuilder::from_blob_store(backend.dataset(backend.store(), PREFIX))
        .with_poll_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();

    // The leader crashes: its lease is not released, so it runs out.
    drop(a);
    let took = lead(&mut b, lease * 2 + Duration::from_secs(1)).await;
    assert!(
        took >= lease / 2,
        "{what}: took over after {took:?}, before the lease ran out"
    );
    assert_eq!(b.epoch(), 2, "{what}");
    assert_eq!(b.version(), Some(2), "{what}: restored the announced state");
    match cycle(&mut b, 3).await {
        Ok(CycleOutcome::Published(r)) => {
            assert_eq!(
                (r.version, r.previous),
                (3, Some(2)),
                "{what}: the chain goes on"
            )
        }
        other => panic!("{what}: {other:?}"),
    }
    support::assert_serves(
        &consumer,
        (3, b.state().unwrap().checksum()),
        Duration::from_secs(10),
        what,
    )
    .await;
    assert_eq!(consumer.health().announced_epoch, Some(2), "{what}");

    // A clean shutdown hands over at once, well within the lease.
    let mut c = elected(&backend, backend.store(), "c", lease).await;
    sees_leader(&c, "b").await;
    b.step_down().await.unwrap();
    assert!(!b.is_leader());
    let took = lead(&mut c, lease).await;
    assert!(took < lease, "{what}: a hand-over took {took:?}");
    assert_eq!((c.epoch(), c.version()), (3, Some(3)), "{what}");
    assert_eq!(published(cycle(&mut c, 4).await), 4, "{what}");
    // A producer that stepped down never leads again.
    assert!(matches!(
        cycle(&mut b, 5).await,
        Err(Error::NotLeader { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_from_a_crashed_leader_and_a_clean_one_hands_over() {
    for backend in Backend::all() {
        takeover_on(backend).await;
    }
}

/// Leader `a` (through a store that fails on command) that has published version 1, and
/// standby `b` that knows it.
async fn leader_and_standby(
    backend: &Backend,
    lease: Duration,
) -> (Arc<FaultyStore>, Producer, Producer) {
    let faulty = FaultyStore::new(backend.store());
    let mut a = elected(backend, faulty.clone(), "a", lease).await;
    lead(&mut a, Duration::from_secs(2)).await;
    assert_eq!(published(cycle(&mut a, 1).await), 1, "{}", backend.name());
    let b = elected(backend, backend.store(), "b", lease).await;
    sees_leader(&b, "a").await;
    (faulty, a, b)
}

async fn partitioned_on(backend: Backend) {
    let what = backend.name();
    let lease = Duration::from_millis(600);
    let (cut_off, mut a, mut b) = leader_and_standby(&backend, lease).await;

    // The leader loses the store: it stops counting itself leader when its lease runs out,
    // and the standby takes over.
    cut_off.set_down(true);
    lead(&mut b, lease * 2 + Duration::from_secs(1)).await;
    assert_eq!(published(cycle(&mut b, 2).await), 2, "{what}");
    assert!(!a.is_leader(), "{what}");
    let why = a.leadership().unwrap().last_error.unwrap_or_default();
    assert!(why.contains("lease"), "{what}: {why}");

    // Healed, it cannot announce, and follows the new leader as a standby.
    cut_off.set_down(false);
    match cycle(&mut a, 3).await {
        Err(Error::NotLeader {
            epoch: 1,
            current_epoch: 2,
            ..
        }) => {}
        other => panic!("{what}: the old leader ran a cycle: {other:?}"),
    }
    sees_leader(&a, "b").await;
    let announced = b.store().announcement().await.unwrap().unwrap();
    assert_eq!((announced.state.version, announced.epoch), (2, 2), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_becomes_a_standby_and_cannot_announce() {
    for backend in Backend::all() {
        partitioned_on(backend).await;
    }
}

async fn paused_on(backend: Backend) {
    let what = backend.name();
    let lease = Duration::from_millis(600);
    let (paused, mut a, mut b) = leader_and_standby(&backend, lease).await;

    // The leader stops just as it announces version 2 (checked it leads, published the blobs):
    // a pause longer than its lease, and it does not know.
    let mut frozen = paused.freeze_at_next_announcement();
    let stale = tokio::spawn(async move {
        let outcome = cycle(&mut a, 2).await;
        (a, outcome)
    });
    frozen.wait_for(|f| *f).await.unwrap();
    lead(&mut b, lease * 2 + Duration::from_secs(1)).await;
    assert_eq!(
        b.version(),
        Some(1),
        "{what}: version 2 was never announced"
    );
    assert_eq!(published(cycle(&mut b, 3).await), 3, "{what}");

    // It wakes up and announces: the fence stops it.
    paused.thaw();
    let (a, outcome) = stale.await.unwrap();
    match outcome {
        Err(Error::NotLeader {
            epoch: 1,
            current_epoch: 2,
            ..
        }) => {}
        other => panic!("{what}: a paused leader announced after a takeover: {other:?}"),
    }
    assert!(!a.is_leader());
    let announced = b.store().announcement().await.unwrap().unwrap();
    assert_eq!(announced.state, b.state_id().unwrap(), "{what}");
    assert_eq!(announced.epoch, 2, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_is_fenced_when_it_announces_after_a_takeover() {
    for backend in Backend::all() {
        paused_on(backend).await;
    }
}

/// What the racing producers published: (version, state, epoch, producer).
type Log = Arc<Mutex<Vec<(u64, StateId, u64, usize)>>>;

/// A producer that leads when it can and publishes a cycle every few milliseconds.
async fn keep_producing(
    mut p: Producer,
    me: usize,
    log: Log,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut value = me as u64 * 1_000_000;
    loop {
        tokio::select! {
            _ = async { drop(stop.wait_for(|s| *s).await) } => return,
            led = p.wait_for_leadership() => match led {
                Err(e) => {
                    if std::env::var("HOLLOW_DEBUG_RACE").is_ok() {
                        eprintln!("p{me}: taking office: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                Ok(epoch) => if std::env::var("HOLLOW_DEBUG_RACE").is_ok() {
                    eprintln!("p{me}: leads in {epoch}");
                }
            }
        }
        // Stops between cycles, so that every version announced is in the log.
        while !*stop.borrow() {
            value += 1;
            match cycle(&mut p, value).await {
                Ok(CycleOutcome::Published(r)) => {
                    let state = p.state_id().unwrap();
                    log.lock().unwrap().push((r.version, state, p.epoch(), me));
                }
                Ok(CycleOutcome::NoChange) => {}
                Err(e @ Error::NotLeader { .. }) => {
                    if std::env::var("HOLLOW_DEBUG_RACE").is_ok() {
                        eprintln!("p{me}: {e}; {:?}", p.leadership());
                    }
                    break;
                }
                // A store operation failed while it was cut off: it tries again.
                Err(e) => {
                    if std::env::var("HOLLOW_DEBUG_RACE").is_ok() {
                        eprintln!("p{me}: {e}");
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
}

async fn race_on(backend: Backend, lease: Duration, rounds: usize) {
    let what = backend.name();
    let stores: Vec<_> = (0..3).map(|_| FaultyStore::new(backend.store())).collect();
    let log: Log = Arc::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for (me, store) in stores.iter().enumerate() {
        let p = elected(&backend, store.clone(), &format!("p{me}"), lease).await;
        tasks.push(tokio::spawn(keep_producing(
            p,
            me,
            log.clone(),
            stopped.clone(),
        )));
    }
    let dataset = backend.dataset(backend.store(), PREFIX);
    let served = Arc::new(Served::default());
    let consumer = ConsumerBuilder::from_blob_store(dataset.clone())
        .with_poll_interval(Duration::from_millis(50))
        .with_listener(served.clone())
        .build()
        .await
        .unwrap();

    // Each round waits for a leader that has published, then cuts it off (its store fails, or
    // it freezes as a paused process would) until another has taken over, and heals it. A
    // leader that loses its lease by itself (a slow store, a busy machine) just starts the
    // round again with the next one.
    let poll = Duration::from_millis(20);
    let mut epoch = 0;
    let mut cuts = 0;
    let deadline = Instant::now() + lease * 20 * rounds as u32 + Duration::from_secs(30);
    while cuts < rounds {
        assert!(
            Instant::now() < deadline,
            "{what}: {cuts} cuts before the deadline"
        );
        let Some(l) = dataset.lease().await.unwrap().filter(|l| !l.lease.released) else {
            tokio::time::sleep(poll).await;
            continue;
        };
        let led = log.lock().unwrap().iter().any(|e| e.2 == l.lease.epoch);
        if l.lease.epoch <= epoch || !led {
            tokio::time::sleep(poll).await;
            continue;
        }
        epoch = l.lease.epoch;
        let victim = &stores[l.lease.holder[1..].parse::<usize>().unwrap()];
        let freeze = cuts % 2 == 1;
        if std::env::var("HOLLOW_DEBUG_RACE").is_ok() {
            eprintln!(
                "cut {cuts}: {} of epoch {epoch} (freeze: {freeze})",
                l.lease.holder
            );
        }
        if freeze {
            victim.freeze_at_next_announcement();
        } else {
            victim.set_down(true);
        }
        // The cut lasts until another producer took over, or four leases: a pause can catch a
        // producer inside a local folder's compare-and-swap lock, which then holds the others
        // up until the pause ends (see hollow_producer::leadership).
        let cut_at = Instant::now();
        while dataset.lease().await.unwrap().unwrap().lease.epoch == epoch {
            if cut_at.elapsed() > lease * 4 {
                victim.set_down(false);
                victim.thaw();
            }
            assert!(
                cut_at.elapsed() < lease * 20,
                "{what}: cut {cuts}: no takeover"
            );
            tokio::time::sleep(poll).await;
        }
        victim.set_down(false);
        victim.thaw();
        cuts += 1;
    }
    tokio::time::sleep(lease).await;
    stop.send_replace(true);
    for s in &stores {
        s.thaw();
        s.set_down(false);
    }
    for t in tasks {
        t.await.unwrap();
    }

    let mut log = log.lock().unwrap().clone();
    log.sort();
    // No version announced twice; at most one producer published in any epoch; epochs only
    // grow with versions.
    let versions: BTreeSet<u64> = log.iter().map(|e| e.0).collect();
    assert_eq!(
        versions.len(),
        log.len(),
        "{what}: a version published twice: {log:?}"
    );
    let mut by_epoch: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
    for e in &log {
        by_epoch.entry(e.2).or_default().insert(e.3);
    }
    for (epoch, producers) in &by_epoch {
        assert_eq!(
            producers.len(),
            1,
            "{what}: epoch {epoch} published by {producers:?}"
        );
    }
    assert!(
        log.windows(2).all(|w| w[0].2 <= w[1].2),
        "{what}: epochs went back: {log:?}"
    );
    assert!(
        by_epoch.len() >= rounds,
        "{what}: only {} epochs published",
        by_epoch.len()
    );
    // One unbroken chain: each published state has a delta from the one before.
    let states: Vec<StateId> = log.iter().map(|e| e.1).collect();
    support::assert_unbroken_chain(&dataset, &states, what).await;
    // The consumer only ever moved forward through published states, and ends at the last.
    let last = *log.last().unwrap();
    let published: BTreeSet<StateId> = log.iter().map(|e| e.1).collect();
    assert!(
        consumer
            .wait_for_version(last.0, Duration::from_secs(10))
            .await,
        "{what}"
    );
    let served = served.0.lock().unwrap().clone();
    let unpublished: Vec<_> = served.iter().filter(|s| !published.contains(s)).collect();
    assert!(
        unpublished.is_empty(),
        "{what}: served unpublished states {unpublished:?}; published: {log:?}"
    );
    assert!(
        served.windows(2).all(|w| w[0].version < w[1].version),
        "{what}"
    );
    let announced = dataset.announcement().await.unwrap().unwrap();
    assert_eq!(announced.state, last.1, "{what}");
    eprintln!(
        "{what}: {rounds} rounds, {} versions, {} epochs",
        log.len(),
        by_epoch.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_producers_race_through_a_hundred_takeovers_in_memory() {
    race_on(
        Backend::Memory(Arc::new(object_store::memory::InMemory::new())),
        Duration::from_millis(150),
        100,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_producers_race_through_a_hundred_takeovers_in_a_local_folder() {
    race_on(
        Backend::LocalFolder(tempfile::tempdir().unwrap()),
        Duration::from_millis(150),
        100,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_producers_race_through_a_hundred_takeovers_over_s3() {
    race_on(
        Backend::S3(support::S3Server::start()),
        Duration::from_millis(250),
        100,
    )
    .await;
}

/// A store without conditional updates that is not a local folder cannot hold a lease safely:
/// refused when the producer is built, saying why.
#[tokio::test]
async fn a_store_without_compare_and_swap_is_refused_for_leader_election() {
    let dir = tempfile::tempdir().unwrap();
    let folder = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let dataset = BlobStore::new(Arc::new(folder), PREFIX);
    let refused = ProducerBuilder::from_blob_store(dataset, schema())
        .with_leader_election("a", Duration::from_secs(1))
        .build()
        .await
        .err()
        .expect("refused");
    let message = refused.to_string();
    assert!(message.contains("no conditional updates"), "{message}");
    assert!(matches!(refused, Error::InvalidSetting { .. }), "{message}");

    let bad_id = ProducerBuilder::new(
        Arc::new(object_store::memory::InMemory::new()),
        PREFIX,
        schema(),
    )
    .with_leader_election("a\nb", Duration::from_secs(1))
    .build()
    .await
    .err()
    .expect("refused");
    assert!(bad_id.to_string().contains("control character"), "{bad_id}");
}

/// Everything above against SeaweedFS, a real S3 server (the CI S3 job runs it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SeaweedFS: .ci/s3-job installs it and runs this"]
async fn failover_on_seaweedfs() {
    let dir = tempfile::tempdir().unwrap();
    let weed = support::Weed::start(dir.path());
    let store = support::weed_client(support::WEED_ACCESS_KEY, support::WEED_SECRET_KEY);
    weed.wait_ready(&store).await;
    // Each scenario under a prefix of its own.
    let backend = |scenario: &str| {
        let prefixed =
            object_store::prefix::PrefixStore::new(store.clone(), format!("failover-{scenario}"));
        Backend::Remote(Arc::new(prefixed), "SeaweedFS")
    };
    takeover_on(backend("takeover")).await;
    partitioned_on(backend("partitioned")).await;
    paused_on(backend("paused")).await;
    race_on(backend("race"), Duration::from_millis(300), 100).await;
}
