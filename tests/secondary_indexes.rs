//! A consumer keeps the hash indexes it declares on every state it serves: movies by actor and
//! by country agree with the dataset after each cycle; an index whose path is gone keeps the
//! last state serving, with the reason in health.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hollow::consumer::{ConsumerBuilder, Error as ConsumerError};
use hollow::core::{ReadState, SchemaBuilder};
use hollow::movies::{self, Movie};
use hollow::producer::{Producer, ProducerBuilder};
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};

fn by_actor(data: &[Movie]) -> BTreeMap<i64, BTreeSet<i64>> {
    let mut out: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for m in data {
        for a in &m.cast {
            out.entry(a.id).or_default().insert(m.id);
        }
    }
    out
}

fn ids(state: &ReadState, ordinals: &[u32]) -> BTreeSet<i64> {
    let id = state.object("Movie").unwrap().int("id").unwrap();
    ordinals.iter().map(|&o| id.get(o).unwrap()).collect()
}

/// A store where a producer published `data`, and the producer.
async fn published(data: &[Movie]) -> (Arc<dyn ObjectStore>, Producer) {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut producer = ProducerBuilder::new(store.clone(), "movies", movies::schema().unwrap())
        .build()
        .await
        .unwrap();
    producer
        .run_cycle(|w| data.iter().try_for_each(|m| w.add(m)))
        .await
        .unwrap();
    (store, producer)
}

#[tokio::test]
async fn a_consumer_keeps_its_hash_indexes_through_every_delta() {
    let n = 3000;
    let mut data = movies::state1(n);
    let (store, mut producer) = published(&data).await;
    let consumer = ConsumerBuilder::new(store.clone(), "movies")
        .with_hash_index("Movie", &["cast.id"])
        .with_hash_index("Movie", &["country"])
        .build()
        .await
        .unwrap();
    for cycle in 1..=4 {
        let state = consumer.current().unwrap();
        let actors = state.hash_index("Movie", &["cast.id"]).unwrap();
        let expected = by_actor(&data);
        assert_eq!(actors.key_count(), expected.len(), "cycle {cycle}");
        for (actor, movies) in expected.iter().step_by(7) {
            assert_eq!(&ids(&state, actors.find(actor).unwrap()), movies);
        }
        let countries = state.hash_index("Movie", &["country"]).unwrap();
        for country in movies::COUNTRIES {
            let want: BTreeSet<i64> = data
                .iter()
                .filter(|m| m.country == country)
                .map(|m| m.id)
                .collect();
            assert_eq!(ids(&state, countries.find(country).unwrap()), want);
        }
        movies::apply_cycle(&mut data, n, cycle);
        producer
            .run_cycle(|w| data.iter().try_for_each(|m| w.add(m)))
            .await
            .unwrap();
        let event = consumer.refresh().await.unwrap().expect("a new state");
        assert!(
            event.plan.contains("delta"),
            "followed a delta: {}",
            event.plan
        );
    }
}

#[tokio::test]
async fn a_state_its_index_cannot_be_built_on_is_not_served() {
    let data = movies::state1(50);
    let (store, _) = published(&data).await;
    let consumer = ConsumerBuilder::new(store.clone(), "movies")
        .with_hash_index("Movie", &["country"])
        .build()
        .await
        .unwrap();
    let served = consumer.version();

    // A new producer drops the field (a compatible change for the producer).
    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(rename = "Movie")]
    struct Slim {
        id: i64,
        title: String,
    }
    let schema = SchemaBuilder::new()
        .add::<Slim>()
        .primary_key("Movie", &["id"])
        .build()
        .unwrap();
    let mut producer = ProducerBuilder::new(store.clone(), "movies", schema)
        .build()
        .await
        .unwrap();
    producer
        .run_cycle(|w| {
            data.iter().try_for_each(|m| {
                w.add(&Slim {
                    id: m.id,
                    title: m.title.clone(),
                })
            })
        })
        .await
        .unwrap();
    let e = consumer.refresh().await.unwrap_err();
    assert!(matches!(e, ConsumerError::HashIndex { .. }), "{e}");
    assert!(e.to_string().contains("country"), "{e}");
    assert_eq!(consumer.version(), served);
    assert!(consumer
        .health()
        .last_error
        .unwrap()
        .contains("Movie(country)"));

    // The refused state is not fetched and loaded again at every poll: with its blobs gone,
    // the next refresh still answers why it was refused.
    let blobs: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(store.list(None))
        .await
        .unwrap();
    for blob in blobs
        .iter()
        .filter(|m| !m.location.as_ref().ends_with("announced.version"))
    {
        store.delete(&blob.location).await.unwrap();
    }
    let again = consumer.refresh().await.unwrap_err();
    assert!(matches!(again, ConsumerError::HashIndex { .. }), "{again}");
    assert_eq!(consumer.version(), served);
}
