//! Schema changes that readers cannot read are refused by the producer unless allowed, and a
//! consumer that declares the types it reads keeps its last readable state; upserts and deletes
//! take the record's type from the Rust type.

use std::sync::Arc;

use hollow::consumer::{ConsumerBuilder, Error as ConsumerError};
use hollow::core::SchemaBuilder;
use hollow::producer::{CycleOutcome, Error, ProducerBuilder};
use object_store::memory::InMemory;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

mod v1 {
    #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    pub struct Shoe {
        pub id: i64,
        pub size: i32,
        pub name: String,
    }
}

mod v2 {
    /// Adds a field: compatible.
    #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    pub struct Shoe {
        pub id: i64,
        pub size: i32,
        pub name: String,
        pub color: Option<String>,
    }
}

mod v3 {
    /// Changes a field's kind (i32 → i64): breaks readers.
    #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    pub struct Shoe {
        pub id: i64,
        pub size: i64,
        pub name: String,
    }
}

fn schema<T: Serialize + Deserialize<'static>>() -> hollow::core::Schema {
    SchemaBuilder::new()
        .add::<T>()
        .primary_key("Shoe", &["id"])
        .build()
        .unwrap()
}

async fn publish<T: Serialize + Deserialize<'static>>(
    store: &Arc<dyn ObjectStore>,
    allow: bool,
    records: &[T],
) -> Result<u64, Error> {
    let mut builder = ProducerBuilder::new(store.clone(), "shoes", schema::<T>());
    if allow {
        builder = builder.allow_breaking_schema_changes();
    }
    let mut p = builder.build().await?;
    let outcome = p
        .run_cycle(|w| records.iter().try_for_each(|r| w.add(r)))
        .await?;
    match outcome {
        CycleOutcome::Published(report) => Ok(report.version),
        CycleOutcome::NoChange => panic!("nothing published"),
    }
}

fn shoe1() -> v1::Shoe {
    v1::Shoe {
        id: 1,
        size: 42,
        name: "Runner".into(),
    }
}

#[tokio::test]
async fn a_breaking_schema_change_is_refused_unless_allowed() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    publish(&store, false, &[shoe1()]).await.unwrap();

    // A field added goes through.
    let v2 = v2::Shoe {
        id: 1,
        size: 42,
        name: "Runner".into(),
        color: Some("red".into()),
    };
    publish(&store, false, std::slice::from_ref(&v2))
        .await
        .unwrap();

    // A field's kind changed does not, and says which field and how.
    let v3 = v3::Shoe {
        id: 1,
        size: 42,
        name: "Runner".into(),
    };
    let e = publish(&store, false, std::slice::from_ref(&v3))
        .await
        .unwrap_err();
    match &e {
        Error::IncompatibleSchema { conflicts, .. } => {
            assert_eq!(conflicts.len(), 1, "{e}");
            assert_eq!(conflicts[0].field.as_deref(), Some("size"), "{e}");
        }
        other => panic!("expected IncompatibleSchema, got {other}"),
    }
    assert!(
        e.to_string().contains("Shoe.size: was i32, is now i64"),
        "{e}"
    );

    // Allowed on purpose, it is published.
    publish(&store, true, std::slice::from_ref(&v3))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_consumer_keeps_its_last_readable_state_and_says_why() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let first = publish(&store, false, &[shoe1()]).await.unwrap();
    let consumer = ConsumerBuilder::new(store.clone(), "shoes")
        .reads::<v1::Shoe>()
        .build()
        .await
        .unwrap();
    assert_eq!(consumer.version(), Some(first));

    // Compatible for this reader: swapped in.
    let v2 = v2::Shoe {
        id: 2,
        size: 40,
        name: "Trail".into(),
        color: None,
    };
    let second = publish(&store, false, &[v2]).await.unwrap();
    consumer.refresh().await.unwrap();
    assert_eq!(consumer.version(), Some(second));

    // Published anyway by a producer allowed to: the consumer stays and says why.
    let v3 = v3::Shoe {
        id: 3,
        size: 44,
        name: "Court".into(),
    };
    let third = publish(&store, true, &[v3]).await.unwrap();
    let e = consumer.refresh().await.unwrap_err();
    assert!(matches!(e, ConsumerError::Unreadable { .. }), "{e}");
    assert!(e.to_string().contains("size"), "{e}");
    assert_eq!(consumer.version(), Some(second));
    let health = consumer.health();
    assert_eq!(health.announced, Some(third));
    let error = health.last_error.expect("the health says why");
    assert!(error.contains("cannot be read"), "{error}");
    // And what it serves still reads.
    let state = consumer.current().unwrap();
    let shoes = state.index::<v1::Shoe>().unwrap();
    assert_eq!(shoes.get(&2i64).unwrap().unwrap().name, "Trail");
    // Asking again does not load the unreadable state again, and says the same.
    let again = consumer.refresh().await.unwrap_err();
    assert_eq!(again.to_string(), e.to_string());
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Shoe {
    id: i64,
    name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Brand {
    id: i64,
    name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Note {
    text: String,
}

#[tokio::test]
async fn upserts_and_deletes_take_the_type_from_the_record() {
    let schema = SchemaBuilder::new()
        .add::<Shoe>()
        .add::<Brand>()
        .add::<Note>()
        .primary_key("Shoe", &["id"])
        .primary_key("Brand", &["id"])
        .build()
        .unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut p = ProducerBuilder::new(store, "catalog", schema)
        .build()
        .await
        .unwrap();
    let shoe = |name: &str| Shoe {
        id: 1,
        name: name.into(),
    };
    let brand = Brand {
        id: 1,
        name: "Acme".into(),
    };
    p.run_cycle(|w| {
        w.add(&shoe("old"))?;
        w.add(&brand)
    })
    .await
    .unwrap();

    p.run_incremental_cycle(|c| c.upsert(&shoe("new")))
        .await
        .unwrap();
    let state = p.state().unwrap();
    assert_eq!(
        state.record_count("Shoe").unwrap(),
        1,
        "a second Shoe with key 1"
    );
    assert_eq!(state.find::<Shoe, _>(&1i64).unwrap(), Some(shoe("new")));
    assert_eq!(state.find::<Brand, _>(&1i64).unwrap(), Some(brand.clone()));

    // A record type without a primary key cannot be upserted, and nothing is added.
    let e = p
        .run_incremental_cycle(|c| c.upsert(&Note { text: "x".into() }))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            hollow::producer::Error::Populate(hollow::core::Error::NoPrimaryKey { type_name })
                | hollow::producer::Error::Core(hollow::core::Error::NoPrimaryKey { type_name })
                if type_name == "Note"
        ),
        "{e}"
    );

    p.run_incremental_cycle(|c| {
        assert!(c.delete::<Shoe, _>(&1i64)?);
        assert!(!c.delete::<Shoe, _>(&1i64)?);
        Ok(())
    })
    .await
    .unwrap();
    let state = p.state().unwrap();
    assert_eq!(state.record_count("Shoe").unwrap(), 0);
    assert_eq!(state.record_count("Brand").unwrap(), 1);
}

