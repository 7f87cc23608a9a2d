//! The consumer: keeps an in-memory replica of the announced state and swaps each new version
//! in atomically while readers keep reading.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use futures::FutureExt;
use hollow_core::{ReadState, Schema, SchemaBuilder, SchemaConflict, StateId};
use hollow_store::{load_with_hash_indexes, BlobStore, Plan};
use object_store::{ObjectStore, UpdateVersion};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::error::{Error, Result};
use hollow_core::panic_message;

/// How the consumer is doing: what it serves, what is announced, and the last failure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// The version readers get.
    pub current: Option<u64>,
    /// The version the store announces (as last read).
    pub announced: Option<u64>,
    /// The leadership epoch of the producer that wrote the announcement as last read (0 for
    /// producers without leader election; a new leader's fence raises it before its first
    /// version): which producer the consumer follows.
    pub announced_epoch: Option<u64>,
    /// The version pinned, if any.
    pub pinned: Option<u64>,
    /// The last refresh error, cleared by the next success.
    pub last_error: Option<String>,
    /// Failed refreshes since the last success.
    pub consecutive_failures: u32,
    /// When the current state was swapped in.
    pub last_swap: Option<SystemTime>,
}

impl Health {
    /// How many versions the current state is behind the target (the pin, or the announcement).
    pub fn versions_behind(&self) -> u64 {
        let target = self.pinned.or(self.announced);
        match (target, self.current) {
            (Some(t), Some(c)) => t.saturating_sub(c),
            (Some(_), None) => 1,
            _ => 0,
        }
    }
}

/// One completed refresh, for listeners.
#[derive(Clone, Debug)]
pub struct RefreshEvent {
    /// The version served before.
    pub from: Option<u64>,
    /// The version served now.
    pub to: u64,
    /// The state served now: its version and its producer's tag.
    pub state: StateId,
    /// How it got there (`snapshot 4 + 2 deltas`, `1 delta`).
    pub plan: String,
    /// Time from the decision to refresh to the swap.
    pub took: Duration,
}

/// Hears about refreshes. Every method has an empty default.
pub trait ConsumerListener: Send + Sync {
    /// A new state was swapped in.
    fn on_refresh(&self, _event: &RefreshEvent) {}
    /// A refresh failed; the current state keeps serving.
    fn on_refresh_failed(&self, _error: &Error) {}
}

/// Configures and starts a [`Consumer`].
pub struct ConsumerBuilder {
    store: BlobStore,
    poll_interval: Duration,
    max_delta_chain: usize,
    listeners: Vec<Arc<dyn ConsumerListener>>,
    max_backoff: Duration,
    reads: Option<SchemaBuilder>,
    hash_indexes: Vec<(String, Vec<String>)>,
}

