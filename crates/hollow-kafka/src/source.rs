//! The Kafka source: follows every partition of a topic from the offsets the announced state
//! records, and publishes the changes through the incremental producer.

use std::collections::BTreeSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use hashbrown::hash_table::{Entry, HashTable};
use hollow_core::panic_message;
use hollow_producer::{CycleOutcome, Producer};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::RecordAndOffset;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::decode::{Decoder, Json};
use crate::error::{Error, Result};
use crate::key::{KeyShape, OwnedKeyPart};
use crate::offsets::Offsets;

/// A check of each decoded record; an error is the reason the message is bad.
pub type RecordValidator<T> = Box<dyn Fn(&T) -> Result<(), String> + Send + Sync>;

/// Builds a [`KafkaSource`].
pub struct KafkaSourceBuilder<T, D = Json> {
    bootstrap: Vec<String>,
    decoder: D,
    validators: Vec<RecordValidator<T>>,
    settings: Settings,
}

/// How a source runs.
struct Settings {
    topic: String,
    max_delay: Duration,
    max_messages: usize,
    dead_letter_topic: Option<String>,
    fetch_max_bytes: i32,
    fetch_max_wait: Duration,
    max_backoff: Duration,
}

impl<T> KafkaSourceBuilder<T, Json>
where
    T: serde::de::DeserializeOwned + Serialize + Send + 'static,
{
    /// A source of the records of `topic` on the cluster at `bootstrap` (`host:port`,
    /// comma-separated), their values JSON documents of `T`.
    pub fn new(bootstrap: &str, topic: &str) -> Self {
        Self {
            bootstrap: bootstrap
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            decoder: Json,
            validators: Vec::new(),
            settings: Settings {
                topic: topic.to_string(),
                max_delay: Duration::from_millis(100),
                max_messages: 100_000,
                dead_letter_topic: None,
                fetch_max_bytes: 1 << 20,
                fetch_max_wait: Duration::from_millis(200),
                max_backoff: Duration::from_secs(10),
            },
        }
    }
}

impl<T, D> KafkaSourceBuilder<T, D>
where
    T: Serialize + serde::de::DeserializeOwned + Send + 'static,
    D: Decoder<T>,
{
    /// Decodes values (and keys) with `decoder` instead of JSON.
    pub fn with_decoder<D2: Decoder<T>>(self, decoder: D2) -> KafkaSourceBuilder<T, D2> {
        KafkaSourceBuilder {
            bootstrap: self.bootstrap,
            decoder,
            validators: self.validators,
            settings: self.settings,
        }
    }

    /// A cycle runs at most this long after the first message not yet published (default
    /// 100 ms): the bound on how stale readers are, on top of the cycle's own time.
    pub fn with_max_delay(mut self, delay: Duration) -> Self {
        self.settings.max_delay = delay;
        self
    }

    /// A cycle runs as soon as this many messages wait (default 100,000).
    pub fn with_max_messages(mut self, n: usize) -> Self {
        self.settings.max_messages = n.max(1);
        self
    }

    /// Bad messages (undecodable, a key that is not the record's primary key, refused by a
    /// validator, a record that does not fit the schema) go to `topic`, with the reason and
    /// where they came from in their headers, and the stream goes on. Without one, the source
    /// stops at the first bad message with an error naming its partition and offset.
    pub fn with_dead_letter_topic(mut self, topic: &str) -> Self {
        self.settings.dead_letter_topic = Some(topic.to_string());
        self
    }

    /// Checks every decoded record; a message whose record fails is bad (see
    /// [`KafkaSourceBuilder::with_dead_letter_topic`]).
    pub fn with_validator(
        mut self,
        check: impl Fn(&T) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.validators.push(Box::new(check));
        self
    }

    /// The most bytes one fetch of a partition returns (default 1 MiB, as Kafka's own
    /// consumer's `max.partition.fetch.bytes`). The Kafka client reads each answer into fresh
    /// buffers; larger fetches make the allocator hand pages back and take new ones more
    /// often (a third more page faults while materializing at 4 MiB).
    pub fn with_fetch_max_bytes(mut self, bytes: i32) -> Self {
        self.settings.fetch_max_bytes = bytes.max(1024);
        self
    }

    /// The longest a fetch waits for new messages on a quiet partition (default 200 ms).
    pub fn with_fetch_max_wait(mut self, wait: Duration) -> Self {
        self.settings.fetch_max_wait = wait;
        self
    }

    /// The longest wait between retries while the broker or the store fails (default 10 s).
    pub fn with_max_backoff(mut self, max: Duration) -> Self {
        self.settings.max_backoff = max;
        self
    }

    /// The source, publishing through `producer`, which must have the record type `T` with a
    /// primary key in its schema. Connects to the cluster and checks that the topics exist: a
    /// cluster unreachable for a few seconds, or a topic missing, is an error naming them (a
    /// misconfiguration should not look like a quiet topic). Once running, the source rides out
    /// outages.
    pub async fn build(self, producer: Producer) -> Result<KafkaSource<T, D>> {
        let shape = KeyShape::of::<T>(producer.schema()).map_err(Error::Config)?;
        let bootstrap = self.bootstrap.join(",");
        if self.bootstrap.is_empty() {
            return Err(Error::Config("no bootstrap servers given".into()));
        }
        let status = Arc::new(Mutex::new(SourceStatus::default()));
        let settings = self.settings;
        let client = ClientBuilder::new(self.bootstrap.clone())
            .backoff_config(client_backoff(settings.max_backoff))
            .build()
            .await
            .map(Arc::new)
            .map_err(|source| Error::Kafka {
                what: "connecting".into(),
                bootstrap: bootstrap.clone(),
                source: Box::new(source),
            })?;
        let partitions = topic_partitions(&client, &bootstrap, &settings.topic).await?;
        let dead_letters = match &settings.dead_letter_topic {
            Some(topic) => {
                topic_partitions(&client, &bootstrap, topic).await?;
                Some(DeadLetters::new(client.clone(), topic, &bootstrap, &settings.topic).await?)
            }
            None => None,
        };
        Ok(KafkaSource {
            settings,
            classifier: Arc::new(Classifier {
                decoder: self.decoder,
                shape,
                validators: self.validators,
            }),
            bootstrap,
            producer,
            client,
            partitions,
            dead_letters,
            status,
            failing: Default::default(),
        })
    }
}

