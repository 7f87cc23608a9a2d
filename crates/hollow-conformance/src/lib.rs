//! # hollow-conformance
//!
//! Checks that a blob store does what hollow relies on, before a dataset is trusted to it:
//! create-only writes, compare-and-swap of the announcement, conditional reads, listing,
//! deletes, and a producer and consumer round trip with two producers racing. S3 look-alikes
//! exist that accept conditional writes and silently ignore them; on such a store two
//! producers could both announce, and this suite says so.
//!
//! Every check works under a fresh sub-prefix (`<prefix>/hollow-conformance-<random>/`) and
//! deletes only the objects it wrote there.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! let store = Arc::new(object_store::memory::InMemory::new());
//! let report = hollow_conformance::check_store(store, "datasets").await;
//! assert!(report.passed(), "{report}");
//! assert!(report.supports_compare_and_swap());
//! # });
//! ```
//!
//! For S3, MinIO or SeaweedFS, the `check-store` example runs the suite against a bucket from
//! the usual `AWS_*` variables:
//! `cargo run -p hollow-conformance --features aws --example check-store -- BUCKET [PREFIX]`.
//!
//! The crate's tests run hollow's producer and consumer end to end against every store kind
//! (in-memory, a local folder, a real S3 wire-protocol server in the test process).

#![warn(missing_docs)]

#[cfg(feature = "s3-server")]
pub mod s3_server;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use hollow_consumer::ConsumerBuilder;
use hollow_core::SchemaBuilder;
use hollow_producer::{CycleOutcome, Producer, ProducerBuilder};
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutPayload, UpdateVersion};

/// How one check went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The store does what hollow relies on.
    Passed,
    /// The store lacks the capability; hollow works with less (says how).
    Unsupported(String),
    /// The store does something hollow cannot work with (says what).
    Failed(String),
}

/// One check and how it went.
#[derive(Clone, Debug)]
pub struct CheckResult {
    /// What was checked.
    pub name: &'static str,
    /// How it went.
    pub outcome: Outcome,
}

/// Every check's result for one store.
#[derive(Clone, Debug)]
pub struct Report {
    /// The store checked, and the prefix.
    pub store: String,
    /// One per check, in order.
    pub results: Vec<CheckResult>,
}

impl Report {
    /// True when no check failed (some may be unsupported).
    pub fn passed(&self) -> bool {
        !self
            .results
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Failed(_)))
    }

    /// True when the store compares and swaps, so several producers may share a dataset.
    pub fn supports_compare_and_swap(&self) -> bool {
        self.results
            .iter()
            .any(|r| r.name == COMPARE_AND_SWAP && r.outcome == Outcome::Passed)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "hollow store conformance of {}", self.store)?;
        for r in &self.results {
            match &r.outcome {
                Outcome::Passed => writeln!(f, "  ok           {}", r.name)?,
                Outcome::Unsupported(why) => writeln!(f, "  unsupported  {}: {why}", r.name)?,
                Outcome::Failed(why) => writeln!(f, "  FAILED       {}: {why}", r.name)?,
            }
        }
        let verdict = if !self.passed() {
            "FAILED: do not publish hollow datasets to this store"
        } else if self.supports_compare_and_swap() {
            "passed: producers may share a dataset (only one announcement wins)"
        } else {
            "passed, without compare-and-swap: run one producer per dataset"
        };
        write!(f, "  {verdict}")
    }
}

const COMPARE_AND_SWAP: &str = "compare-and-swap of an object";

type Check = Result<Outcome, String>;

/// Runs every check against `store` under `prefix`.
pub async fn check_store(store: Arc<dyn ObjectStore>, prefix: &str) -> Report {
    let base = Path::from(prefix).join(format!("hollow-conformance-{:016x}", random()).as_str());
    let ctx = Ctx {
        store: store.clone(),
        base: base.clone(),
    };
    let mut results = vec![
        result("create-only writes", ctx.create_only()).await,
        result(COMPARE_AND_SWAP, ctx.compare_and_swap()).await,
        result("conditional reads", ctx.conditional_reads()).await,
        result("listing under a prefix", ctx.listing()).await,
        result("deletes", ctx.deletes()).await,
        result("a dataset published and read back", ctx.round_trip()).await,
    ];
    let compare_and_swap = results[1].outcome == Outcome::Passed;
    results.push(if compare_and_swap {
        result("two producers racing", ctx.racing_producers()).await
    } else {
        CheckResult {
            name: "two producers racing",
            outcome: Outcome::Unsupported(
                "without compare-and-swap both could announce: run one producer per dataset".into(),
            ),
        }
    });
    if let Err(e) = ctx.clean_up().await {
        results.push(CheckResult {
            name: "cleaning up",
            outcome: Outcome::Failed(format!(
                "could not delete what the checks wrote under {base}: {e}"
            )),
        });
    }
    Report {
        store: format!("{store} under {prefix:?}"),
        results,
    }
}

