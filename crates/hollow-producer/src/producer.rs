//! The producer: each cycle turns the dataset into a new state, checks it, publishes its blobs
//! and announces it, or announces nothing at all.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use hollow_core::{panic_message, BlobKind, ReadState, StateId, WriteState};
use hollow_store::layout::AnnouncementBody;
use hollow_store::layout::BlobName;
use hollow_store::{AnnouncementObject, BlobStore};
use tokio::runtime::RuntimeFlavor;
use tracing::Instrument;

use crate::builder::Settings;
use crate::changes::{Changes, Populator, Replacements};
use crate::error::{Error, Result};
use crate::integrity::{check_deltas, snapshot_state, CycleBlobs};
use crate::leadership::{Elector, Leadership};
use crate::outcome::{CycleOutcome, CycleReport};
use crate::restore::{random_tag, restore, Restored};
use crate::retention::apply_retention;
use crate::validate::ValidationContext;

/// Owns the truth: each [`Producer::run_cycle`] publishes the dataset as a new version.
pub struct Producer {
    store: BlobStore,
    write: WriteState,
    /// The announced state, if any.
    announced: Option<ReadState>,
    /// The announcement object as last seen (to compare-and-swap against).
    announcement: Option<AnnouncementObject>,
    /// The leadership epoch this producer announces with: the one it leads in, or (without
    /// leader election) the one of the announcement it continues from.
    epoch: u64,
    /// Campaigns for the lease, with leader election.
    elector: Option<Elector>,
    next_version: u64,
    /// What was published since the last snapshot cycle (or since start).
    since_snapshot: SinceSnapshot,
    settings: Settings,
    /// While a cycle has given up the announced state to write its snapshot: the cycle's new
    /// state and its reverse delta, which give the announced state back if the cycle fails.
    previous_by_reverse: Option<(ReadState, Bytes)>,
    /// Set when the producer may no longer be at the announced state (an announcement it lost
    /// or could not confirm, a panic): the next cycle first restores from the store.
    needs_restore: bool,
    /// The snapshot being written and published in the background, if any.
    background_snapshot: Option<tokio::task::JoinHandle<Result<StateId>>>,
    /// The tables an incremental cycle remembers its upserted keys in, emptied, for the next
    /// one: grown from nothing each cycle, they rehashed at every doubling (a tenth of the
    /// interning worker's time in a cycle of 100,000 upserts).
    replacements: Replacements,
    /// The retention pass under way (or done and not yet waited for), if any: blobs deleted.
    retention: Option<tokio::task::JoinHandle<Result<usize>>>,
    /// Set when the last retention pass kept blobs only because a consumer starting now needs
    /// them: retention then lists the store again only in a snapshot cycle, not every cycle.
    retention_waits_for_a_snapshot: Arc<AtomicBool>,
}

