//! The producer: each cycle turns the dataset into a new state, checks it, publishes its blobs
//! and announces it, or announces nothing at all.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use hollow_core::{AddBatch, ReadState, Schema, StateId, WriteState};
use hollow_store::layout::BlobName;
use hollow_store::{Announcement, BlobStore};
use object_store::ObjectStore;
use serde::Serialize;
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::validate::{DuplicatePrimaryKeys, NotEmptied, ValidationContext, Validator};

/// Adds the records of one cycle, in batches (see [`WriteState::batch`]).
pub struct Populator<'a> {
    batch: AddBatch<'a>,
}

impl Populator<'_> {
    /// Adds a record (a struct of the schema) and everything it references. A record that
    /// does not fit the schema adds nothing and returns the error.
    pub fn add<T: Serialize + ?Sized>(&mut self, record: &T) -> hollow_core::Result<()> {
        self.batch.add(record)
    }
}

/// The changes of an incremental cycle: records upserted or deleted by primary key, on top of
/// the announced state.
pub struct Changes<'a> {
    write: &'a mut WriteState,
    announced: Option<&'a ReadState>,
    /// Per type: keys upserted in this cycle (encoded) and the ordinal they got.
    upserted: std::collections::HashMap<(String, Vec<u8>), u32>,
    /// The types of the upserts staged in the write state and not applied yet, in order.
    staged: Vec<String>,
}

fn no_primary_key(type_name: &str) -> hollow_core::Error {
    hollow_core::Error::Schema(format!("{type_name} has no primary key to upsert by"))
}

/// Versions kept by default by retention.
pub const DEFAULT_RETAINED_VERSIONS: u64 = 32;

/// Upserts are staged and added together up to this many at a time.
const STAGED_UPSERTS: usize = 4096;

/// A key's parts as bytes, to remember keys across the borrow of the write state.
fn encode_key(parts: &[hollow_core::KeyPart<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        match *p {
            hollow_core::KeyPart::Null => out.push(0),
            hollow_core::KeyPart::Int(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_le_bytes());
            }
            hollow_core::KeyPart::Float(v) => {
                out.push(2);
                out.extend_from_slice(&v.to_le_bytes());
            }
            hollow_core::KeyPart::Bytes(b) => {
                out.push(3);
                out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                out.extend_from_slice(b);
            }
        }
    }
    out
}

impl Changes<'_> {
    /// Adds `record` (a struct of a top-level type with a primary key), replacing the record
    /// that had its key, if any.
    pub fn upsert<T: Serialize + ?Sized>(
        &mut self,
        type_name: &str,
        record: &T,
    ) -> hollow_core::Result<()> {
        let schema = self.write.schema();
        if schema
            .get(schema.require(type_name)?)
            .primary_key()
            .is_empty()
        {
            return Err(no_primary_key(type_name));
        }
        // Staged, so that the lookups of many upserts overlap (see WriteState::stage).
        self.write.stage(record)?;
        self.staged.push(type_name.to_string());
        if self.staged.len() >= STAGED_UPSERTS {
            self.apply_staged()?;
        }
        Ok(())
    }

    /// Adds the staged upserts and replaces the records that had their keys.
    fn apply_staged(&mut self) -> hollow_core::Result<()> {
        let ordinals = self.write.add_staged();
        for (type_name, ordinal) in std::mem::take(&mut self.staged).iter().zip(ordinals) {
            let parts = self
                .write
                .key_of(type_name, ordinal)?
                .ok_or_else(|| no_primary_key(type_name))?;
            let key = (type_name.to_string(), encode_key(&parts));
            let before = self.find_committed(type_name, &parts)?;
            let earlier = self.upserted.insert(key, ordinal);
            for old in before.into_iter().chain(earlier) {
                if old != ordinal {
                    self.write.remove(type_name, old)?;
                }
            }
        }
        Ok(())
    }

    /// Deletes the record of `type_name` whose primary key is `key`; false if there was none.
    pub fn delete<K: hollow_core::Key + ?Sized>(
        &mut self,
        type_name: &str,
        key: &K,
    ) -> hollow_core::Result<bool> {
        self.apply_staged()?;
        let parts: Vec<hollow_core::KeyPart<'_>> = (0..K::ARITY).map(|i| key.part(i)).collect();
        let encoded = (type_name.to_string(), encode_key(&parts));
        let mut found = false;
        if let Some(o) = self.find_committed(type_name, &parts)? {
            self.write.remove(type_name, o)?;
            found = true;
        }
        if let Some(o) = self.upserted.remove(&encoded) {
            self.write.remove(type_name, o)?;
            found = true;
        }
        Ok(found)
    }

    fn find_committed(
        &self,
        type_name: &str,
        parts: &[hollow_core::KeyPart<'_>],
    ) -> hollow_core::Result<Option<u32>> {
        match self.announced {
            Some(state) => state.primary_key_index(type_name)?.find_parts(parts),
            None => Ok(None),
        }
    }
}

