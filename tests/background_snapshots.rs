//! Snapshots written in the background: a snapshot cycle announces as soon as its deltas are
//! published; its snapshot, written from the announced state, lands afterwards and a consumer
//! starting cold then loads it, equal to the producer's state.

use std::sync::Arc;

use hollow::consumer::ConsumerBuilder;
use hollow::movies;
use hollow::producer::{CycleOutcome, ProducerBuilder};
use hollow::store::layout::BlobName;
use object_store::memory::InMemory;
use object_store::ObjectStore;

/// The plan of every refresh.
#[derive(Default)]
struct Plans(std::sync::Mutex<Vec<String>>);

impl hollow::consumer::ConsumerListener for Plans {
    fn on_refresh(&self, e: &hollow::consumer::RefreshEvent) {
        self.0.lock().unwrap().push(e.plan.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_written_after_announcing_land_and_serve_cold_starts() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut producer = ProducerBuilder::new(store.clone(), "movies", movies::schema().unwrap())
        .with_snapshot_every(3)
        .with_snapshots_in_background()
        .build()
        .await
        .unwrap();
    let mut data = movies::state1(2_000);
    for v in 1..=7u64 {
        if v > 1 {
            movies::apply_cycle(&mut data, 2_000, v - 1);
        }
        let outcome = producer
            .run_cycle(|w| data.iter().try_for_each(|m| w.add(m)))
            .await
            .unwrap();
        let CycleOutcome::Published(report) = outcome else {
            panic!("v{v}: no change")
        };
        let snapshots = |blobs: Vec<BlobName>| {
            blobs
                .into_iter()
                .filter_map(|b| match b {
                    BlobName::Snapshot(s) => Some(s.version),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        match v {
            // The first snapshot is published before it is announced.
            1 => assert!(report.snapshot_bytes.is_some()),
            3 | 6 => {
                assert_eq!(report.snapshot_bytes, None, "v{v}: not on the cycle's path");
                let landed = producer.wait_for_background_snapshot().await.unwrap();
                assert_eq!(landed.unwrap().version, v);
                let listed = snapshots(producer.store().list().await.unwrap());
                assert!(listed.contains(&v), "v{v}: {listed:?}");
                // A cold consumer loads that snapshot and equals the producer's state.
                let plans = Arc::new(Plans::default());
                let consumer = ConsumerBuilder::new(store.clone(), "movies")
                    .with_listener(plans.clone())
                    .build()
                    .await
                    .unwrap();
                assert_eq!(*plans.0.lock().unwrap(), vec![format!("snapshot {v}")]);
                let state = consumer.current().unwrap();
                assert_eq!(state.version(), v);
                assert!(state.same_content_as(producer.state().unwrap()));
                assert_eq!(movies::checksum(&data), {
                    let all: Vec<movies::Movie> = state
                        .object("Movie")
                        .unwrap()
                        .ordinals()
                        .map(|o| state.get(o).unwrap())
                        .collect();
                    movies::checksum(&all)
                });
            }
            _ => {
                assert_eq!(report.snapshot_bytes, None);
                assert!(producer.wait_for_background_snapshot().await.is_none());
            }
        }
    }
}
