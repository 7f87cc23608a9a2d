//! Primary keys on paths through references (`category.id`) and hash indexes declared in the
//! schema: resolved and checked when the schema is built, carried in the blobs (format 3),
//! looked up and kept right through deltas forward and back.

use std::collections::BTreeMap;

use bytes::Bytes;
use hollow_core::raw;
use hollow_core::{Error, ReadState, SchemaBuilder, SchemaProblem, WriteState};
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
    tags: Vec<String>,
}

fn schema() -> hollow_core::Schema {
    SchemaBuilder::new()
        .add::<Product>()
        .primary_key("Product", &["category.id", "sku"])
        .hash_index("Product", &["tags"])
        .build()
        .unwrap()
}

fn product(category: i64, sku: u32) -> Product {
    Product {
        category: Category {
            id: category,
            name: format!("category {category}"),
        },
        sku: format!("sku-{sku}"),
        price: sku as i64 * 10,
        tags: vec![format!("t{}", sku % 5)],
    }
}

/// The products of generation `g`: a few come and go, a few change price, and one category is
/// renamed (its products reach the same key through another category record).
fn generation(g: u32) -> BTreeMap<(i64, String), Product> {
    (0..1000u32)
        .filter(|i| !(i + g).is_multiple_of(97))
        .map(|i| {
            let mut p = product(1000 + (i % 50) as i64, i / 50);
            if p.category.id == 1000 + (g % 50) as i64 {
                p.category.name = format!("renamed in {g}");
            }
            if i % 100 == g % 100 {
                p.price += g as i64;
            }
            ((p.category.id, p.sku.clone()), p)
        })
        .collect()
}

fn check(state: &ReadState, model: &BTreeMap<(i64, String), Product>) {
    for ((category, sku), p) in model {
        let found: Option<Product> = state
            .find::<Product, _>(&(*category, sku.as_str()))
            .unwrap();
        assert_eq!(found.as_ref(), Some(p), "({category}, {sku})");
    }
    assert_eq!(
        state.find::<Product, _>(&(99i64, "sku-1")).unwrap(),
        None::<Product>
    );
    assert_eq!(state.record_count("Product").unwrap(), model.len() as u64);
    let index = state.primary_key_index("Product").unwrap();
    assert_eq!(index.first_duplicate(), None);
    // The declared hash index is there without being asked for, and right.
    let by_tag = state.hash_index("Product", &["tags"]).unwrap();
    for t in 0..5 {
        let tag = format!("t{t}");
        let expected = model.values().filter(|p| p.tags.contains(&tag)).count();
        assert_eq!(by_tag.find(&tag.as_str()).unwrap().len(), expected, "{tag}");
    }
}

#[test]
fn a_key_through_a_reference_is_declared_written_and_read() {
    let schema = schema();
    let text = schema.to_string();
    assert!(
        text.contains("Product @PrimaryKey(category.id, sku) @HashIndex(tags) {"),
        "{text}"
    );
    let key = schema.get(schema.require("Product").unwrap()).primary_key();
    assert!(key[0].is_path() && !key[1].is_path());
    assert_eq!(key[0].path(), "category.id");

    let mut w = WriteState::new(schema);
    let model = generation(0);
    for p in model.values() {
        w.add(p).unwrap();
    }
    let blob = w.write_snapshot(1).unwrap();
    let parsed = raw::parse(Bytes::from(blob.clone())).unwrap();
    assert_eq!(parsed.format, 3, "a schema with key paths needs format 3");
    let state = ReadState::from_snapshot(Bytes::from(blob)).unwrap();
    assert_eq!(state.schema().to_string(), w.schema().to_string());
    check(&state, &model);
    // A key of another shape is an error, not a miss.
    assert!(matches!(
        state.find::<Product, _>(&("x", "sku-1")),
        Err(Error::KeyMismatch { .. })
    ));
}

