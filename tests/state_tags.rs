//! State tags from producer to consumer: a cycle that changes only a tag publishes a version,
//! consumers following by deltas read the tags back, and `wait_until` returns as soon as a state
//! with the awaited tag is served (or `None` when none comes in time).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hollow::consumer::ConsumerBuilder;
use hollow::movies::{self, Movie};
use hollow::producer::{CycleOutcome, ProducerBuilder};
use object_store::memory::InMemory;
use object_store::ObjectStore;

#[tokio::test]
async fn tags_reach_consumers_and_can_be_waited_for() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut producer = ProducerBuilder::new(store.clone(), "movies", movies::schema().unwrap())
        .build()
        .await
        .unwrap();
    let data: Vec<Movie> = movies::state1(200);
    producer
        .run_cycle(|w| {
            w.set_tag("offsets", "0:10");
            data.iter().try_for_each(|m| w.add(m))
        })
        .await
        .unwrap();
    let consumer = ConsumerBuilder::new(store.clone(), "movies")
        .with_poll_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    assert_eq!(consumer.current().unwrap().tag("offsets"), Some("0:10"));

    // Nothing announces "0:11" yet: the wait ends at its timeout.
    let started = Instant::now();
    let none = consumer
        .wait_until(
            |s| s.tag("offsets") == Some("0:11"),
            Duration::from_millis(150),
        )
        .await;
    assert!(none.is_none());
    assert!(started.elapsed() >= Duration::from_millis(150));

    // Only the tag changes: still a new version, reached by a delta.
    let waiter = async {
        consumer
            .wait_until(
                |s| s.tag("offsets") == Some("0:11"),
                Duration::from_secs(10),
            )
            .await
    };
    let publish = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        producer
            .run_incremental_cycle(|c| {
                c.set_tag("offsets", "0:11");
                Ok(())
            })
            .await
            .unwrap()
    };
    let (state, outcome) = tokio::join!(waiter, publish);
    assert!(matches!(outcome, CycleOutcome::Published(ref r) if r.previous == Some(1)));
    let state = state.expect("the tagged state is served");
    assert_eq!(state.version(), 2);
    assert_eq!(state.tag("offsets"), Some("0:11"));
    assert_eq!(state.object("Movie").unwrap().len(), 200);

    // The same tag again is no change.
    let again = producer
        .run_incremental_cycle(|c| {
            c.set_tag("offsets", "0:11");
            Ok(())
        })
        .await
        .unwrap();
    assert!(matches!(again, CycleOutcome::NoChange));
}

/// A producer with nothing announced can start with an incremental cycle (from the empty
/// state), as a source materializing a topic from its first message does.
#[tokio::test]
async fn the_first_cycle_can_be_incremental() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut producer = ProducerBuilder::new(store.clone(), "movies", movies::schema().unwrap())
        .build()
        .await
        .unwrap();
    let data = movies::state1(3);
    let outcome = producer
        .run_incremental_cycle(|c| {
            c.set_tag("offsets", "0:3");
            data.iter().try_for_each(|m| c.upsert(m))?;
            c.upsert(&data[0])
        })
        .await
        .unwrap();
    assert!(
        matches!(outcome, CycleOutcome::Published(ref r) if r.version == 1 && r.previous.is_none())
    );
    let consumer = ConsumerBuilder::new(store, "movies").build().await.unwrap();
    let state = consumer.current().unwrap();
    assert_eq!(state.object("Movie").unwrap().len(), 3);
    assert_eq!(state.tag("offsets"), Some("0:3"));
}
