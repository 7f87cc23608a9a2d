//! The `movies` benchmark dataset (defined in `docs/movies-dataset.md`): a deterministic generator
//! that any implementation can reproduce bit for bit, so sizes and timings compare on the same
//! work.

use serde::{Deserialize, Serialize};

/// splitmix64, as the dataset spec defines it.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `next() % n`.
    pub fn pick(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Country codes, in spec order.
pub const COUNTRIES: [&str; 20] = [
    "US", "GB", "FR", "DE", "ES", "IT", "JP", "KR", "IN", "BR", "MX", "CA", "AU", "SE", "NO", "DK",
    "NL", "PL", "TR", "AR",
];

/// Genres, in spec order.
pub const GENRES: [&str; 16] = [
    "Drama",
    "Comedy",
    "Action",
    "Thriller",
    "Horror",
    "Romance",
    "Documentary",
    "Animation",
    "Family",
    "Fantasy",
    "SciFi",
    "Crime",
    "Mystery",
    "Western",
    "Musical",
    "War",
];

/// An actor. Equal ids mean equal actors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    /// Actor id.
    pub id: i64,
    /// `"Actor <id>"`.
    pub name: String,
}

/// A movie; primary key `id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Movie {
    /// Primary key.
    pub id: i64,
    /// `"Title <n>"`.
    pub title: String,
    /// 1920..=2024.
    pub release_year: i32,
    /// 60..=179.
    pub runtime_minutes: i32,
    /// 0.0..=9.9 in tenths.
    pub rating: f32,
    /// One of [`COUNTRIES`].
    pub country: String,
    /// One to three of [`GENRES`].
    pub genres: Vec<String>,
    /// Zero to five actors.
    pub cast: Vec<Actor>,
}

impl std::fmt::Display for Movie {
    /// The reference generator's text form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cast: Vec<String> = self
            .cast
            .iter()
            .map(|a| format!("Actor{{id={}, name=\"{}\"}}", a.id, a.name))
            .collect();
        write!(
            f,
            "Movie{{id={}, title=\"{}\", release_year={}, runtime_minutes={}, rating={:.1}, country={}, genres=[{}], cast=[{}]}}",
            self.id,
            self.title,
            self.release_year,
            self.runtime_minutes,
            self.rating,
            self.country,
            self.genres.join(", "),
            cast.join(", ")
        )
    }
}

/// Draws movie index `i` (id `i + 1`) from `r`.
pub fn draw(r: &mut SplitMix64, i: u64) -> Movie {
    let id = i as i64 + 1;
    let title = format!("Title {}", r.pick(200_000));
    let release_year = 1920 + r.pick(105) as i32;
    let runtime_minutes = 60 + r.pick(120) as i32;
    let rating = r.pick(100) as f32 / 10.0;
    let country = COUNTRIES[r.pick(20) as usize].to_string();
    let g = 1 + r.pick(3);
    let genres = (0..g)
        .map(|_| GENRES[r.pick(16) as usize].to_string())
        .collect();
    let c = r.pick(6);
    let cast = (0..c)
        .map(|_| {
            let a = r.pick(200_000) as i64;
            Actor {
                id: a,
                name: format!("Actor {a}"),
            }
        })
        .collect();
    Movie {
        id,
        title,
        release_year,
        runtime_minutes,
        rating,
        country,
        genres,
        cast,
    }
}

/// State 1: movies `0..n`, seed 42.
pub fn state1(n: u64) -> Vec<Movie> {
    let mut r = SplitMix64::new(42);
    (0..n).map(|i| draw(&mut r, i)).collect()
}

/// The change a cycle makes to a movie it touches: a new year and rating drawn from `r`.
fn change(m: &mut Movie, r: &mut SplitMix64) {
    m.release_year = 1920 + r.pick(105) as i32;
    m.rating = r.pick(100) as f32 / 10.0;
}

/// Applies cycle `k` (k ≥ 1) to `movies` (sorted by id), turning state k into state k+1.
pub fn apply_cycle(movies: &mut Vec<Movie>, n: u64, k: u64) {
    let mut r = SplitMix64::new(1000 + k);
    for m in movies.iter_mut() {
        if m.id as u64 % 100 == k % 100 {
            change(m, &mut r);
        }
    }
    let per = n / 1000;
    for id in n + 1 + (k - 1) * per..=n + k * per {
        movies.push(draw(&mut r, id - 1));
    }
    movies.drain(..per.min(movies.len() as u64) as usize);
}

/// Calls `f` with every movie of state `k + 1` (k = 0: state 1; k = 1: state 2), in id order,
/// generated as it goes: the same movies as [`state1`] and [`apply_cycle`] give, without
/// holding them (a producer's memory, measured alone, is then its own).
pub fn for_each_in_state<E>(
    n: u64,
    k: u64,
    mut f: impl FnMut(&Movie) -> Result<(), E>,
) -> Result<(), E> {
    assert!(k <= 1, "streamed states are 1 and 2");
    let mut movies = SplitMix64::new(42);
    let mut changes = SplitMix64::new(1000 + k);
    let per = if k == 0 { 0 } else { n / 1000 };
    for i in 0..n {
        let mut m = draw(&mut movies, i);
        if k == 1 && m.id as u64 % 100 == 1 {
            change(&mut m, &mut changes);
        }
        if i >= per {
            f(&m)?;
        }
    }
    for id in n + 1..=n + per {
        f(&draw(&mut changes, id - 1))?;
    }
    Ok(())
}

/// The changes between states 1 and 2, as an application would know them: the movies to
/// upsert and the ids to delete, in id order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// Movies new or changed.
    pub upserts: Vec<Movie>,
    /// Ids of movies gone.
    pub deletes: Vec<i64>,
}

/// The changes from state 1 to state 2 and those from state 2 back to state 1, generated as
/// [`for_each_in_state`] generates the states: only the changed movies are held (about 1%),
/// never a whole state.
pub fn changes_between_states(n: u64) -> (Changes, Changes) {
    let (mut forward, mut back) = (Changes::default(), Changes::default());
    let mut movies = SplitMix64::new(42);
    let mut changes = SplitMix64::new(1001);
    let per = n / 1000;
    for i in 0..n {
        let before = draw(&mut movies, i);
        let mut after = before.clone();
        if before.id as u64 % 100 == 1 {
            change(&mut after, &mut changes);
        }
        if i < per {
            forward.deletes.push(before.id);
            back.upserts.push(before);
        } else if after != before {
            forward.upserts.push(after);
            back.upserts.push(before);
        }
    }
    for id in n + 1..=n + per {
        let added = draw(&mut changes, id - 1);
        back.deletes.push(added.id);
        forward.upserts.push(added);
    }
    (forward, back)
}

/// The check value of the spec: Σ (id × 31 + release_year + cast length).
pub fn checksum<'a>(movies: impl IntoIterator<Item = &'a Movie>) -> i64 {
    movies
        .into_iter()
        .map(|m| m.id * 31 + m.release_year as i64 + m.cast.len() as i64)
        .sum()
}

/// The schema of the dataset: `Movie` with primary key `id`.
pub fn schema() -> hollow_core::Result<hollow_core::Schema> {
    hollow_core::SchemaBuilder::new()
        .add::<Movie>()
        .primary_key("Movie", &["id"])
        .build()
}

/// The ids of the spec's lookup benchmark: `count` draws of `pick(n) + 1` with seed 7.
pub fn lookup_ids(n: u64, count: usize) -> Vec<i64> {
    let mut r = SplitMix64::new(7);
    (0..count).map(|_| r.pick(n) as i64 + 1).collect()
}