impl ConsumerBuilder {
    /// A consumer of the dataset under `prefix` in `store` (any `object_store` backend).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        Self::from_blob_store(BlobStore::new(store, prefix))
    }

    /// A consumer of the dataset under `prefix` in the local folder `folder`, which must exist.
    /// Its announcement is watched with file-system events, so a new version is picked up at
    /// once; polling stays on as a fallback.
    pub fn local(folder: impl Into<PathBuf>, prefix: &str) -> Result<Self> {
        Ok(Self::from_blob_store(BlobStore::local(folder, prefix)?))
    }

    /// A consumer of a dataset as the store layer has it (a [`BlobStore::local`] folder is
    /// watched with file-system events).
    pub fn from_blob_store(store: BlobStore) -> Self {
        Self {
            store,
            poll_interval: Duration::from_secs(1),
            max_delta_chain: 32,
            listeners: Vec::new(),
            max_backoff: Duration::from_secs(30),
            reads: None,
            hash_indexes: Vec::new(),
        }
    }

    /// Keeps a hash index of `type_name` on `fields` (paths such as `country` or `cast.id`)
    /// with every state served: built when a snapshot is loaded (or read back from a blob cache
    /// that saved it beside the snapshot), updated by each delta, read with
    /// `state.hash_index(type_name, fields)`. A state the index cannot be built on (a
    /// field gone) is not swapped in; the health says why.
    pub fn with_hash_index(mut self, type_name: &str, fields: &[&str]) -> Self {
        self.hash_indexes.push((
            type_name.to_string(),
            fields.iter().map(|f| f.to_string()).collect(),
        ));
        self
    }

    /// Declares a Rust record type this consumer reads (call once per type). A state that
    /// cannot be read with the declared types (a type or a non-`Option` field missing, a field
    /// of another kind: see [`Schema::unreadable_as`](hollow_core::Schema::unreadable_as)) is
    /// not swapped in: the consumer keeps serving its last readable state and its health says
    /// why ([`Error::Unreadable`]).
    pub fn reads<T: Serialize + Deserialize<'static>>(mut self) -> Self {
        self.reads = Some(self.reads.take().unwrap_or_default().add::<T>());
        self
    }

    /// How often to check the announcement (a conditional request: cheap when unchanged).
    /// Default 1 s; zero is an error at [`ConsumerBuilder::build`].
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Follows at most this many deltas (default 32); a longer way loads a snapshot instead.
    /// Zero is an error at [`ConsumerBuilder::build`].
    pub fn with_max_delta_chain(mut self, n: usize) -> Self {
        self.max_delta_chain = n;
        self
    }

    /// Keeps a copy of every fetched blob in `folder` (see [`BlobStore::with_cache`]).
    pub fn with_blob_cache(mut self, folder: impl Into<PathBuf>) -> Self {
        self.store = self.store.with_cache(folder);
        self
    }

    /// Like [`ConsumerBuilder::with_blob_cache`], with the cached blobs mapped into memory
    /// instead of read into the heap (see `BlobStore::with_mapped_cache`): the data of the
    /// types a delta does not change stays in the page cache, shared by the consumers of one
    /// machine that share the folder.
    pub fn with_mapped_blob_cache(mut self, folder: impl Into<PathBuf>) -> Self {
        self.store = self.store.with_cache(folder).with_mapped_cache();
        self
    }

    /// The longest wait between retries after failures (they back off from 100 ms; default
    /// 30 s). Below 100 ms is an error at [`ConsumerBuilder::build`].
    pub fn with_max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// Adds a listener.
    pub fn with_listener(mut self, listener: Arc<dyn ConsumerListener>) -> Self {
        self.listeners.push(listener);
        self
    }

    fn check_settings(&self) -> Result<()> {
        let invalid = |setting, reason: &str| {
            Err(Error::InvalidSetting {
                setting,
                reason: reason.into(),
            })
        };
        if self.poll_interval.is_zero() {
            return invalid("poll interval", "zero would poll the store without pause");
        }
        if self.max_delta_chain == 0 {
            return invalid("max delta chain", "zero would never follow a delta");
        }
        if self.max_backoff < INITIAL_BACKOFF {
            return invalid("max backoff", "below the first retry's 100 ms");
        }
        Ok(())
    }

    /// Starts the consumer: loads the announced state and starts following announcements in
    /// the background on the current tokio runtime. A failure to load is returned, since there
    /// is nothing to serve yet, except when nothing is announced yet: then the consumer starts
    /// empty, says so in its health, and serves the first state announced.
    pub async fn build(self) -> Result<Consumer> {
        self.check_settings()?;
        let reader = match self.reads {
            None => None,
            Some(types) => Some(types.build().map_err(|e| Error::InvalidSetting {
                setting: "reads",
                reason: e.to_string(),
            })?),
        };
        let shared = Arc::new(Shared {
            reader,
            hash_indexes: self.hash_indexes,
            refused: Mutex::new(None),
            store: self.store,
            state: ArcSwapOption::empty(),
            health: Mutex::new(Health::default()),
            wake: Notify::new(),
            swapped: Notify::new(),
            refreshing: tokio::sync::Mutex::new(None),
            max_delta_chain: self.max_delta_chain,
            listeners: self.listeners,
            missing_hint: Mutex::new(None),
            watcher: Mutex::new(Watch::NotYet),
        });
        match shared.refresh().await {
            Ok(_) => {}
            Err(e) if e.is_no_announcement() => shared.failed(&e),
            Err(e) => return Err(e),
        }
        shared.watch_dataset_folder();
        let task = tokio::spawn(follow(
            Arc::downgrade(&shared),
            self.poll_interval,
            self.max_backoff,
        ));
        Ok(Consumer { shared, task })
    }
}

