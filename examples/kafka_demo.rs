//! The Kafka pipeline, end to end on this machine: a compacted topic of movies, a Kafka source
//! publishing it as hollow states into a local folder, consumers following it, a write becoming
//! visible to a reader that waits for it, and a new reader starting from the snapshot instead of
//! replaying the topic.
//!
//! ```sh
//! cargo run --release --example kafka_demo            # starts a broker (scripts/kafka-broker)
//! HOLLOW_KAFKA_BOOTSTRAP=host:9092 cargo run --release --example kafka_demo   # your broker
//! cargo run --release --example kafka_demo -- --help
//! ```

#[path = "kafka/movies_topic.rs"]
mod movies_topic;
#[path = "kafka/replay.rs"]
mod replay;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hollow::consumer::ConsumerBuilder;
use hollow::movies::{self, Movie};
use hollow::producer::ProducerBuilder;
use hollow_kafka::{KafkaSourceBuilder, LocalBroker, ReadYourWrites, TopicWriter};

struct Options {
    records: u64,
    rounds: u64,
    topic: String,
    /// Whether the topic is the demo's own (named by it, not by `--topic`).
    own_topic: bool,
    folder: Option<PathBuf>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        records: 100_000,
        rounds: 5,
        topic: format!("hollow-demo-movies-{}", std::process::id()),
        own_topic: true,
        folder: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--records" => {
                o.records = value("--records")?
                    .parse()
                    .map_err(|e| format!("--records: {e}"))?
            }
            "--rounds" => {
                o.rounds = value("--rounds")?
                    .parse()
                    .map_err(|e| format!("--rounds: {e}"))?
            }
            "--topic" => (o.topic, o.own_topic) = (value("--topic")?, false),
            "--folder" => o.folder = Some(value("--folder")?.into()),
            "-h" | "--help" => {
                println!("usage: kafka_demo [--records 100000] [--rounds 5] [--topic NAME] [--folder NEW_DIR]");
                println!("Uses the broker HOLLOW_KAFKA_BOOTSTRAP names, or starts one with scripts/kafka-broker.");
                println!("--folder keeps the dataset in NEW_DIR (which must not exist); by default it goes to a");
                println!("temporary folder removed at the end.");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(o)
}

