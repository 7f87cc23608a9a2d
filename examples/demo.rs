//! The hollow demo: one producer and several consumers (separate processes) sharing a local
//! folder as the blob store. Nothing to set up.
//!
//! ```sh
//! cargo run --release --example demo                 # 8 cycles, 100,000 movies, 3 consumers
//! cargo run --release --example demo -- --producers 2   # the leader is killed half way
//! cargo run --release --example demo -- --help
//! ```

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hollow::consumer::{ConsumerBuilder, ConsumerListener, RefreshEvent};
use hollow::movies::{self, Movie};
use hollow::producer::{CycleOutcome, DuplicatePrimaryKeys, ProducerBuilder};
use hollow::store::layout::BlobName;
use hollow::store::BlobStore;

#[path = "failover/elected_producer.rs"]
mod elected_producer;

const PREFIX: &str = "movies";

struct Options {
    records: u64,
    cycles: u64,
    consumers: usize,
    interval: Duration,
    folder: PathBuf,
    s3: bool,
    /// More than one: producer processes electing a leader, which is killed half way.
    producers: usize,
}

/// The dataset: under the local folder, or in S3 / MinIO from the environment (`--s3`).
fn store(folder: &Path, s3: bool) -> Result<BlobStore, Box<dyn std::error::Error>> {
    if !s3 {
        return Ok(BlobStore::local(folder, PREFIX)?);
    }
    s3_store()
}

/// S3 / MinIO from the environment.
#[cfg(feature = "aws")]
fn s3_store() -> Result<BlobStore, Box<dyn std::error::Error>> {
    let bucket = std::env::var("HOLLOW_S3_BUCKET")
        .map_err(|_| "--s3 needs HOLLOW_S3_BUCKET (the bucket name)")?;
    let s3 = hollow::object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_allow_http(true)
        .build()?;
    Ok(BlobStore::new(Arc::new(s3), PREFIX))
}

#[cfg(not(feature = "aws"))]
fn s3_store() -> Result<BlobStore, Box<dyn std::error::Error>> {
    Err("this demo was built without S3 support: run it with `--features aws`".into())
}

/// The folder the demo writes into: `wanted` itself when it is new, empty, or holds only a
/// dataset of an earlier run (the producer then continues it); otherwise a new sub-folder of
/// it. The demo never deletes anything, so a folder given by mistake loses nothing.
fn demo_folder(wanted: &Path) -> std::io::Result<PathBuf> {
    let entries: Vec<_> = match std::fs::read_dir(wanted) {
        Ok(entries) => entries.collect::<Result<_, _>>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let earlier_run = !entries.is_empty()
        && entries.iter().all(|e| e.file_name() == PREFIX)
        && holds_only_blobs(&wanted.join(PREFIX), "");
    let folder = if entries.is_empty() || earlier_run {
        if earlier_run {
            println!(
                "{} holds the dataset of an earlier run: the producer continues it.",
                wanted.display()
            );
        }
        wanted.to_path_buf()
    } else {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let sub = wanted.join(format!("run-{stamp}-{}", std::process::id()));
        println!(
            "{} holds files that are not a hollow dataset: this run writes into the new folder {} \
             (the demo deletes nothing).",
            wanted.display(),
            sub.display()
        );
        sub
    };
    std::fs::create_dir_all(&folder)?;
    Ok(folder)
}

/// True when every file under `dir` is a blob or the announcement of a dataset.
fn holds_only_blobs(dir: &Path, under: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().all(|e| {
        let name = format!("{under}{}", e.file_name().to_string_lossy());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            holds_only_blobs(&e.path(), &format!("{name}/"))
        } else {
            use hollow::store::layout::{ANNOUNCEMENT, FOLDER_LOCK, LEASE};
            [ANNOUNCEMENT, LEASE, FOLDER_LOCK].contains(&name.as_str())
                || BlobName::parse(&name).is_some()
        }
    })
}

