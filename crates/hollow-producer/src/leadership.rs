//! Leader election on the blob store itself: several producers of one dataset, one leader.
//!
//! # How it works
//! The lease is one object next to the announcement (`leader.lease`, see
//! [`hollow_store::Lease`]) that names the leader, its epoch and the lease duration. It only
//! ever changes by compare-and-swap: a conditional update on stores that have one (S3, MinIO,
//! GCS, Azure, in-memory), a check and an atomic replace under an exclusive file lock on a
//! local folder. A store with neither is refused when the producer is built.
//!
//! - **Taking the lease.** A standby reads the lease every quarter of the lease duration (a
//!   conditional read: cheap while nothing changes). It takes the lease when there is none,
//!   when the holder released it (a clean shutdown), or when the lease object has not changed
//!   for a whole lease duration *as measured by the standby's own clock from the moment it
//!   first saw that content*. It takes it with an epoch one above any it has seen (in the lease
//!   or in the announcement), by compare-and-swap, so of several standbys only one wins.
//! - **Fencing.** Before it acts as leader, the new leader rewrites the announcement (same state,
//!   its epoch), again by compare-and-swap. Every announcement is a compare-and-swap against
//!   the announcement its producer last saw, so a producer that lost the lease (paused,
//!   partitioned, slow) and tries to announce afterwards finds the fence instead and fails with
//!   [`Error::NotLeader`](crate::Error::NotLeader); it never overwrites anything, and blobs are
//!   create-only anyway. The new leader then restores the announced state and continues its
//!   delta chain.
//! - **Renewal.** The leader renews every quarter of the lease duration (a failed renewal is
//!   tried again every tenth). It counts itself leader until three quarters of the duration
//!   after it *sent* its last successful renewal, and checks that before every announcement;
//!   past that it becomes a standby and says why.
//!
//! # Clock assumptions
//! No clocks are compared between machines: each producer measures durations with its own
//! monotonic clock. What is assumed is that clocks *run* at nearly the same rate (within 25%
//! over one lease duration; real clocks differ by parts per million), so that a leader stops
//! before a standby may start. If that fails (a process paused for longer than the lease, a
//! clock gone wrong), fencing still keeps a stale leader from announcing: the assumption buys
//! liveness and quiet hand-overs, not safety.
//!
//! On a local folder, every compare-and-swap (of the lease or the announcement) holds the
//! folder's lock file for the few milliseconds of a read and a rename. A producer paused
//! inside that window holds the others' lease and announcement writes up until it goes on; the
//! operating system releases the lock when the process dies.
//!
//! # Costs
//! A cycle makes no store request for leadership: the leader checks its deadline locally and
//! the fence is the announcement's own compare-and-swap. Renewals cost one request per quarter of
//! the lease; a standby one conditional read per quarter. A takeover after a leader dies takes
//! between one and one and a quarter lease durations, plus restoring the state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hollow_store::layout::AnnouncementBody;
use hollow_store::{BlobStore, Lease, LeaseObject};
use tokio::sync::{oneshot, watch};

use crate::outcome::ProducerListener;

/// What a producer knows of the leadership of its dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leadership {
    /// This producer's id.
    pub id: String,
    /// True while this producer leads: it holds the lease, has fenced the announcement, and its
    /// lease has not run out by its own clock.
    pub is_leader: bool,
    /// The epoch of the leader as last seen (this producer's own while it leads); 0 before any
    /// producer took the lease.
    pub epoch: u64,
    /// The leader's id as last seen, if any.
    pub holder: Option<String>,
    /// The last thing that went wrong (a store unreachable, a lease that could not be renewed,
    /// leadership lost and why), if any; cleared when leadership is gained.
    pub last_error: Option<String>,
}

/// The elector's state: the public part, and the deadline of the lease it holds.
#[derive(Clone, Debug)]
pub(crate) struct Status {
    leadership: Leadership,
    leads_until: Option<Instant>,
}

