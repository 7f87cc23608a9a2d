//! The conformance suite against each store kind, one test per backend, so that one failing
//! backend does not hide the others.

mod support;

use std::sync::Arc;

use hollow_conformance::{check_store, Outcome};
use support::{Backend, S3Server};

async fn check(backend: Backend, compare_and_swap: bool) {
    let report = check_store(backend.store(), "team/datasets").await;
    eprintln!("{report}");
    assert!(report.passed(), "{report}");
    assert_eq!(
        report.supports_compare_and_swap(),
        compare_and_swap,
        "{report}"
    );
    // Nothing is left behind.
    let left: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(backend.store().list(None))
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn in_memory() {
    check(
        Backend::Memory(Arc::new(object_store::memory::InMemory::new())),
        true,
    )
    .await;
}

#[tokio::test]
async fn local_folder() {
    check(Backend::LocalFolder(tempfile::tempdir().unwrap()), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_wire_protocol() {
    check(Backend::S3(S3Server::start()), true).await;
}

/// A store that accepts conditional updates and ignores them, as some S3 look-alikes do: the
/// suite must say so.
#[tokio::test]
async fn a_store_that_ignores_conditional_writes_fails() {
    let store = support::IgnoresConditions::new(Arc::new(object_store::memory::InMemory::new()));
    let report = check_store(store, "x").await;
    assert!(!report.passed(), "{report}");
    let cas = report
        .results
        .iter()
        .find(|r| r.name.contains("compare-and-swap"))
        .unwrap();
    assert!(
        matches!(&cas.outcome, Outcome::Failed(why) if why.contains("ignores conditional writes")),
        "{report}"
    );
}
