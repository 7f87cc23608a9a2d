//! What a producer and a consumer do when nobody configured them: refuse duplicate keys and an
//! emptied dataset, keep a bounded number of versions, and refuse settings that make no sense.

use std::sync::Arc;
use std::time::Duration;

use hollow::consumer::{ConsumerBuilder, Error as ConsumerError};
use hollow::core::SchemaBuilder;
use hollow::producer::{CycleOutcome, Error, Producer, ProducerBuilder, DEFAULT_RETAINED_VERSIONS};
use hollow::store::BlobStore;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone)]
struct Row {
    id: i64,
    name: String,
}

fn builder(store: Arc<dyn ObjectStore>) -> ProducerBuilder {
    let schema = SchemaBuilder::new()
        .add::<Row>()
        .primary_key("Row", &["id"])
        .build()
        .unwrap();
    ProducerBuilder::new(store, "rows", schema)
}

async fn cycle(p: &mut Producer, rows: &[Row]) -> Result<CycleOutcome, Error> {
    p.run_cycle(|w| rows.iter().try_for_each(|r| w.add(r)))
        .await
}

fn rows(names: &[&str]) -> Vec<Row> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| Row {
            id: i as i64,
            name: n.to_string(),
        })
        .collect()
}

#[tokio::test]
async fn duplicate_primary_keys_are_refused_without_configuring_anything() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let mut p = builder(store.clone()).build().await.unwrap();
    let mut twice = rows(&["a", "b"]);
    twice[1].id = 0;
    let e = cycle(&mut p, &twice).await.unwrap_err();
    assert!(
        matches!(&e, Error::Validation { validator, .. } if validator == "duplicate-primary-keys"),
        "{e}"
    );
    assert_eq!(p.version(), None, "nothing announced");
    // Turned off on purpose, they are published.
    let mut p = builder(store)
        .without_default_validators()
        .build()
        .await
        .unwrap();
    assert!(matches!(
        cycle(&mut p, &twice).await.unwrap(),
        CycleOutcome::Published(_)
    ));
}

#[tokio::test]
async fn an_empty_dataset_over_a_full_one_needs_an_explicit_opt_in() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let mut p = builder(store.clone()).build().await.unwrap();
    cycle(&mut p, &rows(&["a", "b"])).await.unwrap();
    let e = cycle(&mut p, &[]).await.unwrap_err();
    assert!(
        matches!(&e, Error::Validation { validator, .. } if validator == "not-emptied"),
        "{e}"
    );
    assert_eq!(p.version(), Some(1));
    let mut p = builder(store)
        .without_default_validators()
        .build()
        .await
        .unwrap();
    let CycleOutcome::Published(r) = cycle(&mut p, &[]).await.unwrap() else {
        panic!("published")
    };
    assert_eq!(p.state().unwrap().record_count("Row").unwrap(), 0, "{r:?}");
}

#[tokio::test]
async fn retention_keeps_a_bounded_number_of_versions_by_default() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let mut p = builder(store.clone()).build().await.unwrap();
    let cycles = DEFAULT_RETAINED_VERSIONS + 8;
    for k in 0..cycles {
        cycle(&mut p, &rows(&["a", &k.to_string()])).await.unwrap();
    }
    // Retention runs off the cycle's path: what it deleted is seen once it is done.
    p.wait_for_retention().await.unwrap().unwrap();
    let blobs = BlobStore::new(store.clone(), "rows").list().await.unwrap();
    let oldest = blobs.iter().map(|b| b.destination().version).min().unwrap();
    assert!(oldest > 1, "version 1 was deleted: {blobs:?}");
    assert!(
        oldest + DEFAULT_RETAINED_VERSIONS > cycles,
        "at least the newest {DEFAULT_RETAINED_VERSIONS} kept: oldest {oldest}"
    );
    // A fresh consumer still loads the announced version.
    let c = ConsumerBuilder::new(store, "rows").build().await.unwrap();
    assert_eq!(c.version(), Some(cycles));
}

/// With a snapshot every few cycles, retention lists the store in every cycle only until
/// what it keeps is what a starting consumer needs; then it waits for the next snapshot
/// cycle, and what it keeps stays the same.
#[tokio::test]
async fn retention_waits_for_a_snapshot_once_only_a_starting_consumer_holds_blobs_back() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let mut p = builder(store.clone())
        .with_snapshot_every(5)
        .with_retention(2)
        .build()
        .await
        .unwrap();
    let blobs = BlobStore::new(store.clone(), "rows");
    let mut passes = Vec::new();
    for k in 0..16u64 {
        let outcome = cycle(&mut p, &rows(&["a", &k.to_string()])).await;
        assert!(matches!(outcome, Ok(CycleOutcome::Published(_))));
        // Retention runs off the cycle's path: a pass started by this cycle, if any.
        let pass = p.wait_for_retention().await;
        passes.push(pass.map(Result::unwrap).is_some());
        // Kept: the newest two versions, or from the newest snapshot on when that is older.
        let listed = blobs.list().await.unwrap();
        let newest_snapshot = (listed.iter())
            .filter(|b| matches!(b, hollow::store::layout::BlobName::Snapshot(_)))
            .map(|b| b.destination().version)
            .max()
            .unwrap();
        let oldest = listed.iter().map(|b| b.destination().version).min();
        assert_eq!(
            oldest,
            Some(newest_snapshot.min(k).max(1)),
            "after cycle {k}"
        );
    }
    // Snapshots in the cycles of versions 1, 5, 10, 15: a pass in those and, but after the
    // first, in the one after (the version before the snapshot goes then); none in the others.
    let expected: Vec<bool> = (1..=16u64)
        .map(|v| v == 1 || v % 5 == 0 || (v > 1 && v % 5 == 1))
        .collect();
    assert_eq!(passes, expected);
    let c = ConsumerBuilder::new(store, "rows").build().await.unwrap();
    assert_eq!(c.version(), Some(16));
}

#[tokio::test]
async fn nonsense_settings_are_errors_not_silently_clamped() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    for b in [
        builder(store.clone()).with_snapshot_every(0),
        builder(store.clone()).with_retention(0),
    ] {
        let e = b.build().await.err().expect("an error");
        assert!(matches!(e, Error::InvalidSetting { .. }), "{e}");
    }
    let consumer = || ConsumerBuilder::new(store.clone(), "rows");
    for b in [
        consumer().with_poll_interval(Duration::ZERO),
        consumer().with_max_delta_chain(0),
        consumer().with_max_backoff(Duration::ZERO),
    ] {
        let e = b.build().await.err().expect("an error");
        assert!(matches!(e, ConsumerError::InvalidSetting { .. }), "{e}");
    }
}
