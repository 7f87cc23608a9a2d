//! The Kafka figures of the benchmark (`bench --kafka`): materializing a topic, write-to-visible
//! latency in a consumer of another process, and a new reader from the snapshot vs replaying
//! the topic.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hollow::consumer::{ConsumerBuilder, ConsumerListener, RefreshEvent};
use hollow::movies::{self, Movie};
use hollow::producer::ProducerBuilder;
use hollow_kafka::{KafkaSourceBuilder, LocalBroker, Offsets, ReadYourWrites, TopicWriter};

use super::movies_topic::write_movies;
use super::replay::replay;
use super::{figure, progress};

/// The argument that makes the bench a consumer process: `--kafka-consumer FOLDER TOPIC`.
pub const CONSUMER_ARG: &str = "--kafka-consumer";

fn unix_nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
}

/// Prints every swap as `swap <unix nanos> <version> <offsets>` on stdout.
struct ReportSwaps {
    topic: String,
    consumer: Mutex<Option<std::sync::Weak<hollow::consumer::Consumer>>>,
}

impl ConsumerListener for ReportSwaps {
    fn on_refresh(&self, event: &RefreshEvent) {
        let at = unix_nanos(SystemTime::now());
        let consumer = self
            .consumer
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|w| w.upgrade());
        if let Some(offsets) = consumer.and_then(|c| c.offsets(&self.topic).ok()) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "swap {at} {} {offsets}", event.to);
            let _ = out.flush();
        }
    }
}

/// The consumer process: follows `folder` and reports its swaps until stdin closes.
pub fn consumer_process(folder: &str, topic: &str) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let report = Arc::new(ReportSwaps {
            topic: topic.to_string(),
            consumer: Mutex::new(None),
        });
        let consumer = Arc::new(
            ConsumerBuilder::local(folder, "movies")?
                .with_listener(report.clone())
                .build()
                .await?,
        );
        *report.consumer.lock().unwrap() = Some(Arc::downgrade(&consumer));
        println!("ready {}", consumer.offsets(topic)?);
        // Runs until the parent closes stdin.
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
        })
        .await?;
        Ok(())
    })
}

/// Where the cycles' time goes: per stage, every duration; and when each version was announced
/// (unix nanos).
#[derive(Default)]
struct Stages {
    times: Mutex<BTreeMap<&'static str, Vec<f64>>>,
    announced_at: Mutex<BTreeMap<u64, u128>>,
}

impl hollow::producer::ProducerListener for Stages {
    fn on_published(&self, report: &hollow::producer::CycleReport) {
        let announced_at = unix_nanos(SystemTime::now());
        self.announced_at
            .lock()
            .unwrap()
            .insert(report.version, announced_at);
        let mut stages = self.times.lock().unwrap();
        for (stage, took) in &report.stages {
            stages
                .entry(stage)
                .or_default()
                .push(took.as_secs_f64() * 1e3);
        }
        stages
            .entry("cycle")
            .or_default()
            .push(report.duration().as_secs_f64() * 1e3);
    }
}

