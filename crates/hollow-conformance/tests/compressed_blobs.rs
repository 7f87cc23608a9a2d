//! Compressed blobs on every store kind: a producer stores zstd-compressed snapshots and deltas
//! (all of them, or per kind), a consumer configured with nothing reads them and serves the
//! producer's states, and a damaged compressed blob is refused while the last good state stays.

mod support;

use std::sync::Arc;
use std::time::Duration;

use hollow::consumer::ConsumerBuilder;
use hollow::core::BlobKind;
use hollow::movies;
use hollow::producer::{CycleOutcome, ProducerBuilder};
use hollow::store::layout::BlobName;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use support::{assert_serves, Backend};

const PREFIX: &str = "movies";
const N: u64 = 5_000;
const WAIT: Duration = Duration::from_secs(20);

async fn compressed_on(backend: Backend) {
    let what = backend.name();
    let dataset = backend.dataset(backend.store(), PREFIX);
    let mut producer = ProducerBuilder::from_blob_store(dataset.clone(), movies::schema().unwrap())
        .with_compression(3)
        // Reverse deltas stay plain: both kinds side by side in one store.
        .with_compression_of(BlobKind::ReverseDelta, None)
        .build()
        .await
        .unwrap();
    let mut data = movies::state1(N);
    let mut reports = Vec::new();
    for cycle in 0..3 {
        if cycle > 0 {
            movies::apply_cycle(&mut data, N, cycle);
        }
        match producer
            .run_cycle(|w| data.iter().try_for_each(|m| w.add(m)))
            .await
        {
            Ok(CycleOutcome::Published(r)) => reports.push(r),
            other => panic!("{what}: {other:?}"),
        }
    }
    // What is stored is compressed (and smaller), except the reverse deltas.
    let first = &reports[0];
    let (stored, written) = (
        first.stored_snapshot_bytes.unwrap(),
        first.snapshot_bytes.unwrap(),
    );
    assert!(stored < written, "{what}: {stored} of {written} bytes");
    let (delta, reverse) = reports[1].stored_delta_bytes.unwrap();
    assert!(delta < reports[1].delta_bytes.unwrap().0, "{what}");
    assert_eq!(reverse, reports[1].delta_bytes.unwrap().1, "{what}");
    for blob in dataset.list().await.unwrap() {
        let bytes = dataset.get(blob).await.unwrap();
        let compressed = hollow::core::raw::compressed::is_compressed(&bytes);
        let expected = !matches!(blob, BlobName::ReverseDelta { .. });
        assert_eq!(compressed, expected, "{what}: {blob}");
    }

    // A consumer needs no setting: it starts from a compressed snapshot, follows compressed
    // deltas, and can go back by a plain reverse delta.
    let consumer = ConsumerBuilder::from_blob_store(backend.dataset(backend.store(), PREFIX))
        .with_poll_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    let last = producer.state().unwrap();
    assert_serves(&consumer, (3, last.checksum()), WAIT, what).await;
    consumer.pin(2).await.unwrap();
    assert_eq!(consumer.version(), Some(2), "{what}");
    consumer.unpin().await.unwrap();

    // Version 4's compressed blobs damaged in the store: refused, the consumer keeps version 3.
    consumer.pin(3).await.unwrap();
    movies::apply_cycle(&mut data, N, 3);
    let outcome = producer
        .run_cycle(|w| data.iter().try_for_each(|m| w.add(m)))
        .await;
    assert!(matches!(outcome, Ok(CycleOutcome::Published(_))), "{what}");
    let to = producer.state_id().unwrap();
    let store: Arc<dyn ObjectStore> = backend.store();
    for blob in dataset.list().await.unwrap() {
        let leads_to_4 = matches!(blob, BlobName::Delta { to: t, .. } if t == to)
            || blob == BlobName::Snapshot(to);
        if !leads_to_4 {
            continue;
        }
        let mut bytes = dataset.get(blob).await.unwrap().to_vec();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        let path = dataset.path(&blob.path());
        store.put(&path, PutPayload::from(bytes)).await.unwrap();
    }
    consumer.unpin().await.ok();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        consumer.version(),
        Some(3),
        "{what}: a damaged blob was applied"
    );
    let health = consumer.health();
    let error = health.last_error.unwrap_or_default();
    assert!(error.contains("compressed blob"), "{what}: {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_blobs_are_read_without_configuration_on_every_store() {
    for backend in Backend::all() {
        compressed_on(backend).await;
    }
}
