//! Hash indexes agree with a scan of the records, on a snapshot and after every delta (updated,
//! not rebuilt), for single values, values through references and lists, and composite keys.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use hollow_core::{Error, ReadState, SchemaBuilder, WriteState};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Actor {
    id: i64,
    name: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Studio {
    name: String,
    staff: Vec<Actor>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Movie {
    id: i64,
    country: String,
    year: i32,
    genres: Vec<String>,
    cast: Vec<Actor>,
    sequel_of: Option<i64>,
    /// A reference that may be null, then a field of the record it names.
    lead: Option<Actor>,
    /// A reference, then a list of references, then a field.
    studio: Studio,
}

fn schema() -> hollow_core::Schema {
    SchemaBuilder::new()
        .add::<Movie>()
        .primary_key("Movie", &["id"])
        .build()
        .unwrap()
}

const INDEXES: &[&[&str]] = &[
    &["country"],
    &["cast.id"],
    &["genres"],
    &["country", "year"],
    &["sequel_of"],
    &["lead.id"],
    &["studio.staff.id"],
];

fn add_indexes(state: &mut ReadState) {
    for fields in INDEXES {
        state.add_hash_index("Movie", fields).unwrap();
    }
}

/// Movie ids per key, by scanning the records.
fn expected(movies: &BTreeMap<i64, Movie>, fields: &[&str]) -> BTreeMap<String, BTreeSet<i64>> {
    let mut out: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for m in movies.values() {
        let keys: Vec<String> = match fields {
            ["country"] => vec![m.country.clone()],
            ["cast.id"] => m.cast.iter().map(|a| a.id.to_string()).collect(),
            ["genres"] => m.genres.clone(),
            ["country", "year"] => vec![format!("{}/{}", m.country, m.year)],
            ["sequel_of"] => m.sequel_of.iter().map(|s| s.to_string()).collect(),
            ["lead.id"] => m.lead.iter().map(|a| a.id.to_string()).collect(),
            ["studio.staff.id"] => m.studio.staff.iter().map(|a| a.id.to_string()).collect(),
            _ => unreachable!(),
        };
        for k in keys {
            out.entry(k).or_default().insert(m.id);
        }
    }
    out
}

fn found(state: &ReadState, fields: &[&str], key: &str) -> BTreeSet<i64> {
    let index = state.hash_index("Movie", fields).unwrap();
    let ordinals = match fields {
        ["country"] | ["genres"] => index.find(key).unwrap(),
        ["cast.id"] | ["sequel_of"] | ["lead.id"] | ["studio.staff.id"] => {
            index.find(&key.parse::<i64>().unwrap()).unwrap()
        }
        ["country", "year"] => {
            let (c, y) = key.split_once('/').unwrap();
            index.find(&(c, y.parse::<i32>().unwrap())).unwrap()
        }
        _ => unreachable!(),
    };
    assert!(ordinals.windows(2).all(|w| w[0] < w[1]), "ordinals ascend");
    let ids = state.object("Movie").unwrap().int("id").unwrap();
    ordinals.iter().map(|&o| ids.get(o).unwrap()).collect()
}

fn check(state: &ReadState, movies: &BTreeMap<i64, Movie>) -> Result<(), TestCaseError> {
    for fields in INDEXES {
        let want = expected(movies, fields);
        for (key, ids) in &want {
            prop_assert_eq!(&found(state, fields, key), ids, "{:?} {}", fields, key);
        }
        let index = state.hash_index("Movie", fields).unwrap();
        prop_assert_eq!(index.key_count(), want.len(), "{:?}", fields);
    }
    // Keys no record has.
    prop_assert!(found(state, &["cast.id"], "-1").is_empty());
    prop_assert!(found(state, &["country"], "nowhere").is_empty());
    Ok(())
}

fn actor(id: i64) -> Actor {
    Actor {
        id,
        name: format!("Actor {id}"),
    }
}

fn movie() -> impl Strategy<Value = Movie> {
    (
        (
            0..40i64,
            prop::sample::select(vec!["US", "FR", "JP", "IN"]),
            1990..1994i32,
            prop::collection::vec(prop::sample::select(vec!["drama", "noir", "epic"]), 0..3),
            prop::collection::vec(0..12i64, 0..4),
            prop::option::of(0..40i64),
        ),
        (
            prop::option::of(0..6i64),
            prop::sample::select(vec!["Lux", "Arc"]),
            prop::collection::vec(0..8i64, 0..3),
        ),
    )
        .prop_map(
            |((id, country, year, genres, cast, sequel_of), (lead, studio, staff))| Movie {
                id,
                country: country.into(),
                year,
                genres: genres.into_iter().map(String::from).collect(),
                cast: cast.into_iter().map(actor).collect(),
                sequel_of,
                lead: lead.map(actor),
                studio: Studio {
                    name: studio.into(),
                    staff: staff.into_iter().map(actor).collect(),
                },
            },
        )
}

fn write(w: &mut WriteState, movies: &BTreeMap<i64, Movie>) {
    for m in movies.values() {
        w.add(m).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn hash_indexes_follow_every_delta(
        first in prop::collection::vec(movie(), 0..40),
        cycles in prop::collection::vec(prop::collection::vec(movie(), 0..15), 1..6),
    ) {
        let mut movies: BTreeMap<i64, Movie> = first.into_iter().map(|m| (m.id, m)).collect();
        let mut w = WriteState::new(schema());
        write(&mut w, &movies);
        let mut state = ReadState::from_snapshot(Bytes::from(w.write_snapshot(1).unwrap())).unwrap();
        w.commit_cycle().unwrap();
        add_indexes(&mut state);
        check(&state, &movies)?;
        for (k, changes) in cycles.into_iter().enumerate() {
            let version = k as u64 + 2;
            for (i, m) in changes.into_iter().enumerate() {
                if i % 3 == 2 {
                    movies.remove(&m.id);
                } else {
                    movies.insert(m.id, m);
                }
            }
            write(&mut w, &movies);
            let delta = w.write_delta(version - 1, version).unwrap();
            let reverse = w.write_reverse_delta(version, version - 1).unwrap();
            w.commit_cycle().unwrap();
            let next = state.apply_delta(Bytes::from(delta)).unwrap();
            check(&next, &movies)?;
            // And back: the reverse delta's state has the indexes of the state before.
            let back = next.apply_delta(Bytes::from(reverse)).unwrap();
            for fields in INDEXES {
                let (a, b) = (state.hash_index("Movie", fields).unwrap(), back.hash_index("Movie", fields).unwrap());
                prop_assert_eq!(a.key_count(), b.key_count());
            }
            state = next;
        }
    }
}

#[test]
fn paths_that_do_not_resolve_and_keys_of_another_kind_are_errors() {
    let mut w = WriteState::new(schema());
    w.add(&Movie {
        id: 1,
        country: "US".into(),
        year: 1995,
        genres: vec![],
        cast: vec![],
        sequel_of: None,
        lead: None,
        studio: Studio {
            name: "Lux".into(),
            staff: vec![],
        },
    })
    .unwrap();
    let mut state = ReadState::from_snapshot(Bytes::from(w.write_snapshot(1).unwrap())).unwrap();
    for bad in ["nope", "cast", "cast.nope", "country.x", "", "cast.id.x"] {
        let e = state.add_hash_index("Movie", &[bad]).unwrap_err();
        assert!(matches!(e, Error::UnknownField { .. }), "{bad}: {e}");
    }
    assert!(state.add_hash_index("ListOfActor", &["id"]).is_err());
    state.add_hash_index("Movie", &["country"]).unwrap();
    let index = state.hash_index("Movie", &["country"]).unwrap();
    assert_eq!(index.find("US").unwrap().len(), 1);
    assert!(
        index.find(&5i64).is_err(),
        "an integer key for a string field"
    );
    assert!(index.find(&("US", 1)).is_err(), "two fields for one");
    assert!(state.hash_index("Movie", &["year"]).is_err(), "not added");
}