fn usage() -> ! {
    println!(
        "usage: demo [--records N (100000)] [--cycles N (8)] [--consumers N (3)] [--interval-ms N (2000)] [--folder DIR | --s3] [--producers N (1)]"
    );
    println!("--producers 2 or more: producer processes elect a leader (lease 1 s); the demo kills the leader half way and a standby takes over");
    println!("--s3 uses S3 or MinIO: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, HOLLOW_S3_BUCKET");
    std::process::exit(0)
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        records: 100_000,
        cycles: 8,
        consumers: 3,
        interval: Duration::from_secs(2),
        folder: std::env::temp_dir().join("hollow-demo"),
        s3: false,
        producers: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut number = |name: &str| {
            args.next()
                .and_then(|v| v.replace('_', "").parse::<u64>().ok())
                .ok_or(format!("{name} needs a whole number"))
        };
        match a.as_str() {
            "--records" => o.records = number("--records")?.max(1_000),
            "--cycles" => o.cycles = number("--cycles")?.max(1),
            "--consumers" => o.consumers = number("--consumers")?.clamp(1, 8) as usize,
            "--interval-ms" => o.interval = Duration::from_millis(number("--interval-ms")?),
            "--s3" => o.s3 = true,
            "--producers" => o.producers = number("--producers")?.clamp(1, 5) as usize,
            "--folder" => {
                o.folder = args
                    .next()
                    .map(PathBuf::from)
                    .ok_or("--folder needs a path")?
            }
            "-h" | "--help" => usage(),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(o)
}

fn kib(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some(elected_producer::ARG) {
        let rest: Vec<String> = args.collect();
        if let Err(e) = elected_producer::run(&rest) {
            eprintln!("[producer] error: {e}");
            std::process::exit(1);
        }
        return;
    }
    if first.as_deref() == Some("--consumer") {
        let (location, name) = (
            args.next().unwrap_or_default(),
            args.next().unwrap_or_default(),
        );
        let records = args.next().and_then(|r| r.parse().ok()).unwrap_or(100_000);
        if let Err(e) = run_consumer(&location, &name, records) {
            eprintln!("[consumer {name}] error: {e}");
            std::process::exit(1);
        }
        return;
    }
    let options = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::exit(2);
        }
    };
    let run = match options.producers {
        1 => run_demo(&options),
        _ => run_failover_demo(&options),
    };
    if let Err(e) = run {
        eprintln!("demo: {e}");
        std::process::exit(1);
    }
}

fn run_demo(o: &Options) -> Result<(), Box<dyn std::error::Error>> {
    let folder = if o.s3 {
        o.folder.clone()
    } else {
        demo_folder(&o.folder)?
    };
    let medium = if o.s3 {
        "S3 (from the environment)"
    } else {
        "a local folder"
    };
    println!(
        "hollow demo: one producer, {} consumers in separate processes, {medium} as the blob store.",
        o.consumers
    );
    println!(
        "The producer publishes {} movies, then changes about 1% of them every {:.1} s;",
        o.records,
        o.interval.as_secs_f64()
    );
    println!(
        "each consumer keeps the whole dataset in memory and follows the producer's announcements."
    );
    let location = if o.s3 {
        "s3".to_string()
    } else {
        println!(
            "Store folder: {} (dataset prefix {PREFIX:?}, blobs in {})",
            folder.display(),
            folder.join(PREFIX).display()
        );
        folder.to_string_lossy().into_owned()
    };
    println!(
        "Each consumer prints its version, how it got there, and lookups of four movies:\n\
         #id \"title\" (release year, rating*), or \"#id gone\" once the producer removed it.\n"
    );

    let runtime = tokio::runtime::Runtime::new()?;
    let store = store(&folder, o.s3)?;
    let mut producer = runtime.block_on(
        ProducerBuilder::from_blob_store(store.clone(), movies::schema()?)
            .with_validator(DuplicatePrimaryKeys)
            .build(),
    )?;
    let mut data = movies::state1(o.records);
    let mut children: Vec<Child> = Vec::new();
    let interrupted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
    let mut result: Result<(), Box<dyn std::error::Error>> = Ok(());
    for cycle in 0..o.cycles {
        if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
            println!("\n[producer] interrupted");
            break;
        }
        if cycle > 0 {
            movies::apply_cycle(&mut data, o.records, cycle);
        }
        let started = Instant::now();
        let outcome =
            runtime.block_on(producer.run_cycle(|w| data.iter().try_for_each(|m| w.add(m))));
        match outcome {
            Ok(CycleOutcome::Published(r)) => {
                let what = if cycle == 0 {
                    format!("{} movies", data.len())
                } else {
                    let n = o.records;
                    format!(
                        "{} changed, {} added, {} removed",
                        n / 100,
                        n / 1000,
                        n / 1000
                    )
                };
                let mut blobs = Vec::new();
                if let Some(s) = r.snapshot_bytes {
                    blobs.push(format!("snapshot {}", kib(s)));
                }
                if let Some((d, rd)) = r.delta_bytes {
                    blobs.push(format!("delta {}, reverse delta {}", kib(d), kib(rd)));
                }
                println!(
                    "[producer] cycle {cycle}: {what} -> announced version {} ({}) in {} ms",
                    r.version,
                    blobs.join(", "),
                    started.elapsed().as_millis()
                );
            }
            Ok(CycleOutcome::NoChange) => {
                println!("[producer] cycle {cycle}: no change, nothing published")
            }
            Err(e) => {
                result = Err(e.into());
                break;
            }
        }
        if cycle == 0 {
            for i in 0..o.consumers {
                let name = ((b'A' + i as u8) as char).to_string();
                children.push(
                    Command::new(std::env::current_exe()?)
                        .args(["--consumer", &location, &name, &o.records.to_string()])
                        .stdin(Stdio::piped())
                        .spawn()?,
                );
            }
        }
        std::thread::sleep(o.interval);
    }
    // Closing their stdin tells the consumers to stop.
    for mut c in children {
        drop(c.stdin.take());
        let _ = c.wait();
    }
    result?;
    let blobs = runtime.block_on(store.list())?;
    let names: Vec<String> = blobs.iter().map(BlobName::path).collect();
    println!(
        "\nDone. The store holds {} blobs and the announcement:",
        names.len()
    );
    println!("  {}", names.join("  "));
    if o.s3 {
        println!("under {PREFIX}/ in the bucket.");
    } else {
        println!(
            "in {} (the demo deletes nothing; remove the folder when you like).",
            folder.join(PREFIX).display()
        );
    }
    Ok(())
}

