//! Runs the conformance suite against an S3-compatible bucket before a dataset is trusted to it.
//!
//! ```sh
//! export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_REGION=us-east-1
//! export AWS_ENDPOINT_URL=http://127.0.0.1:9000   # MinIO or SeaweedFS; leave out for AWS S3
//! cargo run -p hollow-conformance --features aws --example check-store -- BUCKET [PREFIX]
//! ```
//! Exits with status 1 when a check fails.

use std::sync::Arc;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(bucket), prefix) = (args.next(), args.next().unwrap_or_default()) else {
        eprintln!("usage: check-store BUCKET [PREFIX]   (credentials and endpoint from AWS_*)");
        std::process::exit(2);
    };
    let store = match object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(&bucket)
        .with_allow_http(true)
        .build()
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("check-store: {e}");
            std::process::exit(2);
        }
    };
    let report = hollow_conformance::check_store(Arc::new(store), &prefix).await;
    println!("{report}");
    std::process::exit(if report.passed() { 0 } else { 1 });
}
