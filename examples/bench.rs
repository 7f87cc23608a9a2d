//! The benchmark of `docs/movies-dataset.md` on the `movies` dataset. Prints one figure per line
//! as `name: value unit`; progress goes to stderr.
//!
//! ```sh
//! cargo run --release --example bench -- --records 1000000
//! cargo run --release --example bench -- --records 1000000 --kafka   # and the Kafka figures
//! cargo run --release --example bench -- --records 1000000 --failover   # and producer failover
//! ```

#[path = "failover/elected_producer.rs"]
mod elected_producer;
#[path = "failover/bench.rs"]
mod failover;
#[path = "kafka/bench.rs"]
mod kafka;
#[path = "machine/speed.rs"]
mod machine_speed;
#[path = "kafka/movies_topic.rs"]
mod movies_topic;
#[path = "kafka/replay.rs"]
mod replay;

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use hollow::core::{ReadState, WriteState};
use hollow::movies;

struct Args {
    records: u64,
    lookups: usize,
    kafka: bool,
    /// Only the figures asked for with `--kafka-only` / `--failover-only`, not the main ones.
    extras_only: bool,
    failover: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        records: 1_000_000,
        lookups: 10_000_000,
        kafka: false,
        extras_only: false,
        failover: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .and_then(|v| v.replace('_', "").parse::<u64>().ok())
                .ok_or_else(|| format!("{name} needs a whole number"))
        };
        match a.as_str() {
            "--records" => args.records = value("--records")?,
            "--lookups" => args.lookups = value("--lookups")? as usize,
            "--kafka" => args.kafka = true,
            "--kafka-only" => (args.kafka, args.extras_only) = (true, true),
            "--failover" => args.failover = true,
            SIDE_ARG => {
                let rest: Vec<String> = it.by_ref().collect();
                if let Err(e) = side_process(&rest) {
                    eprintln!("bench {SIDE_ARG}: {e}");
                    std::process::exit(1);
                }
                std::process::exit(0);
            }
            "--failover-only" => (args.failover, args.extras_only) = (true, true),
            elected_producer::ARG => {
                let rest: Vec<String> = it.by_ref().collect();
                if let Err(e) = elected_producer::run(&rest) {
                    eprintln!("bench producer: {e}");
                    std::process::exit(1);
                }
                std::process::exit(0);
            }
            kafka::CONSUMER_ARG => {
                let (folder, topic) = (it.next(), it.next());
                let (Some(folder), Some(topic)) = (folder, topic) else {
                    return Err(format!("{a} needs a folder and a topic"));
                };
                if let Err(e) = kafka::consumer_process(&folder, &topic) {
                    eprintln!("bench consumer: {e}");
                    std::process::exit(1);
                }
                std::process::exit(0);
            }
            "-h" | "--help" => {
                println!("usage: bench [--records N (1000000)] [--lookups N (10000000)] [--kafka | --kafka-only] [--failover | --failover-only]");
                println!("--kafka also measures the Kafka pipeline, on the broker HOLLOW_KAFKA_BOOTSTRAP names or");
                println!("one started by scripts/kafka-broker");
                println!(
                    "--failover also kills leader producers and times the takeovers (lease 1 s)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    if args.records < 1000 {
        return Err("--records must be at least 1000 (cycles change N/1000 movies)".into());
    }
    Ok(args)
}

/// Says what the bench does next, and how much memory it holds and has held so far.
fn progress(msg: &str) {
    eprintln!(
        "[bench] {msg} (resident {} MB, peak {} MB)",
        rss_bytes() >> 20,
        peak_rss_bytes() >> 20
    );
}

fn figure(name: &str, value: impl std::fmt::Display, unit: &str) {
    println!("{name}: {value} {unit}");
}

/// Resident set size of this process, from /proc (0 where there is no /proc).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A memory figure of this process's `/proc/self/status` (`VmHWM`, `RssAnon`...) in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// The peak resident memory of this process so far.
fn peak_rss_bytes() -> u64 {
    status_bytes("VmHWM")
}

/// The resident memory of this process that no file backs: its heap.
fn anonymous_rss_bytes() -> u64 {
    status_bytes("RssAnon")
}

/// The argument that makes the bench one side in a process of its own, so that its peak
/// memory is its own: `--side producer|consumer|mapped N FOLDER`.
const SIDE_ARG: &str = "--side";

/// One side alone. The producer publishes states 1 and 2 of `n` movies into `folder`,
/// generating the movies as it adds them; the consumer starts from the announced state there,
/// goes back to version 1 and forward again (a refresh each way); each prints its peak
/// resident memory. The mapped consumer times a start from a memory-mapped blob cache.
fn side_process(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    use hollow::consumer::ConsumerBuilder;
    use hollow::producer::ProducerBuilder;
    let [side, n, folder] = args else {
        return Err(format!("{SIDE_ARG} needs producer|consumer|mapped N FOLDER").into());
    };
    let n: u64 = n.parse()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = hollow::store::BlobStore::local(folder, "movies")?;
        match side.as_str() {
            "producer" => {
                let mut producer = ProducerBuilder::from_blob_store(store, movies::schema()?)
                    .without_retention()
                    .build()
                    .await?;
                let mut held = None;
                for k in 0..2 {
                    let outcome = producer
                        .run_cycle(|w| movies::for_each_in_state(n, k, |m| w.add(m)))
                        .await?;
                    eprintln!(
                        "[bench]   after cycle {k}: resident {} MB, peak {} MB",
                        rss_bytes() >> 20,
                        peak_rss_bytes() >> 20
                    );
                    if let hollow::producer::CycleOutcome::Published(report) = outcome {
                        held = Some((report.write_state_bytes, report.state_bytes));
                    }
                }
                figure("producer_peak_rss_bytes", peak_rss_bytes(), "B");
                // What it holds between cycles, as the producer counts it.
                let (write_state, state) = held.ok_or("no cycle was published")?;
                figure("producer_write_state_bytes", write_state, "B");
                figure("producer_announced_state_bytes", state, "B");
            }
            "mapped" => {
                // The cache filled by a first consumer, then a second one timed from its start
                // to its first lookup.
                let cache = std::path::Path::new(folder).join("mapped-cache");
                let build = || {
                    ConsumerBuilder::from_blob_store(store.clone())
                        .with_mapped_blob_cache(&cache)
                        .build()
                };
                drop(build().await?);
                let t = Instant::now();
                let consumer = build().await?;
                let state = consumer.current().ok_or("no state")?;
                black_box(lookups(&state, &movies::lookup_ids(n, 1))?);
                figure("mmap_cold_start_ms", ms(t), "ms");
                figure(
                    "mmap_consumer_anonymous_rss_bytes",
                    anonymous_rss_bytes(),
                    "B",
                );
                drop(consumer);
                // The same with a hash index, which the first start builds and saves beside
                // the snapshot, and the second reads back.
                let indexed = || {
                    ConsumerBuilder::from_blob_store(store.clone())
                        .with_mapped_blob_cache(&cache)
                        .with_hash_index("Movie", &["cast.id"])
                        .build()
                };
                drop(indexed().await?);
                let t = Instant::now();
                let consumer = indexed().await?;
                let state = consumer.current().ok_or("no state")?;
                black_box(state.hash_index("Movie", &["cast.id"])?.find(&7i64)?.len());
                figure("mmap_cold_start_with_hash_index_ms", ms(t), "ms");
            }
            _ => {
                let report = |what: &str| {
                    eprintln!(
                        "[bench]   {what}: resident {} MB, peak {} MB",
                        rss_bytes() >> 20,
                        peak_rss_bytes() >> 20
                    )
                };
                let consumer = ConsumerBuilder::from_blob_store(store).build().await?;
                report("started");
                consumer.pin(1).await?;
                report("back to version 1");
                consumer.unpin().await?;
                report("forward to version 2");
                if consumer.version() != Some(2) {
                    return Err("the consumer did not come back to version 2".into());
                }
                let state = consumer.current().ok_or("no state")?;
                figure(
                    "consumer_state_and_index_bytes",
                    state.heap_bytes() + state.index_heap_bytes(),
                    "B",
                );
                figure("consumer_peak_rss_bytes", peak_rss_bytes(), "B");
            }
        }
        Ok(())
    })
}

