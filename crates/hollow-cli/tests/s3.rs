//! The `hollow` tool on an `s3://` URL: a real S3 wire-protocol server (s3s-fs, requests signed
//! and checked) in the test process, settings from the usual `AWS_*` variables.

mod support;

use hollow_conformance::s3_server::{s3_client, S3Server, ACCESS_KEY, BUCKET, SECRET_KEY};
use support::{producer_with_versions, run_with_env};

/// Runs `hollow ARGS` off the runtime that serves S3, with the server's settings and
/// `secret` as the secret key.
async fn hollow_on(server: &S3Server, secret: &str, args: &[&str]) -> (i32, String, String) {
    let env: Vec<(String, String)> = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", server.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_with_env(&args, &env)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_reads_a_dataset_in_s3() {
    let server = S3Server::start();
    let _producer = producer_with_versions(s3_client(&server.endpoint), "catalog/movies").await;
    let url = format!("s3://{BUCKET}/catalog/movies");
    let (code, out, err) = hollow_on(&server, SECRET_KEY, &["versions", &url]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("announced: version 3"), "{out}");
    let (code, out, err) = hollow_on(&server, SECRET_KEY, &["get", &url, "Movie", "2"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"year\": 1986"), "{out}");
    let (code, out, _) = hollow_on(
        &server,
        SECRET_KEY,
        &["diff", &url, "1", "2", "--type", "Movie"],
    )
    .await;
    assert_eq!(code, 0);
    assert!(out.contains("year: 1985 → 1986"), "{out}");
    let (code, out, _) = hollow_on(&server, SECRET_KEY, &["verify", &url]).await;
    assert_eq!(code, 0, "{out}");
    // A prefix with no dataset, and credentials the server refuses: errors that say so.
    let (code, _, err) = hollow_on(
        &server,
        SECRET_KEY,
        &["versions", &format!("s3://{BUCKET}/catalog")],
    )
    .await;
    assert_eq!(code, 2);
    assert!(
        err.contains("no dataset at") && err.contains("catalog/movies"),
        "{err}"
    );
    let (code, _, err) = hollow_on(&server, "wrong-secret", &["versions", &url]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot reach") && err.contains("AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_store_runs_the_conformance_suite_and_leaves_nothing() {
    let server = S3Server::start();
    let (code, out, err) = hollow_on(
        &server,
        SECRET_KEY,
        &["check-store", &format!("s3://{BUCKET}/team")],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ok") && out.contains("compare-and-swap"),
        "{out}"
    );
    let left: Vec<_> =
        futures::TryStreamExt::try_collect::<Vec<_>>(s3_client(&server.endpoint).list(None))
            .await
            .unwrap();
    assert!(left.is_empty(), "{left:?}");
}