impl Stages {
    fn print(&self) {
        for (stage, times) in self
            .times
            .lock()
            .unwrap()
            .iter_mut()
            .filter(|(_, t)| !t.is_empty())
        {
            times.sort_by(f64::total_cmp);
            eprintln!(
                "[bench]   {stage}: median {:.1} ms, p99 {:.1} ms over {} cycles",
                percentile(times, 0.5),
                percentile(times, 0.99),
                times.len()
            );
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The source's settings: a cycle at most 20 ms after a message.
fn source_settings(bootstrap: &str, topic: &str) -> KafkaSourceBuilder<Movie> {
    KafkaSourceBuilder::new(bootstrap, topic)
        .with_max_delay(Duration::from_millis(20))
        .with_fetch_max_wait(Duration::from_millis(20))
}

/// Every Kafka figure, with `n` keys.
pub fn figures(n: u64) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(n))
}

async fn run(n: u64) -> Result<(), Box<dyn std::error::Error>> {
    progress("kafka: a broker (HOLLOW_KAFKA_BOOTSTRAP, or one started by scripts/kafka-broker)");
    let broker = LocalBroker::start_or_reuse()?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let topic = format!("bench-movies-{}-{}", std::process::id(), nanos.as_nanos());
    broker.create_topic(&topic, 4, &["cleanup.policy=compact"])?;
    let measured = measure(&broker, &topic, n).await;
    // The topic is the bench's own: on a broker of the user's (HOLLOW_KAFKA_BOOTSTRAP) each
    // run would otherwise leave its messages behind (about 450 MB at 1 M movies).
    let deleted = broker.delete_topic(&topic);
    if let Err(e) = &deleted {
        eprintln!("[bench] kafka: deleting topic {topic}: {e}");
    }
    measured.and(deleted.map_err(Into::into))
}

/// Every Kafka figure, on `topic` of `broker`, just created.
async fn measure(
    broker: &LocalBroker,
    topic: &str,
    n: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let writer = TopicWriter::connect(broker.bootstrap(), topic).await?;

    progress(&format!(
        "kafka: writing {n} JSON movies to {topic} (4 partitions)"
    ));
    let end = write_movies(&writer, &movies::state1(n)).await?;

    let dir = tempfile::tempdir()?;
    progress("kafka: materializing the topic (source from offset 0 to announced)");
    let store = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(
        dir.path(),
    )?);
    let stages = Arc::new(Stages::default());
    let producer = ProducerBuilder::new(store, "movies", movies::schema()?)
        .with_listener(stages.clone())
        .with_snapshot_every(10)
        .with_snapshot_interval(Duration::from_secs(10))
        .with_snapshots_in_background()
        .build()
        .await?;
    let mut source = source_settings(broker.bootstrap(), topic)
        .build(producer)
        .await?;
    let status = source.status();
    let t = Instant::now();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        let r = source.run_until(async { drop(stopped.await) }).await;
        r.map(|_| source)
    });
    while status.lock().unwrap().announced != end {
        if running.is_finished() {
            return Err(format!("the source stopped: {:?}", running.await?.err()).into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = t.elapsed().as_secs_f64();
    figure(
        "kafka_materialize_msgs_per_s",
        format!("{:.0}", n as f64 / took),
        "msgs/s",
    );
    eprintln!(
        "[bench]   {} versions, {:.1} s",
        status.lock().unwrap().cycles,
        took
    );
    stages.print();
    stages.times.lock().unwrap().clear();
    stop.send(()).ok();
    let mut producer = running.await??.into_producer();
    if let Some(snapshot) = producer.wait_for_background_snapshot().await {
        eprintln!(
            "[bench]   the last background snapshot: {:?}",
            snapshot.map(|s| s.version)
        );
    }

    progress("kafka: a new reader from the snapshot");
    let t = Instant::now();
    let cold = ConsumerBuilder::local(dir.path(), "movies")?
        .build()
        .await?;
    let served = cold.current().ok_or("no state")?.object("Movie")?.len();
    let cold_ms = t.elapsed().as_secs_f64() * 1e3;
    figure("kafka_cold_start_ms", format!("{cold_ms:.1}"), "ms");
    drop(cold);
    progress("kafka: the same view by replaying the topic from offset 0 (the GlobalKTable way)");
    let t = Instant::now();
    let (view, read) = replay(broker.bootstrap(), topic).await?;
    let replay_ms = t.elapsed().as_secs_f64() * 1e3;
    figure("kafka_replay_ms", format!("{replay_ms:.1}"), "ms");
    figure(
        "kafka_cold_start_over_replay",
        format!("{:.3}", cold_ms / replay_ms),
        "ratio",
    );
    if view.len() as u64 != served {
        return Err(format!(
            "replay has {} movies, the snapshot {served} ({read} messages)",
            view.len()
        )
        .into());
    }

    let mut source = source_settings(broker.bootstrap(), topic)
        .build(producer)
        .await?;
    let running = tokio::spawn(async move { source.run_until(std::future::pending()).await });
    write_to_visible(&writer, topic, dir.path(), n, &stages).await?;
    stages.print();
    running.abort();
    Ok(())
}

/// 1,000 messages/s for 10 s, each an update of one of the `n` movies; when each became
/// visible in a consumer of another process.
async fn write_to_visible(
    writer: &TopicWriter,
    topic: &str,
    folder: &Path,
    n: u64,
    stages: &Stages,
) -> Result<(), Box<dyn std::error::Error>> {
    progress("kafka: write to visible in a consumer process, 1,000 msgs/s for 10 s");
    let mut child = Command::new(std::env::current_exe()?)
        .args([CONSUMER_ARG, &folder.to_string_lossy(), topic])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let ready = lines.next().ok_or("the consumer process ended")??;
    if !ready.starts_with("ready") {
        return Err(format!("the consumer process said {ready:?}").into());
    }
    let swaps: Arc<Mutex<Vec<(u128, u64, Offsets)>>> = Arc::default();
    let reader = {
        let swaps = swaps.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut parts = line.splitn(4, ' ');
                if let (Some("swap"), Some(at), Some(version), Some(offsets)) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                {
                    if let (Ok(at), Ok(version), Ok(offsets)) =
                        (at.parse(), version.parse(), offsets.parse())
                    {
                        swaps.lock().unwrap().push((at, version, offsets));
                    }
                }
            }
        })
    };

    let mut r = movies::SplitMix64::new(1000);
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    let mut sends = Vec::new();
    for i in 0..10_000u64 {
        ticks.tick().await;
        let id = 1 + r.pick(n) as i64;
        let mut m = movies::draw(&mut r, id as u64 - 1);
        m.id = id;
        m.title = format!("Update {i}");
        let writer = writer.clone();
        sends.push(tokio::spawn(async move {
            let sent = unix_nanos(SystemTime::now());
            writer
                .send_json(&id.to_string(), Some(&m))
                .await
                .map(|t| (t, sent, unix_nanos(SystemTime::now())))
        }));
    }
    let mut written = Vec::new();
    for s in sends {
        written.push(s.await??);
    }
    let mut last = BTreeMap::new();
    for (t, _, _) in &written {
        last.insert(
            t.partition,
            t.offset.max(*last.get(&t.partition).unwrap_or(&0)),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = swaps
            .lock()
            .unwrap()
            .last()
            .is_some_and(|(_, _, o)| last.iter().all(|(&p, &off)| o.contains(p, off)));
        if done {
            break;
        }
        if Instant::now() > deadline {
            return Err("the consumer process did not see every write within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(child.stdin.take());
    child.wait()?;
    reader.join().ok();
    let swaps = swaps.lock().unwrap();
    let announced = stages.announced_at.lock().unwrap();
    // Per write: sent → visible, and its parts: sent → acknowledged (the broker), sent →
    // announced (the producer side) and announced → visible (the consumer process).
    let mut parts: [Vec<f64>; 4] = Default::default();
    for (t, sent, acknowledged) in &written {
        let Some((at, version, _)) = swaps
            .iter()
            .find(|(_, _, o)| o.contains(t.partition, t.offset))
        else {
            continue;
        };
        let ms = |from: u128, to: u128| to.saturating_sub(from) as f64 / 1e6;
        parts[0].push(ms(*sent, *at));
        parts[3].push(ms(*sent, *acknowledged));
        if let Some(&announced_at) = announced.get(version) {
            parts[1].push(ms(*sent, announced_at));
            parts[2].push(ms(announced_at, *at));
        }
    }
    parts.iter_mut().for_each(|p| p.sort_by(f64::total_cmp));
    let [latencies, to_announced, to_visible, to_acknowledged] = &parts;
    for (what, p) in [
        ("written → acknowledged by the broker", to_acknowledged),
        ("written → announced", to_announced),
        ("announced → visible", to_visible),
    ] {
        if !p.is_empty() {
            eprintln!(
                "[bench]   {what}: median {:.1} ms, p99 {:.1} ms",
                percentile(p, 0.5),
                percentile(p, 0.99)
            );
        }
    }
    figure(
        "kafka_write_to_visible_p50_ms",
        format!("{:.1}", percentile(latencies, 0.5)),
        "ms",
    );
    figure(
        "kafka_write_to_visible_p99_ms",
        format!("{:.1}", percentile(latencies, 0.99)),
        "ms",
    );
    eprintln!(
        "[bench]   {} writes, {} swaps in the consumer process, max {:.1} ms",
        latencies.len(),
        swaps.len(),
        latencies.last().copied().unwrap_or(0.0)
    );
    Ok(())
}