#[tokio::main]
async fn main() {
    let result = match options() {
        Ok(o) => run(o).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = result {
        eprintln!("kafka_demo: {e}");
        std::process::exit(1);
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

async fn run(o: Options) -> Result<(), Box<dyn std::error::Error>> {
    println!("== a Kafka broker");
    let broker = LocalBroker::start_or_reuse()?;
    println!("   bootstrap {}", broker.bootstrap());
    broker.create_topic(&o.topic, 4, &["cleanup.policy=compact"])?;
    println!("   topic {} (4 partitions, compacted)", o.topic);
    let shown = show(&o, &broker).await;
    // The demo's own topic goes with its temporary dataset; one the user named, or the topic
    // of a dataset kept in --folder, stays.
    if o.own_topic && o.folder.is_none() {
        match broker.delete_topic(&o.topic) {
            Ok(()) => println!("   topic {} deleted", o.topic),
            Err(e) => eprintln!("kafka_demo: deleting topic {}: {e}", o.topic),
        }
    } else if o.folder.is_some() {
        println!("   the topic {} stays with it", o.topic);
    }
    shown
}

/// Everything after the topic is created.
async fn show(o: &Options, broker: &LocalBroker) -> Result<(), Box<dyn std::error::Error>> {
    // The dataset's folder: a temporary one, or a new one the user named.
    let temporary = tempfile::tempdir()?;
    let folder = match &o.folder {
        Some(f) if f.exists() => {
            return Err(format!("{} exists: give a new folder", f.display()).into())
        }
        Some(f) => {
            std::fs::create_dir_all(f)?;
            f.clone()
        }
        None => temporary.path().to_path_buf(),
    };

    println!("== writing {} movies to the topic", o.records);
    let writer = TopicWriter::connect(broker.bootstrap(), &o.topic).await?;
    let data = movies::state1(o.records);
    let t = Instant::now();
    let end = movies_topic::write_movies(&writer, &data).await?;
    let written: Vec<(i32, i64)> = end.iter().map(|(p, next)| (p, next - 1)).collect();
    println!("   written in {}", ms(t.elapsed()));

    println!(
        "== a Kafka source publishing the topic into {}",
        folder.display()
    );
    let store = std::sync::Arc::new(object_store::local::LocalFileSystem::new_with_prefix(
        &folder,
    )?);
    // A snapshot every 10 versions but at most one per 10 s unless much changed, written
    // after announcing: cycles cost about what their change costs, and a new reader applies
    // to the latest snapshot the deltas since (at most 10 s of them, or 9).
    let producer = ProducerBuilder::new(store, "movies", movies::schema()?)
        .with_snapshot_every(10)
        .with_snapshot_interval(Duration::from_secs(10))
        .with_snapshots_in_background()
        .build()
        .await?;
    let mut source = KafkaSourceBuilder::<Movie>::new(broker.bootstrap(), &o.topic)
        .with_max_delay(Duration::from_millis(20))
        .with_fetch_max_wait(Duration::from_millis(20))
        .build(producer)
        .await?;
    let status = source.status();
    let topic = o.topic.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        let r = source.run_until(async { drop(stopped.await) }).await;
        (r, source)
    });

    let t = Instant::now();
    let consumer = ConsumerBuilder::local(&folder, "movies")?.build().await?;
    let state = consumer
        .wait_for_offsets(&topic, &written, Duration::from_secs(60))
        .await
        .ok_or("the movies did not become visible in 60 s")?;
    println!(
        "   a consumer serves all {} movies (version {}) after {}",
        state.object("Movie")?.len(),
        state.version(),
        ms(t.elapsed())
    );

    println!(
        "== changes flow: {} rounds of 1,000 updates and deletes",
        o.rounds
    );
    let mut r = movies::SplitMix64::new(99);
    for round in 1..=o.rounds {
        let messages: Vec<hollow_kafka::Message> = (0..1_000)
            .map(|i| {
                let id = 1 + r.pick(o.records) as i64;
                let mut m = movies::draw(&mut r, id as u64 - 1);
                m.id = id;
                m.title = format!("Title {id}, round {round} change {i}");
                let value = (r.pick(20) != 0).then(|| serde_json::to_vec(&m).unwrap());
                (id.to_string().into_bytes(), value)
            })
            .collect();
        let t = Instant::now();
        let tokens = writer.send_batch(messages).await?;
        let newest: Vec<(i32, i64)> = tokens.iter().map(|t| (t.partition, t.offset)).collect();
        let state = consumer
            .wait_for_offsets(&topic, &newest, Duration::from_secs(30))
            .await
            .ok_or("the changes did not become visible in 30 s")?;
        println!(
            "   round {round}: 1,000 changes visible in version {} after {} ({} movies)",
            state.version(),
            ms(t.elapsed()),
            state.object("Movie")?.len()
        );
    }

    println!("== read your write");
    let mut heat: Movie = consumer
        .current()
        .ok_or("no state")?
        .find::<Movie, _>(&42i64)?
        .unwrap_or_else(|| movies::draw(&mut r, 41));
    heat.id = 42;
    heat.title = "Heat (director's cut)".into();
    let t = Instant::now();
    let token = writer.send_json("42", Some(&heat)).await?;
    let state = consumer
        .wait_for_write(&topic, token, Duration::from_secs(10))
        .await
        .ok_or("the write did not become visible in 10 s")?;
    let read: Option<Movie> = state.find(&42i64)?;
    println!(
        "   wrote movie 42 (token {token}); visible after {}: {:?}",
        ms(t.elapsed()),
        read.map(|m| m.title)
    );

    println!("== a new reader: from the snapshot, or by replaying the topic");
    let t = Instant::now();
    let fresh = ConsumerBuilder::local(&folder, "movies")?.build().await?;
    let cold = t.elapsed();
    let movies_served = fresh.current().ok_or("no state")?.object("Movie")?.len();
    let t = Instant::now();
    let (view, read_messages) = replay::replay(broker.bootstrap(), &topic).await?;
    let replayed = t.elapsed();
    println!(
        "   from the snapshot: {movies_served} movies in {}",
        ms(cold)
    );
    println!(
        "   replaying the topic: {} movies from {read_messages} messages in {}",
        view.len(),
        ms(replayed)
    );

    stop.send(()).ok();
    let (result, source) = running.await?;
    result?;
    let s = status.lock().unwrap().clone();
    println!(
        "== the source applied {} messages ({} upserts, {} deletes) in {} versions; now at version {:?}",
        s.messages,
        s.upserts,
        s.deletes,
        s.cycles,
        source.producer().version()
    );
    if o.folder.is_some() {
        println!("   the dataset stays in {}", folder.display());
    }
    Ok(())
}
