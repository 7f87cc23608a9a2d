//! Hot standbys: two sources follow the same topic into the same store (one with
//! compare-and-swap), racing for every version; one of them crashes midway and a third joins
//! late. Every version announced holds exactly the messages before its offsets.

use std::sync::Arc;
use std::time::Duration;

use hollow::consumer::ConsumerBuilder;
use hollow::movies;
use hollow::producer::ProducerBuilder;
use hollow_kafka::{ReadYourWrites, TopicWriter};
use object_store::memory::InMemory;
use object_store::ObjectStore;

use crate::common::*;

/// A source publishing into `store`, running (its producer elects a leader as `elected`, if
/// given); and its status.
async fn standby(
    bootstrap: &str,
    topic: &str,
    store: &Arc<dyn ObjectStore>,
    elected: Option<&str>,
) -> (
    tokio::task::JoinHandle<hollow_kafka::Result<()>>,
    Arc<std::sync::Mutex<hollow_kafka::SourceStatus>>,
) {
    let mut builder = ProducerBuilder::new(store.clone(), "movies", movies::schema().unwrap())
        .without_retention();
    if let Some(id) = elected {
        builder = builder.with_leader_election(id, Duration::from_millis(500));
    }
    let producer = builder.build().await.unwrap();
    let mut source = source_builder(bootstrap, topic, None)
        .with_fetch_max_bytes(16 << 10)
        .build(producer)
        .await
        .unwrap();
    let status = source.status();
    let running = tokio::spawn(async move {
        source
            .run_until(tokio::time::sleep(Duration::from_secs(60)))
            .await
    });
    (running, status)
}

/// A consumer of `store` once something is announced, and a task that keeps every state it
/// serves (every one an announced one) until nothing new comes for five seconds.
async fn observe(
    store: &Arc<dyn ObjectStore>,
) -> (
    Arc<hollow::consumer::Consumer>,
    tokio::task::JoinHandle<Vec<Arc<hollow::core::ReadState>>>,
) {
    let consumer = Arc::new(loop {
        let c = ConsumerBuilder::new(store.clone(), "movies")
            .with_poll_interval(Duration::from_millis(5))
            .build()
            .await
            .unwrap();
        if c.current().is_some() {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    });
    let observed = consumer.clone();
    let observing = tokio::spawn(async move {
        let mut seen = vec![observed.current().unwrap()];
        loop {
            let last = seen.last().unwrap().version();
            match observed
                .wait_until(|s| s.version() > last, Duration::from_secs(5))
                .await
            {
                Some(state) => seen.push(state),
                None => return seen,
            }
        }
    });
    (consumer, observing)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: run .ci/kafka-job"]
async fn racing_standbys_publish_every_message_exactly_once() {
    let broker = broker();
    let (topic, _) = topics(&broker, "standbys");
    let bootstrap = broker.bootstrap().to_string();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let writer = TopicWriter::connect(&bootstrap, &topic).await.unwrap();
    let writing = write_steadily(writer, workload(20_000, 1_000, 29));

    let (first, first_status) = standby(&bootstrap, &topic, &store, None).await;
    let (second, second_status) = standby(&bootstrap, &topic, &store, None).await;
    // The one that wins the first race crashes soon after (whichever it is: on a busy machine
    // one standby may win every race): whatever it had consumed and not announced is gone
    // with it, and the others must take over.
    let cycles = |s: &Arc<std::sync::Mutex<hollow_kafka::SourceStatus>>| s.lock().unwrap().cycles;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while cycles(&first_status) + cycles(&second_status) == 0
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (winner, second) = match cycles(&first_status) >= cycles(&second_status) {
        true => (first, second),
        false => (second, first),
    };
    winner.abort();
    let (third, third_status) = standby(&bootstrap, &topic, &store, None).await;
    let (consumer, observing) = observe(&store).await;
    let written = writing.await.unwrap();
    let state = consumer
        .wait_for_offsets(&topic, &last_offsets(&written), Duration::from_secs(60))
        .await
        .expect("the standbys publish every message");
    let all: Vec<_> = written.iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(view_of(&state), fold(&all));
    second.abort();
    third.abort();
    let cycles: Vec<u64> = [first_status, second_status, third_status]
        .iter()
        .map(cycles)
        .collect();
    eprintln!("versions announced by each standby: {cycles:?}");
    assert!(
        cycles.iter().filter(|&&c| c > 0).count() >= 2,
        "the standbys did not share the work: {cycles:?}"
    );
    let states = observing.await.unwrap();
    assert_states_exact(&states, &topic, &written);
    assert!(
        states.len() >= 10,
        "only {} versions were seen",
        states.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: run .ci/kafka-job"]
async fn elected_standbys_take_over_from_a_crashed_leader_exactly_once() {
    let broker = broker();
    let (topic, _) = topics(&broker, "elected");
    let bootstrap = broker.bootstrap().to_string();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let writer = TopicWriter::connect(&bootstrap, &topic).await.unwrap();
    let writing = write_steadily(writer, workload(20_000, 1_000, 31));

    let (first, first_status) = standby(&bootstrap, &topic, &store, Some("first")).await;
    let (second, second_status) = standby(&bootstrap, &topic, &store, Some("second")).await;
    let (consumer, observing) = observe(&store).await;
    // Only the leader publishes; then it crashes and the other takes over.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cycles = |s: &Arc<std::sync::Mutex<hollow_kafka::SourceStatus>>| s.lock().unwrap().cycles;
    let (leader, leader_status, standby_status) = match cycles(&first_status) > 0 {
        true => (first, &first_status, &second_status),
        false => (second, &second_status, &first_status),
    };
    assert_eq!(cycles(standby_status), 0, "a standby published");
    leader.abort();
    let led = cycles(leader_status);
    let written = writing.await.unwrap();
    let state = consumer
        .wait_for_offsets(&topic, &last_offsets(&written), Duration::from_secs(60))
        .await
        .expect("the standby publishes every message after the takeover");
    let all: Vec<_> = written.iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(view_of(&state), fold(&all));
    assert!(cycles(standby_status) > 0, "the standby never took over");
    eprintln!(
        "versions: {led} by the crashed leader, {} by the standby after it",
        cycles(standby_status)
    );
    let states = observing.await.unwrap();
    assert_states_exact(&states, &topic, &written);
    assert_eq!(store_epoch(&store).await, 2, "one takeover");
}

async fn store_epoch(store: &Arc<dyn ObjectStore>) -> u64 {
    hollow::store::BlobStore::new(store.clone(), "movies")
        .announcement()
        .await
        .unwrap()
        .unwrap()
        .epoch
}
