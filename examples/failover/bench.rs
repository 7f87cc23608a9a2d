//! The failover figures of the benchmark (`bench --failover`): how long a standby takes to
//! announce after the leader is killed (producer processes on a local folder, killed with
//! SIGKILL; and producers in one process on an in-memory store, the leader dropped), versions
//! announced twice, and what leadership costs a cycle in store requests.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::BoxStream;
use hollow::movies::{self, SplitMix64};
use hollow::producer::{CycleOutcome, Producer, ProducerBuilder};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use super::elected_producer;
use super::{figure, median, progress};

const LEASE: Duration = Duration::from_secs(1);
const INTERVAL: Duration = Duration::from_millis(50);
const ROUNDS: usize = 5;

/// A producer process and the lines it printed, as they come.
struct Process {
    id: String,
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Process {
    fn start(folder: &std::path::Path, id: &str, records: u64) -> std::io::Result<Process> {
        let mut child = elected_producer::spawn(folder, id, records, LEASE, INTERVAL)?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(Process {
            id: id.to_string(),
            child,
            lines,
        })
    }

    /// The next line starting with `prefix` (within `within`), after adding every `PUBLISHED`
    /// line on the way to `published` (version → ids that announced it).
    fn wait_for(
        &self,
        prefix: &str,
        within: Duration,
        published: &mut BTreeMap<u64, Vec<String>>,
    ) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .map_err(|_| format!("{}: no {prefix:?} within {within:?}", self.id))?;
            if let Some(v) = line.strip_prefix("PUBLISHED ") {
                let version = v
                    .split(' ')
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                published.entry(version).or_default().push(self.id.clone());
            }
            if line.starts_with(prefix) {
                return Ok(line);
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Leader processes killed with SIGKILL, each replaced by the standby: kill → the standby's
/// first announced version, in ms; and versions announced by more than one process.
fn process_takeovers(records: u64) -> Result<(Vec<f64>, usize), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut published = BTreeMap::new();
    let mut leader = Process::start(dir.path(), "p0", records)?;
    leader.wait_for("LEADER", Duration::from_secs(30), &mut published)?;
    leader.wait_for("PUBLISHED", Duration::from_secs(120), &mut published)?;
    let mut r = SplitMix64::new(7);
    let mut takeovers = Vec::new();
    for round in 1..=ROUNDS {
        let standby = Process::start(dir.path(), &format!("p{round}"), records)?;
        // It starts, reads the lease, and waits, ready; the leader publishes meanwhile.
        std::thread::sleep(LEASE);
        leader.wait_for("PUBLISHED", Duration::from_secs(30), &mut published)?;
        std::thread::sleep(Duration::from_millis(r.pick(50)));
        let killed = Instant::now();
        drop(leader); // SIGKILL
        standby.wait_for("PUBLISHED", LEASE * 10, &mut published)?;
        let took = killed.elapsed().as_secs_f64() * 1e3;
        progress(&format!("  takeover {round}: {took:.0} ms"));
        takeovers.push(took);
        leader = standby;
    }
    leader.wait_for("PUBLISHED", Duration::from_secs(30), &mut published)?;
    let twice = published.values().filter(|ids| ids.len() > 1).count();
    Ok((takeovers, twice))
}

/// A cycle upserting 100 movies.
async fn change(
    p: &mut Producer,
    r: &mut SplitMix64,
    records: u64,
) -> hollow::producer::Result<CycleOutcome> {
    p.run_incremental_cycle(|c| {
        (0..100).try_for_each(|_| {
            let i = r.pick(records);
            c.upsert(&movies::draw(r, i))
        })
    })
    .await
}

/// Producers in one process on an in-memory store: the leader dropped (its lease not released),
/// kill → the standby's first announced version, in ms.
async fn in_memory_takeovers(
    records: u64,
) -> Result<(Vec<f64>, Vec<f64>), Box<dyn std::error::Error>> {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let elected = |id: String| {
        ProducerBuilder::new(store.clone(), "movies", movies::schema().unwrap())
            .with_leader_election(&id, LEASE)
            .build()
    };
    let mut leader = elected("m0".into()).await?;
    leader.wait_for_leadership().await?;
    let all = movies::state1(records);
    leader
        .run_cycle(|w| all.iter().try_for_each(|m| w.add(m)))
        .await?;
    let mut r = SplitMix64::new(11);
    let (mut takeovers, mut first_cycles) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let mut standby = elected(format!("m{round}")).await?;
        let until = Instant::now() + LEASE;
        while Instant::now() < until {
            change(&mut leader, &mut r, records).await?;
            tokio::time::sleep(INTERVAL).await;
        }
        tokio::time::sleep(Duration::from_millis(r.pick(50))).await;
        let killed = Instant::now();
        drop(leader);
        standby.wait_for_leadership().await?;
        let leads = killed.elapsed().as_secs_f64() * 1e3;
        let cycle = Instant::now();
        loop {
            if let CycleOutcome::Published(_) = change(&mut standby, &mut r, records).await? {
                break;
            }
        }
        first_cycles.push(cycle.elapsed().as_secs_f64() * 1e3);
        let took = killed.elapsed().as_secs_f64() * 1e3;
        progress(&format!(
            "  in-memory takeover {round}: {took:.0} ms (leads and restored after {leads:.0} ms)"
        ));
        takeovers.push(took);
        leader = standby;
    }
    Ok((takeovers, first_cycles))
}

/// Store requests of `cycles` cycles with leader election (a lease long enough that no
/// renewal falls in them) minus without, per cycle.
async fn extra_requests_per_cycle(records: u64) -> Result<f64, Box<dyn std::error::Error>> {
    let cycles = 20;
    let mut counts = Vec::new();
    for elect in [false, true] {
        let store = Arc::new(Counting::new(Arc::new(
            object_store::memory::InMemory::new(),
        )));
        let mut builder = ProducerBuilder::new(store.clone(), "movies", movies::schema()?);
        if elect {
            builder = builder.with_leader_election("counted", Duration::from_secs(3600));
        }
        let mut p = builder.build().await?;
        p.wait_for_leadership().await?;
        let all = movies::state1(records.min(100_000));
        p.run_cycle(|w| all.iter().try_for_each(|m| w.add(m)))
            .await?;
        let mut r = SplitMix64::new(5);
        let before = store.requests();
        for _ in 0..cycles {
            change(&mut p, &mut r, records.min(100_000)).await?;
        }
        counts.push((store.requests() - before) as f64 / cycles as f64);
    }
    Ok(counts[1] - counts[0])
}

/// The failover figures.
pub fn figures(records: u64) -> Result<(), Box<dyn std::error::Error>> {
    figure("lease_ms", LEASE.as_millis(), "ms");
    progress(&format!(
        "failover: {ROUNDS} leader processes killed ({records} movies, local folder)"
    ));
    let (mut local, twice) = process_takeovers(records)?;
    let runtime = tokio::runtime::Runtime::new()?;
    progress(&format!("failover: {ROUNDS} leaders dropped (in-memory)"));
    let (mut memory, mut first_cycles) = runtime.block_on(in_memory_takeovers(records))?;
    let extra = runtime.block_on(extra_requests_per_cycle(records))?;
    let range = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, 0f64), |(l, h), x| (l.min(*x), h.max(*x)));
        format!("{lo:.0}-{hi:.0}")
    };
    progress(&format!(
        "takeover ranges: local {} ms, in-memory {} ms",
        range(&local),
        range(&memory)
    ));
    figure("takeover_ms", format!("{:.0}", median(&mut local)), "ms");
    figure(
        "takeover_ms_in_memory",
        format!("{:.0}", median(&mut memory)),
        "ms",
    );
    figure(
        "failover_first_cycle_ms",
        format!("{:.0}", median(&mut first_cycles)),
        "ms",
    );
    figure("failover_double_announcements", twice, "versions");
    figure(
        "failover_extra_requests_per_cycle",
        format!("{extra:.2}"),
        "requests",
    );
    Ok(())
}

/// Counts the requests made of a store.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn ObjectStore>,
    requests: AtomicU64,
}

impl Counting {
    fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            requests: AtomicU64::new(0),
        }
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::SeqCst);
    }
}

impl std::fmt::Display for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Counting {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.count();
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.count();
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.count();
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.count();
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.count();
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.count();
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.count();
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.count();
        self.inner.copy_opts(from, to, options).await
    }
}