/// What a source has done, for health pages and tests.
#[derive(Clone, Debug, Default)]
pub struct SourceStatus {
    /// Messages consumed (applied, deleted by, or dead-lettered).
    pub messages: u64,
    /// Records upserted.
    pub upserts: u64,
    /// Tombstones applied (whether or not the key existed).
    pub deletes: u64,
    /// Messages sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Versions announced.
    pub cycles: u64,
    /// The offsets the announced state contains.
    pub announced: Offsets,
    /// The last failure (broker, store, cycle), until the next success.
    pub last_error: Option<String>,
}

/// Follows a topic and publishes it: see the crate docs.
pub struct KafkaSource<T, D = Json> {
    settings: Settings,
    classifier: Arc<Classifier<T, D>>,
    bootstrap: String,
    producer: Producer,
    client: Arc<Client>,
    partitions: Vec<i32>,
    dead_letters: Option<DeadLetters>,
    status: Arc<Mutex<SourceStatus>>,
    failing: FailingFetches,
}

/// The partitions whose last fetch failed, and the failure last put in the status: once they
/// all fetch again, the status no longer shows it (unless something else replaced it there).
#[derive(Default)]
struct FailingFetches {
    partitions: BTreeSet<i32>,
    reported: Option<String>,
}

impl FailingFetches {
    /// A fetch of `partition` failed with `message`, now in the status.
    fn failed(&mut self, partition: i32, message: &str) {
        self.partitions.insert(partition);
        self.reported = Some(message.to_string());
    }

    /// `partition` fetched: clears the failure from `status` if it was the last one failing.
    fn fetched(&mut self, partition: i32, status: &Mutex<SourceStatus>) {
        if self.partitions.remove(&partition) && self.partitions.is_empty() {
            let mut s = lock(status);
            if s.last_error == self.reported {
                s.last_error = None;
            }
        }
    }
}

/// What a message does.
enum Op<T> {
    Upsert(T),
    Delete,
}

/// A consumed message waiting for the next cycle.
struct Pending<T> {
    partition: i32,
    offset: i64,
    op: Op<T>,
    /// The record's primary key, and its hash (taken by the fetching task).
    parts: Vec<OwnedKeyPart>,
    key_hash: u64,
    /// The message, for the dead-letter topic, should the record not fit the schema.
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// The messages consumed since the last announced state, only the last of each key: what
/// compaction keeps, and what a cycle needs (a record upserted again in one cycle would take a
/// new ordinal each time).
struct Batch<T> {
    items: Vec<Pending<T>>,
    /// The index in `items` of each key's message, found by the key's hash: no copy of the
    /// keys.
    by_key: HashTable<usize>,
    /// Messages consumed into the batch: values and tombstones.
    upserts: u64,
    deletes: u64,
    /// The vector of an earlier batch, emptied and handed back by the thread that freed its
    /// messages, for the next batch to fill: grown from nothing each cycle, it cost fresh
    /// pages for the kernel to clear (at 100,000 movies, tens of megabytes a cycle).
    spare: Arc<Mutex<Vec<Pending<T>>>>,
}

impl<T> Batch<T> {
    fn new() -> Self {
        Self {
            items: Vec::new(),
            by_key: HashTable::new(),
            upserts: 0,
            deletes: 0,
            spare: Arc::default(),
        }
    }

    fn messages(&self) -> u64 {
        self.upserts + self.deletes
    }

    fn push(&mut self, p: Pending<T>) {
        match p.op {
            Op::Upsert(_) => self.upserts += 1,
            Op::Delete => self.deletes += 1,
        }
        let items = &mut self.items;
        let entry = self.by_key.entry(
            p.key_hash,
            |&i| items[i].parts == p.parts,
            |&i| items[i].key_hash,
        );
        match entry {
            Entry::Occupied(e) => items[*e.get()] = p,
            Entry::Vacant(e) => {
                e.insert(items.len());
                items.push(p);
            }
        }
    }

    /// Takes out the upserts at `indices` (ascending), counted as messages no more.
    fn take(&mut self, indices: &[usize]) -> Vec<Pending<T>> {
        let mut taken = Vec::new();
        for &i in indices.iter().rev() {
            taken.push(self.items.remove(i));
            self.upserts -= 1;
        }
        taken.reverse();
        self.by_key.clear();
        let items = &self.items;
        for (i, p) in items.iter().enumerate() {
            self.by_key
                .insert_unique(p.key_hash, i, |&j| items[j].key_hash);
        }
        taken
    }

