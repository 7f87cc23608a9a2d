//! Failover between real processes: the leader is killed with SIGKILL at each point of its
//! cycle (before its first blob, between blobs, before and after announcing), on a local folder
//! and on an S3 server; a standby process takes over, continues the chain, and a consumer that
//! followed all along converges to its versions. No version is announced twice, every announced
//! version is complete, and the chain is unbroken.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hollow::consumer::ConsumerBuilder;
use hollow::core::StateId;
use hollow::producer::{CycleOutcome, Error, ProducerBuilder};
use hollow::store::layout::{parse_state, BlobName};
use hollow::store::BlobStore;
use object_store::{ObjectStore, ObjectStoreExt};
use support::{rows_schema as schema, FaultyStore, Halt, Row, Served};

const PREFIX: &str = "rows";
/// Set in the environment of a child producer: `local|FOLDER` or `s3|ENDPOINT`, then `|ID|HALT`.
const CHILD: &str = "HOLLOW_FAILOVER_CHILD";
const LEASE: Duration = Duration::from_millis(300);

/// The dataset of `location` (`local|FOLDER` or `s3|ENDPOINT`) through `wrap`.
fn dataset(
    location: &str,
    wrap: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
) -> BlobStore {
    let (kind, at) = location.split_once('|').unwrap();
    match kind {
        "local" => {
            let folder = object_store::local::LocalFileSystem::new_with_prefix(at).unwrap();
            BlobStore::new(wrap(Arc::new(folder)), PREFIX).with_folder(at)
        }
        _ => BlobStore::new(wrap(support::s3_client(at)), PREFIX),
    }
}

fn halt_named(name: &str) -> Option<Halt> {
    match name {
        "snapshot" => Some(Halt::Before("snapshot")),
        "delta" => Some(Halt::Before("delta")),
        "reversedelta" => Some(Halt::Before("reversedelta")),
        "announce" => Some(Halt::Before("announced.version")),
        "announced" => Some(Halt::AfterAnnouncement),
        _ => None,
    }
}

