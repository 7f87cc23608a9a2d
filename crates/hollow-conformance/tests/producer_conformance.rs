//! The producer against every store kind: publishing, announcing, failing safely at any store
//! operation, restoring after a restart, racing another producer, and retention.

mod support;

use std::sync::Arc;

use hollow::movies::{self, Movie};
use hollow::producer::{
    CycleOutcome, DuplicatePrimaryKeys, Error, Producer, ProducerBuilder, RecordCountChange,
    ValidationContext, Validator,
};
use hollow::store::layout::BlobName;
use hollow::store::BlobStore;
use object_store::ObjectStore;
use support::{Backend, FaultyStore};

const N: u64 = 2_000;
const PREFIX: &str = "datasets/movies";

async fn producer(store: Arc<dyn ObjectStore>) -> Producer {
    ProducerBuilder::new(store, PREFIX, movies::schema().unwrap())
        .with_validator(DuplicatePrimaryKeys)
        .build()
        .await
        .unwrap()
}

async fn cycle(p: &mut Producer, data: &[Movie]) -> Result<CycleOutcome, Error> {
    p.run_cycle(|w| {
        for m in data {
            w.add(m)?;
        }
        Ok(())
    })
    .await
}

/// What a consumer starting from nothing sees: (announced version, state checksum).
async fn read_back(store: &Arc<dyn ObjectStore>) -> Option<(u64, u64)> {
    let blobs = BlobStore::new(store.clone(), PREFIX);
    let announced = blobs.announcement().await.unwrap()?;
    let (state, _) = hollow::store::load(&blobs, None, announced.state, usize::MAX)
        .await
        .unwrap();
    Some((state.version(), state.checksum()))
}

/// The blobs of the dataset, named by version only (`delta/1-2`): tags are random.
async fn blobs_by_version(store: &Arc<dyn ObjectStore>) -> Vec<String> {
    let blobs = BlobStore::new(store.clone(), PREFIX).list().await.unwrap();
    blobs
        .iter()
        .map(|b| match *b {
            BlobName::Snapshot(s) => format!("snapshot/{}", s.version),
            BlobName::Delta { from, to } => format!("delta/{}-{}", from.version, to.version),
            BlobName::ReverseDelta { from, to } => {
                format!("reversedelta/{}-{}", from.version, to.version)
            }
        })
        .collect()
}

fn has(blobs: &[String], name: &str) -> bool {
    blobs.iter().any(|b| b == name)
}

fn published(outcome: &CycleOutcome) -> u64 {
    match outcome {
        CycleOutcome::Published(r) => r.version,
        CycleOutcome::NoChange => panic!("expected a published version"),
    }
}

#[tokio::test]
async fn cycles_publish_blobs_and_announce_what_a_fresh_reader_gets() {
    for backend in Backend::all() {
        let store = backend.store();
        let mut p = producer(store.clone()).await;
        let mut data = movies::state1(N);
        for k in 1..=4u64 {
            if k > 1 {
                movies::apply_cycle(&mut data, N, k - 1);
            }
            let version = published(&cycle(&mut p, &data).await.unwrap());
            assert_eq!(version, k, "{}", backend.name());
            let checksum = p.state().unwrap().checksum();
            assert_eq!(
                read_back(&store).await,
                Some((k, checksum)),
                "{}",
                backend.name()
            );
        }
        let blobs = blobs_by_version(&store).await;
        for k in 1..=4 {
            assert!(has(&blobs, &format!("snapshot/{k}")), "{blobs:?}");
        }
        for k in 1..4 {
            assert!(has(&blobs, &format!("delta/{k}-{}", k + 1)), "{blobs:?}");
            assert!(has(&blobs, &format!("reversedelta/{}-{k}", k + 1)));
        }
        // The same dataset again: nothing is published.
        assert!(matches!(
            cycle(&mut p, &data).await.unwrap(),
            CycleOutcome::NoChange
        ));
        assert_eq!(read_back(&store).await.unwrap().0, 4);
    }
}

struct RejectAbove(u64);

