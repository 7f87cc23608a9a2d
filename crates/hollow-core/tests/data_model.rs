//! Rust's data model as users write it: every shape serde's derive produces goes through a
//! snapshot and comes back equal, sets stay sets, equal content is an equal record whatever the
//! iteration order, and nothing panics.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use hollow_core::{ReadState, SchemaBuilder, Value, WriteState};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

fn snapshot(w: &mut WriteState) -> ReadState {
    ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap()
}

/// Writes `records` of `T` alone in a state and reads them back.
fn round_trip<T>(records: &[T]) -> Vec<T>
where
    T: Serialize + for<'de> Deserialize<'de> + 'static,
{
    let schema = SchemaBuilder::new().add::<T>().build().unwrap();
    let mut w = WriteState::new(schema);
    let ordinals: Vec<u32> = records.iter().map(|r| w.add(r).unwrap()).collect();
    let state = snapshot(&mut w);
    ordinals
        .iter()
        .map(|&o| state.get::<T>(o).unwrap())
        .collect()
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
struct Empty {}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Marker;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct WithEmpty {
    id: i64,
    nothing: Empty,
    maybe: Option<Empty>,
    marker: Marker,
    many: Vec<Empty>,
}

#[test]
fn empty_structs_are_records_not_panics() {
    let records = vec![
        WithEmpty {
            id: 1,
            nothing: Empty {},
            maybe: None,
            marker: Marker,
            many: vec![],
        },
        WithEmpty {
            id: 2,
            nothing: Empty {},
            maybe: Some(Empty {}),
            marker: Marker,
            many: vec![Empty {}, Empty {}],
        },
    ];
    assert_eq!(round_trip(&records), records);
    assert_eq!(round_trip(&[Empty {}, Empty {}]), vec![Empty {}, Empty {}]);
    // Through a batch too (the reported panic came from a batch's drop).
    let schema = SchemaBuilder::new().add::<Empty>().build().unwrap();
    let mut w = WriteState::new(schema);
    let mut batch = w.batch();
    batch.add(&Empty {}).unwrap();
    drop(batch);
    assert_eq!(w.record_count("Empty").unwrap(), 1);
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Tagged {
    id: i64,
    set: HashSet<String>,
    list: Vec<String>,
    map: HashMap<String, i64>,
    nested: HashMap<i64, HashSet<String>>,
}

fn tagged(id: i64) -> Tagged {
    Tagged {
        id,
        set: (0..20).map(|j| format!("s{j}")).collect(),
        list: vec!["a".into(), "a".into()],
        map: (0..20).map(|j| (format!("k{j}"), j)).collect(),
        nested: (0..5)
            .map(|j| (j, (0..5).map(|k| format!("n{k}")).collect()))
            .collect(),
    }
}

#[test]
fn a_set_beside_a_list_of_the_same_element_stays_a_set() {
    let schema = SchemaBuilder::new().add::<Tagged>().build().unwrap();
    let text = schema.to_string();
    assert!(text.contains("    set: SetOfString\n"), "{text}");
    assert!(text.contains("    list: ListOfString\n"), "{text}");
    assert!(
        text.contains("MapOfI64ToSetOfString = Map<i64, SetOfString>"),
        "{text}"
    );
    let records: Vec<Tagged> = (0..3).map(tagged).collect();
    assert_eq!(round_trip(&records), records);
}

#[test]
fn equal_sets_and_maps_are_equal_records_whatever_their_iteration_order() {
    let schema = SchemaBuilder::new().add::<Tagged>().build().unwrap();
    let mut w = WriteState::new(schema);
    // Each HashSet / HashMap instance has its own random iteration order.
    let first: Vec<u32> = (0..1000).map(|i| w.add(&tagged(i)).unwrap()).collect();
    w.write_snapshot(1).unwrap();
    w.commit_cycle().unwrap();
    let again: Vec<u32> = (0..1000).map(|i| w.add(&tagged(i)).unwrap()).collect();
    assert_eq!(first, again);
    assert!(!w.has_changes(), "the same content published a change");
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Actor {
    id: i64,
    name: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Color {
    Red,
    Green,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Shape {
    Point,
    Circle(f64),
    Rect(i32, i32),
    Labeled { label: String, color: Color },
    Cast(Actor),
    Many(Vec<Shape>),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Drawing {
    id: i64,
    shape: Shape,
    shapes: Vec<Shape>,
    maybe: Option<Shape>,
    color: Color,
}

#[test]
fn enums_with_data_round_trip_and_read_as_values() {
    let schema = SchemaBuilder::new().add::<Drawing>().build().unwrap();
    let text = schema.to_string();
    assert!(
        text.contains("enum Shape {\n    variant: string\n    Circle: f64?\n"),
        "{text}"
    );
    assert!(
        text.contains("Shape::Rect {\n    0: i32\n    1: i32\n}"),
        "{text}"
    );
    assert!(
        text.contains("    color: string\n"),
        "enums without data stay strings: {text}"
    );
    let records = vec![
        Drawing {
            id: 1,
            shape: Shape::Point,
            shapes: vec![
                Shape::Circle(1.5),
                Shape::Rect(2, -3),
                Shape::Labeled {
                    label: "x".into(),
                    color: Color::Green,
                },
                Shape::Cast(Actor {
                    id: 7,
                    name: "Ann".into(),
                }),
                Shape::Many(vec![Shape::Point, Shape::Many(vec![Shape::Circle(0.0)])]),
            ],
            maybe: Some(Shape::Rect(0, 0)),
            color: Color::Red,
        },
        Drawing {
            id: 2,
            shape: Shape::Circle(-0.5),
            shapes: vec![],
            maybe: None,
            color: Color::Green,
        },
    ];
    assert_eq!(round_trip(&records), records);

    let schema = SchemaBuilder::new().add::<Drawing>().build().unwrap();
    let mut w = WriteState::new(schema);
    let o = w.add(&records[1]).unwrap();
    let state = snapshot(&mut w);
    let value: Value = state.get_as("Drawing", o).unwrap();
    assert_eq!(
        value.field("shape"),
        Some(&Value::Map(vec![(
            Value::String("Circle".into()),
            Value::Float(-0.5)
        )]))
    );
    assert_eq!(value.field("color"), Some(&Value::String("Green".into())));
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Expr {
    Lit(i64),
    Neg(Box<Expr>),
    Add(Box<Expr>, Box<Expr>),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Formula {
    expr: Expr,
}

#[test]
fn recursive_enums_round_trip() {
    let records = vec![Formula {
        expr: Expr::Add(
            Box::new(Expr::Lit(1)),
            Box::new(Expr::Neg(Box::new(Expr::Lit(2)))),
        ),
    }];
    assert_eq!(round_trip(&records), records);
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Meters(f64);

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Point(i32, i32);

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Tuples {
    pair: (i32, String),
    point: Point,
    distance: Meters,
    triple: [u8; 3],
    pairs: Vec<(String, Option<i64>)>,
}

#[test]
fn tuples_tuple_structs_and_arrays_round_trip() {
    let schema = SchemaBuilder::new().add::<Tuples>().build().unwrap();
    let text = schema.to_string();
    assert!(text.contains("    pair: TupleOfI32AndString\n"), "{text}");
    assert!(text.contains("    point: Point\n"), "{text}");
    assert!(
        text.contains("    distance: f64\n"),
        "newtypes are transparent: {text}"
    );
    assert!(text.contains("    triple: TupleOf3I32\n"), "{text}");
    let records = vec![Tuples {
        pair: (-1, "one".into()),
        point: Point(3, 4),
        distance: Meters(2.5),
        triple: [1, 2, 255],
        pairs: vec![("a".into(), None), ("b".into(), Some(i64::MIN))],
    }];
    assert_eq!(round_trip(&records), records);
    assert_eq!(round_trip(&[Point(1, 2)]), vec![Point(1, 2)]);
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Wide {
    id: u64,
    big: u128,
    signed: i128,
    maybe: Option<u64>,
}

#[test]
fn u64_u128_and_i128_keep_their_whole_range() {
    let records = vec![
        Wide {
            id: u64::MAX,
            big: u128::MAX,
            signed: i128::MIN,
            maybe: Some(u64::MAX - 1),
        },
        Wide {
            id: 0,
            big: 0,
            signed: i128::MAX,
            maybe: None,
        },
    ];
    assert_eq!(round_trip(&records), records);

    let schema = SchemaBuilder::new()
        .add::<Wide>()
        .primary_key("Wide", &["id"])
        .build()
        .unwrap();
    let mut w = WriteState::new(schema);
    w.add(&records[0]).unwrap();
    let state = snapshot(&mut w);
    let o = state
        .primary_key_index("Wide")
        .unwrap()
        .find(&u64::MAX)
        .unwrap()
        .unwrap();
    let wide = state.object("Wide").unwrap();
    assert_eq!(wide.uint("id").unwrap().get(o), Some(u64::MAX));
    let value: Value = state.get_as("Wide", o).unwrap();
    assert_eq!(value.field("id"), Some(&Value::UInt(u64::MAX)));
    assert_eq!(value.field("big"), Some(&Value::U128(u128::MAX)));
    assert_eq!(value.field("signed"), Some(&Value::I128(i128::MIN)));
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Page<T> {
    number: u32,
    items: Vec<T>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Catalog {
    actors: Page<Actor>,
    colors: Page<Color>,
}

#[test]
fn generic_structs_are_named_after_their_parameters() {
    let schema = SchemaBuilder::new()
        .add::<Catalog>()
        .add::<Page<Actor>>()
        .build()
        .unwrap();
    let text = schema.to_string();
    assert!(text.contains("    actors: PageOfActor\n"), "{text}");
    assert!(text.contains("    colors: PageOfColor\n"), "{text}");
    let catalog = Catalog {
        actors: Page {
            number: 1,
            items: vec![Actor {
                id: 1,
                name: "Ann".into(),
            }],
        },
        colors: Page {
            number: 2,
            items: vec![Color::Green],
        },
    };
    let mut w = WriteState::new(schema);
    let c = w.add(&catalog).unwrap();
    // A generic record added on its own is stored as its instance.
    let p = w.add(&catalog.actors).unwrap();
    assert_eq!(w.record_count("PageOfActor").unwrap(), 1);
    let state = snapshot(&mut w);
    assert_eq!(state.get::<Catalog>(c).unwrap(), catalog);
    assert_eq!(state.get::<Page<Actor>>(p).unwrap(), catalog.actors);
    assert_eq!(state.get::<Page<Color>>(0).unwrap(), catalog.colors);
    assert!(
        state.get::<Page<Marker>>(0).is_err(),
        "there is no PageOfMarker"
    );
}

// ----- generated types -----

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Event {
    Tick,
    Price(i64),
    Move(i32, i32),
    Rename { from: String, to: Option<String> },
    Batch(Vec<Event>),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Generated {
    id: u64,
    events: Vec<Event>,
    pair: (bool, Option<Color>),
    tags: BTreeSet<String>,
    hashed: HashSet<(i32, String)>,
    scores: HashMap<String, Vec<Option<i16>>>,
    nested: BTreeMap<i32, BTreeSet<Color>>,
    last: Option<Event>,
    wide: i128,
}

fn event() -> impl Strategy<Value = Event> {
    let leaf = prop_oneof![
        Just(Event::Tick),
        any::<i64>().prop_map(Event::Price),
        (any::<i32>(), any::<i32>()).prop_map(|(a, b)| Event::Move(a, b)),
        ("\\PC{0,6}", prop::option::of("[a-c]{0,3}"))
            .prop_map(|(from, to)| Event::Rename { from, to }),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(Event::Batch)
    })
}

fn color() -> impl Strategy<Value = Color> {
    prop_oneof![Just(Color::Red), Just(Color::Green)]
}

fn generated() -> impl Strategy<Value = Generated> {
    (
        any::<u64>(),
        prop::collection::vec(event(), 0..4),
        (any::<bool>(), prop::option::of(color())),
        prop::collection::btree_set("[a-d]{0,2}", 0..4),
        prop::collection::hash_set((0..3i32, "[xy]{0,2}"), 0..4),
        prop::collection::hash_map(
            "[a-c]{0,2}",
            prop::collection::vec(prop::option::of(any::<i16>()), 0..3),
            0..4,
        ),
        prop::collection::btree_map(
            any::<i32>(),
            prop::collection::btree_set(color(), 0..3),
            0..3,
        ),
        prop::option::of(event()),
        any::<i128>(),
    )
        .prop_map(
            |(id, events, pair, tags, hashed, scores, nested, last, wide)| Generated {
                id,
                events,
                pair,
                tags,
                hashed,
                scores,
                nested,
                last,
                wide,
            },
        )
}

/// The same content in other instances: sets and maps rebuilt, so they iterate in another
/// order.
fn rebuilt(g: &Generated) -> Generated {
    let mut hashed: Vec<_> = g.hashed.iter().cloned().collect();
    hashed.reverse();
    let mut scores: Vec<_> = g
        .scores
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    scores.reverse();
    Generated {
        hashed: hashed.into_iter().collect(),
        scores: scores.into_iter().collect(),
        ..g.clone()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generated_types_round_trip_in_any_order(records in prop::collection::vec(generated(), 1..6)) {
        let schema = SchemaBuilder::new().add::<Generated>().build().unwrap();
        let mut w = WriteState::new(schema);
        let ordinals: Vec<u32> = records.iter().map(|r| w.add(r).unwrap()).collect();
        for (r, &o) in records.iter().zip(&ordinals) {
            prop_assert_eq!(w.add(&rebuilt(r)).unwrap(), o, "equal content, another record");
        }
        let state = snapshot(&mut w);
        for (r, &o) in records.iter().zip(&ordinals) {
            prop_assert_eq!(&state.get::<Generated>(o).unwrap(), r);
            let _: Value = state.get_as("Generated", o).unwrap();
        }

        // A delta to the next state (every other record kept, one new) and back.
        w.commit_cycle().unwrap();
        let kept: Vec<&Generated> = records.iter().step_by(2).collect();
        for r in &kept {
            w.add(&rebuilt(r)).unwrap();
        }
        let mut added = records[0].clone();
        added.id = added.id.wrapping_add(1);
        added.events.push(Event::Batch(vec![Event::Tick, Event::Price(-1)]));
        let new = w.add(&added).unwrap();
        let delta = w.write_delta(1, 2).unwrap();
        let reverse = w.write_reverse_delta(2, 1).unwrap();
        let next = state.apply_delta(delta.into()).unwrap();
        prop_assert_eq!(&next.get::<Generated>(new).unwrap(), &added);
        let mut read: Vec<Generated> = next.iter::<Generated>().unwrap().map(Result::unwrap).collect();
        let mut expected: Vec<Generated> = kept.into_iter().cloned().chain([added]).collect();
        read.sort_by_key(|g| format!("{g:?}"));
        expected.sort_by_key(|g| format!("{g:?}"));
        prop_assert_eq!(read, expected);
        let back = next.apply_delta(reverse.into()).unwrap();
        for (r, &o) in records.iter().zip(&ordinals) {
            prop_assert_eq!(&back.get::<Generated>(o).unwrap(), r);
        }
    }
}