struct Shared {
    store: BlobStore,
    state: ArcSwapOption<ReadState>,
    health: Mutex<Health>,
    wake: Notify,
    /// Notified after every swap, for [`Consumer::wait_until`].
    swapped: Notify,
    /// Held while refreshing; remembers the announcement tag last acted on.
    refreshing: tokio::sync::Mutex<Option<UpdateVersion>>,
    max_delta_chain: usize,
    listeners: Vec<Arc<dyn ConsumerListener>>,
    /// Watches a local dataset folder for announcements, once the folder exists (a consumer may
    /// start before its producer made it).
    watcher: Mutex<Watch>,
    /// While nothing is announced: what was found nearby (looked up once).
    missing_hint: Mutex<Option<Option<String>>>,
    /// Hash indexes every state served keeps: (type, field paths).
    hash_indexes: Vec<(String, Vec<String>)>,
    /// The schema of the Rust types the consumer reads, if it declared them.
    reader: Option<Schema>,
    /// The last state refused (unreadable with the reader's types, or without a hash index it
    /// must keep), and why: not fetched and loaded again at every poll, only when another
    /// state is announced.
    refused: Mutex<Option<(StateId, Refusal)>>,
}

/// Why a state was not swapped in, kept to answer again without loading it again.
#[derive(Clone)]
enum Refusal {
    /// The reader's types cannot read it.
    Unreadable(Vec<SchemaConflict>),
    /// A hash index the consumer keeps cannot be built on it.
    Unindexable {
        index: String,
        source: hollow_core::Error,
    },
}