/// What one published cycle did.
#[derive(Clone, Debug)]
pub struct CycleReport {
    /// The announced version.
    pub version: u64,
    /// The version it follows, if any.
    pub previous: Option<u64>,
    /// Bytes of the snapshot, when one was published this cycle.
    pub snapshot_bytes: Option<usize>,
    /// Bytes of the delta and of the reverse delta, when there is a previous version.
    pub delta_bytes: Option<(usize, usize)>,
    /// Time of each stage, in order.
    pub stages: Vec<(&'static str, Duration)>,
}

impl CycleReport {
    /// Time of the whole cycle.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.1).sum()
    }
}

/// The result of a cycle that did not fail.
#[derive(Clone, Debug)]
pub enum CycleOutcome {
    /// A new version was published and announced.
    Published(CycleReport),
    /// The dataset is the same as the announced state: nothing was published.
    NoChange,
}

/// Hears about cycles (for logs, alerts, dashboards). Every method has an empty default.
pub trait ProducerListener: Send + Sync {
    /// A version was announced.
    fn on_published(&self, _report: &CycleReport) {}
    /// A cycle failed: nothing was announced.
    fn on_failed(&self, _version: u64, _error: &Error) {}
}

/// What a builder configures and the producer then follows.
struct Settings {
    snapshot_every: u64,
    validators: Vec<Box<dyn Validator>>,
    listeners: Vec<Arc<dyn ProducerListener>>,
    retain_versions: Option<u64>,
}

/// Configures and starts a [`Producer`].
pub struct ProducerBuilder {
    store: BlobStore,
    schema: Schema,
    settings: Settings,
}

impl ProducerBuilder {
    /// A producer of `schema` into `store` (any `object_store` backend) under `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, schema: Schema) -> Self {
        Self::from_blob_store(BlobStore::new(store, prefix), schema)
    }

    /// A producer of `schema` into a dataset as the store layer has it (e.g. a
    /// [`BlobStore::local`] folder).
    pub fn from_blob_store(store: BlobStore, schema: Schema) -> Self {
        Self {
            store,
            schema,
            settings: Settings {
                snapshot_every: 1,
                validators: vec![Box::new(DuplicatePrimaryKeys), Box::new(NotEmptied)],
                listeners: Vec::new(),
                retain_versions: Some(DEFAULT_RETAINED_VERSIONS),
            },
        }
    }

    /// Publishes a snapshot every `n` cycles (and always on the first); deltas every cycle.
    /// Default 1; zero is an error at [`ProducerBuilder::build`].
    pub fn with_snapshot_every(mut self, n: u64) -> Self {
        self.settings.snapshot_every = n;
        self
    }

    /// Adds a validator every new state must pass before it is announced. Two validators
    /// [`DuplicatePrimaryKeys`] and [`NotEmptied`] run by default (see
    /// [`ProducerBuilder::without_default_validators`]); adding one with the same name as a
    /// validator already there replaces it.
    pub fn with_validator(mut self, validator: impl Validator + 'static) -> Self {
        let name = validator.name();
        self.settings.validators.retain(|v| v.name() != name);
        self.settings.validators.push(Box::new(validator));
        self
    }

    /// Drops the default validators: duplicate primary keys are then published as they come,
    /// and a cycle that adds nothing empties the dataset.
    pub fn without_default_validators(mut self) -> Self {
        let defaults = [DuplicatePrimaryKeys.name(), NotEmptied.name()];
        self.settings
            .validators
            .retain(|v| !defaults.contains(&v.name()));
        self
    }

    /// Adds a listener.
    pub fn with_listener(mut self, listener: Arc<dyn ProducerListener>) -> Self {
        self.settings.listeners.push(listener);
        self
    }

    /// After each announcement, deletes blobs older than the newest `versions` versions, never
    /// one a consumer needs to reach the announced version (default: the newest
    /// 32 versions). Zero is an error at [`ProducerBuilder::build`]. Only blobs of this
    /// dataset's layout under its prefix are ever deleted.
    pub fn with_retention(mut self, versions: u64) -> Self {
        self.settings.retain_versions = Some(versions);
        self
    }

    /// Keeps every blob ever published (no retention).
    pub fn without_retention(mut self) -> Self {
        self.settings.retain_versions = None;
        self
    }

    /// Starts the producer. If the store already announces a version, that state is restored
    /// (from its snapshot and deltas) and the next cycle continues its delta chain; versions
    /// continue after the highest one any blob in the store names.
    pub async fn build(self) -> Result<Producer> {
        let invalid = |setting, reason: &str| {
            Err(Error::InvalidSetting {
                setting,
                reason: reason.into(),
            })
        };
        if self.settings.snapshot_every == 0 {
            return invalid("snapshot every", "zero cycles between snapshots");
        }
        if self.settings.retain_versions == Some(0) {
            return invalid(
                "retention",
                "zero versions would delete the announced one (use without_retention to keep all)",
            );
        }
        let restored = restore(&self.store, self.schema).await?;
        Ok(Producer {
            store: self.store,
            write: restored.write,
            announced: restored.announced,
            next_version: restored.next_version,
            published: 0,
            settings: self.settings,
            snapshot_buffer: Vec::new(),
            needs_restore: false,
        })
    }
}