#[tokio::test]
async fn a_consumer_whose_types_cannot_read_the_first_state_does_not_start() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let v3 = v3::Shoe {
        id: 1,
        size: 44,
        name: "Court".into(),
    };
    publish(&store, false, &[v3]).await.unwrap();
    let e = ConsumerBuilder::new(store.clone(), "shoes")
        .reads::<v1::Shoe>()
        .build()
        .await
        .err()
        .expect("nothing readable to serve");
    assert!(matches!(e, ConsumerError::Unreadable { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("Shoe.size: is read as i32, the state has i64"),
        "{e}"
    );
    // Types it can read: it starts.
    let consumer = ConsumerBuilder::new(store, "shoes")
        .reads::<v3::Shoe>()
        .build()
        .await
        .unwrap();
    assert!(consumer.version().is_some());
}

#[tokio::test]
async fn an_incremental_cycle_right_after_a_schema_change_is_refused_not_lossy() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let shoes: Vec<v1::Shoe> = (1..=3)
        .map(|id| v1::Shoe {
            id,
            size: 40,
            name: format!("Shoe {id}"),
        })
        .collect();
    publish(&store, false, &shoes).await.unwrap();
    // A new producer adds a field (a compatible change), then upserts one record.
    let mut p = ProducerBuilder::new(store.clone(), "shoes", schema::<v2::Shoe>())
        .build()
        .await
        .unwrap();
    let result = p
        .run_incremental_cycle(|c| {
            c.upsert(&v2::Shoe {
                id: 4,
                size: 41,
                name: "New".into(),
                color: None,
            })
        })
        .await;
    // Refused, saying what to do, rather than publishing one shoe out of four.
    let e = result.unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Populate(hollow::core::Error::FullCycleRequired { type_name })
                if type_name == "Shoe"
        ),
        "{e}"
    );
    assert_eq!(p.state().unwrap().record_count("Shoe").unwrap(), 3);
    // A full cycle in the new schema, then incremental ones carry every record.
    p.run_cycle(|w| {
        shoes.iter().try_for_each(|s| {
            w.add(&v2::Shoe {
                id: s.id,
                size: s.size,
                name: s.name.clone(),
                color: None,
            })
        })
    })
    .await
    .unwrap();
    p.run_incremental_cycle(|c| {
        c.upsert(&v2::Shoe {
            id: 4,
            size: 41,
            name: "New".into(),
            color: Some("red".into()),
        })
    })
    .await
    .unwrap();
    assert_eq!(p.state().unwrap().record_count("Shoe").unwrap(), 4);
}
