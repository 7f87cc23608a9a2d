//! What a cycle reports, and who hears about it.

use std::time::Duration;

use crate::error::Error;

/// What one published cycle did.
#[derive(Clone, Debug)]
pub struct CycleReport {
    /// The announced version.
    pub version: u64,
    /// The version it follows, if any.
    pub previous: Option<u64>,
    /// Bytes of the snapshot, when one was published in this cycle (not one written in the
    /// background after it).
    pub snapshot_bytes: Option<usize>,
    /// Bytes of the delta and of the reverse delta, when there is a previous version.
    pub delta_bytes: Option<(usize, usize)>,
    /// Bytes of the snapshot as stored (compressed, with `ProducerBuilder::with_compression`).
    pub stored_snapshot_bytes: Option<usize>,
    /// Bytes of the delta and of the reverse delta as stored.
    pub stored_delta_bytes: Option<(usize, usize)>,
    /// Time of each stage, in order.
    pub stages: Vec<(&'static str, Duration)>,
    /// Bytes the producer's write state holds after the cycle: every record encoded, with
    /// its deduplication tables (vectors counted by capacity). Also the gauge
    /// `hollow_producer_write_state_bytes`.
    pub write_state_bytes: usize,
    /// Bytes of the announced state the producer holds after the cycle, with its primary key
    /// indexes. Also the gauge `hollow_producer_state_bytes`.
    pub state_bytes: usize,
}

impl CycleReport {
    /// Time of the whole cycle.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.1).sum()
    }
}

/// The result of a cycle that did not fail.
#[derive(Clone, Debug)]
pub enum CycleOutcome {
    /// A new version was published and announced.
    Published(CycleReport),
    /// The dataset is the same as the announced state: nothing was published.
    NoChange,
}

/// Hears about cycles (for logs, alerts, dashboards). Every method has an empty default.
pub trait ProducerListener: Send + Sync {
    /// A version was announced.
    fn on_published(&self, _report: &CycleReport) {}
    /// A cycle failed: nothing was announced.
    fn on_failed(&self, _version: u64, _error: &Error) {}
    /// This producer became the leader in `epoch` (leader election).
    fn on_leadership_gained(&self, _epoch: u64) {}
    /// This producer no longer leads in `epoch`, for `reason` (leader election).
    fn on_leadership_lost(&self, _epoch: u64, _reason: &str) {}
}
