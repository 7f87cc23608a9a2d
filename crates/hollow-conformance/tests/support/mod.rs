//! Shared test support: the stores every conformance test runs against, and a store that fails
//! on command.
#![allow(dead_code)]

use std::fmt;
use std::ops::Range;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use hollow::consumer::Consumer;
use hollow::store::BlobStore;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// Waits until `consumer` serves version `expected.0`, then checks that its state has the
/// checksum `expected.1` (the producer's). Panics naming `what` and the consumer's health.
pub async fn assert_serves(
    consumer: &Consumer,
    expected: (u64, u64),
    wait: std::time::Duration,
    what: &str,
) {
    assert!(
        consumer.wait_for_version(expected.0, wait).await,
        "{what}: stuck at {:?}",
        consumer.health()
    );
    let state = consumer
        .current()
        .expect("a consumer at a version serves a state");
    assert_eq!((state.version(), state.checksum()), expected, "{what}");
}

/// The records of the failover tests: 50 rows a cycle, all with the cycle's value.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub id: i64,
    pub value: u64,
}

/// The schema of [`Row`], keyed by `id`.
pub fn rows_schema() -> hollow::core::Schema {
    hollow::core::SchemaBuilder::new()
        .add::<Row>()
        .primary_key("Row", &["id"])
        .build()
        .unwrap()
}

/// Every state a consumer swapped in, in order.
#[derive(Default)]
pub struct Served(pub std::sync::Mutex<Vec<hollow::core::StateId>>);

impl hollow::consumer::ConsumerListener for Served {
    fn on_refresh(&self, event: &hollow::consumer::RefreshEvent) {
        self.0.lock().unwrap().push(event.state);
    }
}

/// Asserts that each of `states` (announced, in order) has a delta from the one before it in
/// `dataset`: one unbroken chain. The dataset's blobs, for more checks.
pub async fn assert_unbroken_chain(
    dataset: &BlobStore,
    states: &[hollow::core::StateId],
    what: &str,
) -> std::collections::BTreeSet<hollow::store::layout::BlobName> {
    let blobs: std::collections::BTreeSet<_> = dataset.list().await.unwrap().into_iter().collect();
    for w in states.windows(2) {
        let delta = hollow::store::layout::BlobName::Delta {
            from: w[0],
            to: w[1],
        };
        assert!(
            blobs.contains(&delta),
            "{what}: no {delta}: the chain is torn"
        );
    }
    blobs
}

/// A store kind every conformance test runs against.
pub enum Backend {
    Memory(Arc<object_store::memory::InMemory>),
    LocalFolder(tempfile::TempDir),
    S3(S3Server),
    /// A store of a server outside the test process (SeaweedFS in the CI S3 job), and its name.
    Remote(Arc<dyn ObjectStore>, &'static str),
}

impl Backend {
    /// One of each kind (call inside a tokio runtime: the S3 server runs on it).
    pub fn all() -> Vec<Backend> {
        vec![
            Backend::Memory(Arc::new(object_store::memory::InMemory::new())),
            Backend::LocalFolder(tempfile::tempdir().unwrap()),
            Backend::S3(S3Server::start()),
        ]
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Memory(_) => "in-memory",
            Backend::LocalFolder(_) => "local folder",
            Backend::S3(_) => "S3 (s3s-fs over HTTP)",
            Backend::Remote(_, name) => name,
        }
    }

    /// A client of this backend's store; every client of one backend sees the same data.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        match self {
            Backend::Memory(m) => m.clone(),
            Backend::LocalFolder(dir) => {
                Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap())
            }
            Backend::S3(server) => server.store(),
            Backend::Remote(store, _) => store.clone(),
        }
    }

    /// The folder to watch for file-system events, for a local folder.
    pub fn folder(&self) -> Option<&std::path::Path> {
        match self {
            Backend::LocalFolder(dir) => Some(dir.path()),
            _ => None,
        }
    }

    /// The dataset under `prefix` of `store` (this backend's store, or a wrapper of it): for a
    /// local folder, a store that knows its folder, so consumers watch it.
    pub fn dataset(&self, store: Arc<dyn ObjectStore>, prefix: &str) -> BlobStore {
        let dataset = BlobStore::new(store, prefix);
        match self.folder() {
            Some(folder) => dataset.with_folder(folder),
            None => dataset,
        }
    }

    /// True when the store can compare-and-swap the announcement.
    pub fn has_conditional_update(&self) -> bool {
        !matches!(self, Backend::LocalFolder(_))
    }
}

