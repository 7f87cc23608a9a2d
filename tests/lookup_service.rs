//! The lookup service answers real HTTP requests, and its answers follow the announced
//! versions while the producer cycles.

#[path = "../examples/service/routes.rs"]
mod routes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hollow::consumer::ConsumerBuilder;
use hollow::movies::{self, Movie};
use hollow::producer::ProducerBuilder;

const N: u64 = 2_000;

/// An HTTP/1.1 GET over a fresh connection: (status, `x-hollow-version`, body).
async fn get(base: &str, path: &str) -> (u16, Option<u64>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(base).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {base}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let version = lines
        .filter_map(|l| l.split_once(": "))
        .find(|(name, _)| name.eq_ignore_ascii_case("x-hollow-version"))
        .and_then(|(_, v)| v.parse().ok());
    (status, version, body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_answers_lookups_that_follow_the_announced_versions() {
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let mut producer = ProducerBuilder::new(store.clone(), "movies", movies::schema().unwrap())
        .build()
        .await
        .unwrap();
    let mut data = movies::state1(N);
    producer
        .run_cycle(|w| data.iter().try_for_each(|m| w.add(m)))
        .await
        .unwrap();

    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let consumer = Arc::new(
        ConsumerBuilder::new(store.clone(), "movies")
            .with_poll_interval(Duration::from_millis(20))
            .build()
            .await
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = listener.local_addr().unwrap().to_string();
    let app = routes::router(routes::Service {
        consumer,
        metrics,
        writes: None,
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (status, version, body) = get(&base, "/movies/5").await;
    assert_eq!((status, version), (200, Some(1)));
    // Without a Kafka topic the service is read-only, and says so.
    let (status, _, body_after) = get(&base, "/movies/5?after=0:1").await;
    assert_eq!(status, 400, "{body_after}");
    assert!(body_after.contains("--kafka"));
    assert_eq!(serde_json::from_str::<Movie>(&body).unwrap(), data[4]);
    assert_eq!(get(&base, "/movies/abc").await.0, 400);
    assert_eq!(get(&base, "/movies/99999999").await.0, 404);
    assert_eq!(get(&base, "/nothing").await.0, 404);

    for k in 1..=5u64 {
        movies::apply_cycle(&mut data, N, k);
        producer
            .run_cycle(|w| data.iter().try_for_each(|m| w.add(m)))
            .await
            .unwrap();
        let v = producer.version().unwrap();
        // Wait until the service reports the new version...
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, _, body) = get(&base, "/health").await;
            let health: serde_json::Value = serde_json::from_str(&body).unwrap();
            if health["current_version"] == v {
                assert_eq!(status, 200);
                assert_eq!(health["announced_version"], v);
                assert_eq!(health["versions_behind"], 0);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the service did not reach version {v}: {health}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // ...then it answers from it: the movie changed in this cycle, and one removed in it.
        let changed = (N / 2) as i64 + k as i64;
        let expected = data.iter().find(|m| m.id == changed).unwrap();
        let (status, version, body) = get(&base, &format!("/movies/{changed}")).await;
        assert_eq!((status, version), (200, Some(v)));
        assert_eq!(&serde_json::from_str::<Movie>(&body).unwrap(), expected);
        let removed = (k * N / 1000) as i64;
        assert_eq!(get(&base, &format!("/movies/{removed}")).await.0, 404);
    }

    let (status, _, text) = get(&base, "/metrics").await;
    assert_eq!(status, 200);
    assert!(text.contains("hollow_consumer_version"), "{text}");
    assert!(text.contains("hollow_service_requests_total"), "{text}");

    // The announcement gone (a wrong prefix, a store emptied by mistake): lookups still answer
    // from the last version, and /health says what is wrong, where, with a non-200 status.
    use object_store::ObjectStoreExt;
    let announcement = object_store::path::Path::from("movies/announced.version");
    store.delete(&announcement).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, body) = get(&base, "/health").await;
        if status == 503 {
            let health: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(health["serving"], true);
            let error = health["last_error"].as_str().unwrap();
            assert!(
                error.contains("no announcement at") && error.contains("movies/announced.version"),
                "{error}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "health stayed {status}: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let present = data[data.len() / 2].id;
    let (status, _, body) = get(&base, &format!("/movies/{present}")).await;
    assert_eq!(status, 200, "still serving: {body}");
}
