//! Configuring a producer: its store, schema, validators, listeners, snapshots and retention,
//! with safe defaults.

use std::sync::Arc;
use std::time::Duration;

use hollow_core::{BlobKind, Schema};
use hollow_store::BlobStore;
use object_store::ObjectStore;

use crate::error::{Error, Result};
use crate::integrity::CycleBlobs;
use crate::leadership::Elector;
use crate::outcome::ProducerListener;
use crate::producer::Producer;
use crate::restore::restore;
use crate::validate::{DuplicatePrimaryKeys, NotEmptied, Validator};

/// Versions kept by default by retention.
pub const DEFAULT_RETAINED_VERSIONS: u64 = 32;

/// What a builder configures and the producer then follows.
pub(crate) struct Settings {
    pub(crate) snapshot_every: u64,
    /// The least time between two snapshots (zero: none).
    pub(crate) snapshot_interval: Duration,
    /// Write and publish snapshots after announcing, off the cycle's path.
    pub(crate) snapshots_in_background: bool,
    pub(crate) validators: Vec<Box<dyn Validator>>,
    pub(crate) listeners: Vec<Arc<dyn ProducerListener>>,
    pub(crate) retain_versions: Option<u64>,
    /// Announce states whose schema breaks readers of the announced one.
    pub(crate) allow_breaking_schema_changes: bool,
    /// Leader election: this producer's id and the lease duration.
    pub(crate) leader_election: Option<(String, Duration)>,
    /// The zstd level of each blob kind's stored form (`None`: stored as written).
    pub(crate) compression: Compression,
}

/// The zstd level of each blob kind, `None` for blobs stored uncompressed.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Compression {
    pub(crate) snapshot: Option<i32>,
    pub(crate) delta: Option<i32>,
    pub(crate) reverse_delta: Option<i32>,
}

impl Compression {
    /// The level for blobs of `kind`.
    pub(crate) fn level(&self, kind: BlobKind) -> Option<i32> {
        match kind {
            BlobKind::Snapshot => self.snapshot,
            BlobKind::Delta => self.delta,
            BlobKind::ReverseDelta => self.reverse_delta,
        }
    }

    /// The form of `blob` (of `kind`) to store: compressed at its kind's level, or as it is.
    pub(crate) fn stored(&self, kind: BlobKind, blob: &bytes::Bytes) -> Result<bytes::Bytes> {
        match self.level(kind) {
            None => Ok(blob.clone()),
            #[cfg(feature = "zstd")]
            Some(level) => Ok(hollow_core::raw::compressed::compress(blob, level)?.into()),
            #[cfg(not(feature = "zstd"))]
            Some(_) => unreachable!("levels are only set with the zstd feature"),
        }
    }