impl Producer {
    /// A producer continuing from what the store holds.
    pub(crate) fn start(
        store: BlobStore,
        restored: Restored,
        settings: Settings,
        elector: Option<Elector>,
    ) -> Self {
        Self {
            store,
            write: restored.write,
            // With leader election, the epoch it leads in (none yet); without, the one it found.
            epoch: match elector {
                Some(_) => 0,
                None => restored.announcement.as_ref().map_or(0, |a| a.body.epoch),
            },
            announced: restored.announced,
            announcement: restored.announcement,
            // A leader restores again once it leads (the announcement then carries its fence).
            needs_restore: elector.is_some(),
            elector,
            next_version: restored.next_version,
            since_snapshot: SinceSnapshot::default(),
            settings,
            previous_by_reverse: None,
            replacements: Replacements::default(),
            background_snapshot: None,
            retention: None,
            retention_waits_for_a_snapshot: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Waits for the snapshot being published in the background (see
    /// [`ProducerBuilder::with_snapshots_in_background`](crate::ProducerBuilder::with_snapshots_in_background)),
    /// if any: the state it is of, or why it failed (it is then written again at the next
    /// snapshot cycle).
    pub async fn wait_for_background_snapshot(&mut self) -> Option<Result<StateId>> {
        let job = self.background_snapshot.take()?;
        Some(job.await.unwrap_or_else(|e| {
            Err(Error::Panicked {
                message: format!("the background snapshot task failed: {e}"),
            })
        }))
    }

    /// Publishes the snapshot of the announced state in the background (written, checked and
    /// put on other threads, as [`ProducerBuilder::with_snapshots_in_background`](crate::ProducerBuilder::with_snapshots_in_background)
    /// does), unless no delta was announced since the last snapshot or a snapshot is under
    /// way: for a producer that has just caught up on a backlog (a Kafka source after a
    /// restart, or materializing a topic), so that consumers starting cold load the state it
    /// reached instead of following the deltas of the catch-up. The snapshot schedule starts
    /// again from it. Returns whether a snapshot was started; see
    /// [`Producer::wait_for_background_snapshot`].
    pub fn snapshot_in_background(&mut self) -> bool {
        let under_way = (self.background_snapshot.as_ref()).is_some_and(|j| !j.is_finished());
        if under_way || self.since_snapshot.delta_bytes == 0 {
            return false;
        }
        let Some(state) = self.announced.clone() else {
            return false;
        };
        self.publish_snapshot_in_background(state);
        self.since_snapshot = SinceSnapshot::snapshot_now(false);
        true
    }

    /// Waits for the retention pass started after the last announcement, if one was started
    /// since the last wait: how many blobs it deleted, or why it failed (it is then made
    /// again after a later cycle). Retention runs off the cycle's path, one pass at a time.
    pub async fn wait_for_retention(&mut self) -> Option<Result<usize>> {
        let job = self.retention.take()?;
        Some(job.await.unwrap_or_else(|e| {
            Err(Error::Panicked {
                message: format!("the retention task failed: {e}"),
            })
        }))
    }

    /// Deletes what retention lets go after announcing `id` (`snapshot_cycle`: whether the
    /// cycle published a snapshot), on another task, off the cycle's path: listing and
    /// deleting take round trips to the store (a third of a 10 ms cycle on a local folder;
    /// more on S3). One pass at a time: the pass of an earlier cycle ends before this one's
    /// starts (its outcome was logged).
    async fn apply_retention_in_background(
        &mut self,
        id: StateId,
        keep: u64,
        snapshot_cycle: bool,
    ) {
        if let Some(earlier) = self.retention.take() {
            let _ = earlier.await;
        }
        // Until a new snapshot moves what a starting consumer loads, a pass that was held
        // back by it would find nothing more to delete. (A snapshot published in the
        // background lands after its cycle: its predecessors go at the next snapshot cycle.)
        if !snapshot_cycle && self.retention_waits_for_a_snapshot.load(Ordering::Relaxed) {
            return;
        }
        let (store, waits) = (
            self.store.clone(),
            self.retention_waits_for_a_snapshot.clone(),
        );
        self.retention = Some(tokio::spawn(async move {
            let t = Instant::now();
            let pass = apply_retention(&store, id, keep).await;
            // A failed pass is made again after the next cycle.
            let waits_for_a_snapshot = pass.as_ref().is_ok_and(|p| p.waits_for_a_snapshot);
            waits.store(waits_for_a_snapshot, Ordering::Relaxed);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            match &pass {
                Ok(pass) => tracing::debug!(state = %id, deleted = pass.deleted, ms, "retention"),
                // The version is announced; a failed clean-up is retried after the next cycle.
                Err(e) => tracing::warn!(state = %id, error = %e, "retention failed"),
            }
            pass.map(|p| p.deleted)
        }));
    }

    /// Writes the snapshot of `state` from it, checks that it reads back as `state`, and
    /// publishes it, on other threads. One at a time: while one is under way, the next is
    /// skipped (and written at the next snapshot cycle).
    fn publish_snapshot_in_background(&mut self, state: ReadState) {
        if self
            .background_snapshot
            .as_ref()
            .is_some_and(|j| !j.is_finished())
        {
            tracing::info!(state = %state.id(), "a background snapshot is still under way; this one is skipped");
            return;
        }
        let store = self.store.clone();
        let compression = self.settings.compression;
        self.background_snapshot = Some(tokio::spawn(async move {
            let id = state.id();
            let result = async {
                let blob = tokio::task::spawn_blocking(move || -> Result<Bytes> {
                    let blob = Bytes::from(state.write_snapshot());
                    let back = ReadState::from_snapshot_without_indexes(blob.clone())?;
                    if !back.same_content_as(&state) {
                        return Err(Error::Integrity(format!(
                            "the snapshot written from version {} differs from it",
                            state.version()
                        )));
                    }
                    compression.stored(BlobKind::Snapshot, &blob)
                })
                .await
                .map_err(|e| Error::Panicked {
                    message: format!("writing a snapshot in the background: {e}"),
                })??;
                store.put(BlobName::Snapshot(id), blob).await?;
                Ok(id)
            }
            .await;
            let outcome = if result.is_ok() {
                "published"
            } else {
                "failed"
            };
            metrics::counter!("hollow_producer_background_snapshots_total", "outcome" => outcome)
                .increment(1);
            if let Err(e) = &result {
                tracing::warn!(state = %id, error = %e, "background snapshot failed; the next snapshot cycle writes one again");
            }
            result
        }));
    }

    /// The announced version, if any.
    pub fn version(&self) -> Option<u64> {
        self.announced.as_ref().map(ReadState::version)
    }

    /// The announced state's identity (version and tag), if any.
    pub fn state_id(&self) -> Option<StateId> {
        self.announced.as_ref().map(ReadState::id)
    }

    /// The announced state, if any.
    pub fn state(&self) -> Option<&ReadState> {
        self.announced.as_ref()
    }

    /// With leader election (see
    /// [`ProducerBuilder::with_leader_election`](crate::ProducerBuilder::with_leader_election)):
    /// whether this producer leads, in which epoch, who leads otherwise, and what went wrong
    /// last. `None` without leader election.
    pub fn leadership(&self) -> Option<Leadership> {
        self.elector.as_ref().map(Elector::leadership)
    }

    /// True when this producer may run cycles: it leads, or it runs without leader election.
    pub fn is_leader(&self) -> bool {
        self.elector
            .as_ref()
            .is_none_or(|e| e.leading_epoch().is_some())
    }

    /// The leadership epoch this producer announces with (0 without leader election, unless
    /// it continues a dataset that had one).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Waits until this producer leads (at once without leader election), then brings it to
    /// the announced state (the one the previous leader announced last). The epoch it leads in.
    /// Standbys call this in their loop before running cycles; a cycle run by a standby fails
    /// with [`Error::NotLeader`] at once.
    ///
    /// While it waits, the standby follows the announced state as a consumer does (by deltas,
    /// every quarter of a lease), so that taking over costs the last delta or two, not a load
    /// of the whole state.
    pub async fn wait_for_leadership(&mut self) -> Result<u64> {
        let Some(elector) = &self.elector else {
            return Ok(self.epoch);
        };
        let mut status = elector.subscribe();
        let follow_every = elector.lease() / 4;
        loop {
            if let Some(epoch) = self.elector.as_ref().and_then(Elector::leading_epoch) {
                self.take_office(epoch).await?;
                return Ok(epoch);
            }
            if let Err(e) = self.follow_announced().await {
                tracing::warn!(error = %e, "a standby could not follow the announced state");
            }
            if let Ok(Err(_)) = tokio::time::timeout(follow_every, status.changed()).await {
                // The elector stopped (this producer stepped down): it never leads again.
                std::future::pending::<()>().await;
            }
        }
    }

    /// A standby's step: loads the announced state if it changed (by deltas from the one it
    /// has); the write state is rebuilt from it when this producer takes office.
    async fn follow_announced(&mut self) -> Result<()> {
        let known = self.announcement.as_ref().map(|a| &a.object_version);
        let Some(Some(object)) = self.store.announcement_object_if_changed(known).await? else {
            return Ok(());
        };
        if let Some(target) = object.body.state.filter(|t| Some(*t) != self.state_id()) {
            let (state, plan) =
                hollow_store::load(&self.store, self.announced.as_ref(), target, usize::MAX)
                    .await?;
            tracing::debug!(state = %target, plan = %plan.describe(), "a standby follows the announced state");
            self.announced = Some(state);
            self.needs_restore = true;
        }
        self.announcement = Some(object);
        Ok(())
    }

    /// Hands the lease over at once, so that a standby takes it without waiting for it to run
    /// out (a clean shutdown), and stops campaigning: this producer never leads again. Without
    /// leader election, nothing.
    pub async fn step_down(&mut self) -> Result<()> {
        if let Some(elector) = &mut self.elector {
            elector.step_down().await?;
        }
        Ok(())
    }

    /// Checks that this producer leads; the first time in a new epoch, restores the state the
    /// announcement names (the fence carries it).
    async fn take_office(&mut self, epoch: u64) -> Result<()> {
        if self.epoch != epoch {
            self.epoch = epoch;
            self.needs_restore = true;
        }
        if self.needs_restore {
            self.restore().await?;
        }
        Ok(())
    }

    /// The error for a producer that does not lead (now), with the leader as the store has it
    /// (the elector's view may be a poll behind), or as last seen if the store cannot say.
    async fn not_leader(&self) -> Error {
        let (mut current_epoch, mut holder) = self
            .leadership()
            .map_or((self.epoch, None), |l| (l.epoch, l.holder));
        if let Ok(Some(lease)) = self.store.lease().await {
            current_epoch = lease.lease.epoch;
            holder = (!lease.lease.released).then_some(lease.lease.holder);
        }
        Error::NotLeader {
            epoch: self.epoch,
            current_epoch: current_epoch.max(self.epoch),
            holder,
        }
    }

    /// The schema of the next cycle.
    pub fn schema(&self) -> &std::sync::Arc<hollow_core::Schema> {
        self.write.schema()
    }

    /// The dataset's store.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// Runs one cycle: `populate` adds the whole dataset; the producer builds the new state,
    /// writes its delta and reverse delta and checks them (the announced state plus the delta
    /// must hold what was written, and the reverse delta lead back), runs the validators,
    /// writes the snapshot and checks that it holds the same state bit for bit, publishes
    /// every blob (create-only) and announces the version last. Any failure announces nothing
    /// and leaves the producer at its last announced state, so the next cycle produces a
    /// correct delta from it.
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
        if let Some(elector) = &self.elector {
            match elector.leading_epoch() {
                Some(epoch) => self.take_office(epoch).await?,
                None => return Err(self.not_leader().await),
            }
        }
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
        if let Some((state, reverse)) = self.previous_by_reverse.take() {
            self.take_back_announced(&state, reverse);
        }
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

    /// Gives the announced state back after a cycle that gave it up failed: `state`, the
    /// cycle's new state, plus the reverse delta, which the cycle checked leads back to it.
    fn take_back_announced(&mut self, state: &ReadState, reverse: Bytes) {
        match state.apply_delta(reverse) {
            Ok(previous) => self.announced = Some(previous),
            Err(e) => {
                tracing::warn!(error = %e, "the announced state could not be taken back; restoring it from the store");
                self.needs_restore = true;
            }
        }
    }

    /// Brings the producer to the state the store announces, when it may not be there: after a
    /// cycle whose announcement was lost or unconfirmed, or a panic, or when another producer
    /// announced since. True if the producer's state changed. (A cycle does this by itself
    /// first; a caller that derives its input from the announced state, as a Kafka source
    /// resuming from the offsets it records, calls it after a failed cycle.)
    pub async fn sync_with_announced(&mut self) -> Result<bool> {
        let announced = self.store.announcement_object().await?;
        if !self.needs_restore && announced == self.announcement {
            return Ok(false);
        }
        let before = self.state_id();
        self.restore().await?;
        Ok(self.state_id() != before)
    }

    /// Goes back to the state the store announces, after a cycle whose announcement was lost
    /// to another producer or could not be confirmed.
    async fn restore(&mut self) -> Result<()> {
        let schema = self.write.schema().as_ref().clone();
        let restored = restore(
            &self.store,
            schema,
            self.settings.allow_breaking_schema_changes,
            self.announced.as_ref(),
        )
        .await?;
        tracing::warn!(
            from = ?self.state_id().map(|s| s.to_string()),
            to = ?restored.announced.as_ref().map(|a| a.id().to_string()),
            "restored the announced state"
        );
        self.write = restored.write;
        self.announced = restored.announced;
        self.announcement = restored.announcement;
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
        let mut replacements = std::mem::take(&mut self.replacements);
        let outcome = self
            .run(|write, announced| {
                write.begin_incremental()?;
                let mut c = Changes::new(write, announced, std::mem::take(&mut replacements));
                changes(&mut c)?;
                let (write, used) = c.batch.settle()?;
                replacements = std::mem::take(used).emptied();
                write.sweep_unreachable();
                Ok(())
            })
            .await;
        self.replacements = replacements;
        outcome
    }

    async fn cycle<F>(&mut self, version: u64, populate: F) -> Result<CycleOutcome>
    where
        F: FnOnce(&mut WriteState, Option<&ReadState>) -> hollow_core::Result<()>,
    {
        let mut stages = StageTimes::default();
        let t = Instant::now();
        let (write, announced) = (&mut self.write, self.announced.as_ref());
        off_the_runtime(|| populate(write, announced)).map_err(Error::Populate)?;
        stages.done("populate", t);
        if !self.write.has_changes() {
            self.write.abandon_cycle();
            return Ok(CycleOutcome::NoChange);
        }
        // From here on the version is spent, even if the cycle fails: never reused.
        self.next_version = version + 1;

        let id = StateId::new(version, random_tag());
        let origin = self.announced.as_ref().map(ReadState::id);
        let t = Instant::now();
        let (blobs, first_snapshot) = off_the_runtime(|| self.write_blobs(id))?;
        stages.done("write_blobs", t);
        // A snapshot is written only when it is published (the first, and then see
        // `snapshot_due`): the other cycles cost in proportion to their change.
        let delta_bytes = blobs.deltas.as_ref().map_or(0, |(d, _)| d.len());
        let snapshot_cycle = origin.is_none() || self.snapshot_due(delta_bytes);
        let in_background =
            snapshot_cycle && origin.is_some() && self.settings.snapshots_in_background;
        let snapshot_now = snapshot_cycle && !in_background;
        let (state, blobs) = off_the_runtime(|| {
            self.checked_state(
                version,
                id,
                blobs,
                first_snapshot,
                snapshot_now,
                &mut stages,
            )
        })?;

        let t = Instant::now();
        // Every blob is named by the states it joins, random tags included, so the blobs of two
        // producers racing for one version never collide; the announcement decides which wins.
        let compression = &self.settings.compression;
        let stored = off_the_runtime(|| compression.stored_blobs(&blobs))?;
        let stored_snapshot_bytes = stored.snapshot.as_ref().map(Bytes::len);
        let stored_delta_bytes = (stored.deltas.as_ref()).map(|(d, r)| (d.len(), r.len()));
        if let Some(snapshot) = stored.snapshot {
            self.store.put(BlobName::Snapshot(id), snapshot).await?;
        }
        if let (Some(from), Some((delta, reverse))) = (origin, stored.deltas) {
            self.store
                .put(BlobName::Delta { from, to: id }, delta)
                .await?;
            let back = BlobName::ReverseDelta { from: id, to: from };
            self.store.put(back, reverse).await?;
        }
        stages.done("publish", t);

        let t = Instant::now();
        self.announcement = Some(self.announce(id).await?);
        stages.done("announce", t);

        // Announced: what the cycle gave up is not to be taken back, and a write state that
        // cannot commit is restored from the store.
        self.previous_by_reverse = None;
        let committed = off_the_runtime(|| self.write.commit_cycle());
        if committed.is_err() {
            self.needs_restore = true;
        }
        committed?;
        if in_background {
            self.publish_snapshot_in_background(state.clone());
        }
        self.announced = Some(state);
        self.since_snapshot = match snapshot_cycle {
            true => SinceSnapshot::snapshot_now(origin.is_none()),
            false => self.since_snapshot.and_delta(delta_bytes),
        };
        if let Some(keep) = self.settings.retain_versions {
            self.apply_retention_in_background(id, keep, snapshot_cycle)
                .await;
        }
        let write_state_bytes = self.write.heap_bytes();
        let state_bytes =
            (self.announced.as_ref()).map_or(0, |s| s.heap_bytes() + s.index_heap_bytes());
        metrics::gauge!("hollow_producer_write_state_bytes").set(write_state_bytes as f64);
        metrics::gauge!("hollow_producer_state_bytes").set(state_bytes as f64);
        let report = CycleReport {
            version,
            previous: origin.map(|o| o.version),
            snapshot_bytes: blobs.snapshot.as_ref().map(Bytes::len),
            delta_bytes: blobs.deltas.as_ref().map(|(d, r)| (d.len(), r.len())),
            stored_snapshot_bytes,
            stored_delta_bytes,
            stages: stages.0,
            write_state_bytes,
            state_bytes,
        };
        Ok(CycleOutcome::Published(report))
    }

    /// Whether a cycle (one after the first) whose delta has `delta_bytes` is to snapshot:
    /// the Nth since the last snapshot cycle, and either the snapshot interval passed since it
    /// or the deltas since, this one's included, add up to half the announced state (a
    /// consumer starting cold would read that much).
    fn snapshot_due(&self, delta_bytes: usize) -> bool {
        let since = self.since_snapshot.and_delta(delta_bytes);
        let announced_bytes = self.announced.as_ref().map_or(0, ReadState::heap_bytes);
        since.cycles >= self.settings.snapshot_every
            && (since
                .at
                .is_none_or(|at| at.elapsed() >= self.settings.snapshot_interval)
                || since.delta_bytes >= announced_bytes / 2)
    }

    /// Writes the cycle's state `id`: its deltas from the announced state, or without one its
    /// first snapshot (returned apart, as it is read in place).
    fn write_blobs(&mut self, id: StateId) -> Result<(CycleBlobs, Option<Vec<u8>>)> {
        let origin = self.announced.as_ref().map(ReadState::id);
        let first_snapshot = match origin {
            None => Some(self.write.write_snapshot(id)?),
            Some(_) => None,
        };
        let blobs = CycleBlobs {
            snapshot: None,
            deltas: match origin {
                None => None,
                Some(from) => Some((
                    Bytes::from(self.write.write_delta(from, id)?),
                    Bytes::from(self.write.write_reverse_delta(id, from)?),
                )),
            },
        };
        Ok((blobs, first_snapshot))
    }

    /// Reaches the cycle's state (`id`, the next `version`) from its `blobs`: the state the
    /// deltas lead to, checked both ways, or the first snapshot's; then runs the validators,
    /// and writes the snapshot too when `snapshot_now`.
    fn checked_state(
        &mut self,
        version: u64,
        id: StateId,
        mut blobs: CycleBlobs,
        first_snapshot: Option<Vec<u8>>,
        snapshot_now: bool,
        stages: &mut StageTimes,
    ) -> Result<(ReadState, CycleBlobs)> {
        let origin = self.announced.as_ref().map(ReadState::id);
        let t = Instant::now();
        let state = match (&self.announced, &blobs.deltas, first_snapshot) {
            (Some(previous), Some(deltas), _) => {
                check_deltas(previous, deltas, version, &self.write)?
            }
            // A first state reads its snapshot in place, and the blob published is a view of
            // the same memory: one copy, whose type sections give their pages back as deltas
            // replace them once the blob is published and dropped.
            (_, _, Some(snapshot)) => {
                let (state, blob) = ReadState::from_snapshot_keeping_blob(snapshot)?;
                blobs.snapshot = Some(blob);
                state
            }
            _ => {
                return Err(Error::Integrity(format!(
                    "version {version} has neither a snapshot nor a delta"
                )))
            }
        };
        stages.done("integrity_check", t);

        let t = Instant::now();
        let ctx = ValidationContext {
            version,
            state: &state,
            previous: self.announced.as_ref(),
        };
        for v in &self.settings.validators {
            v.validate(&ctx).map_err(|message| Error::Validation {
                validator: v.name(),
                version,
                message,
            })?;
        }
        stages.done("validate", t);

        let state =
            if let (true, Some(from), Some((_, reverse))) = (snapshot_now, origin, &blobs.deltas) {
                // The snapshot is written once the deltas passed, and replaces the state they
                // reach: the announced state and that one are let go first (the second's layout
                // digest and indexes kept), and the new state reads the snapshot in place. So a
                // producer never holds a state and a snapshot of it at once, nor the old and new
                // copies of what changed. Until the new state is read, a failure leaves nothing to
                // take the announced state back from: the next cycle restores it from the store.
                let t = Instant::now();
                self.announced = None;
                let reached = state.into_layout();
                self.needs_restore = true;
                let snapshot = self.write.write_snapshot(id)?;
                let (loaded, blob) = snapshot_state(snapshot, reached, from.version)?;
                self.needs_restore = false;
                // From here on, the new state plus the reverse delta gives the announced one back.
                self.previous_by_reverse = Some((loaded.clone(), reverse.clone()));
                blobs.snapshot = Some(blob);
                stages.done("write_snapshot", t);
                loaded
            } else {
                state
            };
        Ok((state, blobs))
    }

    /// Announces `id` over the announcement this producer last saw, with its epoch. When that
    /// fails (another producer won, a newer leader fenced it, or the store's reply was lost),
    /// the announcement is read again: if it names `id`, the write landed and the cycle is
    /// published; otherwise the producer restores the announced state before its next cycle,
    /// so it never stays wedged on a stale announcement.
    async fn announce(&mut self, id: StateId) -> Result<AnnouncementObject> {
        if let Some(elector) = &self.elector {
            if !elector.leads_in(self.epoch) {
                self.needs_restore = true;
                return Err(self.not_leader().await);
            }
        }
        let body = AnnouncementBody {
            state: Some(id),
            epoch: self.epoch,
        };
        let error = match self
            .store
            .swap_announcement(body, self.announcement.as_ref())
            .await
        {
            Ok(object) => return Ok(object),
            Err(e) => e,
        };
        self.needs_restore = true;
        match self.store.announcement_object().await {
            Ok(Some(a)) if a.body == body => {
                tracing::warn!(error = %error, state = %id, "the announcement landed although its write reported a failure");
                self.needs_restore = false;
                Ok(a)
            }
            Ok(Some(a)) if a.body.epoch > self.epoch => {
                tracing::warn!(epoch = self.epoch, current_epoch = a.body.epoch, state = %id, "fenced: a newer leader took over; not announced");
                Err(Error::NotLeader {
                    epoch: self.epoch,
                    current_epoch: a.body.epoch,
                    holder: self.leadership().and_then(|l| l.holder),
                })
            }
            _ => Err(error.into()),
        }
    }
}

/// What a producer published since its last snapshot cycle: what decides the next one.
#[derive(Clone, Copy, Default)]
struct SinceSnapshot {
    /// Cycles published.
    cycles: u64,
    /// When the last snapshot cycle was (none yet since the producer started).
    at: Option<Instant>,
    /// Bytes of the deltas published.
    delta_bytes: usize,
}

impl SinceSnapshot {
    /// Right after a snapshot cycle. A dataset's `first` version counts as one of its first N
    /// cycles: snapshots then come at versions N, 2N... when nothing puts one off.
    fn snapshot_now(first: bool) -> Self {
        Self {
            cycles: u64::from(first),
            at: Some(Instant::now()),
            delta_bytes: 0,
        }
    }

    /// After one more cycle, whose delta has `delta_bytes`.
    fn and_delta(self, delta_bytes: usize) -> Self {
        Self {
            cycles: self.cycles + 1,
            delta_bytes: self.delta_bytes + delta_bytes,
            ..self
        }
    }
}

/// How long each stage of a cycle took, in order, as its report lists them.
#[derive(Default)]
struct StageTimes(Vec<(&'static str, Duration)>);

impl StageTimes {
    /// Records that stage `name`, started at `started`, is done.
    fn done(&mut self, name: &'static str, started: Instant) {
        let took = started.elapsed();
        metrics::histogram!("hollow_producer_stage_seconds", "stage" => name)
            .record(took.as_secs_f64());
        tracing::debug!(stage = name, ms = took.as_secs_f64() * 1e3, "stage done");
        self.0.push((name, took));
    }
}

/// Runs a cycle's CPU-bound `work` (populating, writing, checking, compressing) without
/// stalling the runtime: on a multi-threaded runtime the worker first hands its other tasks
/// (a Kafka source's fetchers, a service's requests) to another thread. A current-thread
/// runtime has no other thread, so there the work runs in place.
fn off_the_runtime<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::builder::ProducerBuilder;
    use crate::test_rows::{schema, Row};

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

    /// A producer of rows in a local folder.
    fn in_folder(dir: &std::path::Path) -> ProducerBuilder {
        let folder = object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap();
        ProducerBuilder::new(Arc::new(folder), "rows", schema())
    }

    /// A cycle reports the memory the producer holds after it: the write state's tables grow
    /// with the records, and the announced state is counted with its index.
    #[tokio::test]
    async fn a_cycle_reports_the_memory_the_producer_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = in_folder(dir.path()).build().await.unwrap();
        async fn report(p: &mut Producer, rows: i64) -> usize {
            let rows: Vec<Row> = (0..rows)
                .map(|id| Row {
                    id,
                    name: format!("row {id}"),
                })
                .collect();
            match p
                .run_cycle(|w| rows.iter().try_for_each(|r| w.add(r)))
                .await
            {
                Ok(CycleOutcome::Published(report)) => {
                    let state = p.state().unwrap();
                    let held = state.heap_bytes() + state.index_heap_bytes();
                    assert_eq!(report.state_bytes, held);
                    assert!(state.index_heap_bytes() > 0);
                    report.write_state_bytes
                }
                other => panic!("{other:?}"),
            }
        }
        let small = report(&mut p, 1_000).await;
        let large = report(&mut p, 20_000).await;
        assert!(small > 1_000 * 8, "{small}");
        assert!(large > small * 10, "{small} -> {large}");
    }

    /// With a snapshot every 3 cycles, a new dataset's snapshots are those of versions 1,
    /// 3 and 6.
    #[tokio::test]
    async fn snapshots_come_every_nth_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = in_folder(dir.path())
            .with_snapshot_every(3)
            .build()
            .await
            .unwrap();
        let mut snapshots = Vec::new();
        for last in ["a", "b", "c", "d", "e", "f", "g"] {
            let outcome = p.run_cycle(|w| {
                w.add(&Row {
                    id: 1,
                    name: last.into(),
                })
            });
            let Ok(CycleOutcome::Published(report)) = outcome.await else {
                panic!("cycle {last:?} did not publish");
            };
            snapshots.push(report.snapshot_bytes.is_some());
        }
        assert_eq!(snapshots, [true, false, true, false, false, true, false]);
    }

    /// A snapshot interval spaces snapshot cycles in time: every cycle is a snapshot cycle
    /// by count here; when each changes one row of 500, only the first one and the one after
    /// the interval write one, and a cycle changing every row does not wait.
    #[tokio::test]
    async fn snapshots_wait_for_the_snapshot_interval_unless_much_changed() {
        let dir = tempfile::tempdir().unwrap();
        let interval = std::time::Duration::from_millis(300);
        let mut p = in_folder(dir.path())
            .with_snapshot_interval(interval)
            .build()
            .await
            .unwrap();
        let mut snapshots = Vec::new();
        let cycles = [(0, "a"), (0, "b"), (0, "c"), (350, "d"), (0, "e"), (0, "")];
        for (pause, last) in cycles {
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            let rows: Vec<Row> = (0..500)
                .map(|id| Row {
                    id,
                    name: match (id, last) {
                        (_, "") => format!("all new {id}"),
                        (499, last) => last.into(),
                        _ => id.to_string(),
                    },
                })
                .collect();
            let outcome = p.run_cycle(|w| rows.iter().try_for_each(|r| w.add(r)));
            let Ok(CycleOutcome::Published(report)) = outcome.await else {
                panic!("cycle {last:?} did not publish");
            };
            snapshots.push(report.snapshot_bytes.is_some());
        }
        assert_eq!(snapshots, [true, false, false, true, false, true]);
    }

    /// A producer asked for the snapshot of the state it reached publishes one, of the
    /// announced version, once: not for a first version (it has its snapshot), not again
    /// without a new delta.
    #[tokio::test]
    async fn the_snapshot_of_the_announced_state_is_published_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = in_folder(dir.path())
            .with_snapshot_every(10)
            .build()
            .await
            .unwrap();
        let snapshots = |p: &Producer| {
            let store = p.store.clone();
            async move {
                let mut versions: Vec<u64> = (store.list().await.unwrap().into_iter())
                    .filter_map(|b| match b {
                        BlobName::Snapshot(id) => Some(id.version),
                        _ => None,
                    })
                    .collect();
                versions.sort();
                versions
            }
        };
        run(&mut p, "a").await;
        assert!(
            !p.snapshot_in_background(),
            "the first version has its snapshot"
        );
        run(&mut p, "b").await;
        run(&mut p, "c").await;
        assert_eq!(snapshots(&p).await, [1]);
        assert!(p.snapshot_in_background());
        let id = p.wait_for_background_snapshot().await.unwrap().unwrap();
        assert_eq!(Some(id.version), p.version());
        assert_eq!(snapshots(&p).await, [1, 3]);
        assert!(
            !p.snapshot_in_background(),
            "no delta since the last snapshot"
        );
        run(&mut p, "d").await;
        assert!(p.snapshot_in_background());
        p.wait_for_background_snapshot().await.unwrap().unwrap();
        assert_eq!(snapshots(&p).await, [1, 3, 4]);
    }

    /// A cycle's work does not hold up the runtime's other tasks: on a runtime of one worker,
    /// a task spawned before the cycle still runs while the cycle populates.
    #[test]
    fn a_cycle_leaves_the_runtime_to_other_tasks() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let outcome = runtime.block_on(async {
            let mut p = in_folder(dir.path()).build().await.unwrap();
            let (ran, other_ran) = std::sync::mpsc::channel();
            tokio::spawn(async move {
                let cycle = p.run_cycle(move |w| {
                    tokio::spawn(async move { ran.send(()) });
                    let waited = other_ran.recv_timeout(std::time::Duration::from_secs(10));
                    assert!(
                        waited.is_ok(),
                        "the other task did not run during the cycle"
                    );
                    w.add(&Row {
                        id: 1,
                        name: "one".into(),
                    })
                });
                cycle.await
            })
            .await
            .unwrap()
        });
        assert!(
            matches!(outcome, Ok(CycleOutcome::Published(_))),
            "{outcome:?}"
        );
    }

    /// A cycle gives up the announced state's copies of what changed before it writes its
    /// snapshot; when it fails after that (here another producer announced first), it gives
    /// the announced state back: the producer still holds the state it announced.
    #[tokio::test]
    async fn a_cycle_failing_after_its_snapshot_gives_the_announced_state_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = in_folder(dir.path()).build().await.unwrap();
        run(&mut p, "a").await;
        let announced = p.state().map(|s| (s.id(), s.checksum()));
        let mut other = in_folder(dir.path()).build().await.unwrap();
        run(&mut other, "b").await;

        let rows: Vec<Row> = (0..500)
            .map(|id| Row {
                id,
                name: format!("c{id}"),
            })
            .collect();
        let lost = p
            .run_cycle(|w| rows.iter().try_for_each(|r| w.add(r)))
            .await;
        assert!(lost.is_err(), "{lost:?}");
        assert_eq!(p.state().map(|s| (s.id(), s.checksum())), announced);
        assert!(p.previous_by_reverse.is_none());
        // The next cycle restores what the other producer announced and goes on from there.
        run(&mut p, "d").await;
        assert_eq!(p.version(), Some(3));
    }
}
