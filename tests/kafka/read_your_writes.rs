//! Read-your-writes through the lookup service over real HTTP: `PUT /movies/{id}` writes the
//! movie to the topic and returns a token; `GET /movies/{id}?after=TOKEN` answers from a state
//! that contains that write, while a Kafka source materializes the topic.

use std::sync::Arc;
use std::time::Duration;

use hollow::movies::SplitMix64;
use hollow_kafka::{ReadYourWrites, TopicWriter};

use crate::common::*;

#[path = "../../examples/service/routes.rs"]
mod routes;

/// One HTTP/1.1 request over a fresh connection: (status, headers, body).
async fn request(base: &str, method: &str, path: &str, body: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(base).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {base}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: run .ci/kafka-job"]
async fn a_write_is_visible_to_the_read_that_names_it() {
    let broker = broker();
    let (topic, _) = topics(&broker, "read-your-writes");
    let dir = tempfile::tempdir().unwrap();
    let writer = TopicWriter::connect(broker.bootstrap(), &topic)
        .await
        .unwrap();
    // Some data first, so that the service has a state to serve.
    writer
        .send_batch(as_messages(&workload(1_000, 300, 17)))
        .await
        .unwrap();
    let mut source = source(broker.bootstrap(), &topic, None, dir.path()).await;
    let running = tokio::spawn(async move { source.run_until(std::future::pending()).await });
    let consumer = consumer(dir.path()).await;
    consumer
        .wait_until(|_| true, Duration::from_secs(30))
        .await
        .expect("a first state");
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle();
    let app = routes::router(routes::Service {
        consumer: Arc::new(consumer),
        metrics,
        writes: Some(writer),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut r = SplitMix64::new(23);
    for round in 0..20 {
        let id = 1 + r.pick(400) as i64;
        let mut m = movie(id, 10_000 + round, &mut r);
        m.title = format!("Written in round {round}");
        let body = serde_json::to_string(&m).unwrap();
        let (status, head, answer) = request(&base, "PUT", &format!("/movies/{id}"), &body).await;
        assert_eq!(status, 202, "{answer}");
        let token: serde_json::Value = serde_json::from_str(&answer).unwrap();
        let token = token["token"].as_str().unwrap().to_string();
        assert!(head
            .to_lowercase()
            .contains(&format!("x-hollow-write-token: {token}")));
        // Read right after the write, naming it: the answer includes it.
        let (status, _, answer) =
            request(&base, "GET", &format!("/movies/{id}?after={token}"), "").await;
        assert_eq!(status, 200, "{answer}");
        let read: hollow::movies::Movie = serde_json::from_str(&answer).unwrap();
        assert_eq!(read, m, "round {round}");
        if round % 5 == 4 {
            let (status, _, answer) = request(&base, "DELETE", &format!("/movies/{id}"), "").await;
            assert_eq!(status, 202, "{answer}");
            let token: serde_json::Value = serde_json::from_str(&answer).unwrap();
            let token = token["token"].as_str().unwrap();
            let (status, _, _) =
                request(&base, "GET", &format!("/movies/{id}?after={token}"), "").await;
            assert_eq!(status, 404, "deleted in round {round}");
        }
    }
    // A body whose id is not the path's, and a token that is not one.
    let (status, _, _) = request(&base, "PUT", "/movies/1", r#"{"id": 2}"#).await;
    assert_eq!(status, 400);
    let (status, _, _) = request(&base, "GET", "/movies/1?after=soon", "").await;
    assert_eq!(status, 400);
    // A write that never comes: the read gives up after its bound, saying so.
    let (status, _, answer) = request(&base, "GET", "/movies/1?after=0:999999999", "").await;
    assert_eq!(status, 504, "{answer}");
    assert!(answer.contains("not visible"), "{answer}");
    running.abort();
}

/// Many sends at once share produce requests: each still gets its own place, every message
/// lands once with the value sent, and one key's sends, awaited in turn, land in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: run .ci/kafka-job"]
async fn concurrent_sends_share_requests_and_each_lands_once() {
    let broker = broker();
    let (topic, _) = topics(&broker, "concurrent-sends");
    let dir = tempfile::tempdir().unwrap();
    let writer = TopicWriter::connect(broker.bootstrap(), &topic)
        .await
        .unwrap();
    let mut r = SplitMix64::new(5);
    let work: Vec<(i64, Option<hollow::movies::Movie>)> = (1..=2_000)
        .map(|i| (i, Some(movie(i, 1, &mut r))))
        .collect();
    let sends = work.iter().map(|(id, m)| {
        let writer = writer.clone();
        let (id, m) = (*id, m.clone());
        tokio::spawn(async move { writer.send_json(&id.to_string(), m.as_ref()).await })
    });
    let mut places = std::collections::BTreeSet::new();
    for s in sends.collect::<Vec<_>>() {
        let token = s.await.unwrap().unwrap();
        assert!(
            places.insert((token.partition, token.offset)),
            "{token:?} twice"
        );
    }
    let mut last = None;
    let mut seventh = None;
    for seq in 2..40 {
        let m = movie(7, seq, &mut r);
        let token = writer.send_json("7", Some(&m)).await.unwrap();
        assert!(last.is_none_or(|(_, l)| l < token.offset), "out of order");
        last = Some((token.partition, token.offset));
        seventh = Some(m);
    }
    places.extend(last);
    let mut source = source(broker.bootstrap(), &topic, None, dir.path()).await;
    let running = tokio::spawn(async move { source.run_until(std::future::pending()).await });
    let consumer = consumer(dir.path()).await;
    let mut until = std::collections::BTreeMap::new();
    for &(p, o) in &places {
        until.insert(p, o.max(*until.get(&p).unwrap_or(&0)));
    }
    let until: Vec<(i32, i64)> = until.into_iter().collect();
    let state = consumer
        .wait_for_offsets(&topic, &until, Duration::from_secs(60))
        .await
        .expect("every write materialized");
    let mut expected = fold(&work);
    expected.insert(7, seventh.unwrap());
    assert_eq!(view_of(&state), expected);
    running.abort();
}
