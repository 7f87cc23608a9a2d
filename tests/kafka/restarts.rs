//! The producer killed with SIGKILL at random points and restarted, 20 times, while messages keep
//! coming: every version it announced holds exactly the messages before the offsets it records
//! (none lost, none applied twice), and the last one all of them.

use std::process::{Child, Command};
use std::time::Duration;

use hollow::movies::SplitMix64;
use hollow_kafka::{ReadYourWrites, TopicWriter};

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

    // Messages keep coming, 200 every 25 ms, over 2,000 keys.
    let writer = TopicWriter::connect(&bootstrap, &topic).await.unwrap();
    let writing = write_steadily(writer, workload(40_000, 2_000, 11));

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
    let caught_up = consumer
        .wait_for_offsets(&topic, &last_offsets(&written), Duration::from_secs(120))
        .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let caught_up = caught_up.expect("the last run publishes every message");
    let all: Vec<_> = written.iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(view_of(&caught_up), fold(&all));

    let states = every_version(&consumer).await;
    assert_states_exact(&states, &topic, &written);
    assert!(
        states.len() >= 20,
        "only {} versions were announced",
        states.len()
    );
}