/// The elector of one producer: a task that campaigns for, holds and renews the lease.
pub(crate) struct Elector {
    status: watch::Receiver<Status>,
    lease: Duration,
    step_down: Option<oneshot::Sender<oneshot::Sender<Result<(), hollow_store::Error>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Elector {
    fn drop(&mut self) {
        // A producer dropped without stepping down: the lease runs out by itself.
        self.task.abort();
    }
}

/// Share of the lease duration the leader counts on after sending a renewal.
const VALIDITY: f64 = 0.75;

impl Elector {
    /// Starts campaigning for the lease of `store`'s dataset as `id`.
    pub(crate) fn start(
        store: BlobStore,
        id: String,
        lease: Duration,
        listeners: Vec<Arc<dyn ProducerListener>>,
    ) -> Elector {
        let (tx, status) = watch::channel(Status {
            leadership: Leadership {
                id: id.clone(),
                is_leader: false,
                epoch: 0,
                holder: None,
                last_error: None,
            },
            leads_until: None,
        });
        let (step_down, stepped) = oneshot::channel();
        let campaign = Campaign {
            store,
            id,
            token: crate::restore::random_tag(),
            lease,
            status: tx,
            listeners,
            seen: None,
            seen_at: Instant::now(),
            held: None,
        };
        Elector {
            status,
            lease,
            step_down: Some(step_down),
            task: tokio::spawn(campaign.run(stepped)),
        }
    }

    /// What this producer knows of the leadership now.
    pub(crate) fn leadership(&self) -> Leadership {
        self.status.borrow().leadership.clone()
    }

    /// True if this producer leads in `epoch` and its lease has not run out.
    pub(crate) fn leads_in(&self, epoch: u64) -> bool {
        let s = self.status.borrow();
        s.leadership.is_leader
            && s.leadership.epoch == epoch
            && s.leads_until.is_some_and(|t| Instant::now() < t)
    }

    /// The epoch this producer leads in now, if it does.
    pub(crate) fn leading_epoch(&self) -> Option<u64> {
        let epoch = self.status.borrow().leadership.epoch;
        self.leads_in(epoch).then_some(epoch)
    }

    /// A receiver that hears of every change of the leadership.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// The lease duration.
    pub(crate) fn lease(&self) -> Duration {
        self.lease
    }