    /// Empties the batch, keeping its memory.
    fn clear(&mut self) {
        self.items.clear();
        self.by_key.clear();
        (self.upserts, self.deletes) = (0, 0);
    }
}

impl<T: Send + 'static> Batch<T> {
    /// Empties the batch; its messages (many small allocations) are freed on a blocking
    /// thread, off the loop that consumes and publishes, which then hands their vector back
    /// as the spare. The batch goes on in the spare the last such thread gave back (or a new
    /// vector, if it is not done yet).
    fn clear_in_background(&mut self) {
        let spare = std::mem::take(&mut *lock(&self.spare));
        let mut published = std::mem::replace(&mut self.items, spare);
        self.clear();
        let back = Arc::clone(&self.spare);
        tokio::task::spawn_blocking(move || {
            published.clear();
            *lock(&back) = published;
        });
    }
}

/// Decodes and checks messages: the fetching tasks run it, so that decoding overlaps cycles
/// and spreads over the partitions.
struct Classifier<T, D> {
    decoder: D,
    shape: KeyShape,
    validators: Vec<RecordValidator<T>>,
}

impl<T: Serialize, D: Decoder<T>> Classifier<T, D> {
    /// Decodes and checks one message. The decoder, the record type's `Serialize` (which gives
    /// the record's key) and the validators are the user's code: one that panics on a message
    /// makes it a bad message, with the panic's message as the reason, instead of ending the
    /// partition's fetching task.
    fn classify(
        &self,
        partition: i32,
        r: RecordAndOffset,
    ) -> std::result::Result<Pending<T>, DeadLetter> {
        let offset = r.offset;
        let record = r.record;
        let bad = |reason: String, key: Option<Vec<u8>>, value: Option<Vec<u8>>| DeadLetter {
            partition,
            offset,
            key,
            value,
            reason,
        };
        let Some(key) = record.key else {
            return Err(bad("the message has no key".into(), None, record.value));
        };
        let checked = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.decode(&key, record.value.as_deref())
        }))
        .unwrap_or_else(|panic| {
            Err(format!(
                "decoding or checking the message panicked: {}",
                panic_message(panic.as_ref())
            ))
        });
        match checked {
            Ok((parts, op)) => Ok(Pending {
                partition,
                offset,
                op,
                key_hash: key_hash(&parts),
                parts,
                key: Some(key),
                value: record.value,
            }),
            Err(reason) => Err(bad(reason, Some(key), record.value)),
        }
    }

    /// The primary key of a message and what it does: upsert the record its value decodes
    /// into, checked, or delete (a tombstone).
    fn decode(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> std::result::Result<(Vec<OwnedKeyPart>, Op<T>), String> {
        let parts = (self.decoder.decode_key(key, &self.shape))
            .map_err(|reason| format!("bad key: {reason}"))?;
        let Some(value) = value else {
            return Ok((parts, Op::Delete));
        };
        let rec = self.decoder.decode(value)?;
        let own = self.shape.key_of(&rec)?;
        if own != parts {
            return Err(format!(
                "the message key {:?} is not the record's primary key ({})",
                String::from_utf8_lossy(key),
                describe_key(&own)
            ));
        }
        self.validators.iter().try_for_each(|v| v(&rec))?;
        Ok((parts, Op::Upsert(rec)))
    }
}

/// A fetch result of one partition: its next offset, the log's end (high watermark) as the
/// fetch saw it, and the messages, decoded and checked.
type Fetched<T> = std::result::Result<(i32, i64, i64, Vec<Classified<T>>), (i32, FetchError)>;

/// How far behind the topic the source is, from the log ends its fetches saw. A source that
/// fell a cycle's worth of messages behind (started on a backlog, restarted, or outpaced) and
/// has caught up asks its producer for the snapshot of the state it reached: readers starting
/// cold then load it instead of following the deltas of the catch-up.
#[derive(Default)]
struct Backlog {
    /// Per partition, the messages the log had past the last batch taken.
    behind: std::collections::HashMap<i32, i64>,
    /// Whether the source was a cycle's worth behind since it last caught up.
    was_behind: bool,
}

impl Backlog {
    /// Notes a batch of `partition` ending before `next`, fetched when the log ended at
    /// `end`; `cycle` is a cycle's worth of messages.
    fn note(&mut self, partition: i32, next: i64, end: i64, cycle: usize) {
        self.behind.insert(partition, (end - next).max(0));
        let behind: i64 = self.behind.values().sum();
        self.was_behind |= behind >= cycle as i64;
    }

    /// Whether the source has caught up after being a cycle's worth behind, and no snapshot
    /// of what it reached has been started since (see [`Backlog::snapshot_started`]).
    fn caught_up(&self) -> bool {
        self.was_behind && self.behind.values().all(|&b| b == 0)
    }

    /// The snapshot of the state reached is under way: not asked again until the source
    /// falls behind again. (One refused while another was being written is asked again after
    /// the next cycle.)
    fn snapshot_started(&mut self) {
        self.was_behind = false;
    }
}

/// A message ready for a cycle, or a bad one.
type Classified<T> = std::result::Result<Pending<T>, DeadLetter>;

