//! A real S3 wire-protocol server for tests (the `s3-server` feature): s3s-fs on a loopback
//! port inside the test process, requests signed with SigV4 and checked, storing into a
//! temporary folder. hollow's own tests run every store-backed scenario against it, and so can
//! the tests of tools that take an `s3://` URL.

use std::sync::Arc;

use object_store::ObjectStore;

/// The bucket the server holds.
pub const BUCKET: &str = "hollow";
/// The access key the server accepts.
pub const ACCESS_KEY: &str = "hollow-test-access";
/// The secret key of [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "hollow-test-secret-key";

/// A real S3 wire-protocol server (s3s-fs, requests signed with SigV4 and checked) on a
/// loopback port, inside the test process, storing into a temporary folder.
pub struct S3Server {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// s3s-fs does not make racing requests atomic (see shared/notes/s3-test-servers.md): a read
/// racing an overwrite can fail. The harness serializes requests, as a real S3 server's atomic
/// replacement of objects makes them appear.
#[derive(Clone)]
struct Serialized {
    inner: s3s::service::S3Service,
    lock: Arc<tokio::sync::Mutex<()>>,
}

type S3Response = <s3s::service::S3Service as hyper::service::Service<
    http::Request<hyper::body::Incoming>,
>>::Response;
type S3Error = <s3s::service::S3Service as hyper::service::Service<
    http::Request<hyper::body::Incoming>,
>>::Error;

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Serialized {
    type Response = S3Response;
    type Error = S3Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S3Response, S3Error>> + Send>>;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let (inner, lock) = (self.inner.clone(), self.lock.clone());
        Box::pin(async move {
            let _guard = lock.lock_owned().await;
            hyper::service::Service::call(&inner, req).await
        })
    }
}

impl S3Server {
    /// Starts a server on 127.0.0.1 (a free port) with one bucket; call inside a tokio runtime.
    pub fn start() -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(BUCKET)).unwrap();
        let mut builder =
            s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(dir.path()).unwrap());
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = Serialized {
            inner: builder.build(),
            lock: Arc::new(tokio::sync::Mutex::new(())),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let task = tokio::spawn(async move {
            let http =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            while let Ok((socket, _)) = listener.accept().await {
                let conn = http
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(conn);
            }
        });
        S3Server {
            endpoint,
            _dir: dir,
            task,
        }
    }

    /// An object_store S3 client of this server.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        s3_client(&self.endpoint)
    }
}

/// An object_store S3 client of the test server at `endpoint` (explicit credentials and region:
/// nothing is looked up from the environment or a metadata service); also from another process.
pub fn s3_client(endpoint: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_bucket_name(BUCKET)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_region("us-east-1")
            .with_allow_http(true)
            // Fail fast instead of retrying for minutes: the tests look at failures.
            .with_retry(object_store::RetryConfig {
                max_retries: 2,
                retry_timeout: std::time::Duration::from_secs(5),
                ..object_store::RetryConfig::default()
            })
            .build()
            .unwrap(),
    )
}