    /// The forms of a cycle's `blobs` to store.
    pub(crate) fn stored_blobs(&self, blobs: &CycleBlobs) -> Result<CycleBlobs> {
        let snapshot = blobs.snapshot.as_ref();
        Ok(CycleBlobs {
            snapshot: snapshot
                .map(|s| self.stored(BlobKind::Snapshot, s))
                .transpose()?,
            deltas: match &blobs.deltas {
                None => None,
                Some((delta, reverse)) => Some((
                    self.stored(BlobKind::Delta, delta)?,
                    self.stored(BlobKind::ReverseDelta, reverse)?,
                )),
            },
        })
    }
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
                snapshot_interval: Duration::ZERO,
                snapshots_in_background: false,
                validators: vec![Box::new(DuplicatePrimaryKeys), Box::new(NotEmptied)],
                listeners: Vec::new(),
                retain_versions: Some(DEFAULT_RETAINED_VERSIONS),
                allow_breaking_schema_changes: false,
                leader_election: None,
                compression: Compression::default(),
            },
        }
    }

    /// Publishes a snapshot every `n` cycles (and always on the first); deltas every cycle.
    /// Default 1; zero is an error at [`ProducerBuilder::build`].
    pub fn with_snapshot_every(mut self, n: u64) -> Self {
        self.settings.snapshot_every = n;
        self
    }

    /// Spaces snapshots at least `interval` apart: a snapshot cycle (see
    /// [`ProducerBuilder::with_snapshot_every`]) that comes sooner after the last snapshot
    /// publishes deltas only, and the first cycle after the interval writes the snapshot,
    /// unless the deltas since the last snapshot add up to half the state's size (a big
    /// change, as when catching up): then the snapshot is not put off. For producers that
    /// cycle many times a second, as a Kafka source following a busy topic: each snapshot
    /// costs time in proportion to the whole dataset, and one every few cycles would keep a
    /// core busy; in exchange a consumer starting cold follows the deltas since the last
    /// snapshot (tens to hundreds of small ones). Default zero.
    pub fn with_snapshot_interval(mut self, interval: Duration) -> Self {
        self.settings.snapshot_interval = interval;
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
    /// dataset's layout under its prefix are ever deleted. A pass runs on another task, off
    /// the cycle's path, one at a time ([`Producer::wait_for_retention`] waits for it); a
    /// pass held back only by the snapshot a starting consumer loads is not made again before
    /// the next snapshot cycle.
    pub fn with_retention(mut self, versions: u64) -> Self {
        self.settings.retain_versions = Some(versions);
        self
    }

    /// Writes the snapshot of a snapshot cycle (see [`ProducerBuilder::with_snapshot_every`])
    /// after announcing its version, from the announced state, on another thread, then checks
    /// it and publishes it: the cycle itself costs what a cycle without a snapshot costs, so the
    /// time from a change to its announcement stays low. Until the snapshot lands, a consumer
    /// starting cold loads the one before and the deltas since; a producer that dies meanwhile
    /// loses only that snapshot. The first version's snapshot is always published before it is
    /// announced. [`Producer::wait_for_background_snapshot`] waits for the one under way.
    pub fn with_snapshots_in_background(mut self) -> Self {
        self.settings.snapshots_in_background = true;
        self
    }

    /// Keeps every blob ever published (no retention).
    pub fn without_retention(mut self) -> Self {
        self.settings.retain_versions = None;
        self
    }

    /// Lets this producer publish a schema that breaks readers of the announced one (a field's
    /// kind or a primary key changed, see [`Schema::breaking_changes_to`]). Without it such a
    /// producer does not start ([`Error::IncompatibleSchema`]), so that consumers are not handed
    /// states they fail to read; consumers that declare the types they read
    /// (`ConsumerBuilder::reads`) keep their last readable state either way.
    pub fn allow_breaking_schema_changes(mut self) -> Self {
        self.settings.allow_breaking_schema_changes = true;
        self
    }

    /// Stores every blob compressed with zstd at `level` (1 to 22; 3 is zstd's default).
    /// A snapshot is laid out by columns first (see `hollow_core::raw::compressed`): at level 3
    /// the 1 M movies snapshot shrinks by 29% (29.7 to 21.0 MB, 0.22 s to compress), its delta
    /// by 16%; level 19 gains 8% more for 18 s per snapshot. It pays where storage or transfer
    /// costs. Consumers read compressed and plain
    /// blobs alike, without configuration: a compressed blob says so in its envelope, whose
    /// checksum covers what is stored (see `hollow_core::raw::compressed`). Compression runs
    /// after the integrity checks, on the publishing path. Out-of-range levels are an error at
    /// [`ProducerBuilder::build`].
    #[cfg(feature = "zstd")]
    pub fn with_compression(mut self, level: i32) -> Self {
        self.settings.compression = Compression {
            snapshot: Some(level),
            delta: Some(level),
            reverse_delta: Some(level),
        };
        self
    }

    /// Stores the blobs of `kind` compressed with zstd at `level`, or uncompressed with `None`
    /// (e.g. compress snapshots hard, leave small deltas as they are). See
    /// [`ProducerBuilder::with_compression`].
    #[cfg(feature = "zstd")]
    pub fn with_compression_of(mut self, kind: BlobKind, level: Option<i32>) -> Self {
        let c = &mut self.settings.compression;
        match kind {
            BlobKind::Snapshot => c.snapshot = level,
            BlobKind::Delta => c.delta = level,
            BlobKind::ReverseDelta => c.reverse_delta = level,
        }
        self
    }

    /// Elects one leader among the producers of this dataset that are configured alike, on the
    /// store itself (see [`crate::leadership`] for how, and what it assumes of clocks): only
    /// the leader runs cycles; the others are hot standbys that take over within about one
    /// `lease` duration after the leader stops renewing (killed, machine gone, store
    /// unreachable from it), or at once when it steps down ([`Producer::step_down`]). Every
    /// announcement carries the leader's epoch, and a producer that lost the lease can never
    /// announce after a newer leader took over ([`Error::NotLeader`]).
    ///
    /// `id` names this producer in the lease, logs and health (1 to 128 characters, no control
    /// characters; the host name and a process id make a good one). The lease lasts `lease`
    /// (at least 20 ms; a second or more suits stores across a network) and is renewed every
    /// quarter of it. The store needs conditional updates (S3, MinIO, GCS, Azure, in-memory) or
    /// to be a local folder ([`BlobStore::local`]): [`ProducerBuilder::build`] refuses any other.
    ///
    /// The built producer is a standby until it leads: call
    /// [`Producer::wait_for_leadership`] before running cycles.
    pub fn with_leader_election(mut self, id: &str, lease: Duration) -> Self {
        self.settings.leader_election = Some((id.to_string(), lease));
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
        let c = self.settings.compression;
        for level in [c.snapshot, c.delta, c.reverse_delta].into_iter().flatten() {
            if !(1..=22).contains(&level) {
                return invalid(
                    "compression",
                    &format!("zstd level {level} is outside 1 to 22"),
                );
            }
        }
        let elector = match &self.settings.leader_election {
            None => None,
            Some((id, lease)) => {
                if let Err(reason) = hollow_store::Lease::valid_holder(id) {
                    return invalid("leader election", &reason);
                }
                if *lease < Duration::from_millis(20) {
                    return invalid(
                        "leader election",
                        &format!("a lease of {lease:?} is shorter than the 20 ms minimum"),
                    );
                }
                if !self.store.has_safe_swap().await? {
                    return invalid(
                        "leader election",
                        &format!(
                            "the store {} has no conditional updates and is not a local folder \
                             (BlobStore::local): nothing there can keep two producers from \
                             taking the lease at once",
                            self.store.location("")
                        ),
                    );
                }
                Some((id.clone(), *lease))
            }
        };
        let restored = restore(
            &self.store,
            self.schema,
            self.settings.allow_breaking_schema_changes,
            None,
        )
        .await?;
        let elector = elector.map(|(id, lease)| {
            Elector::start(
                self.store.clone(),
                id,
                lease,
                self.settings.listeners.clone(),
            )
        });
        Ok(Producer::start(
            self.store,
            restored,
            self.settings,
            elector,
        ))
    }
}