/// The announced state, and the announcement that names it.
struct Announced {
    state: ReadState,
    announcement: Announcement,
}

/// What a producer continues from: the state the store announces and a write state whose
/// committed state it is.
struct Restored {
    announced: Option<Announced>,
    write: WriteState,
    next_version: u64,
}

/// Reads the announced state back from the store, and the highest version any blob names.
async fn restore(store: &BlobStore, schema: Schema) -> Result<Restored> {
    let blobs = store.list().await?;
    let highest = blobs
        .iter()
        .map(BlobName::newest_version)
        .max()
        .unwrap_or(0);
    let announced = match store.announcement().await? {
        None => None,
        Some(announcement) => {
            let (state, plan) =
                hollow_store::load(store, None, announcement.state, usize::MAX).await?;
            tracing::info!(state = %announcement.state, plan = %plan.describe(), "restored the announced state");
            Some(Announced {
                state,
                announcement,
            })
        }
    };
    let write = match &announced {
        None => WriteState::new(schema),
        Some(a) => {
            let mut w = WriteState::restore(&a.state);
            if **a.state.schema() != schema {
                w.set_schema(schema)?;
            }
            w
        }
    };
    let announced_version = announced.as_ref().map_or(0, |a| a.state.version());
    Ok(Restored {
        announced,
        write,
        next_version: highest.max(announced_version) + 1,
    })
}

/// A random tag for a new state: two producers (or two runs of one) that mint the same version
/// give it different tags, so their blobs never mix (see [`StateId`]).
fn random_tag() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWN: AtomicU64 = AtomicU64::new(0);
    let seed = (
        std::time::SystemTime::now(),
        std::process::id(),
        DRAWN.fetch_add(1, Ordering::Relaxed),
    );
    RandomState::new().hash_one(seed).max(1)
}

/// Owns the truth: each [`Producer::run_cycle`] publishes the dataset as a new version.
pub struct Producer {
    store: BlobStore,
    write: WriteState,
    announced: Option<Announced>,
    next_version: u64,
    published: u64,
    settings: Settings,
    /// The buffer the last snapshot was written in, for the next one: a snapshot-sized
    /// allocation costs a page fault per 4 KiB each time it is made anew.
    snapshot_buffer: Vec<u8>,
    /// Set when the producer may no longer be at the announced state (an announcement it lost
    /// or could not confirm, a panic): the next cycle first restores from the store.
    needs_restore: bool,
}

/// The blobs of one cycle, held until published.
struct CycleBlobs {
    snapshot: Bytes,
    deltas: Option<(Bytes, Bytes)>,
}