/// Runs the producer side, then the consumer side, each in a process of its own.
fn side_figures(n: u64) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    for side in ["producer", "consumer", "mapped"] {
        progress(&format!(
            "{side} alone, in a process of its own (peak memory)"
        ));
        let status = std::process::Command::new(std::env::current_exe()?)
            .args([SIDE_ARG, side, &n.to_string()])
            .arg(dir.path())
            .status()?;
        if !status.success() {
            return Err(format!("the {side} process failed: {status}").into());
        }
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Calls `add` with every movie of state `k + 1` ([`movies::for_each_in_state`]), generated in
/// chunks between the calls; returns the time the generating took, to leave out of a figure
/// that times the whole. No state is ever held as a whole (100 M movies would take 35 GB).
fn add_state<E>(
    n: u64,
    k: u64,
    mut add: impl FnMut(&movies::Movie) -> Result<(), E>,
) -> Result<std::time::Duration, E> {
    const CHUNK: usize = 100_000;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut generating = std::time::Duration::ZERO;
    let mut since = Instant::now();
    movies::for_each_in_state(n, k, |m| {
        chunk.push(m.clone());
        if chunk.len() == CHUNK {
            generating += since.elapsed();
            chunk.iter().try_for_each(&mut add)?;
            since = Instant::now();
            chunk.clear(); // freeing is the generator's cost too
        }
        Ok(())
    })?;
    generating += since.elapsed();
    chunk.iter().try_for_each(&mut add)?;
    Ok(generating)
}

/// The milliseconds since `since`, less `left_out`.
fn ms_without(since: Instant, left_out: std::time::Duration) -> String {
    format!(
        "{:.1}",
        since.elapsed().saturating_sub(left_out).as_secs_f64() * 1e3
    )
}

fn ms(since: Instant) -> String {
    format!("{:.1}", since.elapsed().as_secs_f64() * 1e3)
}

/// Σ(id × 31 + release_year + cast size), read back from the state.
fn state_checksum(state: &ReadState) -> Result<i64, hollow::core::Error> {
    let movies = state.object("Movie")?;
    let (id, year, cast) = (
        movies.int("id")?,
        movies.int("release_year")?,
        movies.reference("cast")?,
    );
    let lists = state.collection("ListOfActor")?;
    Ok(movies
        .ordinals()
        .map(|o| {
            let size = cast.get(o).map_or(0, |c| lists.size(c)) as i64;
            id.get(o).unwrap_or(0) * 31 + year.get(o).unwrap_or(0) + size
        })
        .sum())
}

/// Looks up every id, reading title and release year; returns (hits, a value to keep the reads).
fn lookups(state: &ReadState, ids: &[i64]) -> Result<(u64, u64), hollow::core::Error> {
    let index = state.primary_key_index("Movie")?;
    let movies = state.object("Movie")?;
    let (title, year) = (movies.string("title")?, movies.int("release_year")?);
    let (mut hits, mut sink) = (0u64, 0u64);
    for id in ids {
        if let Some(o) = index.find(id)? {
            hits += 1;
            sink += title.get(o).map_or(0, |t| t.len() as u64) + year.get(o).unwrap_or(0) as u64;
        }
    }
    Ok((hits, sink))
}

/// Looks up the movies of each actor by the hash index on `cast.id`, reading their titles;
/// returns (movies found, a value to keep the reads).
fn actor_lookups(state: &ReadState, actors: &[i64]) -> Result<(u64, u64), hollow::core::Error> {
    let index = state.hash_index("Movie", &["cast.id"])?;
    let title = state.object("Movie")?.string("title")?;
    let (mut results, mut sink) = (0u64, 0u64);
    for actor in actors {
        for &o in index.find(actor)? {
            results += 1;
            sink += title.get(o).map_or(0, |t| t.len() as u64);
        }
    }
    Ok((results, sink))
}

/// A borrowed view of the two fields [`lookups`] reads.
#[derive(serde::Deserialize)]
#[serde(rename = "Movie")]
struct MovieRef<'a> {
    title: &'a str,
    release_year: i32,
}

