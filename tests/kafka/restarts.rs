//! The producer killed with SIGKILL at random points and restarted, 20 times, while messages keep
//! coming: every version it announced holds exactly the messages before the offsets it records
//! (none lost, none applied twice), and the last one all of them.

use std::process::{Child, Command};
use std::time::Duration;

use hollow::movies::SplitMix64;
use hollow_kafka::{ReadYourWrites, TopicWriter, WriteToken};

use crate::common::*;

/// Set in the environment of the child process: `bootstrap|topic|folder`.
const CHILD: &str = "HOLLOW_KAFKA_TEST_CHILD";

/// Not a test: the body of the child process `restarts_lose_and_repeat_nothing` starts and
/// kills (it returns at once unless started so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of restarts_lose_and_repeat_nothing"]
async fn child_source_process() {
    let Ok(args) = std::env::var(CHILD) else {
        return;
    };
    let [bootstrap, topic, folder]: [&str; 3] =
        args.split('|').collect::<Vec<_>>().try_into().unwrap();
    // Small fetches: many cycles, each a few hundred messages, so that a run that resumed from
    // the wrong offsets would announce a version that shows it.
    let settings = source_builder(bootstrap, topic, None).with_fetch_max_bytes(16 << 10);
    let mut source = build_source(settings, folder.as_ref()).await;
    source.run_until(std::future::pending()).await.unwrap();
}

fn spawn_child(bootstrap: &str, topic: &str, folder: &std::path::Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "restarts::child_source_process",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD, format!("{bootstrap}|{topic}|{}", folder.display()))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: run .ci/kafka-job"]
async fn restarts_lose_and_repeat_nothing() {
    let broker = broker();
    let (topic, _) = topics(&broker, "restarts");
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = broker.bootstrap().to_string();

    // Messages keep coming, 200 every 25 ms, over 2,000 keys; each with where it landed.
    let writer = TopicWriter::connect(&bootstrap, &topic).await.unwrap();
    let work = workload(40_000, 2_000, 11);
    let writing = tokio::spawn(async move {
        let mut written: Vec<(WriteToken, (i64, Option<hollow::movies::Movie>))> = Vec::new();
        for chunk in work.chunks(200) {
            let tokens = writer.send_batch(as_messages(chunk)).await.unwrap();
            written.extend(tokens.into_iter().zip(chunk.iter().cloned()));
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        written
    });

    let mut r = SplitMix64::new(3);
    for _ in 0..20 {
        let mut child = spawn_child(&bootstrap, &topic, dir.path());
        tokio::time::sleep(Duration::from_millis(200 + r.pick(1300))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let written = writing.await.unwrap();

    // A last run catches up with every message.
    let mut child = spawn_child(&bootstrap, &topic, dir.path());
    let consumer = consumer(dir.path()).await;
    let mut last = std::collections::BTreeMap::new();
    for (t, _) in &written {
        last.insert(t.partition, t.offset);
    }
    let last: Vec<(i32, i64)> = last.into_iter().collect();
    let caught_up = consumer
        .wait_for_offsets(&topic, &last, Duration::from_secs(120))
        .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let caught_up = caught_up.expect("the last run publishes every message");
    let all: Vec<_> = written.iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(view_of(&caught_up), fold(&all));

    // Every announced version holds exactly the messages before its offsets.
    let latest = caught_up.version();
    let mut checked = 0;
    let mut previous = hollow_kafka::Offsets::default();
    for v in 1..=latest {
        // A version spent by a cycle that was killed before announcing has no blobs.
        if consumer.pin(v).await.is_err() {
            continue;
        }
        let state = consumer.current().unwrap();
        assert_eq!(state.version(), v);
        let offsets = offsets(&state, &topic);
        for (p, next) in previous.iter() {
            assert!(
                offsets.next(p).unwrap_or(0) >= next,
                "v{v}: offsets went back"
            );
        }
        let contained = written
            .iter()
            .filter(|(t, _)| offsets.contains(t.partition, t.offset))
            .map(|(_, m)| m);
        assert_eq!(view_of(&state), fold(contained), "version {v} ({offsets})");
        previous = offsets;
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} versions were announced");
    eprintln!(
        "{checked} announced versions checked, {} messages",
        written.len()
    );
}