impl Validator for RejectAbove {
    fn name(&self) -> String {
        "reject-above".into()
    }
    fn validate(&self, ctx: &ValidationContext<'_>) -> Result<(), String> {
        let n = ctx.state.record_count("Movie").map_err(|e| e.to_string())?;
        if n > self.0 {
            return Err(format!("{n} movies"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_rejected_cycle_announces_nothing_and_the_next_one_recovers() {
    for backend in Backend::all() {
        let store = backend.store();
        let mut p = ProducerBuilder::new(store.clone(), PREFIX, movies::schema().unwrap())
            .with_validator(RejectAbove(N))
            .with_validator(RecordCountChange {
                type_name: "Movie".into(),
                max_percent: 5.0,
            })
            .build()
            .await
            .unwrap();
        let data = movies::state1(N);
        cycle(&mut p, &data).await.unwrap();
        let too_many = movies::state1(N + 10);
        let e = cycle(&mut p, &too_many).await.unwrap_err();
        assert!(
            matches!(e, Error::Validation { ref validator, .. } if validator == "reject-above"),
            "{e}"
        );
        let half = &data[..(N / 2) as usize];
        let e = cycle(&mut p, half).await.unwrap_err();
        assert!(e.to_string().contains("record-count-change"), "{e}");
        assert_eq!(p.version(), Some(1));
        assert_eq!(read_back(&store).await.unwrap().0, 1, "{}", backend.name());
        // A good cycle after the failures: a fresh version whose delta starts at version 1.
        let mut next = data.clone();
        movies::apply_cycle(&mut next, N, 1);
        let v = published(&cycle(&mut p, &next).await.unwrap());
        assert!(v > 1);
        let blobs = blobs_by_version(&store).await;
        assert!(has(&blobs, &format!("delta/1-{v}")), "{blobs:?}");
        assert_eq!(
            read_back(&store).await,
            Some((v, p.state().unwrap().checksum()))
        );
    }
}

#[tokio::test]
async fn a_store_failing_at_any_operation_never_announces_an_incomplete_version() {
    for backend in Backend::all() {
        let faulty = FaultyStore::new(backend.store());
        let store: Arc<dyn ObjectStore> = faulty.clone();
        // Retention runs after the announcement and only logs its failures: left out here.
        let mut p = ProducerBuilder::new(store.clone(), PREFIX, movies::schema().unwrap())
            .without_retention()
            .build()
            .await
            .unwrap();
        let mut data = movies::state1(N);
        cycle(&mut p, &data).await.unwrap();
        // How many store operations a clean cycle makes.
        movies::apply_cycle(&mut data, N, 1);
        let before = faulty.operations();
        cycle(&mut p, &data).await.unwrap();
        let ops = faulty.operations() - before;
        assert!(ops >= 4, "publish 3 blobs and announce");
        eprintln!("{}: a cycle makes {ops} store operations", backend.name());
        for k in 1..=ops {
            movies::apply_cycle(&mut data, N, k as u64 + 1);
            faulty.fail_nth(k);
            let result = cycle(&mut p, &data).await;
            faulty.fail_nth(0);
            // Whatever failed, the store announces exactly what the producer holds, and it loads.
            let (version, checksum) = read_back(&store).await.unwrap();
            assert_eq!(
                Some(version),
                p.version(),
                "{} k={k}: {result:?}",
                backend.name()
            );
            assert_eq!(checksum, p.state().unwrap().checksum());
            // Every operation of a cycle matters: failing any one fails the cycle...
            assert!(result.is_err(), "{} k={k} of {ops}", backend.name());
            // ...and the next cycle recovers.
            let v = published(&cycle(&mut p, &data).await.unwrap());
            assert_eq!(
                read_back(&store).await,
                Some((v, p.state().unwrap().checksum()))
            );
        }
    }
}

#[tokio::test]
async fn a_restarted_producer_restores_the_announced_state_and_continues() {
    for backend in Backend::all() {
        let store = backend.store();
        let mut data = movies::state1(N);
        {
            let mut p = producer(store.clone()).await;
            for k in 1..=3 {
                if k > 1 {
                    movies::apply_cycle(&mut data, N, k - 1);
                }
                cycle(&mut p, &data).await.unwrap();
            }
        }
        let blobs = BlobStore::new(store.clone(), PREFIX);
        let announced = blobs.announcement().await.unwrap().unwrap().state;
        assert_eq!(announced.version, 3);
        let (state3, _) = hollow::store::load(&blobs, None, announced, 10)
            .await
            .unwrap();
        let mut p = producer(store.clone()).await;
        assert_eq!(p.version(), Some(3));
        assert_eq!(p.state().unwrap().checksum(), state3.checksum());
        assert!(matches!(
            cycle(&mut p, &data).await.unwrap(),
            CycleOutcome::NoChange
        ));
        movies::apply_cycle(&mut data, N, 3);
        assert_eq!(published(&cycle(&mut p, &data).await.unwrap()), 4);
        // A consumer holding version 3 follows the restored producer's delta.
        let (state4, plan) = hollow::store::load(&blobs, Some(&state3), p.state_id().unwrap(), 10)
            .await
            .unwrap();
        assert_eq!(plan.describe(), "1 delta");
        assert_eq!(
            state4.checksum(),
            p.state().unwrap().checksum(),
            "{}",
            backend.name()
        );
    }
}

#[tokio::test]
async fn racing_producers_never_both_announce() {
    for backend in Backend::all()
        .into_iter()
        .filter(Backend::has_conditional_update)
    {
        let store = backend.store();
        let mut data = movies::state1(N);
        cycle(&mut producer(store.clone()).await, &data)
            .await
            .unwrap();
        for round in 1..=4u64 {
            let mut a = producer(store.clone()).await;
            let mut b = producer(store.clone()).await;
            movies::apply_cycle(&mut data, N, round);
            let mut other = data.clone();
            other.truncate(other.len() - 1);
            let (ra, rb) = tokio::join!(cycle(&mut a, &data), cycle(&mut b, &other));
            let winners: Vec<&Producer> = [(&ra, &a), (&rb, &b)]
                .into_iter()
                .filter(|(r, _)| matches!(r, Ok(CycleOutcome::Published(_))))
                .map(|(_, p)| p)
                .collect();
            assert_eq!(winners.len(), 1, "round {round}: {ra:?} / {rb:?}");
            let loser = if ra.is_ok() { &rb } else { &ra };
            assert!(loser.is_err());
            let winner = winners[0];
            assert_eq!(
                read_back(&store).await,
                Some((
                    winner.version().unwrap(),
                    winner.state().unwrap().checksum()
                ))
            );
        }
    }
}

#[tokio::test]
async fn retention_deletes_old_blobs_but_never_what_consumers_need() {
    for backend in Backend::all() {
        let store = backend.store();
        let mut p = ProducerBuilder::new(store.clone(), PREFIX, movies::schema().unwrap())
            .with_snapshot_every(3)
            .with_retention(2)
            .build()
            .await
            .unwrap();
        let mut data = movies::state1(N);
        for k in 1..=8 {
            if k > 1 {
                movies::apply_cycle(&mut data, N, k - 1);
            }
            cycle(&mut p, &data).await.unwrap();
            // Retention runs off the cycle's path (and not in every cycle): what it deleted is
            // checked once it is done.
            if let Some(pass) = p.wait_for_retention().await {
                pass.unwrap();
            }
            assert_eq!(
                read_back(&store).await,
                Some((k, p.state().unwrap().checksum())),
                "{}",
                backend.name()
            );
        }
        let blobs = blobs_by_version(&store).await;
        assert!(!has(&blobs, "snapshot/1"), "{blobs:?}");
        assert!(!has(&blobs, "delta/1-2"), "{blobs:?}");
        assert!(has(&blobs, "delta/7-8"), "{blobs:?}");
    }
}

#[tokio::test]
async fn an_incremental_cycle_publishes_exactly_what_a_full_cycle_would() {
    for backend in Backend::all() {
        let full_store = backend.store();
        let incremental_store: Arc<dyn ObjectStore> =
            Arc::new(object_store::memory::InMemory::new());
        let mut full = producer(full_store.clone()).await;
        let mut incremental = producer(incremental_store.clone()).await;
        let mut data = movies::state1(N);
        cycle(&mut full, &data).await.unwrap();
        cycle(&mut incremental, &data).await.unwrap();
        assert!(incremental
            .run_incremental_cycle(|_| Ok(()))
            .await
            .is_ok_and(|o| matches!(o, CycleOutcome::NoChange)));
        for k in 1..=3u64 {
            let before: std::collections::BTreeMap<i64, Movie> =
                data.iter().map(|m| (m.id, m.clone())).collect();
            movies::apply_cycle(&mut data, N, k);
            let after: std::collections::BTreeMap<i64, Movie> =
                data.iter().map(|m| (m.id, m.clone())).collect();
            let v_full = published(&cycle(&mut full, &data).await.unwrap());
            let outcome = incremental
                .run_incremental_cycle(|c| {
                    // Changed and new movies in dataset order, as the full cycle adds them.
                    for m in data.iter().filter(|m| before.get(&m.id) != Some(m)) {
                        c.upsert(m)?;
                    }
                    for id in before.keys().filter(|id| !after.contains_key(id)) {
                        assert!(c.delete::<Movie, _>(id)?);
                    }
                    assert!(!c.delete::<Movie, _>(&-5i64)?, "no such movie");
                    Ok(())
                })
                .await
                .unwrap();
            let v_inc = published(&outcome);
            assert_eq!(v_full, v_inc);
            assert_eq!(
                full.state().unwrap().checksum(),
                incremental.state().unwrap().checksum(),
                "{} cycle {k}",
                backend.name()
            );
            // The same delta, but for the random tags of the states it joins.
            let sections = |delta: bytes::Bytes| -> Vec<bytes::Bytes> {
                let parsed = hollow::core::raw::parse(delta).unwrap();
                parsed.sections.into_iter().map(|s| s.data).collect()
            };
            let delta = |p: &Producer, store: &Arc<dyn ObjectStore>| {
                let to = p.state_id().unwrap();
                let store = BlobStore::new(store.clone(), PREFIX);
                async move {
                    let blobs = store.list().await.unwrap();
                    let delta = blobs
                        .into_iter()
                        .find(|b| matches!(b, BlobName::Delta { to: t, .. } if *t == to))
                        .unwrap();
                    store.get(delta).await.unwrap()
                }
            };
            let a = sections(delta(&full, &full_store).await);
            let b = sections(delta(&incremental, &incremental_store).await);
            assert!(a == b, "the same delta sections");
        }
    }
}