/// [`lookups`] through the typed index: each lookup materializes a [`MovieRef`].
fn typed_lookups(state: &ReadState, ids: &[i64]) -> Result<(u64, u64), hollow::core::Error> {
    let movies = state.index::<MovieRef>()?;
    let (mut hits, mut sink) = (0u64, 0u64);
    for id in ids {
        if let Some(m) = movies.get(id)? {
            hits += 1;
            sink += m.title.len() as u64 + m.release_year as u64;
        }
    }
    Ok((hits, sink))
}

/// Runs [`lookups`] on one thread: (hits, ns per lookup).
fn timed_lookups(state: &ReadState, ids: &[i64]) -> Result<(u64, f64), hollow::core::Error> {
    let t = Instant::now();
    let (hits, sink) = lookups(state, ids)?;
    let ns = t.elapsed().as_secs_f64() * 1e9 / ids.len() as f64;
    black_box(sink);
    Ok((hits, ns))
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let n = args.records;
    progress(&format!(
        "building state 1 ({n} movies, seed 42, generated as they are added) and writing its snapshot"
    ));
    let t = Instant::now();
    let mut writer = WriteState::new(movies::schema()?);
    let mut batch = writer.batch();
    let generating = add_state(n, 0, |m| batch.add(m))?;
    drop(batch);
    let blob = writer.write_snapshot(1)?;
    figure("snapshot_write_ms", ms_without(t, generating), "ms");
    figure("snapshot_bytes", blob.len(), "B");
    drop(writer);
    compressed_figures("snapshot", &blob)?;

    let dir = std::env::temp_dir().join(format!("hollow-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("snapshot-1");
    std::fs::write(&path, &blob)?;
    drop(blob);

    progress("loading the snapshot from a local file (memory-mapped), 3 times");
    let load = || -> Result<ReadState, Box<dyn std::error::Error>> {
        let file = std::fs::File::open(&path)?;
        // SAFETY: the file is private to this run and is not modified while mapped.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(ReadState::from_snapshot(Bytes::from_owner(map))?)
    };
    let mut times = Vec::new();
    for _ in 0..2 {
        let t = Instant::now();
        drop(load()?);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        eprintln!("[bench]   load {:.1} ms", times.last().unwrap_or(&0.0));
    }
    let rss_before = rss_bytes();
    let t = Instant::now();
    let state = load()?;
    times.push(t.elapsed().as_secs_f64() * 1e3);
    let rss_growth = rss_bytes().saturating_sub(rss_before);
    eprintln!("[bench]   load {:.1} ms", times.last().unwrap_or(&0.0));
    let load_ms = median(&mut times);
    figure("load_ms", format!("{load_ms:.1}"), "ms");
    figure("rss_growth_bytes", rss_growth, "B");
    figure("state_bytes", state.heap_bytes(), "B");
    figure("index_bytes", state.index_heap_bytes(), "B");
    figure("checksum_state1", state_checksum(&state)?, "");

    let ids = movies::lookup_ids(n, args.lookups);
    progress(&format!("{} lookups on one thread", ids.len()));
    let (hits, ns) = timed_lookups(&state, &ids)?;
    figure("lookup_hits", hits, "");
    figure("lookup_ns", format!("{ns:.1}"), "ns");
    let t = Instant::now();
    let (typed_hits, sink) = typed_lookups(&state, &ids)?;
    let typed_ns = t.elapsed().as_secs_f64() * 1e9 / ids.len() as f64;
    black_box(sink);
    assert_eq!(typed_hits, hits, "typed lookups found other records");
    figure("typed_lookup_ns", format!("{typed_ns:.1}"), "ns");

    progress(&format!("{} lookups on each of two threads", ids.len()));
    let t = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2).map(|_| s.spawn(|| lookups(&state, &ids))).collect();
        for w in workers {
            let _ = black_box(w.join());
        }
    });
    let elapsed = t.elapsed().as_secs_f64();
    figure(
        "lookup_2t_mops",
        format!("{:.2}", 2.0 * ids.len() as f64 / elapsed / 1e6),
        "M/s",
    );

    progress("scanning release_year");
    let movies_reader = state.object("Movie")?;
    let year = movies_reader.int("release_year")?;
    let t = Instant::now();
    let sum: i64 = movies_reader
        .ordinals()
        .map(|o| year.get(o).unwrap_or(0))
        .sum();
    let elapsed = t.elapsed().as_secs_f64();
    black_box(sum);
    figure(
        "scan_ns",
        format!("{:.2}", elapsed * 1e9 / movies_reader.len() as f64),
        "ns",
    );

    progress("building the hash index of movies by cast.id, 3 times");
    let mut bare_times = Vec::new();
    let mut hash_times = Vec::new();
    for _ in 0..3 {
        let file = std::fs::File::open(&path)?;
        // SAFETY: as in `load`.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        let t = Instant::now();
        let mut bare = ReadState::from_snapshot_without_indexes(Bytes::from_owner(map))?;
        bare_times.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        bare.add_hash_index("Movie", &["cast.id"])?;
        hash_times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // The primary key index is what a load costs beyond a load without indexes.
    let pk_ms = (load_ms - median(&mut bare_times)).max(0.0);
    figure("pk_index_build_ms", format!("{pk_ms:.1}"), "ms");
    figure(
        "hash_index_build_ms",
        format!("{:.1}", median(&mut hash_times)),
        "ms",
    );
    // `plain` has only its primary key index, `state` the hash index too.
    let plain = state.clone();
    let mut state = state;
    state.add_hash_index("Movie", &["cast.id"])?;
    figure(
        "hash_index_bytes",
        state.hash_index("Movie", &["cast.id"])?.heap_bytes(),
        "B",
    );

    let actors: Vec<i64> = ids.iter().map(|id| id % 200_000).take(1_000_000).collect();
    progress(&format!(
        "{} lookups of an actor's movies, reading their titles",
        actors.len()
    ));
    let t = Instant::now();
    let (results, sink) = actor_lookups(&state, &actors)?;
    let per_result = t.elapsed().as_secs_f64() * 1e9 / results.max(1) as f64;
    black_box(sink);
    figure("hash_lookup_results", results, "");
    figure("hash_lookup_ns", format!("{per_result:.1}"), "ns");

    progress("cycle 1: re-adding the whole dataset with 1% changed, writing both deltas");
    let mut writer = WriteState::new(movies::schema()?);
    let mut batch = writer.batch();
    add_state(n, 0, |m| batch.add(m))?;
    drop(batch);
    writer.write_snapshot(1)?;
    writer.commit_cycle()?;
    let t = Instant::now();
    let mut batch = writer.batch();
    let generating = add_state(n, 1, |m| batch.add(m))?;
    drop(batch);
    let delta = writer.write_delta(1, 2)?;
    let reverse = writer.write_reverse_delta(2, 1)?;
    figure("cycle_ms", ms_without(t, generating), "ms");
    figure("delta_bytes", delta.len(), "B");
    figure("reverse_delta_bytes", reverse.len(), "B");
    compressed_figures("delta", &delta)?;
    let snapshot2 = writer.write_snapshot(2)?;
    drop(writer);
    // Only its checksum is needed: not held beside the states the delta makes.
    let snapshot2_checksum = ReadState::from_snapshot(Bytes::from(snapshot2))?.checksum();

    // A 1 M apply takes about 2 ms, where five runs' median moved by a quarter from one
    // run of the bench to the next: fifteen, with their range printed.
    const APPLY_RUNS: usize = 15;
    progress(&format!(
        "applying the delta to the loaded state, with and without the hash index, {APPLY_RUNS} times"
    ));
    let mut times = Vec::new();
    let mut indexed_times = Vec::new();
    let delta = Bytes::from(delta);
    let mut state2 = None;
    for _ in 0..APPLY_RUNS {
        let t = Instant::now();
        let s = plain.apply_delta(delta.clone())?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        drop(s);
        let t = Instant::now();
        let s = state.apply_delta(delta.clone())?;
        indexed_times.push(t.elapsed().as_secs_f64() * 1e3);
        state2 = Some(s);
    }
    drop(plain);
    let state2 = state2.ok_or("no state")?;
    let (apply, indexed) = (median(&mut times), median(&mut indexed_times));
    for (name, times) in [
        ("apply", &times),
        ("apply with the hash index", &indexed_times),
    ] {
        // `median` sorted them.
        let (first, last) = (times.first().unwrap_or(&0.0), times.last().unwrap_or(&0.0));
        eprintln!("[bench]   {name}: {first:.1}-{last:.1} ms");
    }
    figure("apply_delta_ms", format!("{apply:.1}"), "ms");
    figure(
        "apply_delta_with_hash_index_ms",
        format!("{indexed:.1}"),
        "ms",
    );
    figure(
        "apply_with_hash_index_ratio",
        format!("{:.2}", indexed / apply),
        "",
    );
    figure("state2_bytes", state2.heap_bytes(), "B");
    figure("checksum_state2", state_checksum(&state2)?, "");
    figure(
        "state2_equals_snapshot2",
        state2.checksum() == snapshot2_checksum,
        "",
    );
    let back = state2.apply_delta(Bytes::from(reverse))?;
    figure(
        "reverse_equals_state1",
        back.checksum() == state.checksum(),
        "",
    );
    drop(back);
    let (hits, ns) = timed_lookups(&state2, &ids)?;
    figure("lookup_after_delta_hits", hits, "");
    figure("lookup_after_delta_ns", format!("{ns:.1}"), "ns");

    drop(state2);
    drop(state);
    producer_figures(&dir.join("store"), n)?;

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Prints the time of each stage of a published cycle.
/// With the `zstd` feature: the blob's bytes compressed at level 3 (what
/// `ProducerBuilder::with_compression(3)` stores), and the time to compress and to read it back
/// (checksum and decompression; a consumer pays this before parsing).
#[cfg(feature = "zstd")]
fn compressed_figures(kind: &str, blob: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    use hollow::core::raw::compressed;
    let blob = Bytes::copy_from_slice(blob);
    let t = Instant::now();
    let packed = compressed::compress(&blob, 3)?;
    figure(&format!("{kind}_zstd_compress_ms"), ms(t), "ms");
    figure(&format!("{kind}_zstd_bytes"), packed.len(), "B");
    let t = Instant::now();
    let back = compressed::decompress_if_compressed(Bytes::from(packed))?;
    figure(&format!("{kind}_zstd_decompress_ms"), ms(t), "ms");
    assert!(
        back == blob,
        "the {kind} comes back from its compressed form"
    );
    Ok(())
}

#[cfg(not(feature = "zstd"))]
fn compressed_figures(kind: &str, _blob: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    progress(&format!(
        "no {kind}_zstd figures: run the bench with --features zstd for them"
    ));
    Ok(())
}

fn print_stages(outcome: &hollow::producer::CycleOutcome) {
    if let hollow::producer::CycleOutcome::Published(report) = outcome {
        for (stage, took) in &report.stages {
            eprintln!("[bench]   {stage}: {:.1} ms", took.as_secs_f64() * 1e3);
        }
    }
}

/// Prints each swap the consumer makes, with how it got there and how long the refresh took,
/// and keeps the times of refreshes by one delta or reverse delta.
#[derive(Default)]
struct PrintRefreshes {
    by_one_delta_ms: std::sync::Mutex<Vec<f64>>,
}

impl PrintRefreshes {
    /// The median time of the refreshes by one delta heard so far, past the first `skip`.
    fn median_by_one_delta(&self, skip: usize) -> Option<f64> {
        let mut times = self.by_one_delta_ms.lock().ok()?.get(skip..)?.to_vec();
        (!times.is_empty()).then(|| median(&mut times))
    }
}

impl hollow::consumer::ConsumerListener for PrintRefreshes {
    fn on_refresh(&self, e: &hollow::consumer::RefreshEvent) {
        let took = e.took.as_secs_f64() * 1e3;
        eprintln!(
            "[bench]   consumer: {:?} -> {} by {} in {took:.1} ms",
            e.from, e.to, e.plan,
        );
        if matches!(e.plan.as_str(), "1 delta" | "1 reverse delta") {
            if let Ok(mut times) = self.by_one_delta_ms.lock() {
                times.push(took);
            }
        }
    }
}

/// The producer's full cycle 1 against a local folder: populate, blobs, integrity check,
/// validators, publish, announce. The states are generated as they are added (the time that
/// takes is left out of the figure), and so are the incremental cycles' changes, so that the
/// dataset is never held as a whole.
fn producer_figures(folder: &std::path::Path, n: u64) -> Result<(), Box<dyn std::error::Error>> {
    use hollow::consumer::ConsumerBuilder;
    use hollow::producer::{DuplicatePrimaryKeys, ProducerBuilder};
    progress("producer: cycle 0 (snapshot) and cycle 1 into a local folder");
    std::fs::create_dir_all(folder)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = hollow::store::BlobStore::local(folder, "movies")?;
        let mut producer = ProducerBuilder::from_blob_store(store.clone(), movies::schema()?)
            .with_validator(DuplicatePrimaryKeys)
            .build()
            .await?;
        producer
            .run_cycle(|w| movies::for_each_in_state(n, 0, |m| w.add(m)))
            .await?;

        progress("consumer: cold start from the local folder");
        let t = Instant::now();
        let refreshes_heard = std::sync::Arc::new(PrintRefreshes::default());
        let consumer = ConsumerBuilder::from_blob_store(store.clone())
            .with_listener(refreshes_heard.clone())
            .with_poll_interval(std::time::Duration::from_secs(5))
            .build()
            .await?;
        let first = consumer.current().ok_or("no state")?;
        black_box(lookups(&first, &movies::lookup_ids(n, 1))?);
        figure("consumer_cold_start_ms", ms(t), "ms");
        drop(first);

        let t = Instant::now();
        let mut generating = std::time::Duration::ZERO;
        let outcome = producer
            .run_cycle(|w| {
                generating = add_state(n, 1, |m| w.add(m).map(|_| ()))?;
                Ok(())
            })
            .await?;
        figure("producer_cycle_ms", ms_without(t, generating), "ms");
        print_stages(&outcome);
        let announced = Instant::now();
        while consumer.version() != Some(2) {
            if announced.elapsed().as_secs() > 30 {
                return Err("the consumer did not pick up version 2 within 30 s".into());
            }
            tokio::time::sleep(std::time::Duration::from_micros(200)).await;
        }
        figure("announce_to_swap_ms", ms(announced), "ms");
        // Its memory is not the consumer's to share during the lookups.
        drop(producer);

        progress(
            "lookups at rest and while the consumer keeps refreshing (pin 1 / unpin), interleaved",
        );
        let ids = movies::lookup_ids(n, 2_000_000);
        let consumer = std::sync::Arc::new(consumer);
        let timed_lookups = |consumer: std::sync::Arc<hollow::consumer::Consumer>,
                             ids: Vec<i64>| {
            std::thread::spawn(move || -> Result<f64, String> {
                let t = Instant::now();
                for batch in ids.chunks(10_000) {
                    let state = consumer.current().ok_or("no state")?;
                    black_box(lookups(&state, batch).map_err(|e| e.to_string())?);
                }
                Ok(t.elapsed().as_secs_f64() * 1e9)
            })
        };
        // The machine's speed drifts over seconds by more than what is measured, so the two
        // are timed in turns, on the same ids, each going first in every other window.
        const WINDOWS: usize = 8;
        let (mut at_rest, mut during, mut refreshes) = (0.0, 0.0, 0);
        for (w, window) in ids.chunks(ids.len().div_ceil(WINDOWS)).enumerate() {
            for busy_turn in [w % 2 == 1, w % 2 == 0] {
                let run = timed_lookups(consumer.clone(), window.to_vec());
                if busy_turn {
                    while !run.is_finished() {
                        consumer.pin(1).await?;
                        consumer.unpin().await?;
                        refreshes += 2;
                    }
                }
                let took = run.join().map_err(|_| "lookup thread")??;
                *(if busy_turn { &mut during } else { &mut at_rest }) += took;
            }
        }
        let (at_rest, during) = (at_rest / ids.len() as f64, during / ids.len() as f64);
        figure("lookup_at_rest_ns", format!("{at_rest:.1}"), "ns");
        figure("lookup_during_refresh_ns", format!("{during:.1}"), "ns");
        figure(
            "lookup_refresh_ratio",
            format!("{:.2}", during / at_rest),
            "",
        );
        eprintln!("[bench]   {refreshes} refreshes ran during the lookups");
        // The consumer following deltas back and forth, each state let go once the next
        // serves: past the first two, each starts from the key table of the one before last.
        if let Some(took) = refreshes_heard.median_by_one_delta(3) {
            figure("consumer_refresh_by_delta_ms", format!("{took:.1}"), "ms");
        }
        drop(consumer);

        progress("incremental producer: cycle 1's changes as upserts and deletes");
        let folder = folder.with_file_name("incremental");
        std::fs::create_dir_all(&folder)?;
        let store = std::sync::Arc::new(object_store::local::LocalFileSystem::new_with_prefix(
            &folder,
        )?);
        let mut producer = ProducerBuilder::new(store, "movies", movies::schema()?)
            .with_validator(DuplicatePrimaryKeys)
            .build()
            .await?;
        producer
            .run_cycle(|w| movies::for_each_in_state(n, 0, |m| w.add(m)))
            .await?;
        // The changes, as an application would know them (not timed).
        let (forward, back) = movies::changes_between_states(n);
        let t = Instant::now();
        let incremental = producer
            .run_incremental_cycle(|c| {
                for m in &forward.upserts {
                    c.upsert(m)?;
                }
                for id in &forward.deletes {
                    c.delete::<movies::Movie, _>(id)?;
                }
                Ok(())
            })
            .await?;
        figure("incremental_cycle_ms", ms(t), "ms");
        eprintln!(
            "[bench]   {} upserts, {} deletes",
            forward.upserts.len(),
            forward.deletes.len()
        );
        print_stages(&incremental);

        progress("incremental producer: 4 more cycles, back to state 1 and forth again");
        let mut times = Vec::new();
        for round in 0..4 {
            let changes = if round % 2 == 0 { &back } else { &forward };
            let t = Instant::now();
            producer
                .run_incremental_cycle(|c| {
                    changes.upserts.iter().try_for_each(|m| c.upsert(m))?;
                    (changes.deletes.iter())
                        .try_for_each(|id| c.delete::<movies::Movie, _>(id).map(|_| ()))
                })
                .await?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            eprintln!("[bench]   cycle {}: {:.1} ms", round + 2, times[round]);
        }
        figure(
            "incremental_cycle_next_ms",
            format!("{:.1}", median(&mut times)),
            "ms",
        );
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    // First, while nothing else runs: how fast the machine is in this hour.
    figure(
        "machine_core_ns",
        format!("{:.2}", machine_speed::core_ns()),
        "ns",
    );
    figure(
        "machine_memory_ns",
        format!("{:.1}", machine_speed::memory_ns()),
        "ns",
    );
    if !args.extras_only {
        let ids = movies::lookup_ids(args.records, args.lookups);
        let mut least = machine_speed::LeastIndex::of(args.records);
        let ns = least.lookup_ns(&ids);
        figure("machine_table_lookup_ns", format!("{ns:.1}"), "ns");
        let ms = least.update_ms();
        figure("machine_table_update_ms", format!("{ms:.2}"), "ms");
    }
    let result = match args.extras_only {
        true => Ok(()),
        // The sides first, while this process holds nothing: memory it freed but the allocator
        // kept would otherwise sit beside theirs.
        false => side_figures(args.records).and_then(|_| run(&args)),
    };
    let result = result.and_then(|_| match args.kafka {
        true => kafka::figures(args.records),
        false => Ok(()),
    });
    let result = result.and_then(|_| match args.failover {
        true => failover::figures(args.records),
        false => Ok(()),
    });
    if let Err(e) = result {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}