/// Runs one check; a store error on the way is a failure of the check.
async fn result(name: &'static str, check: impl Future<Output = Check>) -> CheckResult {
    let outcome = check
        .await
        .unwrap_or_else(|e| Outcome::Failed(format!("the store failed: {e}")));
    CheckResult { name, outcome }
}

fn random() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

struct Ctx {
    store: Arc<dyn ObjectStore>,
    base: Path,
}

fn failed(why: impl Into<String>) -> Check {
    Ok(Outcome::Failed(why.into()))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Row {
    id: i64,
    name: String,
}

impl Ctx {
    fn path(&self, name: &str) -> Path {
        self.base.parts().chain(Path::from(name).parts()).collect()
    }

    async fn read(&self, path: &Path) -> object_store::Result<Bytes> {
        self.store.get(path).await?.bytes().await
    }

    async fn create_only(&self) -> Check {
        let path = self.path("create-only");
        self.store
            .put_opts(
                &path,
                PutPayload::from_static(b"first"),
                PutMode::Create.into(),
            )
            .await
            .map_err(|e| e.to_string())?;
        let second = self
            .store
            .put_opts(
                &path,
                PutPayload::from_static(b"second"),
                PutMode::Create.into(),
            )
            .await;
        let content = self.read(&path).await.map_err(|e| e.to_string())?;
        match second {
            Err(object_store::Error::AlreadyExists { .. }) if content == "first" => {
                Ok(Outcome::Passed)
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                failed("a refused create-only write changed the object anyway")
            }
            Ok(_) => failed(
                "a create-only write over an existing object succeeded: blobs could be overwritten",
            ),
            Err(e) => failed(format!("a create-only write over an existing object: {e}")),
        }
    }

    async fn compare_and_swap(&self) -> Check {
        let path = self.path("compare-and-swap");
        let first: UpdateVersion = self
            .store
            .put_opts(&path, PutPayload::from_static(b"1"), PutMode::Create.into())
            .await
            .map_err(|e| e.to_string())?
            .into();
        let update = |tag: UpdateVersion, body: &'static [u8]| {
            self.store.put_opts(
                &path,
                PutPayload::from_static(body),
                PutMode::Update(tag).into(),
            )
        };
        match update(first.clone(), b"2").await {
            Ok(_) => {}
            Err(object_store::Error::NotImplemented { .. }) => {
                return Ok(Outcome::Unsupported(
                    "no conditional updates: the announcement is replaced after a check, so run one producer per dataset".into(),
                ))
            }
            Err(e) => return failed(format!("an update with the current version failed: {e}")),
        }
        let stale = update(first, b"3").await;
        let content = self.read(&path).await.map_err(|e| e.to_string())?;
        match stale {
            Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. })
                if content == "2" =>
            {
                Ok(Outcome::Passed)
            }
            Ok(_) | Err(_) if content == "3" => failed(
                "an update with a stale version replaced the object: the store ignores conditional writes, and two producers could both announce",
            ),
            Ok(_) => failed("an update with a stale version reported success"),
            Err(e) => failed(format!("an update with a stale version failed oddly: {e}")),
        }
    }

    async fn conditional_reads(&self) -> Check {
        let path = self.path("conditional-read");
        let put = self
            .store
            .put(&path, PutPayload::from_static(b"x"))
            .await
            .map_err(|e| e.to_string())?;
        let Some(e_tag) = put.e_tag else {
            return Ok(Outcome::Unsupported(
                "no e-tags: consumers read the whole announcement at every poll".into(),
            ));
        };
        let options = GetOptions {
            if_none_match: Some(e_tag.clone()),
            ..GetOptions::default()
        };
        match self.store.get_opts(&path, options).await {
            Err(object_store::Error::NotModified { .. }) => Ok(Outcome::Passed),
            Ok(r) if r.meta.e_tag.as_ref() == Some(&e_tag) => Ok(Outcome::Unsupported(
                "If-None-Match is ignored: polls read the announcement's metadata each time".into(),
            )),
            Ok(_) => failed("an unchanged object came back with another e-tag"),
            Err(e) => failed(format!("a conditional read failed: {e}")),
        }
    }

    async fn listing(&self) -> Check {
        let inside = ["listing/a", "listing/b/c", "listing/b/d"];
        for name in inside.iter().chain(&["listing-not/e"]) {
            self.store
                .put(&self.path(name), PutPayload::from_static(b"x"))
                .await
                .map_err(|e| e.to_string())?;
        }
        let listed: Vec<_> = self
            .store
            .list(Some(&self.path("listing")))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| e.to_string())?;
        let mut listed: Vec<String> = listed.iter().map(|p| p.to_string()).collect();
        listed.sort();
        let expected: Vec<String> = inside.iter().map(|n| self.path(n).to_string()).collect();
        if listed == expected {
            Ok(Outcome::Passed)
        } else {
            failed(format!("listing gave {listed:?}, expected {expected:?}"))
        }
    }

    async fn deletes(&self) -> Check {
        let path = self.path("delete");
        self.store
            .put(&path, PutPayload::from_static(b"x"))
            .await
            .map_err(|e| e.to_string())?;
        self.store.delete(&path).await.map_err(|e| e.to_string())?;
        match self.read(&path).await {
            Err(object_store::Error::NotFound { .. }) => {}
            Ok(_) => return failed("a deleted object can still be read"),
            Err(e) => return failed(format!("reading a deleted object: {e}")),
        }
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(Outcome::Passed),
            Err(e) => failed(format!("deleting a missing object: {e}")),
        }
    }

    async fn producer(&self, prefix: &str) -> Result<Producer, String> {
        let schema = SchemaBuilder::new()
            .add::<Row>()
            .primary_key("Row", &["id"])
            .build()
            .map_err(|e| e.to_string())?;
        ProducerBuilder::new(self.store.clone(), self.path(prefix).as_ref(), schema)
            .build()
            .await
            .map_err(|e| e.to_string())
    }

    async fn cycle(
        p: &mut Producer,
        names: &[&str],
    ) -> Result<CycleOutcome, hollow_producer::Error> {
        p.run_cycle(|w| {
            names.iter().enumerate().try_for_each(|(id, name)| {
                w.add(&Row {
                    id: id as i64,
                    name: name.to_string(),
                })
            })
        })
        .await
    }

    async fn round_trip(&self) -> Check {
        let mut p = self.producer("round-trip").await?;
        for names in [&["a", "b", "c"][..], &["a", "x", "c", "d"]] {
            Self::cycle(&mut p, names)
                .await
                .map_err(|e| e.to_string())?;
        }
        let prefix = self.path("round-trip").to_string();
        let consumer = ConsumerBuilder::new(self.store.clone(), &prefix)
            .build()
            .await
            .map_err(|e| e.to_string())?;
        let (Some(read), Some(written)) = (consumer.current(), p.state()) else {
            return failed("a consumer found nothing to serve after two published cycles");
        };
        if read.id() != written.id() || read.checksum() != written.checksum() {
            return failed(format!(
                "a consumer serves state {} where {} was announced",
                read.id(),
                written.id()
            ));
        }
        Ok(Outcome::Passed)
    }

    async fn racing_producers(&self) -> Check {
        let mut a = self.producer("race").await?;
        Self::cycle(&mut a, &["a"])
            .await
            .map_err(|e| e.to_string())?;
        let mut b = self.producer("race").await?;
        let (ra, rb) = tokio::join!(
            Self::cycle(&mut a, &["a", "b"]),
            Self::cycle(&mut b, &["a", "c"])
        );
        let won = [&ra, &rb]
            .iter()
            .filter(|r| matches!(r, Ok(CycleOutcome::Published(_))))
            .count();
        let conflict = [&ra, &rb]
            .iter()
            .any(|r| matches!(r, Err(hollow_producer::Error::AnnouncementConflict { .. })));
        match (won, conflict) {
            (1, true) => Ok(Outcome::Passed),
            (2, _) => {
                failed("two racing producers both announced: the store does not compare and swap")
            }
            _ => Ok(Outcome::Unsupported(format!(
                "the race ended with {won} announcement(s) ({ra:?} / {rb:?})"
            ))),
        }
    }

    /// Deletes every object the checks wrote (all under the checks' own sub-prefix).
    async fn clean_up(&self) -> object_store::Result<()> {
        let written: Vec<_> = self
            .store
            .list(Some(&self.base))
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        for path in written {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
