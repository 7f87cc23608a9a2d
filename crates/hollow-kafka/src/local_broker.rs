//! A throwaway Kafka broker for demos, tests and benchmarks, run by the project's script
//! (`scripts/kafka-broker`): single node, loopback, stopped by PID when dropped.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A broker started by `scripts/kafka-broker` in a folder of its own, or the one
/// `HOLLOW_KAFKA_BOOTSTRAP` names (then nothing is started or stopped).
pub struct LocalBroker {
    bootstrap: String,
    /// The folder of a broker this process started (and stops and deletes).
    started: Option<tempfile::TempDir>,
}

/// The broker script of this checkout.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kafka-broker")
}

fn run_script(args: &[&str]) -> Result<String> {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::Config(format!("cannot run {}: {e}", script().display())))?;
    if !out.status.success() {
        return Err(Error::Config(format!(
            "{} {} failed ({})",
            script().display(),
            args.join(" "),
            out.status
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl LocalBroker {
    /// The broker `HOLLOW_KAFKA_BOOTSTRAP` names if set, else a new one (installed from Maven
    /// Central on first use, which takes a minute).
    pub fn start_or_reuse() -> Result<Self> {
        if let Ok(bootstrap) = std::env::var("HOLLOW_KAFKA_BOOTSTRAP") {
            if !bootstrap.is_empty() {
                return Ok(Self {
                    bootstrap,
                    started: None,
                });
            }
        }
        Self::start()
    }

    /// A new broker in a temporary folder, always (also when one is configured).
    pub fn start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("hollow-kafka-")
            .tempdir()
            .map_err(|e| Error::Config(format!("cannot create a folder for the broker: {e}")))?;
        let path = dir.path().to_string_lossy().to_string();
        let bootstrap = run_script(&["start", &path])?;
        let bootstrap = bootstrap.lines().last().unwrap_or_default().to_string();
        Ok(Self {
            bootstrap,
            started: Some(dir),
        })
    }

    /// `host:port` of the broker.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Stops the broker this process started (by PID), keeping its data, so that
    /// [`LocalBroker::restart`] brings it back on the same port. Does nothing to a configured one.
    pub fn stop(&self) -> Result<()> {
        match &self.started {
            Some(dir) => run_script(&["stop", &dir.path().to_string_lossy()]).map(|_| ()),
            None => Err(Error::Config(
                "the broker is not this process's to stop".into(),
            )),
        }
    }

    /// Starts again a broker stopped with [`LocalBroker::stop`].
    pub fn restart(&self) -> Result<()> {
        match &self.started {
            Some(dir) => run_script(&["start", &dir.path().to_string_lossy()]).map(|_| ()),
            None => Err(Error::Config(
                "the broker is not this process's to start".into(),
            )),
        }
    }

    /// Creates `topic` with `partitions` partitions (replication factor 1) and the given
    /// topic configs (`cleanup.policy=compact`), if it does not exist.
    pub fn create_topic(&self, topic: &str, partitions: i32, configs: &[&str]) -> Result<()> {
        let partitions = partitions.to_string();
        let mut args = vec!["topic", self.bootstrap.as_str(), topic, partitions.as_str()];
        args.extend_from_slice(configs);
        run_script(&args).map(|_| ())
    }

    /// Deletes `topic`, if it exists: a topic the caller created (the benchmark's, a demo's),
    /// so that a broker of the user's does not keep its messages.
    pub fn delete_topic(&self, topic: &str) -> Result<()> {
        run_script(&["delete-topic", self.bootstrap.as_str(), topic]).map(|_| ())
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        if let Some(dir) = &self.started {
            if let Err(e) = run_script(&["stop", &dir.path().to_string_lossy()]) {
                eprintln!("stopping the Kafka broker of {}: {e}", dir.path().display());
            }
        }
    }
}