/// Not a test: the body of the producer processes the tests below start and kill (it returns
/// at once unless started so). It leads when it can and publishes a cycle every 20 ms, printing
/// `LEADER <epoch>` and `PUBLISHED <state> <epoch>`; after two published cycles it halts at its
/// kill point (printing `AT …`), where its parent kills it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of the failover process tests"]
async fn child_producer_process() {
    let Ok(args) = std::env::var(CHILD) else {
        return;
    };
    let parts: Vec<&str> = args.split('|').collect();
    let [kind, at, id, halt] = parts[..] else {
        panic!("{args}")
    };
    let faulty = FaultyStore::new(
        dataset(&format!("{kind}|{at}"), |s| s)
            .object_store()
            .clone(),
    );
    let store = dataset(&format!("{kind}|{at}"), |_| faulty.clone());
    let mut producer = ProducerBuilder::from_blob_store(store, schema())
        .with_leader_election(id, LEASE)
        .without_retention()
        .build()
        .await
        .unwrap();
    let mut published = 0;
    let mut value = std::process::id() as u64 * 1_000;
    loop {
        let epoch = producer.wait_for_leadership().await.unwrap();
        println!("LEADER {epoch}");
        loop {
            value += 1;
            let outcome = producer
                .run_cycle(|w| (0..50).try_for_each(|id| w.add(&Row { id, value })))
                .await;
            match outcome {
                Ok(CycleOutcome::Published(_)) => {
                    println!(
                        "PUBLISHED {} {}",
                        producer.state_id().unwrap(),
                        producer.epoch()
                    );
                    published += 1;
                    if published == 2 {
                        if let Some(h) = halt_named(halt) {
                            faulty.halt_at(h);
                        }
                    }
                }
                Ok(CycleOutcome::NoChange) => {}
                Err(Error::NotLeader { .. }) => break,
                Err(e) => println!("FAILED {e}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A producer process, and its stdout lines as they come.
struct ProducerProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl ProducerProcess {
    fn start(location: &str, id: &str, halt: &str) -> ProducerProcess {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_producer_process",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD, format!("{location}|{id}|{halt}"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        ProducerProcess {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (up to `within`) for a line starting with `prefix`; the line.
    fn wait_for(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!("no {prefix:?} within {within:?}; seen {:?}", self.seen),
            }
        }
    }

    /// Every `PUBLISHED` state seen (with its epoch).
    fn published(&mut self) -> Vec<(StateId, u64)> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen
            .iter()
            .filter_map(|l| l.strip_prefix("PUBLISHED "))
            .map(|l| {
                let (state, epoch) = l.split_once(' ').unwrap();
                (parse_state(state).unwrap(), epoch.parse().unwrap())
            })
            .collect()
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for ProducerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One scenario: leader `a` killed at `halt`, standby `b` takes over.
async fn kill_leader_at(location: &str, halt: &str) {
    let what = format!("{} killed at {halt}", location.split('|').next().unwrap());
    let dataset = dataset(location, |s| s);
    let mut a = ProducerProcess::start(location, "a", halt);
    a.wait_for("LEADER 1", Duration::from_secs(20));
    a.wait_for("PUBLISHED", Duration::from_secs(10));
    let served = Arc::new(Served::default());
    let consumer = ConsumerBuilder::from_blob_store(dataset.clone())
        .with_poll_interval(Duration::from_millis(10))
        .with_listener(served.clone())
        .build()
        .await
        .unwrap();
    let mut b = ProducerProcess::start(location, "b", "none");

    let at = a.wait_for("AT ", Duration::from_secs(20));
    a.kill();
    let killed = Instant::now();
    b.wait_for("LEADER 2", LEASE * 2 + Duration::from_secs(10));
    b.wait_for("PUBLISHED", Duration::from_secs(10));
    let took = killed.elapsed();
    b.wait_for("PUBLISHED", Duration::from_secs(10));
    b.kill();

    // What was announced: a's versions, the one that landed as it was killed, then b's.
    let mut announced: Vec<(StateId, u64)> = a.published();
    if let Some(state) = at.strip_prefix("AT announced ") {
        announced.push((parse_state(state).unwrap(), 1));
    }
    let from_b = b.published();
    assert!(from_b.iter().all(|p| p.1 == 2), "{what}: {from_b:?}");
    announced.extend(from_b);
    let versions: BTreeSet<u64> = announced.iter().map(|p| p.0.version).collect();
    assert_eq!(
        versions.len(),
        announced.len(),
        "{what}: a version announced twice: {announced:?}"
    );
    assert!(
        announced
            .windows(2)
            .all(|w| w[0].0.version < w[1].0.version),
        "{what}: {announced:?}"
    );
    // Complete and unbroken: every announced state has its snapshot, and a delta from the one
    // announced before it.
    let states: Vec<StateId> = announced.iter().map(|p| p.0).collect();
    let blobs = support::assert_unbroken_chain(&dataset, &states, &what).await;
    for (state, _) in &announced {
        assert!(
            blobs.contains(&BlobName::Snapshot(*state)),
            "{what}: {state} incomplete"
        );
    }
    // The consumer that followed all along converges to b's last version, through announced
    // states only.
    let last = announced.last().unwrap().0;
    assert!(
        consumer
            .wait_for_version(last.version, Duration::from_secs(10))
            .await,
        "{what}: {:?}",
        consumer.health()
    );
    assert_eq!(consumer.current().unwrap().id(), last, "{what}");
    assert_eq!(consumer.health().announced_epoch, Some(2), "{what}");
    let served = served.0.lock().unwrap().clone();
    let states: BTreeSet<StateId> = announced.iter().map(|p| p.0).collect();
    assert!(
        served.iter().all(|s| states.contains(s)),
        "{what}: served {served:?}"
    );
    eprintln!("{what}: takeover (kill to the standby's first version) {took:?}");
    assert!(
        took < LEASE * 2 + Duration::from_secs(5),
        "{what}: takeover took {took:?}"
    );
}

const POINTS: [&str; 5] = ["snapshot", "delta", "reversedelta", "announce", "announced"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_anywhere_in_its_cycle_is_replaced_in_a_local_folder() {
    for halt in POINTS {
        let dir = tempfile::tempdir().unwrap();
        kill_leader_at(&format!("local|{}", dir.path().display()), halt).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_anywhere_in_its_cycle_is_replaced_over_s3() {
    let server = support::S3Server::start();
    for halt in POINTS {
        // A fresh dataset per scenario.
        let location = format!("s3|{}", server.endpoint);
        clear(&server.store()).await;
        kill_leader_at(&location, halt).await;
    }
}

/// Deletes everything under the dataset's prefix (written by this test alone).
async fn clear(store: &Arc<dyn ObjectStore>) {
    use futures::TryStreamExt;
    let paths: Vec<_> = store
        .list(Some(&PREFIX.into()))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .unwrap();
    for p in paths {
        store.delete(&p).await.unwrap();
    }
}
