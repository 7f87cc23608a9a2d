//! The `movies` generator matches the check values of `docs/movies-dataset.md`, and a snapshot
//! of it reads back identically.

use hollow::core::{ReadState, WriteState};
use hollow::movies::{self, Movie};

#[test]
fn generator_matches_the_reference_check_values() {
    let n = 100_000;
    let mut state = movies::state1(n);
    let first: Vec<String> = state.iter().take(3).map(|m| m.to_string()).collect();
    assert_eq!(
        first,
        [
            r#"Movie{id=1, title="Title 75413", release_year=1981, runtime_minutes=78, rating=6.4, country=MX, genres=[Western], cast=[Actor{id=82005, name="Actor 82005"}, Actor{id=68974, name="Actor 68974"}]}"#,
            r#"Movie{id=2, title="Title 94207", release_year=1996, runtime_minutes=98, rating=9.5, country=NL, genres=[Romance, Western, Animation], cast=[]}"#,
            r#"Movie{id=3, title="Title 16872", release_year=1966, runtime_minutes=105, rating=2.9, country=AU, genres=[Romance], cast=[Actor{id=112263, name="Actor 112263"}]}"#,
        ]
    );
    assert_eq!(movies::checksum(&state), 155_199_003_491);
    movies::apply_cycle(&mut state, n, 1);
    assert_eq!(movies::checksum(&state), 155_509_003_616);
    assert_eq!(state.len(), n as usize);
}

#[test]
fn snapshot_of_the_dataset_reads_back_identically() {
    let n = 20_000;
    let data = movies::state1(n);
    let mut w = WriteState::new(movies::schema().unwrap());
    for m in &data {
        w.add(m).unwrap();
    }
    let state = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
    assert_eq!(state.record_count("Movie").unwrap(), n);
    let index = state.primary_key_index("Movie").unwrap();
    let movies_reader = state.object("Movie").unwrap();
    let title = movies_reader.string("title").unwrap();
    let year = movies_reader.int("release_year").unwrap();
    for m in &data {
        let o = index.find(&m.id).unwrap().expect("every id is indexed");
        assert_eq!(state.get::<Movie>(o).unwrap(), *m);
        assert_eq!(title.get(o), Some(m.title.as_str()));
        assert_eq!(year.get(o), Some(m.release_year as i64));
    }
    assert_eq!(index.find(&0i64), Ok(None));
    assert_eq!(index.find(&(n as i64 + 1)), Ok(None));
    let read_back: Vec<Movie> = state.iter::<Movie>().unwrap().map(Result::unwrap).collect();
    assert_eq!(movies::checksum(&read_back), movies::checksum(&data));
    // Deduplication: at most 20 countries, 16 genres in the genre-list dictionary.
    assert!(state.record_count("Actor").unwrap() <= 200_000);
}

/// At N = 100,000 the state is large enough for the writer and the delta apply to spread
/// types over cores: both must give back exactly the dataset, in the spec's two states.
#[test]
fn the_dataset_goes_through_a_snapshot_and_a_delta_unchanged() {
    let n = 100_000;
    let by_id = |mut movies: Vec<Movie>| {
        movies.sort_by_key(|m| m.id);
        movies
    };
    let read = |state: &ReadState| -> Vec<Movie> {
        by_id(state.iter::<Movie>().unwrap().map(Result::unwrap).collect())
    };
    let mut data = movies::state1(n);
    let mut w = WriteState::new(movies::schema().unwrap());
    w.add_all(&data).unwrap();
    let v1 = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
    assert!(read(&v1) == data, "state 1 reads back as the dataset");
    assert_eq!(movies::checksum(&read(&v1)), 155_199_003_491);

    w.commit_cycle().unwrap();
    movies::apply_cycle(&mut data, n, 1);
    w.add_all(&data).unwrap();
    let v2 = v1.apply_delta(w.write_delta(1, 2).unwrap().into()).unwrap();
    assert!(
        read(&v2) == by_id(data.clone()),
        "state 2 reads back as the dataset"
    );
    assert_eq!(movies::checksum(&data), 155_509_003_616);
    let snapshot2 = ReadState::from_snapshot(w.write_snapshot(2).unwrap().into()).unwrap();
    assert!(v2.same_content_as(&snapshot2));
}

/// The streamed states are the generated ones, movie for movie.
/// The streamed change set is the difference of the two states, computed whole.
#[test]
fn streamed_changes_are_the_difference_of_the_states() {
    let n = 20_000;
    let before = movies::state1(n);
    let mut after = before.clone();
    movies::apply_cycle(&mut after, n, 1);
    let differences = |from: &[Movie], to: &[Movie]| {
        let old: std::collections::HashMap<i64, &Movie> = from.iter().map(|m| (m.id, m)).collect();
        let new: std::collections::HashSet<i64> = to.iter().map(|m| m.id).collect();
        movies::Changes {
            upserts: to
                .iter()
                .filter(|m| old.get(&m.id) != Some(m))
                .cloned()
                .collect(),
            deletes: from
                .iter()
                .filter(|m| !new.contains(&m.id))
                .map(|m| m.id)
                .collect(),
        }
    };
    let (forward, back) = movies::changes_between_states(n);
    assert_eq!(forward, differences(&before, &after));
    assert_eq!(back, differences(&after, &before));
    assert!(forward.upserts.len() > 100 && forward.deletes.len() == 20);
}

#[test]
fn streamed_states_are_the_generated_ones() {
    let n = 20_000;
    let mut state = movies::state1(n);
    for k in 0..2 {
        if k == 1 {
            movies::apply_cycle(&mut state, n, 1);
        }
        let mut streamed: Vec<Movie> = Vec::new();
        movies::for_each_in_state(n, k, |m| {
            streamed.push(m.clone());
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(streamed, state, "state {}", k + 1);
    }
}
