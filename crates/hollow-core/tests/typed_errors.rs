//! Errors a caller branches on carry data, not prose.

use hollow_core::{Error, ReadState, SchemaBuilder, WriteState};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Movie {
    id: i64,
    country: String,
}

#[derive(Serialize, Deserialize)]
struct Note {
    text: String,
}

fn snapshot() -> Vec<u8> {
    let schema = SchemaBuilder::new()
        .add::<Movie>()
        .add::<Note>()
        .primary_key("Movie", &["id"])
        .build()
        .unwrap();
    let mut w = WriteState::new(schema);
    w.add(&Movie {
        id: 1,
        country: "JP".into(),
    })
    .unwrap();
    w.add(&Note { text: "x".into() }).unwrap();
    w.write_snapshot(1).unwrap()
}

#[test]
fn index_errors_name_the_type_and_fields() {
    let state = ReadState::from_snapshot(snapshot().into()).unwrap();
    assert_eq!(
        state.primary_key_index("Note").unwrap_err(),
        Error::NoPrimaryKey {
            type_name: "Note".into()
        }
    );
    assert_eq!(
        state.hash_index("Movie", &["country"]).unwrap_err(),
        Error::NoHashIndex {
            type_name: "Movie".into(),
            fields: vec!["country".into()]
        }
    );
    let bare = ReadState::from_snapshot_without_indexes(snapshot().into()).unwrap();
    assert_eq!(
        bare.primary_key_index("Movie").unwrap_err(),
        Error::IndexesNotLoaded {
            type_name: "Movie".into()
        }
    );
}

#[test]
fn staging_a_record_without_a_key_says_which_type() {
    let schema = SchemaBuilder::new().add::<Note>().build().unwrap();
    let mut w = WriteState::new(schema);
    assert_eq!(
        w.stage(&Note { text: "x".into() }).unwrap_err(),
        Error::NoPrimaryKey {
            type_name: "Note".into()
        }
    );
}