// Not every test binary uses both.
#[allow(unused_imports)]
pub use hollow_conformance::s3_server::{s3_client, S3Server};

pub const WEED_ACCESS_KEY: &str = "hollow-ci";
pub const WEED_SECRET_KEY: &str = "hollow-ci-secret-key-0123456789";
pub const WEED_BUCKET: &str = "hollow";
pub const WEED_ENDPOINT: &str = "http://127.0.0.1:8333";

/// SeaweedFS (`weed mini`, the binary `WEED_BIN` names; `.ci/s3-job` installs it): a real S3
/// server for the CI S3 job.
///
/// A `weed mini` server on 127.0.0.1; stopped when dropped, whatever happens.
pub struct Weed {
    child: Option<Child>,
    dir: std::path::PathBuf,
}

impl Weed {
    pub fn start(dir: &std::path::Path) -> Weed {
        let bin =
            std::env::var("WEED_BIN").expect("WEED_BIN names the weed binary (see .ci/s3-job)");
        let log = std::fs::File::create(dir.join("weed.log")).unwrap();
        let child = Command::new(bin)
            .arg("mini")
            .arg(format!("-dir={}", dir.join("data").display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-admin.ui=false",
                "-webdav=false",
                // A fixed number of small volumes: left to itself, weed sizes its volume
                // count by the free disk space and, on a machine with little of it, has none
                // to write to.
                "-volume.max=8",
                "-master.volumeSizeLimitMB=64",
            ])
            .arg(format!("-bucket={WEED_BUCKET}"))
            .env("AWS_ACCESS_KEY_ID", WEED_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", WEED_SECRET_KEY)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("weed starts");
        Weed {
            child: Some(child),
            dir: dir.to_path_buf(),
        }
    }

    /// Waits until a signed PUT succeeds.
    pub async fn wait_ready(&self, store: &Arc<dyn ObjectStore>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let probe = object_store::path::Path::from("readiness-probe");
            let put = object_store::ObjectStoreExt::put(
                store.as_ref(),
                &probe,
                PutPayload::from_static(b"ok"),
            );
            let error = match put.await {
                Ok(_) => return,
                Err(e) => e,
            };
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default();
                panic!("SeaweedFS did not become ready ({error}):\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An S3 client of the SeaweedFS server with these credentials.
pub fn weed_client(access_key: &str, secret_key: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(WEED_ENDPOINT)
            .with_bucket_name(WEED_BUCKET)
            .with_access_key_id(access_key)
            .with_secret_access_key(secret_key)
            .with_region("us-east-1")
            .with_allow_http(true)
            .with_retry(object_store::RetryConfig {
                max_retries: 1,
                retry_timeout: Duration::from_secs(2),
                ..object_store::RetryConfig::default()
            })
            .build()
            .unwrap(),
    )
}

/// What a scheduled fault does to an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The operation fails before it reaches the store.
    Fail,
    /// The operation is carried out, but its reply is lost: the caller gets an error.
    LoseReply,
    /// The operation panics (a bug in a store client, say).
    Panic,
}

/// Wraps a store and fails operations on command: the `n`-th operation from now, every
/// operation while `down` is set, the reply of every `k`-th put, or the content of reads of
/// the announcement.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    count: AtomicUsize,
    fail_at: AtomicUsize,
    fault: std::sync::Mutex<Fault>,
    down: AtomicBool,
    puts: AtomicUsize,
    lose_put_replies_every: AtomicUsize,
    damage_announcement_reads: AtomicBool,
    lose_announcement_reply: AtomicBool,
    freeze_at_announcement: AtomicBool,
    frozen: tokio::sync::watch::Sender<bool>,
    halt: std::sync::Mutex<Option<Halt>>,
}

/// Where a [`FaultyStore`] halts for good (see [`FaultyStore::halt_at`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Halt {
    /// Before the put of an object whose path has this folder or file name (`snapshot`,
    /// `delta`, `reversedelta`, `announced.version`).
    Before(&'static str),
    /// Right after an announcement write landed.
    AfterAnnouncement,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            count: AtomicUsize::new(0),
            fail_at: AtomicUsize::new(0),
            fault: std::sync::Mutex::new(Fault::Fail),
            down: AtomicBool::new(false),
            puts: AtomicUsize::new(0),
            lose_put_replies_every: AtomicUsize::new(0),
            damage_announcement_reads: AtomicBool::new(false),
            lose_announcement_reply: AtomicBool::new(false),
            freeze_at_announcement: AtomicBool::new(false),
            frozen: tokio::sync::watch::Sender::new(false),
            halt: std::sync::Mutex::new(None),
        })
    }

    /// Operations so far.
    pub fn operations(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Fails the `n`-th operation from now (1 = the next one); 0 disarms.
    pub fn fail_nth(&self, n: usize) {
        self.fault_nth(n, Fault::Fail);
    }

    /// Applies `fault` to the `n`-th operation from now (1 = the next one); 0 disarms.
    pub fn fault_nth(&self, n: usize, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
        let base = if n == 0 { 0 } else { self.operations() + n };
        self.fail_at.store(base, Ordering::SeqCst);
    }

    /// While set, every operation fails.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// From now on every `k`-th put is carried out but its reply is lost; 0 stops it.
    pub fn lose_put_replies_every(&self, k: usize) {
        self.lose_put_replies_every.store(k, Ordering::SeqCst);
    }

    /// The next write of an announcement that the store carries out loses its reply.
    pub fn lose_next_announcement_reply(&self) {
        self.lose_announcement_reply.store(true, Ordering::SeqCst);
    }

    /// The next write of an announcement freezes the store: it and every operation after it
    /// wait (as in a process paused mid-cycle) until [`FaultyStore::thaw`]; true once frozen.
    pub fn freeze_at_next_announcement(&self) -> tokio::sync::watch::Receiver<bool> {
        self.freeze_at_announcement.store(true, Ordering::SeqCst);
        self.frozen.subscribe()
    }

    /// At the next put at `halt`, prints `AT <halt> <path>` (for an announcement that landed,
    /// `AT announced <state>`) on stdout and never returns: the process is stuck there until its
    /// parent kills it.
    pub fn halt_at(&self, halt: Halt) {
        *self.halt.lock().unwrap() = Some(halt);
    }

    async fn maybe_halt(&self, location: &Path, payload: &PutPayload, landed: bool) {
        let halt = *self.halt.lock().unwrap();
        let at = match halt {
            Some(Halt::Before(name)) if !landed => location.parts().any(|p| p.as_ref() == name),
            Some(Halt::AfterAnnouncement) if landed => {
                location.filename() == Some("announced.version")
            }
            _ => false,
        };
        if !at {
            return;
        }
        let what = match halt.unwrap() {
            Halt::AfterAnnouncement => {
                let body = hollow::store::layout::parse_announcement(&Bytes::from(payload.clone()));
                format!("announced {}", body.unwrap().state.unwrap())
            }
            Halt::Before(name) => format!("{name} {location}"),
        };
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "AT {what}");
            let _ = out.flush();
        }
        std::future::pending::<()>().await;
    }

    /// Lets frozen operations go on (and disarms a freeze not yet triggered).
    pub fn thaw(&self) {
        self.freeze_at_announcement.store(false, Ordering::SeqCst);
        self.frozen.send_replace(false);
    }

    /// While set, reads of an announcement return its content damaged (a digit changed and
    /// the end cut off), as a broken network path or proxy could.
    pub fn damage_announcement_reads(&self, damage: bool) {
        self.damage_announcement_reads
            .store(damage, Ordering::SeqCst);
    }

    /// The fault for this operation, if any.
    fn check(&self, op: &'static str) -> Option<Fault> {
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        if self.down.load(Ordering::SeqCst) {
            return Some(Fault::Fail);
        }
        if n == self.fail_at.load(Ordering::SeqCst) {
            return Some(*self.fault.lock().unwrap());
        }
        let every = self.lose_put_replies_every.load(Ordering::SeqCst);
        if op == "put"
            && every > 0
            && (self.puts.fetch_add(1, Ordering::SeqCst) + 1).is_multiple_of(every)
        {
            return Some(Fault::LoseReply);
        }
        None
    }

    fn injected(&self, op: &'static str) -> object_store::Error {
        object_store::Error::Generic {
            store: "faulty",
            source: format!("injected failure of operation {} ({op})", self.operations()).into(),
        }
    }

    /// Runs `run` on the inner store as the fault (if any) says.
    async fn faulty<T>(
        &self,
        op: &'static str,
        run: impl std::future::Future<Output = object_store::Result<T>>,
    ) -> object_store::Result<T> {
        let mut frozen = self.frozen.subscribe();
        let _ = frozen.wait_for(|f| !f).await;
        match self.check(op) {
            None => run.await,
            Some(Fault::Fail) => Err(self.injected(op)),
            Some(Fault::LoseReply) => {
                let _ = run.await;
                Err(self.injected(op))
            }
            Some(Fault::Panic) => panic!("injected panic in operation {op}"),
        }
    }

    /// Damages an announcement's content, when damaged reads are due.
    async fn maybe_damage(
        &self,
        location: &Path,
        result: GetResult,
    ) -> object_store::Result<GetResult> {
        let due = location.filename() == Some("announced.version")
            && self.damage_announcement_reads.load(Ordering::SeqCst);
        if !due {
            return Ok(result);
        }
        let (meta, range, attributes, extensions) = (
            result.meta.clone(),
            result.range.clone(),
            result.attributes.clone(),
            result.extensions.clone(),
        );
        let mut bytes = result.bytes().await?.to_vec();
        if let Some(digit) = bytes.iter_mut().find(|b| b.is_ascii_digit()) {
            *digit = if *digit == b'9' { b'1' } else { *digit + 1 };
        }
        bytes.truncate(bytes.len() * 2 / 3);
        let payload = futures::stream::once(async move { Ok(Bytes::from(bytes)) }).boxed();
        Ok(GetResult {
            payload: object_store::GetResultPayload::Stream(payload),
            meta,
            range,
            attributes,
            extensions,
        })
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.maybe_halt(location, &payload, false).await;
        let landed_payload = payload.clone();
        if location.filename() == Some("announced.version")
            && self.freeze_at_announcement.swap(false, Ordering::SeqCst)
        {
            self.frozen.send_replace(true);
        }
        let result = self
            .faulty("put", self.inner.put_opts(location, payload, opts))
            .await;
        if result.is_ok() {
            self.maybe_halt(location, &landed_payload, true).await;
        }
        if result.is_ok()
            && location.filename() == Some("announced.version")
            && self.lose_announcement_reply.swap(false, Ordering::SeqCst)
        {
            return Err(self.injected("put"));
        }
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.faulty(
            "put_multipart",
            self.inner.put_multipart_opts(location, opts),
        )
        .await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let result = self
            .faulty("get", self.inner.get_opts(location, options))
            .await?;
        self.maybe_damage(location, result).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.faulty("get_ranges", self.inner.get_ranges(location, ranges))
            .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        match self.check("delete") {
            None => self.inner.delete_stream(locations),
            Some(Fault::Panic) => panic!("injected panic in operation delete"),
            Some(_) => {
                let e = self.injected("delete");
                futures::stream::once(async move { Err(e) }).boxed()
            }
        }
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.check("list") {
            None => self.inner.list(prefix),
            Some(Fault::Panic) => panic!("injected panic in operation list"),
            Some(_) => {
                let e = self.injected("list");
                futures::stream::once(async move { Err(e) }).boxed()
            }
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.faulty(
            "list_with_delimiter",
            self.inner.list_with_delimiter(prefix),
        )
        .await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.faulty("copy", self.inner.copy_opts(from, to, options))
            .await
    }
}

/// A store that accepts conditional writes and ignores them (every put overwrites), as some S3
/// look-alikes do.
#[derive(Debug)]
pub struct IgnoresConditions(Arc<dyn ObjectStore>);

impl IgnoresConditions {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(Self(inner))
    }
}

impl fmt::Display for IgnoresConditions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IgnoresConditions({})", self.0)
    }
}

#[async_trait]
impl ObjectStore for IgnoresConditions {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        _opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.0
            .put_opts(location, payload, object_store::PutMode::Overwrite.into())
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.0.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.0.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.0.copy_opts(from, to, options).await
    }
}
