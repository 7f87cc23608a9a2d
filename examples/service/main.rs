//! A read-heavy lookup service: an HTTP server answering movie lookups from a hollow consumer
//! that follows the producer.
//!
//! ```sh
//! cargo run --release --example demo -- --cycles 100 &          # a producer into /tmp/hollow-demo
//! cargo run --release --example service -- --folder /tmp/hollow-demo
//! curl localhost:8080/movies/50001; curl localhost:8080/health; curl localhost:8080/metrics
//! ```
//! With `--s3` the store is S3 / MinIO from the environment (see the README). With
//! `--kafka BOOTSTRAP [--topic movies]` it also takes writes (`PUT`/`DELETE /movies/{id}`) to
//! the topic a Kafka source materializes into the dataset, and reads after them
//! (`GET /movies/{id}?after=TOKEN`): see `examples/kafka_demo.rs`.

mod routes;

use std::sync::Arc;

use hollow::consumer::ConsumerBuilder;
use hollow::store::BlobStore;

struct Options {
    store: BlobStore,
    listen: String,
    kafka: Option<(String, String)>,
}

fn options() -> Result<Options, Box<dyn std::error::Error>> {
    let (mut folder, mut s3, mut prefix, mut listen) = (
        None,
        false,
        "movies".to_string(),
        "127.0.0.1:8080".to_string(),
    );
    let (mut bootstrap, mut topic) = (None, "movies".to_string());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--folder" => {
                folder = Some(std::path::PathBuf::from(
                    args.next().ok_or("--folder needs a path")?,
                ))
            }
            "--s3" => s3 = true,
            "--prefix" => prefix = args.next().ok_or("--prefix needs a value")?,
            "--listen" => listen = args.next().ok_or("--listen needs host:port")?,
            "--kafka" => bootstrap = Some(args.next().ok_or("--kafka needs host:port")?),
            "--topic" => topic = args.next().ok_or("--topic needs a name")?,
            "-h" | "--help" => {
                println!("usage: service (--folder DIR | --s3) [--prefix movies] [--listen 127.0.0.1:8080] [--kafka BOOTSTRAP [--topic movies]]");
                println!("--s3 reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, HOLLOW_S3_BUCKET");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    let store = match (&folder, s3) {
        (Some(f), false) => BlobStore::local(f, &prefix)?,
        (None, true) => s3_store(&prefix)?,
        _ => return Err("give either --folder DIR or --s3 (try --help)".into()),
    };
    Ok(Options {
        store,
        listen,
        kafka: bootstrap.map(|b| (b, topic)),
    })
}

/// S3 / MinIO from the environment.
#[cfg(feature = "aws")]
fn s3_store(prefix: &str) -> Result<BlobStore, Box<dyn std::error::Error>> {
    let bucket = std::env::var("HOLLOW_S3_BUCKET")
        .map_err(|_| "--s3 needs HOLLOW_S3_BUCKET (the bucket name)")?;
    let s3 = hollow::object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_allow_http(true)
        .build()?;
    Ok(BlobStore::new(Arc::new(s3), prefix))
}

#[cfg(not(feature = "aws"))]
fn s3_store(_prefix: &str) -> Result<BlobStore, Box<dyn std::error::Error>> {
    Err("this service was built without S3 support: run it with `--features aws`".into())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("service: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let o = options()?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    let consumer = Arc::new(ConsumerBuilder::from_blob_store(o.store).build().await?);
    let writes = match &o.kafka {
        Some((bootstrap, topic)) => {
            Some(hollow_kafka::TopicWriter::connect(bootstrap, topic).await?)
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&o.listen).await?;
    println!(
        "serving version {:?} of {} on http://{} (GET /movies/{{id}}, /health, /metrics)",
        consumer.version(),
        consumer.store().location(""),
        listener.local_addr()?
    );
    if let Some(error) = consumer.health().last_error {
        eprintln!("service: not serving yet: {error}");
    }
    if let Some(w) = &writes {
        println!(
            "writes go to topic {:?} (PUT/DELETE /movies/{{id}}; GET ...?after=TOKEN)",
            w.topic()
        );
    }
    let app = routes::router(routes::Service {
        consumer,
        metrics,
        writes,
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