/// Loads the cycle's snapshot and checks the deltas against it: the announced state
/// (`previous`) plus the delta must equal the snapshot's state, and that plus the reverse delta
/// the announced state. Returns the new state.
///
/// The forward chain runs on a second thread while the snapshot is loaded. The forward state
/// must equal the snapshot's bit for bit, so the reverse delta applied to it stands for the
/// reverse delta applied to the snapshot's state, and it is the state returned: its primary key
/// indexes are the previous ones updated, where the snapshot's would have to be built.
fn check_integrity(
    previous: Option<(&ReadState, u64)>,
    blobs: &CycleBlobs,
    version: u64,
) -> Result<ReadState> {
    let Some(((previous, from), (delta, reverse))) = previous.zip(blobs.deltas.as_ref()) else {
        // A copy: states never hold on to the snapshot's buffer, which the next cycle reuses.
        let snapshot = Bytes::copy_from_slice(&blobs.snapshot);
        return Ok(ReadState::from_snapshot(snapshot)?);
    };
    let (snapshot, chain) = std::thread::scope(|s| {
        let chain = s.spawn(|| -> hollow_core::Result<(ReadState, bool)> {
            let forward = previous.apply_delta(delta.clone())?;
            let back = forward.apply_delta(reverse.clone())?;
            Ok((forward, back.same_content_as(previous)))
        });
        let snapshot = ReadState::from_snapshot_without_indexes(blobs.snapshot.clone());
        let chain = chain
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (snapshot, chain)
    });
    let snapshot = snapshot?;
    let (forward, back_is_previous) = chain?;
    if !forward.same_content_as(&snapshot) {
        return Err(Error::Integrity(format!(
            "version {from} plus its delta differs from the snapshot of {version}"
        )));
    }
    if !back_is_previous {
        return Err(Error::Integrity(format!(
            "version {version} plus its reverse delta differs from version {from}"
        )));
    }
    Ok(forward)
}

impl Producer {
    /// The announced version, if any.
    pub fn version(&self) -> Option<u64> {
        self.announced.as_ref().map(|a| a.state.version())
    }

    /// The announced state's identity (version and tag), if any.
    pub fn state_id(&self) -> Option<StateId> {
        self.announced.as_ref().map(|a| a.state.id())
    }

    /// The announced state, if any.
    pub fn state(&self) -> Option<&ReadState> {
        self.announced.as_ref().map(|a| &a.state)
    }