/// The demo with `--producers N`: N producer processes elect a leader on the local folder; the
/// leader publishes a cycle every interval; half way through the demo kills it (SIGKILL) and a
/// standby takes over while the consumers keep serving.
fn run_failover_demo(o: &Options) -> Result<(), Box<dyn std::error::Error>> {
    if o.s3 {
        return Err("--producers runs on a local folder (the failover tests cover S3)".into());
    }
    let folder = demo_folder(&o.folder)?;
    let lease = Duration::from_secs(1);
    println!(
        "hollow demo: {} producer processes electing a leader (lease {} s) and {} consumers, a \
         local folder as the blob store: {}.",
        o.producers,
        lease.as_secs(),
        o.consumers,
        folder.display()
    );
    println!(
        "The leader publishes {} movies, then changes 100 of them every {:.1} s. After {} versions \
         the demo kills it (SIGKILL); a standby takes over the lease once it runs out, restores \
         the announced state and continues the chain, while the consumers keep serving.\n",
        o.records,
        o.interval.as_secs_f64(),
        o.cycles / 2
    );
    let (tx, lines) = std::sync::mpsc::channel::<(usize, String)>();
    let mut producers = Vec::new();
    for p in 0..o.producers {
        let mut child =
            elected_producer::spawn(&folder, &format!("p{p}"), o.records, lease, o.interval)?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send((p, line)).is_err() {
                    return;
                }
            }
        });
        producers.push(Some(child));
    }
    drop(tx);
    let mut consumers: Vec<Child> = Vec::new();
    let (mut published, mut leader, mut killed_at) = (0, None, None::<Instant>);
    let deadline =
        Instant::now() + (o.interval + lease) * (o.cycles as u32 + 10) + Duration::from_secs(60);
    while published < o.cycles {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((p, line)) = lines.recv_timeout(left) else {
            return Err("the producers published nothing for too long".into());
        };
        println!("[producer p{p}] {}", describe(&line));
        if line.starts_with("LEADER") {
            leader = Some(p);
            if let Some(at) = killed_at.take() {
                println!(
                    "[demo] p{p} took over {} ms after the leader was killed",
                    at.elapsed().as_millis()
                );
            }
        }
        if !line.starts_with("PUBLISHED") {
            continue;
        }
        published += 1;
        if published == 1 {
            for i in 0..o.consumers {
                let name = ((b'A' + i as u8) as char).to_string();
                consumers.push(
                    Command::new(std::env::current_exe()?)
                        .arg("--consumer")
                        .arg(&folder)
                        .args([&name, &o.records.to_string()])
                        .stdin(Stdio::piped())
                        .spawn()?,
                );
            }
        }
        if published == o.cycles / 2 {
            if let Some(child) = leader.and_then(|l| producers[l].as_mut()) {
                println!(
                    "[demo] killing the leader p{} with SIGKILL",
                    leader.unwrap_or(0)
                );
                let _ = child.kill();
                let _ = child.wait();
                killed_at = Some(Instant::now());
            }
        }
    }
    for mut c in consumers {
        drop(c.stdin.take());
        let _ = c.wait();
    }
    for mut p in producers.into_iter().flatten() {
        let _ = p.kill();
        let _ = p.wait();
    }
    println!(
        "\nDone. The dataset is in {} (the demo deletes nothing; remove the folder when you like).",
        folder.join(PREFIX).display()
    );
    Ok(())
}

