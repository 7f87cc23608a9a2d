//! A record type keyed through a reference (`category.id`, `sku`) with a hash index declared in
//! its schema, end to end: incremental cycles upsert and delete by that key, and a consumer that
//! configures nothing serves lookups and the declared index on every state it follows.

use std::collections::BTreeMap;
use std::sync::Arc;

use hollow::consumer::ConsumerBuilder;
use hollow::core::SchemaBuilder;
use hollow::producer::{CycleOutcome, ProducerBuilder};
use object_store::memory::InMemory;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Category {
    id: i64,
    name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Product {
    category: Category,
    sku: String,
    price: i64,
    brand: String,
}

fn product(category: i64, sku: u32, price: i64) -> Product {
    Product {
        category: Category {
            id: category,
            name: format!("category {category}"),
        },
        sku: format!("sku-{sku}"),
        price,
        brand: format!("brand {}", sku % 4),
    }
}

type Model = BTreeMap<(i64, String), Product>;

fn insert(model: &mut Model, p: Product) {
    model.insert((p.category.id, p.sku.clone()), p);
}

#[tokio::test]
async fn incremental_cycles_upsert_and_delete_by_a_key_through_a_reference() {
    let schema = SchemaBuilder::new()
        .add::<Product>()
        .primary_key("Product", &["category.id", "sku"])
        .hash_index("Product", &["brand"])
        .build()
        .unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut producer = ProducerBuilder::new(store.clone(), "shop", schema)
        .build()
        .await
        .unwrap();
    let mut model = Model::new();
    for c in 0..20 {
        for s in 0..30 {
            insert(&mut model, product(500 + c, s, c * 100 + s as i64));
        }
    }
    producer
        .run_cycle(|w| model.values().try_for_each(|p| w.add(p).map(drop)))
        .await
        .unwrap();
    // Nothing configured: the key and the hash index come with the schema.
    let consumer = ConsumerBuilder::new(store.clone(), "shop")
        .build()
        .await
        .unwrap();

    for cycle in 1..=4i64 {
        // Reprice some products, rename a category (its products keep their keys through
        // another category record), delete some, add some.
        let mut upserts = Vec::new();
        for s in 0..30 {
            let mut p = product(500 + cycle, s, -cycle);
            p.category.name = format!("renamed in {cycle}");
            upserts.push(p);
        }
        upserts.push(product(500 + 2 * cycle, 7, 1_000 * cycle));
        upserts.push(product(900 + cycle, 0, 5));
        let deletes: Vec<(i64, String)> = (0..3)
            .map(|s| (500 + cycle + 10, format!("sku-{s}")))
            .collect();
        let outcome = producer
            .run_incremental_cycle(|c| {
                upserts.iter().try_for_each(|p| c.upsert(p))?;
                for (category, sku) in &deletes {
                    assert!(c.delete::<Product, _>(&(*category, sku.as_str()))?);
                }
                assert!(!c.delete::<Product, _>(&(7i64, "no such product"))?);
                Ok(())
            })
            .await
            .unwrap();
        assert!(matches!(outcome, CycleOutcome::Published(_)));
        upserts.into_iter().for_each(|p| insert(&mut model, p));
        deletes.iter().for_each(|k| {
            model.remove(k);
        });

        consumer.refresh().await.unwrap().expect("a new state");
        let state = consumer.current().unwrap();
        assert_eq!(state.record_count("Product").unwrap(), model.len() as u64);
        for ((category, sku), p) in &model {
            let found: Option<Product> = state
                .find::<Product, _>(&(*category, sku.as_str()))
                .unwrap();
            assert_eq!(
                found.as_ref(),
                Some(p),
                "cycle {cycle}: ({category}, {sku})"
            );
        }
        let by_brand = state.hash_index("Product", &["brand"]).unwrap();
        for b in 0..4 {
            let brand = format!("brand {b}");
            let want = model.values().filter(|p| p.brand == brand).count();
            assert_eq!(by_brand.find(&brand.as_str()).unwrap().len(), want);
        }
    }
}