    /// The dataset's store.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// Runs one cycle: `populate` adds the whole dataset; the producer builds the new state,
    /// writes its blobs, checks them (the announced state plus the delta must equal the new
    /// snapshot, and back), runs the validators, publishes every blob (create-only) and
    /// announces the version last. Any failure announces nothing and leaves the producer at its
    /// last announced state, so the next cycle produces a correct delta from it.
    pub async fn run_cycle<F>(&mut self, populate: F) -> Result<CycleOutcome>
    where
        F: FnOnce(&mut Populator<'_>) -> hollow_core::Result<()>,
    {
        self.run(|write, _| {
            populate(&mut Populator {
                batch: write.batch(),
            })
        })
        .await
    }

    /// A cycle with its bookkeeping: span, metrics, listeners, and the abandon on failure.
    async fn run<F>(&mut self, populate: F) -> Result<CycleOutcome>
    where
        F: FnOnce(&mut WriteState, Option<&ReadState>) -> hollow_core::Result<()>,
    {
        if self.needs_restore {
            self.restore().await?;
        }
        let version = self.next_version;
        let span = tracing::info_span!("hollow_cycle", version);
        let cycle = AssertUnwindSafe(self.cycle(version, populate).instrument(span));
        let result = cycle.catch_unwind().await.unwrap_or_else(|panic| {
            Err(Error::Panicked {
                message: panic_message(panic.as_ref()),
            })
        });
        if matches!(result, Err(Error::Panicked { .. })) {
            // The write state may be half-changed: start over from the store.
            self.needs_restore = true;
            self.next_version = self.next_version.max(version + 1);
        }
        match &result {
            Ok(CycleOutcome::Published(report)) => {
                metrics::counter!("hollow_producer_cycles_total", "outcome" => "published")
                    .increment(1);
                for l in &self.settings.listeners {
                    l.on_published(report);
                }
            }
            Ok(CycleOutcome::NoChange) => {
                metrics::counter!("hollow_producer_cycles_total", "outcome" => "no_change")
                    .increment(1);
            }
            Err(e) => {
                if !self.needs_restore {
                    self.write.abandon_cycle();
                }
                metrics::counter!("hollow_producer_cycles_total", "outcome" => "failed")
                    .increment(1);
                tracing::warn!(version, error = %e, "cycle failed; nothing announced");
                for l in &self.settings.listeners {
                    l.on_failed(version, e);
                }
            }
        }
        result
    }

    /// Goes back to the state the store announces, after a cycle whose announcement was lost
    /// to another producer or could not be confirmed.
    async fn restore(&mut self) -> Result<()> {
        let schema = self.write.schema().as_ref().clone();
        let restored = restore(&self.store, schema).await?;
        tracing::warn!(
            from = ?self.state_id().map(|s| s.to_string()),
            to = ?restored.announced.as_ref().map(|a| a.state.id().to_string()),
            "restored the announced state after a cycle that did not announce"
        );
        self.write = restored.write;
        self.announced = restored.announced;
        self.next_version = self.next_version.max(restored.next_version);
        self.needs_restore = false;
        Ok(())
    }

    /// Runs an incremental cycle: instead of adding the whole dataset, `changes` upserts and
    /// deletes records by primary key on top of the announced state. Everything else is as in
    /// [`Producer::run_cycle`], and the blobs are the ones a full cycle adding the same final
    /// dataset (new records in the same order) would write.
    pub async fn run_incremental_cycle<F>(&mut self, changes: F) -> Result<CycleOutcome>
    where
        F: FnOnce(&mut Changes<'_>) -> hollow_core::Result<()>,
    {
        self.run(|write, announced| {
            write.begin_incremental()?;
            let mut c = Changes {
                write,
                announced,
                upserted: std::collections::HashMap::new(),
                staged: Vec::new(),
            };
            changes(&mut c)?;
            c.apply_staged()?;
            write.sweep_unreachable();
            Ok(())
        })
        .await
    }

    async fn cycle<F>(&mut self, version: u64, populate: F) -> Result<CycleOutcome>
    where
        F: FnOnce(&mut WriteState, Option<&ReadState>) -> hollow_core::Result<()>,
    {
        let mut stages = Vec::new();
        let mut stage = |name: &'static str, started: Instant| {
            let took = started.elapsed();
            metrics::histogram!("hollow_producer_stage_seconds", "stage" => name)
                .record(took.as_secs_f64());
            tracing::debug!(stage = name, ms = took.as_secs_f64() * 1e3, "stage done");
            stages.push((name, took));
        };

        let t = Instant::now();
        let announced = self.announced.as_ref().map(|a| &a.state);
        populate(&mut self.write, announced).map_err(Error::Populate)?;
        stage("populate", t);
        if !self.write.has_changes() {
            self.write.abandon_cycle();
            return Ok(CycleOutcome::NoChange);
        }
        // From here on the version is spent, even if the cycle fails: never reused.
        self.next_version = version + 1;

        let t = Instant::now();
        let id = StateId::new(version, random_tag());
        let origin = self.announced.as_ref().map(|a| a.state.id());
        let buffer = std::mem::take(&mut self.snapshot_buffer);
        let blobs = CycleBlobs {
            snapshot: Bytes::from(self.write.write_snapshot_into(id, buffer)?),
            deltas: match origin {
                None => None,
                Some(from) => Some((
                    Bytes::from(self.write.write_delta(from, id)?),
                    Bytes::from(self.write.write_reverse_delta(id, from)?),
                )),
            },
        };
        stage("write_blobs", t);

        let t = Instant::now();
        let previous = self
            .announced
            .as_ref()
            .map(|a| (&a.state, a.state.version()));
        let state = check_integrity(previous, &blobs, version)?;
        stage("integrity_check", t);

        let t = Instant::now();
        let ctx = ValidationContext {
            version,
            state: &state,
            previous: self.announced.as_ref().map(|a| &a.state),
        };
        for v in &self.settings.validators {
            v.validate(&ctx).map_err(|message| Error::Validation {
                validator: v.name(),
                version,
                message,
            })?;
        }
        stage("validate", t);

        let t = Instant::now();
        let publish_snapshot =
            origin.is_none() || (self.published + 1) % self.settings.snapshot_every == 0;
        // Every blob is named by the states it joins, random tags included, so the blobs of two
        // producers racing for one version never collide; the announcement decides which wins.
        if publish_snapshot {
            self.store
                .put(BlobName::Snapshot(id), blobs.snapshot.clone())
                .await?;
        }
        if let (Some(from), Some((delta, reverse))) = (origin, &blobs.deltas) {
            let forward = BlobName::Delta { from, to: id };
            self.store.put(forward, delta.clone()).await?;
            let back = BlobName::ReverseDelta { from: id, to: from };
            self.store.put(back, reverse.clone()).await?;
        }
        stage("publish", t);

        let t = Instant::now();
        let announcement = self.announce(id).await?;
        stage("announce", t);

        self.write.commit_cycle()?;
        self.announced = Some(Announced {
            state,
            announcement,
        });
        self.published += 1;
        if let Some(keep) = self.settings.retain_versions {
            let t = Instant::now();
            match self.apply_retention(id, keep).await {
                Ok(deleted) => tracing::debug!(deleted, "retention"),
                // The version is announced; a failed clean-up is retried after the next cycle.
                Err(e) => tracing::warn!(error = %e, "retention failed"),
            }
            stage("retention", t);
        }
        let report = CycleReport {
            version,
            previous: origin.map(|o| o.version),
            snapshot_bytes: publish_snapshot.then_some(blobs.snapshot.len()),
            delta_bytes: blobs.deltas.as_ref().map(|(d, r)| (d.len(), r.len())),
            stages,
        };
        // Nothing holds the snapshot any more, unless the store keeps it (as an in-memory one
        // does): then the next cycle allocates anew.
        if let Ok(mut buffer) = blobs.snapshot.try_into_mut() {
            buffer.clear();
            self.snapshot_buffer = buffer.into();
        }
        Ok(CycleOutcome::Published(report))
    }

    /// Announces `id` over the announcement this producer last saw. When that fails (another
    /// producer won, or the store's reply was lost), the announcement is read again: if it names
    /// `id`, the write landed and the cycle is published; otherwise the producer restores the
    /// announced state before its next cycle, so it never stays wedged on a stale announcement.
    async fn announce(&mut self, id: StateId) -> Result<Announcement> {
        let previous = self.announced.as_ref().map(|a| &a.announcement);
        let error = match self.store.announce(id, previous).await {
            Ok(object_version) => {
                return Ok(Announcement {
                    state: id,
                    object_version,
                })
            }
            Err(e) => e,
        };
        match self.store.announcement().await {
            Ok(Some(a)) if a.state == id => {
                tracing::warn!(error = %error, state = %id, "the announcement landed although its write reported a failure");
                Ok(a)
            }
            _ => {
                self.needs_restore = true;
                Err(error.into())
            }
        }
    }

    /// Deletes blobs of versions older than the newest `keep` ones, keeping the snapshot a
    /// consumer starting now would load for the announced state and every delta from it on.
    /// Returns how many went.
    async fn apply_retention(&self, announced: StateId, keep: u64) -> Result<usize> {
        let blobs = self.store.list().await?;
        let mut versions: Vec<u64> = blobs
            .iter()
            .map(|b| b.destination().version)
            .filter(|&v| v <= announced.version)
            .collect();
        versions.sort_unstable_by(|a, b| b.cmp(a));
        versions.dedup();
        let cutoff = versions
            .get(keep as usize - 1)
            .or(versions.last())
            .copied()
            .unwrap_or(announced.version);
        // The snapshot a fresh consumer starts from; never deleted, nor the deltas after it.
        let anchor = hollow_store::plan(&blobs, None, announced, usize::MAX)?
            .snapshot
            .map_or(announced.version, |s| s.version);
        let floor = cutoff.min(anchor);
        let mut deleted = 0;
        for b in blobs {
            let old = match b {
                BlobName::Snapshot(s) => s.version < floor,
                BlobName::Delta { from, .. } => from.version < floor,
                BlobName::ReverseDelta { to, .. } => to.version < floor,
            };
            if old {
                self.store.delete(b).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

/// The message of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use hollow_core::{SchemaBuilder, WriteState};
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Row {
        id: i64,
        name: String,
    }

    fn schema() -> Schema {
        SchemaBuilder::new()
            .add::<Row>()
            .primary_key("Row", &["id"])
            .build()
            .unwrap()
    }

    /// Versions 1 and 2 of a dataset whose rows are named with `names`: the state of version 1
    /// and the blobs of the cycle to version 2.
    fn cycle(names: [&str; 2]) -> (ReadState, CycleBlobs) {
        let mut w = WriteState::new(schema());
        let rows = |v: i64| {
            (0..50).map(move |id| Row {
                id,
                name: format!("{} {}", names[(v - 1) as usize], id % (7 + v)),
            })
        };
        w.add_all(&rows(1).collect::<Vec<_>>()).unwrap();
        let v1 = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
        w.commit_cycle().unwrap();
        w.add_all(&rows(2).collect::<Vec<_>>()).unwrap();
        let blobs = CycleBlobs {
            snapshot: w.write_snapshot(2).unwrap().into(),
            deltas: Some((
                w.write_delta(1, 2).unwrap().into(),
                w.write_reverse_delta(2, 1).unwrap().into(),
            )),
        };
        (v1, blobs)
    }

    /// A cycle of 500 rows, the last one named `last`.
    async fn run(p: &mut Producer, last: &str) {
        let rows: Vec<Row> = (0..500)
            .map(|id| Row {
                id,
                name: if id == 499 {
                    last.into()
                } else {
                    id.to_string()
                },
            })
            .collect();
        p.run_cycle(|w| rows.iter().try_for_each(|r| w.add(r)))
            .await
            .unwrap();
    }

    /// The buffer a snapshot was written in is the next snapshot's, unless the store holds on
    /// to the blob, as an in-memory one does.
    #[tokio::test]
    async fn the_snapshot_buffer_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let folder = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let mut p = ProducerBuilder::new(Arc::new(folder), "rows", schema())
            .build()
            .await
            .unwrap();
        run(&mut p, "a").await;
        assert!(p.snapshot_buffer.capacity() > 0);
        let buffer = p.snapshot_buffer.as_ptr();
        run(&mut p, "b").await;
        assert_eq!(p.snapshot_buffer.as_ptr(), buffer);

        let memory = object_store::memory::InMemory::new();
        let mut p = ProducerBuilder::new(Arc::new(memory), "rows", schema())
            .build()
            .await
            .unwrap();
        run(&mut p, "a").await;
        assert_eq!(p.snapshot_buffer.capacity(), 0);
    }

    #[test]
    fn consistent_blobs_pass_and_give_the_snapshots_state() {
        let (v1, blobs) = cycle(["a", "b"]);
        let state = check_integrity(Some((&v1, 1)), &blobs, 2).unwrap();
        assert_eq!(state.version(), 2);
        assert_eq!(state.record_count("Row").unwrap(), 50);
    }

    #[test]
    fn a_snapshot_that_the_delta_does_not_reach_fails() {
        let (v1, blobs) = cycle(["a", "b"]);
        let (_, other) = cycle(["a", "c"]);
        let mixed = CycleBlobs {
            snapshot: other.snapshot,
            deltas: blobs.deltas,
        };
        let e = check_integrity(Some((&v1, 1)), &mixed, 2).unwrap_err();
        assert!(
            matches!(&e, Error::Integrity(m) if m.contains("plus its delta")),
            "{e}"
        );
    }

    #[test]
    fn a_reverse_delta_that_does_not_lead_back_fails() {
        let (v1, blobs) = cycle(["a", "b"]);
        let (_, other) = cycle(["z", "b"]);
        let (delta, _) = blobs.deltas.unwrap();
        let (_, wrong_reverse) = other.deltas.unwrap();
        let mixed = CycleBlobs {
            snapshot: blobs.snapshot,
            deltas: Some((delta, wrong_reverse)),
        };
        let e = check_integrity(Some((&v1, 1)), &mixed, 2).unwrap_err();
        assert!(
            matches!(&e, Error::Integrity(m) if m.contains("reverse delta")),
            "{e}"
        );
    }
}
