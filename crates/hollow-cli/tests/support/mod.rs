//! A dataset made by the producer for the CLI's tests, and ways to run the `hollow` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use hollow::core::SchemaBuilder;
use hollow::producer::{Producer, ProducerBuilder};
use serde::{Deserialize, Serialize};

/// A studio: a record without a primary key, referenced from movies.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Studio {
    pub name: String,
}

/// A movie, keyed by `id`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Movie {
    pub id: i64,
    pub title: String,
    pub year: i32,
    pub genres: Vec<String>,
    pub studio: Studio,
}

pub fn movie(id: i64, title: &str, year: i32, studio: &str) -> Movie {
    Movie {
        id,
        title: title.into(),
        year,
        genres: vec!["Drama".into()],
        studio: Studio {
            name: studio.into(),
        },
    }
}

/// The movies of the three versions the dataset holds.
pub fn versions() -> [Vec<Movie>; 3] {
    let v1 = vec![
        movie(1, "Heat", 1995, "Warner"),
        movie(2, "Ran", 1985, "Toho"),
        movie(3, "Up", 2009, "Pixar"),
        // Record contents are untrusted: the explorer must show this as text.
        movie(
            4,
            "<script>alert(1)</script><img src=x onerror=alert(2)>",
            2000,
            "A&B \"Films\"",
        ),
    ];
    // Version 2: Ran's year changes, Up is removed, Jaws is added.
    let mut v2 = v1.clone();
    v2[1].year = 1986;
    v2.remove(2);
    v2.push(movie(5, "Jaws", 1975, "Universal"));
    // Version 3: Heat's studio changes.
    let mut v3 = v2.clone();
    v3[0].studio.name = "Regency".into();
    [v1, v2, v3]
}

/// A local folder holding a dataset of three versions (announced: 3), and its producer.
pub struct Dataset {
    pub dir: tempfile::TempDir,
    pub producer: Producer,
}

impl Dataset {
    /// The dataset's folder.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("movies")
    }

    pub fn arg(&self) -> String {
        self.path().display().to_string()
    }

    /// Publishes `movies` as the next version.
    pub async fn publish(&mut self, movies: &[Movie]) {
        self.producer
            .run_cycle(|w| movies.iter().try_for_each(|m| w.add(m).map(|_| ())))
            .await
            .expect("cycle");
    }
}

/// The dataset's schema: `Movie` keyed by `id`.
pub fn schema() -> hollow::core::Schema {
    SchemaBuilder::new()
        .add::<Movie>()
        .primary_key("Movie", &["id"])
        .build()
        .expect("schema")
}

/// A producer of `movies` into `store` under `prefix` that has published the three versions.
pub async fn producer_with_versions(
    store: Arc<dyn hollow::object_store::ObjectStore>,
    prefix: &str,
) -> Producer {
    let mut producer = ProducerBuilder::new(store, prefix, schema())
        .build()
        .await
        .expect("producer");
    for v in versions() {
        producer
            .run_cycle(|w| v.iter().try_for_each(|m| w.add(m).map(|_| ())))
            .await
            .expect("cycle");
    }
    producer
}

/// A local folder holding the three versions.
pub async fn dataset() -> Dataset {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        hollow::object_store::local::LocalFileSystem::new_with_prefix(dir.path()).expect("store"),
    );
    let producer = producer_with_versions(store, "movies").await;
    Dataset { dir, producer }
}

/// The `hollow` binary.
pub fn hollow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hollow"))
}

/// Runs `hollow ARGS`: (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    run_with_env(args, &[])
}

/// Runs `hollow ARGS` with the environment variables `env` set: (exit code, stdout, stderr).
pub fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = hollow()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("runs");
    (
        status.code().expect("exit code"),
        String::from_utf8(stdout).expect("utf-8"),
        String::from_utf8(stderr).expect("utf-8"),
    )
}

/// The blob files of the dataset whose names start with `kind/` (`snapshot`, `delta`).
pub fn blob_files(dataset: &Path, kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dataset.join(kind))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}