/// A producer process's line, for people.
fn describe(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    match words[..] {
        ["LEADER", epoch] => format!("leads (epoch {epoch})"),
        ["PUBLISHED", version, epoch] => format!("announced version {version} (epoch {epoch})"),
        _ => line.to_string(),
    }
}

/// Remembers the last refresh so the main loop can say how the consumer got to its version.
#[derive(Default)]
struct LastRefresh(Mutex<Option<RefreshEvent>>);

impl ConsumerListener for LastRefresh {
    fn on_refresh(&self, event: &RefreshEvent) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(event.clone());
    }
}

fn run_consumer(
    location: &str,
    name: &str,
    records: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    // The demo closes our stdin to stop us (or the pipe closes if it dies).
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        for _ in std::io::stdin().lock().lines() {}
        let _ = stop_tx.send(());
    });
    let runtime = tokio::runtime::Runtime::new()?;
    let last = Arc::new(LastRefresh::default());
    let store = store(Path::new(location), location == "s3")?;
    // A local folder is watched with file-system events; S3 is polled.
    let builder = ConsumerBuilder::from_blob_store(store)
        .with_listener(last.clone())
        .with_poll_interval(Duration::from_millis(500));
    let consumer = runtime.block_on(builder.build())?;
    // Movie 1 is among the first removed; movie n/2 + k changes its year and rating in cycle k.
    let half = records as i64 / 2;
    let ids = [1, half + 1, half + 2, half + 3];
    let mut shown = None;
    loop {
        if stop_rx.recv_timeout(Duration::from_millis(20)).is_ok() {
            return Ok(());
        }
        let Some(state) = consumer.current() else {
            continue;
        };
        if shown == Some(state.version()) {
            continue;
        }
        // The listener hears of a swap just after readers see it: wait for the event of this
        // version, so that "how" is about the version shown.
        let event = last.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if event.as_ref().is_some_and(|e| e.to != state.version()) {
            continue;
        }
        shown = Some(state.version());
        let how = event
            .as_ref()
            .map(|e| match e.from {
                Some(from) => format!(
                    "{from} -> {} by {} in {} ms",
                    e.to,
                    e.plan,
                    e.took.as_millis()
                ),
                None => format!("loaded {} in {} ms", e.plan, e.took.as_millis()),
            })
            .unwrap_or_default();
        let movies = state.index::<Movie>()?;
        let lookups: Vec<String> = ids
            .iter()
            .map(|id| match movies.get(id) {
                Ok(Some(m)) => {
                    format!("#{id} {:?} ({}, {:.1}*)", m.title, m.release_year, m.rating)
                }
                _ => format!("#{id} gone"),
            })
            .collect();
        let epoch = match consumer.health().announced_epoch {
            Some(e) if e > 0 => format!(", leader epoch {e}"),
            _ => String::new(),
        };
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "    [consumer {name}] serving version {} ({how}{epoch}); {} movies; {}",
            state.version(),
            state.record_count("Movie")?,
            lookups.join(", ")
        )?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: `--folder DIR` deleted DIR recursively, with a file the user had put there.
    #[test]
    fn a_folder_with_files_of_its_own_is_never_touched() {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join("notes.txt");
        std::fs::write(&mine, "mine").unwrap();
        let folder = demo_folder(dir.path()).unwrap();
        assert_ne!(folder, dir.path());
        assert!(folder.starts_with(dir.path()) && folder.is_dir());
        assert_eq!(std::fs::read_to_string(&mine).unwrap(), "mine");
    }

    #[test]
    fn an_empty_folder_or_an_earlier_runs_dataset_is_used_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(demo_folder(dir.path()).unwrap(), dir.path());
        let dataset = dir.path().join(PREFIX).join("snapshot");
        std::fs::create_dir_all(&dataset).unwrap();
        std::fs::write(dataset.join("1.00000000000000a1"), b"blob").unwrap();
        std::fs::write(
            dir.path()
                .join(PREFIX)
                .join(hollow::store::layout::ANNOUNCEMENT),
            b"announcement",
        )
        .unwrap();
        assert_eq!(demo_folder(dir.path()).unwrap(), dir.path());
        // A stray file inside the dataset: not ours, so a new sub-folder.
        std::fs::write(dataset.join("readme"), b"x").unwrap();
        assert_ne!(demo_folder(dir.path()).unwrap(), dir.path());
        let missing = dir.path().join("new");
        assert_eq!(demo_folder(&missing).unwrap(), missing);
    }
}