#[test]
fn keys_through_references_follow_deltas_forward_and_back() {
    let mut w = WriteState::new(schema());
    let mut model = generation(0);
    model.values().for_each(|p| {
        w.add(p).unwrap();
    });
    let mut state = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
    w.commit_cycle().unwrap();
    for g in 1..8u32 {
        let before = state.clone();
        let before_model = model.clone();
        model = generation(g);
        model.values().for_each(|p| {
            w.add(p).unwrap();
        });
        let version = g as u64 + 1;
        let delta = w.write_delta(version - 1, version).unwrap();
        let reverse = w.write_reverse_delta(version, version - 1).unwrap();
        let snapshot = ReadState::from_snapshot(w.write_snapshot(version).unwrap().into()).unwrap();
        w.commit_cycle().unwrap();
        state = state.apply_delta(delta.into()).unwrap();
        check(&state, &model);
        check(&snapshot, &model);
        let back = state.apply_delta(reverse.into()).unwrap();
        check(&back, &before_model);
        assert!(back.same_content_as(&before));
    }
}

#[test]
fn records_reaching_equal_keys_through_different_records_are_duplicates() {
    let mut w = WriteState::new(schema());
    let mut a = product(1, 1);
    w.add(&a).unwrap();
    // Another category record with the same id: the key (1, sku-1) is there twice.
    a.category.name = "renamed".into();
    w.add(&a).unwrap();
    let state = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
    assert!(state
        .primary_key_index("Product")
        .unwrap()
        .first_duplicate()
        .is_some());
}

#[test]
fn the_write_state_reads_keys_through_references() {
    let mut w = WriteState::new(schema());
    let o = w.add(&product(4, 2)).unwrap();
    let parts = w.key_of("Product", o).unwrap().unwrap();
    assert_eq!(
        parts,
        vec![
            hollow_core::KeyPart::Int(4),
            hollow_core::KeyPart::Bytes(b"sku-2")
        ]
    );
}

#[derive(Serialize, Deserialize)]
struct Shelf {
    label: String,
    products: Vec<Product>,
    best: Option<Category>,
}

#[test]
fn keys_that_cannot_reach_one_value_are_refused_when_the_schema_is_built() {
    let build = |fields: &[&str]| {
        SchemaBuilder::new()
            .add::<Shelf>()
            .primary_key("Shelf", fields)
            .build()
    };
    assert!(matches!(
        build(&["products.sku"]),
        Err(Error::InvalidSchema {
            problem: SchemaProblem::KeyThroughCollection { .. },
            ..
        })
    ));
    assert!(matches!(
        build(&["best"]),
        Err(Error::InvalidSchema {
            problem: SchemaProblem::KeyFieldIsReference { .. },
            ..
        })
    ));
    assert!(matches!(
        build(&["best.nope"]),
        Err(Error::UnknownField { .. })
    ));
    assert!(matches!(
        build(&["label.id"]),
        Err(Error::UnknownField { .. })
    ));
    // Through a nullable reference: the key field may be null.
    let schema = build(&["best.id"]).unwrap();
    let key = &schema.get(schema.require("Shelf").unwrap()).primary_key()[0];
    assert!(key.value_type().nullable);
    let e = SchemaBuilder::new()
        .add::<Shelf>()
        .hash_index("Shelf", &["products.nope"])
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::UnknownField { .. }), "{e}");
}

#[test]
fn a_null_reference_on_a_key_path_is_a_null_key_field() {
    let schema = SchemaBuilder::new()
        .add::<Shelf>()
        .primary_key("Shelf", &["best.id"])
        .build()
        .unwrap();
    let mut w = WriteState::new(schema);
    let shelf = |best: Option<i64>| Shelf {
        label: format!("{best:?}"),
        products: vec![],
        best: best.map(|id| Category {
            id,
            name: String::new(),
        }),
    };
    w.add(&shelf(Some(3))).unwrap();
    w.add(&shelf(None)).unwrap();
    let state = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
    let index = state.primary_key_index("Shelf").unwrap();
    let label = |o: u32| state.get_as::<Shelf>("Shelf", o).unwrap().label;
    assert_eq!(
        index.find(&Some(3i64)).unwrap().map(label).as_deref(),
        Some("Some(3)")
    );
    assert_eq!(
        index.find(&None::<i64>).unwrap().map(label).as_deref(),
        Some("None")
    );
}
