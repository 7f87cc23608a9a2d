//! An incremental cycle large enough that its upserts are interned on a worker thread, tape
//! after tape, while later ones are serialized: every way a key can be touched twice in one
//! cycle ends as the last touch says, and the state is the one a full cycle of the same final
//! dataset publishes.

use std::collections::BTreeMap;
use std::sync::Arc;

use hollow::movies::{self, Movie};
use hollow::producer::{Producer, ProducerBuilder};
use object_store::memory::InMemory;

/// Enough movies for many 2 MiB tapes.
const N: u64 = 30_000;

async fn producer() -> Producer {
    ProducerBuilder::new(
        Arc::new(InMemory::new()),
        "movies",
        movies::schema().unwrap(),
    )
    .build()
    .await
    .unwrap()
}

/// What a cycle does to one key, in order.
enum Touch {
    Upsert(Movie),
    Delete(i64),
}

#[tokio::test]
async fn a_cycle_of_many_tapes_ends_as_its_last_touch_of_each_key_says() {
    let data = movies::state1(N);
    let mut incremental = producer().await;
    incremental
        .run_cycle(|w| data.iter().try_for_each(|m| w.add(m)))
        .await
        .unwrap();

    let renamed = |m: &Movie, how: &str| Movie {
        title: format!("{} ({how})", m.title),
        ..m.clone()
    };
    let mut touches = Vec::new();
    for m in &data {
        touches.push(Touch::Upsert(renamed(m, "new")));
    }
    for m in &data {
        match m.id % 10 {
            // Upserted again: the second wins.
            1 => touches.push(Touch::Upsert(renamed(m, "again"))),
            // Back to what was announced: the announced record stays.
            2 => touches.push(Touch::Upsert(m.clone())),
            // Deleted after its upsert.
            3 => touches.push(Touch::Delete(m.id)),
            // Deleted, then upserted as it was announced.
            4 => {
                touches.push(Touch::Delete(m.id));
                touches.push(Touch::Upsert(m.clone()));
            }
            _ => {}
        }
    }
    // New keys, one of them deleted again.
    for id in N as i64 + 1..=N as i64 + 500 {
        let m = Movie {
            id,
            ..renamed(&data[id as usize % data.len()], "added")
        };
        touches.push(Touch::Upsert(m));
    }
    touches.push(Touch::Delete(N as i64 + 7));

    let mut expected: BTreeMap<i64, Movie> = data.iter().map(|m| (m.id, m.clone())).collect();
    for t in &touches {
        match t {
            Touch::Upsert(m) => expected.insert(m.id, m.clone()),
            Touch::Delete(id) => expected.remove(id),
        };
    }
    incremental
        .run_incremental_cycle(|c| {
            for t in &touches {
                match t {
                    Touch::Upsert(m) => c.upsert(m)?,
                    Touch::Delete(id) => {
                        assert!(c.delete::<Movie, _>(id)?, "{id} was there");
                    }
                }
            }
            Ok(())
        })
        .await
        .unwrap();

    let state = incremental.state().unwrap();
    let index = state.primary_key_index("Movie").unwrap();
    assert_eq!(
        state.object("Movie").unwrap().len() as usize,
        expected.len()
    );
    for (id, movie) in &expected {
        let ordinal = index.find(id).unwrap().unwrap_or_else(|| panic!("{id}"));
        assert_eq!(&state.get::<Movie>(ordinal).unwrap(), movie);
    }
    for gone in [3, 13, N as i64 + 7] {
        assert_eq!(index.find(&gone).unwrap(), None);
    }

    // Nothing else is left behind: every type holds as many records as after a full cycle of
    // the final dataset (ordinals may differ).
    let mut full = producer().await;
    full.run_cycle(|w| expected.values().try_for_each(|m| w.add(m)))
        .await
        .unwrap();
    let full = full.state().unwrap();
    for t in state.schema().types() {
        assert_eq!(
            state.record_count(t.name()).unwrap(),
            full.record_count(t.name()).unwrap(),
            "{}",
            t.name()
        );
    }
}
