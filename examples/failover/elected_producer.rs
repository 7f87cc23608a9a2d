//! A producer process of the movies dataset in a local folder that elects a leader with the
//! others of that folder: the demo's `--producers N` and the bench's `--failover` start several
//! and kill the leader. As leader it publishes the whole dataset first (if nothing is announced
//! yet), then a cycle that changes 100 movies every interval. It says what it does on stdout, one
//! line each: `LEADER <epoch>`, `PUBLISHED <version> <epoch>`, `FAILED <error>`.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hollow::movies::{self, SplitMix64};
use hollow::producer::{CycleOutcome, Error, ProducerBuilder};
use hollow::store::BlobStore;

/// The argument that makes the example such a process:
/// `--elected-producer FOLDER ID RECORDS LEASE_MS INTERVAL_MS`.
pub const ARG: &str = "--elected-producer";

/// Starts this executable as an elected producer process, its stdout piped.
pub fn spawn(
    folder: &Path,
    id: &str,
    records: u64,
    lease: Duration,
    interval: Duration,
) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .arg(ARG)
        .arg(folder)
        .args([
            id,
            &records.to_string(),
            &lease.as_millis().to_string(),
            &interval.as_millis().to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The process's body, from the arguments after [`ARG`]; runs until killed.
pub fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [folder, id, records, lease, interval] = args else {
        return Err(format!("{ARG} needs FOLDER ID RECORDS LEASE_MS INTERVAL_MS").into());
    };
    let records: u64 = records.parse()?;
    let lease = Duration::from_millis(lease.parse()?);
    let interval = Duration::from_millis(interval.parse()?);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let dataset = BlobStore::local(folder, "movies")?;
        let mut producer = ProducerBuilder::from_blob_store(dataset, movies::schema()?)
            .with_leader_election(id, lease)
            .build()
            .await?;
        let mut r = SplitMix64::new(std::process::id() as u64);
        loop {
            let epoch = producer.wait_for_leadership().await?;
            say(&format!("LEADER {epoch}"));
            loop {
                let outcome = match producer.version() {
                    None => {
                        let all = movies::state1(records);
                        producer
                            .run_cycle(|w| all.iter().try_for_each(|m| w.add(m)))
                            .await
                    }
                    Some(_) => {
                        producer
                            .run_incremental_cycle(|c| {
                                (0..100).try_for_each(|_| {
                                    let i = r.pick(records);
                                    c.upsert(&movies::draw(&mut r, i))
                                })
                            })
                            .await
                    }
                };
                match outcome {
                    Ok(CycleOutcome::Published(report)) => say(&format!(
                        "PUBLISHED {} {}",
                        report.version,
                        producer.epoch()
                    )),
                    Ok(CycleOutcome::NoChange) => {}
                    Err(Error::NotLeader { .. }) => break,
                    Err(e) => say(&format!("FAILED {e}")),
                }
                tokio::time::sleep(interval).await;
            }
        }
    })
}