    /// Gives the lease up at once (if held) and stops campaigning.
    pub(crate) async fn step_down(&mut self) -> Result<(), hollow_store::Error> {
        let Some(step_down) = self.step_down.take() else {
            return Ok(());
        };
        let (reply, replied) = oneshot::channel();
        if step_down.send(reply).is_err() {
            return Ok(());
        }
        replied.await.unwrap_or(Ok(()))
    }
}

/// The lease this producer holds.
struct Held {
    object: LeaseObject,
    /// When the last successful renewal (or the take) was sent.
    sent: Instant,
    /// True once the announcement carries this epoch.
    fenced: bool,
}

/// The campaigning task's state.
struct Campaign {
    store: BlobStore,
    id: String,
    token: u64,
    lease: Duration,
    status: watch::Sender<Status>,
    listeners: Vec<Arc<dyn ProducerListener>>,
    /// The lease as last read (`None`: there was none), and when its content was first seen.
    seen: Option<LeaseObject>,
    seen_at: Instant,
    held: Option<Held>,
}

type StepDown = oneshot::Receiver<oneshot::Sender<Result<(), hollow_store::Error>>>;

impl Campaign {
    async fn run(mut self, mut step_down: StepDown) {
        loop {
            // No step waits on the store for longer than a lease: a hanging request must not
            // keep a leader from noticing its lease ran out, nor a standby from campaigning.
            let lease = self.lease;
            let step = async {
                match self.held.is_some() {
                    true => self.hold().await,
                    false => self.campaign().await,
                }
            };
            let pause = match tokio::time::timeout(lease, step).await {
                Ok(pause) => pause,
                Err(_) => {
                    self.set_error(format!("the store did not answer within {lease:?}"));
                    Duration::ZERO
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                reply = &mut step_down => {
                    let result = self.release().await;
                    if let Ok(reply) = reply {
                        let _ = reply.send(result);
                    }
                    return;
                }
            }
        }
    }

    /// How often a standby reads the lease.
    fn poll(&self) -> Duration {
        (self.lease / 4).max(Duration::from_millis(5))
    }

    fn is_mine(&self, lease: &Lease) -> bool {
        lease.token == self.token && lease.holder == self.id
    }

    /// One step of a standby: reads the lease, takes it if it is free or ran out. The pause
    /// before the next step.
    async fn campaign(&mut self) -> Duration {
        let known = self.seen.as_ref().map(|s| &s.object_version);
        match self.store.lease_if_changed(known).await {
            Err(e) => {
                self.set_error(format!("reading the lease: {e}"));
                return self.poll();
            }
            Ok(None) => {}
            Ok(Some(read)) => {
                let changed =
                    read.as_ref().map(|r| &r.lease) != self.seen.as_ref().map(|s| &s.lease);
                if changed {
                    self.seen_at = Instant::now();
                }
                self.seen = read;
            }
        }
        let free = match &self.seen {
            None => true,
            Some(s) => s.lease.released || self.seen_at.elapsed() >= s.lease.duration,
        };
        if let Some(s) = &self.seen {
            let (holder, epoch) = (s.lease.holder.clone(), s.lease.epoch);
            self.status.send_modify(|st| {
                st.leadership.holder = (!s.lease.released).then_some(holder);
                st.leadership.epoch = epoch;
            });
        }
        if free {
            if let Err(e) = self.take().await {
                self.set_error(e);
            }
        }
        if self.held.is_some() {
            Duration::ZERO
        } else {
            self.poll()
        }
    }

    /// Takes the free lease with a new epoch, then fences the announcement.
    async fn take(&mut self) -> Result<(), String> {
        let announced = self
            .store
            .announcement_object()
            .await
            .map_err(|e| format!("reading the announcement before taking the lease: {e}"))?;
        let floor = announced
            .map_or(0, |a| a.body.epoch)
            .max(self.seen.as_ref().map_or(0, |s| s.lease.epoch));
        let lease = Lease {
            epoch: floor + 1,
            holder: self.id.clone(),
            token: self.token,
            duration: self.lease,
            renewal: 0,
            released: false,
        };
        let sent = Instant::now();
        match self.store.swap_lease(lease, self.seen.as_ref()).await {
            Ok(object) => {
                tracing::info!(epoch = object.lease.epoch, id = %self.id, "took the leader lease");
                self.seen = Some(object.clone());
                self.held = Some(Held {
                    object,
                    sent,
                    fenced: false,
                });
                self.fence().await;
                Ok(())
            }
            // Another standby was faster: the next read shows who.
            Err(hollow_store::Error::LeaseConflict { .. }) => Ok(()),
            Err(e) => Err(format!("taking the lease: {e}")),
        }
    }

    /// Rewrites the announcement with this producer's epoch, so that no earlier leader can
    /// announce any more; then this producer leads.
    async fn fence(&mut self) {
        let Some(held) = &self.held else { return };
        let epoch = held.object.lease.epoch;
        for _ in 0..8 {
            let current = match self.store.announcement_object().await {
                Ok(c) => c,
                Err(e) => return self.set_error(format!("fencing the announcement: {e}")),
            };
            let found = current.as_ref().map_or(0, |c| c.body.epoch);
            if found > epoch {
                return self.lose(format!(
                    "the announcement already carries epoch {found}, above this lease's {epoch}"
                ));
            }
            let body = AnnouncementBody {
                state: current.as_ref().and_then(|c| c.body.state),
                epoch,
            };
            let swapped = match current.as_ref() {
                Some(c) if c.body == body => Ok(()),
                _ => self
                    .store
                    .swap_announcement(body, current.as_ref())
                    .await
                    .map(drop),
            };
            match swapped {
                Ok(()) => return self.lead(),
                // The previous leader announced meanwhile (before the fence: legitimate).
                Err(hollow_store::Error::AnnouncementConflict { .. }) => continue,
                Err(e) => return self.set_error(format!("fencing the announcement: {e}")),
            }
        }
        self.set_error("fencing the announcement: it kept changing under eight attempts".into());
    }

    /// The fence is up: this producer leads.
    fn lead(&mut self) {
        let Some(held) = &mut self.held else { return };
        held.fenced = true;
        let epoch = held.object.lease.epoch;
        let until = held.sent + self.lease.mul_f64(VALIDITY);
        let id = self.id.clone();
        self.status.send_modify(|st| {
            st.leadership.is_leader = true;
            st.leadership.epoch = epoch;
            st.leadership.holder = Some(id);
            st.leadership.last_error = None;
            st.leads_until = Some(until);
        });
        metrics::counter!("hollow_producer_leadership_changes_total", "change" => "gained")
            .increment(1);
        metrics::gauge!("hollow_producer_leader_epoch").set(epoch as f64);
        metrics::gauge!("hollow_producer_is_leader").set(1.0);
        tracing::info!(epoch, id = %self.id, "leading the producers of {}", self.store.location(""));
        for l in &self.listeners {
            l.on_leadership_gained(epoch);
        }
    }

    /// One step of the leader: renews the lease (fences first if that failed before). The
    /// pause before the next step.
    async fn hold(&mut self) -> Duration {
        let Some(held) = &self.held else {
            return Duration::ZERO;
        };
        let until = held.sent + self.lease.mul_f64(VALIDITY);
        let now = Instant::now();
        if now >= until {
            self.lose(format!(
                "the lease could not be renewed within {:?}",
                self.lease.mul_f64(VALIDITY)
            ));
            return Duration::ZERO;
        }
        if !held.fenced {
            self.fence().await;
            if self.held.as_ref().is_some_and(|h| !h.fenced) {
                return self.poll();
            }
        }
        let Some(held) = &self.held else {
            return Duration::ZERO;
        };
        let due = held.sent + self.lease / 4;
        if now < due {
            return due - now;
        }
        let renewed = Lease {
            renewal: held.object.lease.renewal + 1,
            ..held.object.lease.clone()
        };
        let sent = Instant::now();
        let attempt = self.store.swap_lease(renewed, Some(&held.object));
        let result = tokio::time::timeout(until - sent, attempt).await;
        metrics::histogram!("hollow_producer_lease_renew_seconds")
            .record(sent.elapsed().as_secs_f64());
        match result {
            Ok(Ok(object)) => {
                let until = sent + self.lease.mul_f64(VALIDITY);
                self.held = Some(Held {
                    object: object.clone(),
                    sent,
                    fenced: true,
                });
                self.seen = Some(object);
                self.status.send_modify(|st| st.leads_until = Some(until));
                self.lease / 4
            }
            Ok(Err(hollow_store::Error::LeaseConflict { found, .. })) => {
                // A renewal whose reply was lost looks like a conflict: the lease is then still
                // this producer's, one renewal further.
                if let Ok(Some(now)) = self.store.lease().await {
                    let ours = self.is_mine(&now.lease)
                        && now.lease.epoch == held.object.lease.epoch
                        && !now.lease.released;
                    if ours {
                        let until = sent + self.lease.mul_f64(VALIDITY);
                        self.held = Some(Held {
                            object: now,
                            sent,
                            fenced: true,
                        });
                        self.status.send_modify(|st| st.leads_until = Some(until));
                        return self.lease / 4;
                    }
                }
                let by = found.map_or("nobody".into(), |(h, e)| format!("{h} (epoch {e})"));
                self.lose(format!("the lease was taken over by {by}"));
                Duration::ZERO
            }
            Ok(Err(e)) => {
                self.set_error(format!("renewing the lease: {e}"));
                self.lease / 10
            }
            Err(_) => {
                self.set_error("renewing the lease: the store did not answer in time".into());
                Duration::ZERO
            }
        }
    }

    /// This producer no longer leads.
    fn lose(&mut self, why: String) {
        let Some(held) = self.held.take() else { return };
        let epoch = held.object.lease.epoch;
        let was_leader = held.fenced;
        tracing::warn!(epoch, id = %self.id, reason = %why, "no longer the leader");
        self.status.send_modify(|st| {
            st.leadership.is_leader = false;
            st.leadership.last_error = Some(format!("lost the leadership of epoch {epoch}: {why}"));
            st.leads_until = None;
        });
        // Whatever is in the store now is read afresh, and waited out in full.
        self.seen = None;
        self.seen_at = Instant::now();
        metrics::gauge!("hollow_producer_is_leader").set(0.0);
        if was_leader {
            metrics::counter!("hollow_producer_leadership_changes_total", "change" => "lost")
                .increment(1);
            for l in &self.listeners {
                l.on_leadership_lost(epoch, &why);
            }
        }
    }

    /// Hands the lease over: marks it released, so that a standby takes it at once.
    async fn release(&mut self) -> Result<(), hollow_store::Error> {
        let Some(held) = &self.held else {
            return Ok(());
        };
        let released = Lease {
            released: true,
            renewal: held.object.lease.renewal + 1,
            ..held.object.lease.clone()
        };
        let result = self.store.swap_lease(released, Some(&held.object)).await;
        self.lose("it stepped down".into());
        result.map(drop)
    }

    fn set_error(&self, error: String) {
        tracing::warn!(id = %self.id, error = %error, "leader election");
        self.status
            .send_modify(|st| st.leadership.last_error = Some(error));
    }
}