enum FetchError {
    /// Transient: the fetcher retries.
    Failed(String),
    /// The log no longer has the offset: fatal.
    Gone {
        next: i64,
        earliest: i64,
        latest: i64,
    },
    /// The fetching task panicked: fatal.
    Panicked(String),
}

/// The value behind `mutex`, also after a panic elsewhere held it (what it guards stays
/// whole: status fields and spare vectors are replaced in one assignment).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The client's own retries give up after a while, so that failures surface (in the status,
/// the logs) and the source retries with its own backoff.
pub(crate) fn client_backoff(max_backoff: Duration) -> rskafka::BackoffConfig {
    rskafka::BackoffConfig {
        init_backoff: Duration::from_millis(50),
        max_backoff: max_backoff.min(Duration::from_secs(2)),
        base: 2.0,
        deadline: Some(Duration::from_secs(3)),
    }
}

pub(crate) async fn topic_partitions(
    client: &Client,
    bootstrap: &str,
    topic: &str,
) -> Result<Vec<i32>> {
    let topics = client.list_topics().await.map_err(|source| Error::Kafka {
        what: "listing topics".into(),
        bootstrap: bootstrap.to_string(),
        source: Box::new(source),
    })?;
    match topics.iter().find(|t| t.name == topic) {
        Some(t) => Ok(t.partitions.iter().copied().collect()),
        None => Err(Error::TopicMissing {
            topic: topic.to_string(),
            bootstrap: bootstrap.to_string(),
            existing: topics
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

impl<T, D> KafkaSource<T, D>
where
    T: Serialize + serde::de::DeserializeOwned + Send + 'static,
    D: Decoder<T>,
{
    /// The producer publishing the topic.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The producer, once the source is done with it (after [`KafkaSource::run_until`]).
    pub fn into_producer(self) -> Producer {
        self.producer
    }

    /// A handle on what the source has done, updated as it runs.
    pub fn status(&self) -> Arc<Mutex<SourceStatus>> {
        self.status.clone()
    }

    /// The topic followed.
    pub fn topic(&self) -> &str {
        &self.settings.topic
    }

    /// Follows the topic until `stop` completes, then publishes what it consumed and returns.
    /// Broker and store failures are retried with backoff (and shown in the status); it returns
    /// an error only for what retrying cannot mend: a bad message when there is no dead-letter
    /// topic, offsets the log no longer has, a damaged offsets tag.
    ///
    /// With a producer that elects a leader (`ProducerBuilder::with_leader_election`), the source
    /// consumes only while its producer leads: a standby waits (following the announced state),
    /// and a leader that loses the lease drops what it consumed and did not publish, then waits
    /// again; whoever leads resumes from the offsets the announced state records.
    pub async fn run_until(&mut self, stop: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(stop);
        let topic = self.settings.topic.clone();
        tokio::select! {
            _ = &mut stop => return Ok(()),
            led = self.producer.wait_for_leadership() => { led?; }
        }
        let mut announced = self.announced_offsets()?;
        lock(&self.status).announced = announced.clone();
        let (mut fetchers, mut fetched) = self.start_fetchers(&announced).await?;
        let mut pending: Batch<T> = Batch::new();
        let mut dead: Vec<DeadLetter> = Vec::new();
        let mut backlog = Backlog::default();
        let mut consumed = announced.clone();
        let mut first_pending: Option<Instant> = None;
        let mut backoff = Duration::from_millis(100);
        let mut retry_at: Option<Instant> = None;
        let mut stopping = false;
        loop {
            let waiting = consumed != announced;
            let due = match (waiting, retry_at, first_pending) {
                (false, _, _) => None,
                (true, Some(at), _) => Some(at),
                (true, None, first) => first.map(|f| f + self.settings.max_delay),
            };
            let full = pending.messages() as usize + dead.len() >= self.settings.max_messages;
            let publish_now = full && retry_at.is_none();
            if !stopping && !publish_now {
                tokio::select! {
                    _ = &mut stop => stopping = true,
                    batch = fetched.recv(), if !full => {
                        let taken = self.take(batch, &mut consumed, &mut first_pending, &mut pending, &mut dead, &mut backlog);
                        if let Err(e) = taken {
                            stop_fetchers(&fetchers);
                            return Err(e);
                        }
                    }
                    _ = sleep_until(due), if due.is_some() => {}
                }
            }
            let due_now = due.is_some_and(|d| d <= Instant::now());
            // Behind (batches already fetched): the cycle takes them too, up to the maximum, so
            // that catching up runs fewer, larger cycles.
            if due_now && retry_at.is_none() {
                while pending.messages() as usize + dead.len() < self.settings.max_messages {
                    let Ok(batch) = fetched.try_recv() else { break };
                    let taken = self.take(
                        Some(batch),
                        &mut consumed,
                        &mut first_pending,
                        &mut pending,
                        &mut dead,
                        &mut backlog,
                    );
                    if let Err(e) = taken {
                        stop_fetchers(&fetchers);
                        return Err(e);
                    }
                }
            }
            if consumed == announced || !(full || due_now || stopping) {
                if stopping {
                    stop_fetchers(&fetchers);
                    return Ok(());
                }
                continue;
            }
            if retry_at.is_some_and(|at| at > Instant::now()) && !stopping {
                continue;
            }
            match self.publish(&mut pending, &mut dead, &consumed).await {
                Ok(()) => {
                    announced = consumed.clone();
                    first_pending = None;
                    retry_at = None;
                    backoff = Duration::from_millis(100);
                    if fetched.is_empty()
                        && backlog.caught_up()
                        && self.producer.snapshot_in_background()
                    {
                        backlog.snapshot_started();
                        tracing::info!(%topic, version = self.producer.version(), "caught up: publishing the snapshot of the state reached, in the background");
                    }
                    let mut s = lock(&self.status);
                    s.announced = announced.clone();
                    s.last_error = None;
                }
                Err(_) if self.dead_letters.is_none() && !dead.is_empty() => {
                    // A record the cycle refused (or panicked on), with nowhere to put it:
                    // retrying would refuse it again, so the source stops, naming it.
                    stop_fetchers(&fetchers);
                    return Err(dead[0].to_error(&topic));
                }
                Err(message) if !self.producer.is_leader() => {
                    tracing::warn!(%topic, error = %message, "no longer the leader: dropping what was not published and waiting as a standby");
                    stop_fetchers(&fetchers);
                    lock(&self.status).last_error = Some(format!("standby: {message}"));
                    if stopping {
                        // What it consumed is the new leader's to publish.
                        return Ok(());
                    }
                    pending.clear();
                    dead.clear();
                    first_pending = None;
                    retry_at = None;
                    tokio::select! {
                        _ = &mut stop => return Ok(()),
                        led = self.producer.wait_for_leadership() => { led?; }
                    }
                    announced = self.announced_offsets()?;
                    consumed = announced.clone();
                    {
                        let mut s = lock(&self.status);
                        s.announced = announced.clone();
                        s.last_error = None;
                    }
                    backlog = Backlog::default();
                    (fetchers, fetched) = self.start_fetchers(&announced).await?;
                }
                Err(message) => {
                    lock(&self.status).last_error = Some(message.clone());
                    tracing::warn!(%topic, error = %message, retry_in_ms = backoff.as_millis() as u64, "publishing failed; retrying");
                    // Another producer may have announced meanwhile: resume from its offsets.
                    let resynced = match self.producer.sync_with_announced().await {
                        Ok(changed) => changed,
                        Err(e) => {
                            tracing::warn!(%topic, error = %e, "cannot read the announced state");
                            false
                        }
                    };
                    let now_announced = self.announced_offsets()?;
                    if resynced && now_announced != announced {
                        tracing::warn!(%topic, from = %announced, to = %now_announced, "another producer announced; resuming from its offsets");
                        stop_fetchers(&fetchers);
                        pending.clear();
                        dead.clear();
                        announced = now_announced;
                        consumed = announced.clone();
                        first_pending = None;
                        lock(&self.status).announced = announced.clone();
                        backlog = Backlog::default();
                        (fetchers, fetched) = self.start_fetchers(&announced).await?;
                        retry_at = None;
                    } else {
                        if stopping {
                            stop_fetchers(&fetchers);
                            return Err(Error::Unpublished {
                                topic,
                                messages: announced.messages_until(&consumed),
                                reason: message,
                            });
                        }
                        retry_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(self.settings.max_backoff);
                    }
                }
            }
        }
    }

    /// Takes a fetched batch into the unpublished messages; an error for what stops the source
    /// (a bad message without a dead-letter topic, offsets the log no longer has).
    fn take(
        &mut self,
        batch: Option<Fetched<T>>,
        consumed: &mut Offsets,
        first_pending: &mut Option<Instant>,
        pending: &mut Batch<T>,
        dead: &mut Vec<DeadLetter>,
        backlog: &mut Backlog,
    ) -> Result<()> {
        let topic = &self.settings.topic;
        match batch {
            Some(Ok((partition, next, end, messages))) => {
                consumed.set_next(partition, next);
                backlog.note(partition, next, end, self.settings.max_messages);
                self.failing.fetched(partition, &self.status);
                if messages.is_empty() {
                    return Ok(()); // a partition fetching again after failures
                }
                first_pending.get_or_insert_with(Instant::now);
                for m in messages {
                    match m {
                        Ok(p) => pending.push(p),
                        Err(d) => dead.push(d),
                    }
                }
                match dead.first().filter(|_| self.dead_letters.is_none()) {
                    Some(d) => Err(d.to_error(topic)),
                    None => Ok(()),
                }
            }
            Some(Err((partition, FetchError::Failed(message)))) => {
                lock(&self.status).last_error = Some(message.clone());
                self.failing.failed(partition, &message);
                tracing::warn!(%topic, partition, error = %message, "fetching failed; retrying");
                Ok(())
            }
            Some(Err((
                partition,
                FetchError::Gone {
                    next,
                    earliest,
                    latest,
                },
            ))) => Err(Error::OffsetsGone {
                topic: topic.clone(),
                partition,
                next,
                earliest,
                latest,
            }),
            Some(Err((partition, FetchError::Panicked(reason)))) => Err(Error::FetchingStopped {
                topic: topic.clone(),
                partition,
                reason,
            }),
            None => unreachable!("the fetchers hold the sender until stopped"),
        }
    }

    /// The offsets the producer's announced state contains.
    fn announced_offsets(&self) -> Result<Offsets> {
        match self.producer.state() {
            Some(state) => {
                Offsets::of_state(state, &self.settings.topic).map_err(|reason| Error::Offsets {
                    topic: self.settings.topic.clone(),
                    reason,
                })
            }
            None => Ok(Offsets::default()),
        }
    }

    /// Dead-letters the bad messages, then runs a cycle with the pending ones and the
    /// consumed offsets. A record the schema refuses turns into a dead letter and the cycle is
    /// run again without it.
    async fn publish(
        &mut self,
        pending: &mut Batch<T>,
        dead: &mut Vec<DeadLetter>,
        consumed: &Offsets,
    ) -> std::result::Result<(), String> {
        loop {
            if !dead.is_empty() {
                let letters = self
                    .dead_letters
                    .as_ref()
                    .ok_or_else(|| "bad messages and no dead-letter topic".to_string())?;
                letters.send(dead).await.map_err(|e| e.to_string())?;
                let mut s = lock(&self.status);
                s.dead_lettered += dead.len() as u64;
                s.messages += dead.len() as u64;
                metrics::counter!("hollow_kafka_messages_total", "outcome" => "dead_letter")
                    .increment(dead.len() as u64);
                dead.clear();
            }
            if pending.items.is_empty()
                && *consumed == self.announced_offsets().map_err(|e| e.to_string())?
            {
                return Ok(());
            }
            let type_name = self.classifier.shape.type_name().to_string();
            let tag = Offsets::tag_key(&self.settings.topic);
            let offsets = consumed.to_string();
            let mut refused: Vec<(usize, String)> = Vec::new();
            // The record being upserted, plus one (0: none): if the cycle panics meanwhile (the
            // record type's `Serialize` is the user's code), that record is the bad message.
            let upserting = AtomicUsize::new(0);
            let records: &[Pending<T>] = &pending.items;
            let outcome = self
                .producer
                .run_incremental_cycle(|c| {
                    // The batch holds one message per key, so the order of keys does not
                    // matter: the upserts go first, in one run (a delete waits for the upserts
                    // staged before it).
                    for (i, p) in records.iter().enumerate() {
                        if let Op::Upsert(rec) = &p.op {
                            upserting.store(i + 1, Ordering::Relaxed);
                            if let Err(e) = c.upsert(rec) {
                                refused
                                    .push((i, format!("the record does not fit the schema: {e}")));
                            }
                            upserting.store(0, Ordering::Relaxed);
                        }
                    }
                    for p in records.iter().filter(|p| matches!(p.op, Op::Delete)) {
                        let parts: Vec<_> = p.parts.iter().map(OwnedKeyPart::as_part).collect();
                        c.delete_key_parts(&type_name, &parts)?;
                    }
                    if !refused.is_empty() {
                        return Err(hollow_core::Error::Write(format!(
                            "{} records do not fit the schema",
                            refused.len()
                        )));
                    }
                    c.set_tag(tag, offsets);
                    Ok(())
                })
                .await;
            let panicked_on = upserting.into_inner().checked_sub(1);
            if let (Err(hollow_producer::Error::Panicked { message }), Some(i)) =
                (&outcome, panicked_on)
            {
                // The producer starts the next cycle over from the store.
                refused.push((i, format!("writing the record panicked: {message}")));
            }
            if !refused.is_empty() {
                // Out of the cycle, into the dead letters; then again without them.
                let indices: Vec<usize> = refused.iter().map(|(i, _)| *i).collect();
                for (p, (_, reason)) in pending.take(&indices).into_iter().zip(refused) {
                    dead.push(DeadLetter {
                        partition: p.partition,
                        offset: p.offset,
                        key: p.key,
                        value: p.value,
                        reason,
                    });
                }
                if self.dead_letters.is_none() {
                    return Err(dead[0].to_error(&self.settings.topic).to_string());
                }
                continue;
            }
            return match outcome {
                Ok(outcome) => {
                    let (upserts, deletes) = (pending.upserts, pending.deletes);
                    metrics::counter!("hollow_kafka_messages_total", "outcome" => "upsert")
                        .increment(upserts);
                    metrics::counter!("hollow_kafka_messages_total", "outcome" => "delete")
                        .increment(deletes);
                    let mut s = lock(&self.status);
                    s.messages += upserts + deletes;
                    s.upserts += upserts;
                    s.deletes += deletes;
                    if let CycleOutcome::Published(report) = &outcome {
                        s.cycles += 1;
                        tracing::debug!(
                            version = report.version,
                            messages = pending.messages(),
                            "published"
                        );
                    }
                    pending.clear_in_background();
                    Ok(())
                }
                Err(e) => Err(format!("cycle failed: {e}")),
            };
        }
    }

    /// One fetching task per partition, from the offsets given (the earliest offset for a
    /// partition they do not name).
    async fn start_fetchers(
        &mut self,
        from: &Offsets,
    ) -> Result<(Vec<tokio::task::JoinHandle<()>>, mpsc::Receiver<Fetched<T>>)> {
        self.failing.partitions.clear();
        let (tx, rx) = mpsc::channel(4 * self.partitions.len().max(1));
        let mut tasks = Vec::new();
        for &partition in &self.partitions {
            let client = self
                .client
                .partition_client(&self.settings.topic, partition, UnknownTopicHandling::Retry)
                .await
                .map_err(|source| Error::Kafka {
                    what: format!("connecting to {}/{partition}", self.settings.topic),
                    bootstrap: self.bootstrap.clone(),
                    source: Box::new(source),
                })?;
            let fetching = AssertUnwindSafe(fetch(
                client,
                self.classifier.clone(),
                from.next(partition),
                self.settings.fetch_max_bytes,
                self.settings.fetch_max_wait,
                self.settings.max_backoff,
                tx.clone(),
            ));
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                // A partition whose fetching ended silently would stall with the source's
                // status green: the main loop hears of it and stops with an error.
                if let Err(panic) = fetching.catch_unwind().await {
                    let reason = FetchError::Panicked(panic_message(panic.as_ref()));
                    let _ = tx.send(Err((partition, reason))).await;
                }
            }));
        }
        Ok((tasks, rx))
    }
}

fn stop_fetchers(tasks: &[tokio::task::JoinHandle<()>]) {
    tasks.iter().for_each(|t| t.abort());
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The hash a batch finds a key by.
fn key_hash(parts: &[OwnedKeyPart]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one(parts)
}

fn describe_key(parts: &[OwnedKeyPart]) -> String {
    parts
        .iter()
        .map(|p| match p {
            OwnedKeyPart::Null => "null".to_string(),
            OwnedKeyPart::Int(v) => v.to_string(),
            OwnedKeyPart::Float(bits) => f64::from_bits(*bits).to_string(),
            OwnedKeyPart::Bytes(b) => format!("{:?}", String::from_utf8_lossy(b)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How long past its own wait a fetch may go unanswered before it counts as failed.
const FETCH_ANSWER_BOUND: Duration = Duration::from_secs(3);

/// Fetches one partition from `next` (its earliest offset when `None`) and sends each
/// non-empty batch; retries failures with backoff, reporting each.
async fn fetch<T: Serialize, D: Decoder<T>>(
    client: PartitionClient,
    classifier: Arc<Classifier<T, D>>,
    next: Option<i64>,
    max_bytes: i32,
    max_wait: Duration,
    max_backoff: Duration,
    tx: mpsc::Sender<Fetched<T>>,
) {
    let partition = client.partition();
    let mut backoff = Duration::from_millis(100);
    let mut next = next;
    // Whether the last attempt failed: the next answer is sent even without messages, so
    // that the source knows the partition is fetched again.
    let mut failed = false;
    loop {
        let failure = match next {
            None => match client.get_offset(OffsetAt::Earliest).await {
                Ok(o) => {
                    next = Some(o);
                    continue;
                }
                Err(e) => format!("{}/{partition}: earliest offset: {e}", client.topic()),
            },
            // The client retries a broker that is away for a long while; a bound makes the
            // outage show (in the status, the logs) while it lasts.
            Some(offset) => match tokio::time::timeout(
                max_wait + FETCH_ANSWER_BOUND,
                client.fetch_records(offset, 1..max_bytes, max_wait.as_millis() as i32),
            )
            .await
            .unwrap_or(Err(rskafka::client::error::Error::Timeout))
            {
                Ok((records, high_watermark)) => {
                    backoff = Duration::from_millis(100);
                    let records: Vec<RecordAndOffset> =
                        records.into_iter().filter(|r| r.offset >= offset).collect();
                    if std::mem::take(&mut failed) || !records.is_empty() {
                        let after = records.last().map_or(offset, |last| last.offset + 1);
                        next = Some(after);
                        let messages = records
                            .into_iter()
                            .map(|r| classifier.classify(partition, r))
                            .collect();
                        let batch = (partition, after, high_watermark, messages);
                        if tx.send(Ok(batch)).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                Err(rskafka::client::error::Error::ServerError {
                    protocol_error: rskafka::client::error::ProtocolError::OffsetOutOfRange,
                    ..
                }) => {
                    let earliest = client.get_offset(OffsetAt::Earliest).await.unwrap_or(-1);
                    let latest = client.get_offset(OffsetAt::Latest).await.unwrap_or(-1);
                    if offset == latest || (earliest >= 0 && offset >= earliest && offset <= latest)
                    {
                        // Raced with the log's end; nothing is missing.
                        tokio::time::sleep(max_wait).await;
                        continue;
                    }
                    let gone = FetchError::Gone {
                        next: offset,
                        earliest,
                        latest,
                    };
                    let _ = tx.send(Err((partition, gone))).await;
                    return;
                }
                Err(e) => format!("{}/{partition}@{offset}: {e}", client.topic()),
            },
        };
        failed = true;
        if tx
            .send(Err((partition, FetchError::Failed(failure))))
            .await
            .is_err()
        {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(max_backoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoder with a bug: it panics on the value `boom`.
    struct Fragile;

    impl Decoder<Row> for Fragile {
        fn decode(&self, value: &[u8]) -> std::result::Result<Row, String> {
            if value == b"boom" {
                panic!("a decoder's bug");
            }
            Json.decode(value)
        }
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Row {
        id: i64,
    }

    #[test]
    fn a_message_the_users_code_panics_on_is_a_bad_message() {
        let schema = hollow_core::SchemaBuilder::new()
            .add::<Row>()
            .primary_key("Row", &["id"])
            .build()
            .unwrap();
        let classifier = Classifier {
            decoder: Fragile,
            shape: KeyShape::of::<Row>(&schema).unwrap(),
            validators: vec![Box::new(|r: &Row| {
                if r.id == 3 {
                    panic!("a validator's bug");
                }
                Ok(())
            })],
        };
        let message = |offset: i64, key: &str, value: &str| RecordAndOffset {
            record: rskafka::record::Record {
                key: Some(key.as_bytes().to_vec()),
                value: Some(value.as_bytes().to_vec()),
                headers: Default::default(),
                timestamp: chrono::Utc::now(),
            },
            offset,
        };
        let reason = |offset, key, value| match classifier.classify(0, message(offset, key, value))
        {
            Ok(_) => String::new(),
            Err(dead) => {
                assert_eq!(
                    (dead.offset, dead.value.as_deref()),
                    (offset, Some(value.as_bytes()))
                );
                dead.reason
            }
        };
        assert_eq!(reason(1, "1", r#"{"id": 1}"#), "");
        assert_eq!(
            reason(2, "2", "boom"),
            "decoding or checking the message panicked: a decoder's bug"
        );
        assert_eq!(
            reason(3, "3", r#"{"id": 3}"#),
            "decoding or checking the message panicked: a validator's bug"
        );
    }

    /// A source is caught up when every partition it saw reached the log's end after it was a
    /// cycle's worth behind, until a snapshot is started; a lag smaller than a cycle never
    /// counts.
    #[test]
    fn a_source_is_caught_up_after_a_backlog_until_a_snapshot_starts() {
        let mut b = Backlog::default();
        b.note(0, 10, 40, 100);
        b.note(1, 5, 30, 100);
        b.note(0, 40, 40, 100);
        b.note(1, 30, 30, 100);
        assert!(!b.caught_up(), "55 messages behind is less than a cycle");
        b.note(0, 100, 400, 100);
        b.note(1, 100, 200, 100);
        assert!(!b.caught_up());
        b.note(0, 400, 400, 100);
        assert!(!b.caught_up(), "partition 1 is still behind");
        b.note(1, 200, 230, 100);
        assert!(!b.caught_up(), "partition 1 is still behind");
        b.note(1, 230, 230, 100);
        assert!(b.caught_up());
        assert!(b.caught_up(), "until a snapshot is started");
        b.snapshot_started();
        assert!(!b.caught_up(), "once");
        b.note(1, 240, 250, 100);
        b.note(1, 250, 250, 100);
        assert!(!b.caught_up(), "not behind since");
    }

    fn message(offset: i64, key: i64, value: Option<&'static str>) -> Pending<&'static str> {
        let parts = vec![OwnedKeyPart::Int(key)];
        Pending {
            partition: 0,
            offset,
            op: value.map_or(Op::Delete, Op::Upsert),
            key_hash: key_hash(&parts),
            parts,
            key: None,
            value: None,
        }
    }

    fn kept(batch: &Batch<&'static str>) -> Vec<(i64, Option<&'static str>)> {
        let value = |p: &Pending<&'static str>| match p.op {
            Op::Upsert(v) => Some(v),
            Op::Delete => None,
        };
        batch.items.iter().map(|p| (p.offset, value(p))).collect()
    }

    #[test]
    fn a_batch_keeps_the_last_message_of_each_key_in_first_seen_order() {
        let mut batch = Batch::new();
        batch.push(message(0, 1, Some("a")));
        batch.push(message(1, 2, Some("b")));
        batch.push(message(2, 1, None));
        batch.push(message(3, 3, Some("c")));
        batch.push(message(4, 1, Some("d")));
        assert_eq!(
            kept(&batch),
            [(4, Some("d")), (1, Some("b")), (3, Some("c"))]
        );
        assert_eq!((batch.upserts, batch.deletes), (4, 1));
        // Taking messages out leaves the others found by key.
        let taken = batch.take(&[0]);
        assert_eq!(taken.len(), 1);
        batch.push(message(5, 3, None));
        batch.push(message(6, 1, Some("e")));
        assert_eq!(kept(&batch), [(1, Some("b")), (5, None), (6, Some("e"))]);
    }

    #[test]
    fn keys_with_one_hash_stay_apart() {
        let mut batch = Batch::new();
        let mut a = message(0, 1, Some("a"));
        let mut b = message(1, 2, Some("b"));
        a.key_hash = 7;
        b.key_hash = 7;
        batch.push(a);
        batch.push(b);
        let mut a = message(2, 1, Some("c"));
        a.key_hash = 7;
        batch.push(a);
        assert_eq!(kept(&batch), [(2, Some("c")), (1, Some("b"))]);
    }

    #[tokio::test]
    async fn a_published_batch_hands_its_vector_back_for_a_later_one() {
        let mut batch = Batch::new();
        (0..1000).for_each(|i| batch.push(message(i, i, Some("a"))));
        let grown = batch.items.capacity();
        batch.clear_in_background();
        assert_eq!((batch.messages(), batch.items.len()), (0, 0));
        let handed_back = async {
            while batch.spare.lock().unwrap().capacity() < grown {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), handed_back)
            .await
            .expect("the freeing thread hands the vector back");
        // The next batch fills the spare; what it keeps is as before.
        batch.push(message(1000, 1, Some("b")));
        batch.clear_in_background();
        assert!(batch.items.capacity() >= grown);
        batch.push(message(1001, 1, Some("c")));
        batch.push(message(1002, 2, None));
        batch.push(message(1003, 1, Some("d")));
        assert_eq!(kept(&batch), [(1003, Some("d")), (1002, None)]);
        assert_eq!((batch.upserts, batch.deletes), (2, 1));
    }
}