impl Refusal {
    fn error(self, state: StateId) -> Error {
        match self {
            Refusal::Unreadable(conflicts) => Error::Unreadable { state, conflicts },
            Refusal::Unindexable { index, source } => Error::HashIndex {
                state,
                index,
                source: Box::new(source),
            },
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Brings the state to the target (the pin, or the announcement). Never touches the
    /// current state unless the new one is complete, valid and the target exactly. A panic
    /// anywhere in it is caught and returned as an error.
    async fn refresh(&self) -> Result<Option<RefreshEvent>> {
        match AssertUnwindSafe(self.try_refresh()).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => {
                metrics::counter!("hollow_consumer_refresh_panics_total").increment(1);
                Err(Error::Panicked {
                    message: panic_message(panic.as_ref()),
                })
            }
        }
    }

    async fn try_refresh(&self) -> Result<Option<RefreshEvent>> {
        // Remembers the announcement object acted on, once the state served is the one it names.
        let mut known = self.refreshing.lock().await;
        let started = Instant::now();
        let pinned = lock(&self.health).pinned;
        let current = self.state.load_full();
        let current_id = current.as_ref().map(|c| c.id());
        let (target, announcement) = match pinned {
            Some(version) => {
                // Pinned: the announcement is still read, so that health shows what a consumer
                // would serve once unpinned (and that it is still following), and so that only
                // an announced state of that version is pinned.
                let mut announced = None;
                if let Ok(Some(Some(a))) = self.store.announcement_if_changed(None).await {
                    let mut health = lock(&self.health);
                    health.announced = Some(a.version());
                    health.announced_epoch = Some(a.epoch);
                    announced = Some(a.state);
                }
                if current_id.is_some_and(|c| c.version == version) {
                    return Ok(None);
                }
                let blobs = self.store.list().await?;
                let target = hollow_store::resolve_version(&blobs, current_id, announced, version)?;
                (target, None)
            }
            None => {
                let seen = current.is_some().then_some(known.as_ref()).flatten();
                match self.store.announcement_if_changed(seen).await {
                    Ok(None) => return Ok(None),
                    Ok(Some(None)) => {
                        *known = None;
                        {
                            let mut health = lock(&self.health);
                            health.announced = None;
                            health.announced_epoch = None;
                        }
                        return Err(self.no_announcement().await.into());
                    }
                    Ok(Some(Some(a))) => {
                        *lock(&self.missing_hint) = None;
                        {
                            let mut health = lock(&self.health);
                            health.announced = Some(a.version());
                            health.announced_epoch = Some(a.epoch);
                        }
                        if let Some(c) = current_id.filter(|c| c.version > a.state.version) {
                            *known = None;
                            return Err(Error::WouldGoBack {
                                current: c,
                                announced: a.state,
                            });
                        }
                        (a.state, Some(a.object_version))
                    }
                    Err(e) => {
                        *known = None;
                        return Err(e.into());
                    }
                }
            }
        };
        if current_id == Some(target) {
            *known = announcement;
            return Ok(None);
        }
        if let Some((state, why)) = lock(&self.refused)
            .as_ref()
            .filter(|(state, _)| *state == target)
        {
            return Err(why.clone().error(*state));
        }
        let load = |current| {
            let indexes = &self.hash_indexes;
            load_with_hash_indexes(&self.store, current, target, self.max_delta_chain, indexes)
        };
        let (mut next, plan) = match load(current.as_deref()).await {
            Ok(done) => done,
            // A broken delta path (a missing or corrupt delta): try a fresh snapshot once.
            Err(e) if current.is_some() => {
                tracing::warn!(error = %e, %target, "following deltas failed; loading a snapshot");
                load(None).await?
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(reader) = &self.reader {
            let conflicts = next.schema().unreadable_as(reader);
            if !conflicts.is_empty() {
                return Err(self.refuse(target, Refusal::Unreadable(conflicts)));
            }
        }
        for (type_name, fields) in &self.hash_indexes {
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            if let Err(source) = next.add_hash_index(type_name, &fields) {
                let index = format!("{type_name}({})", fields.join(", "));
                return Err(self.refuse(target, Refusal::Unindexable { index, source }));
            }
        }
        let event = self.swap(current.map(|c| c.version()), next, &plan, started);
        *known = announcement;
        Ok(Some(event))
    }

    /// Remembers that `state` was refused and why; the error to return.
    fn refuse(&self, state: StateId, why: Refusal) -> Error {
        *lock(&self.refused) = Some((state, why.clone()));
        why.error(state)
    }

    /// The error for a missing announcement. Its hint (a listing) is looked up once per stretch
    /// without an announcement, not at every poll.
    async fn no_announcement(&self) -> hollow_store::Error {
        let known = lock(&self.missing_hint).clone();
        let hint = match known {
            Some(hint) => hint,
            None => {
                let hint = self.store.hint_for_missing_announcement().await;
                *lock(&self.missing_hint) = Some(hint.clone());
                hint
            }
        };
        self.store.no_announcement(hint)
    }

    fn swap(
        &self,
        from: Option<u64>,
        next: ReadState,
        plan: &Plan,
        started: Instant,
    ) -> RefreshEvent {
        let (to, state) = (next.version(), next.id());
        {
            // The health is locked while the state is swapped in, so whoever sees the new
            // version and then asks for the health sees it updated (no stale error).
            let mut h = lock(&self.health);
            self.state.store(Some(Arc::new(next)));
            h.current = Some(to);
            h.last_error = None;
            h.consecutive_failures = 0;
            h.last_swap = Some(SystemTime::now());
        }
        self.swapped.notify_waiters();
        let event = RefreshEvent {
            from,
            to,
            state,
            plan: plan.describe(),
            took: started.elapsed(),
        };
        metrics::gauge!("hollow_consumer_version").set(to as f64);
        metrics::counter!("hollow_consumer_refreshes_total", "outcome" => "swapped").increment(1);
        metrics::histogram!("hollow_consumer_refresh_seconds").record(event.took.as_secs_f64());
        tracing::info!(?from, to, plan = %event.plan, ms = event.took.as_secs_f64() * 1e3, "swapped in a new state");
        for l in &self.listeners {
            l.on_refresh(&event);
        }
        event
    }

    /// A refresh succeeded (swapped, or found nothing to do): no error stands.
    fn succeeded(&self) {
        let mut h = lock(&self.health);
        h.last_error = None;
        h.consecutive_failures = 0;
    }

    fn failed(&self, error: &Error) {
        {
            let mut h = lock(&self.health);
            h.last_error = Some(error.to_string());
            h.consecutive_failures += 1;
        }
        metrics::counter!("hollow_consumer_refreshes_total", "outcome" => "failed").increment(1);
        tracing::warn!(%error, "refresh failed; the current state keeps serving");
        for l in &self.listeners {
            l.on_refresh_failed(error);
        }
    }
}

/// The first wait after a failure; it doubles up to the maximum backoff.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// The background loop: refresh on a wake-up (file event, pin, manual) or a poll tick; back off
/// after failures. Ends when the consumer is dropped.
async fn follow(shared: std::sync::Weak<Shared>, poll: Duration, max_backoff: Duration) {
    let mut backoff = INITIAL_BACKOFF;
    let mut wait = poll;
    loop {
        {
            let Some(s) = shared.upgrade() else { return };
            let _ = tokio::time::timeout(wait, s.wake.notified()).await;
        }
        let Some(s) = shared.upgrade() else { return };
        s.watch_dataset_folder();
        match s.refresh().await {
            Ok(_) => {
                s.succeeded();
                backoff = INITIAL_BACKOFF;
                wait = poll;
            }
            // Nothing announced yet: no retrying faster or slower than polling.
            Err(e) if e.is_no_announcement() => {
                s.failed(&e);
                wait = poll;
            }
            Err(e) => {
                s.failed(&e);
                wait = backoff;
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

impl Shared {
    /// Starts watching the local folder holding the announcement, if there is one, it exists,
    /// and it is not watched yet.
    fn watch_dataset_folder(self: &Arc<Self>) {
        let mut watcher = lock(&self.watcher);
        if !matches!(*watcher, Watch::NotYet) {
            return;
        }
        if let Some(dir) = self.store.dataset_folder().filter(|d| d.is_dir()) {
            *watcher = match watch(self, dir) {
                Some(w) => Watch::Watching(w),
                None => Watch::Failed,
            };
        }
    }
}

/// File-system events on a local dataset folder.
enum Watch {
    /// Not a local folder, or one that does not exist yet.
    NotYet,
    /// Held for as long as the consumer lives: dropping it stops the events.
    Watching(#[allow(dead_code)] notify::RecommendedWatcher),
    /// Watching failed (and was logged): polling only.
    Failed,
}

/// Watches the local folder holding the announcement; events wake the refresh loop.
fn watch(shared: &Arc<Shared>, dir: PathBuf) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let weak = Arc::downgrade(shared);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = event.is_ok_and(|e| {
            e.paths.iter().any(|p| {
                p.file_name()
                    .is_some_and(|n| n == hollow_store::layout::ANNOUNCEMENT)
            })
        });
        if let (true, Some(s)) = (relevant, weak.upgrade()) {
            s.wake.notify_one();
        }
    })
    .map_err(|e| tracing::warn!(error = %e, "no file-system events; polling only"))
    .ok()?;
    match watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
        Ok(()) => Some(watcher),
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the dataset folder; polling only");
            None
        }
    }
}

/// A replica of the announced state. Readers call [`Consumer::current`]; refreshes happen in the
/// background and swap whole versions in atomically.
pub struct Consumer {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Consumer {
    /// The state readers use: one whole version with its indexes, without locks. Hold the
    /// `Arc` for as long as one consistent version is needed; its memory is released when the
    /// last holder lets go after a newer version was swapped in.
    pub fn current(&self) -> Option<Arc<ReadState>> {
        self.shared.state.load_full()
    }

    /// The version readers get.
    pub fn version(&self) -> Option<u64> {
        self.shared.state.load().as_ref().map(|s| s.version())
    }

    /// Current and announced versions, the last error, how far behind.
    pub fn health(&self) -> Health {
        lock(&self.shared.health).clone()
    }

    /// The store the consumer reads.
    pub fn store(&self) -> &BlobStore {
        &self.shared.store
    }

    /// Refreshes now (also what the background loop does); returns the swap, if one happened.
    pub async fn refresh(&self) -> Result<Option<RefreshEvent>> {
        let r = self.shared.refresh().await;
        match &r {
            Ok(_) => self.shared.succeeded(),
            Err(e) => self.shared.failed(e),
        }
        r
    }

    /// Goes to `version` (back through reverse deltas, or from a snapshot) and stays there,
    /// ignoring announcements, until [`Consumer::unpin`]. Only a state that was announced is
    /// pinned: a version spent by a cycle that never announced (its producer killed between
    /// publishing and announcing), or one newer than the announcement, is an error (see
    /// [`hollow_store::resolve_version`]).
    pub async fn pin(&self, version: u64) -> Result<Option<RefreshEvent>> {
        lock(&self.shared.health).pinned = Some(version);
        self.refresh().await
    }

    /// Follows the announcement again.
    pub async fn unpin(&self) -> Result<Option<RefreshEvent>> {
        lock(&self.shared.health).pinned = None;
        *self.shared.refreshing.lock().await = None;
        self.refresh().await
    }

    /// Waits until the consumer serves `version` or later, or `timeout` passes; true if it does.
    pub async fn wait_for_version(&self, version: u64, timeout: Duration) -> bool {
        self.wait_until(|s| s.version() >= version, timeout)
            .await
            .is_some()
    }

    /// Waits until the state served satisfies `ready` (checked now and after every swap), or
    /// `timeout` passes; returns that state, to read from, or `None` on timeout. This is how a
    /// writer reads its own write: wait for a state whose tags say it contains the write.
    pub async fn wait_until(
        &self,
        mut ready: impl FnMut(&ReadState) -> bool,
        timeout: Duration,
    ) -> Option<Arc<ReadState>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the check, so a swap between the two is not missed.
            let swapped = self.shared.swapped.notified();
            tokio::pin!(swapped);
            swapped.as_mut().enable();
            if let Some(state) = self.current().filter(|s| ready(s)) {
                return Some(state);
            }
            if tokio::time::timeout_at(deadline, swapped).await.is_err() {
                return None;
            }
        }
    }
}
