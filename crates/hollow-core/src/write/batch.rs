//! Adding records in batches: the caller's thread serializes records onto a tape while a worker
//! thread interns the tape before it, so the two halves of adding a record run side by side.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use serde::Serialize;

use super::tape::Tape;
use super::{TypeWriter, WriteState};
use crate::error::Result;

/// The tape size at which it is interned: large enough for long runs of lookups per table,
/// small enough to stay in the cache while it is read back.
const BATCH_BYTES: usize = 1 << 21;

/// Tapes in circulation between the caller and the worker: one being filled, one being
/// interned, one waiting.
const TAPES: usize = 3;

/// Records being added in batches; see [`WriteState::batch`]. Everything added is interned by
/// the time this is dropped.
#[derive(Debug)]
pub struct AddBatch<'w> {
    write: &'w mut WriteState,
    /// The tape size at which the tape goes to the worker.
    tape_bytes: usize,
    /// Started when the first tape fills, so that small batches stay on the caller's thread.
    worker: Option<Worker>,
}

/// The thread interning full tapes. It owns the write state's tables until the batch ends.
#[derive(Debug)]
struct Worker {
    full: SyncSender<Tape>,
    empty: Receiver<Tape>,
    /// Tapes made so far.
    tapes: usize,
    thread: JoinHandle<Vec<TypeWriter>>,
}

impl Worker {
    /// Moves the tables of `write` to a new thread; `None` (tables left in place) if no thread
    /// can be started.
    fn start(write: &mut WriteState) -> Option<Self> {
        let (schema, layout) = (write.schema.clone(), write.layout.clone());
        let (full, full_rx) = sync_channel::<Tape>(1);
        let (empty_tx, empty) = sync_channel::<Tape>(TAPES);
        // The tables go to the thread once it runs: a thread that fails to start must not take
        // them down with its closure.
        let (send_types, types_rx) = std::sync::mpsc::channel::<Vec<TypeWriter>>();
        let thread = std::thread::Builder::new()
            .name("hollow-intern".into())
            .spawn(move || {
                let mut types = types_rx.recv().unwrap_or_default();
                for mut tape in full_rx {
                    tape.intern(&schema, &layout, &mut types, &mut []);
                    // The caller may be gone already (it stops taking tapes at the end).
                    let _ = empty_tx.send(tape);
                }
                types
            });
        match thread {
            Ok(thread) => {
                // The thread's receiver lives until it has taken them.
                let _ = send_types.send(std::mem::take(&mut write.types));
                Some(Self {
                    full,
                    empty,
                    tapes: 1,
                    thread,
                })
            }
            Err(_) => None,
        }
    }
}

impl<'w> AddBatch<'w> {
    pub(super) fn new(write: &'w mut WriteState) -> Self {
        Self {
            write,
            tape_bytes: BATCH_BYTES,
            worker: None,
        }
    }

    /// Hands each tape to the interning thread once it holds `bytes` bytes (default 2 MiB,
    /// tuned for throughput). Small values make every few records cross threads: for tests.
    pub fn with_tape_bytes(mut self, bytes: usize) -> Self {
        self.tape_bytes = bytes.max(1);
        self
    }

    /// Sets a tag of the state being written (see [`WriteState::set_tag`]).
    pub fn set_tag(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.write.set_tag(key, value);
    }

    /// Adds a record of an object type and everything it references (see
    /// [`WriteState::add`]). A record that fails to serialize adds nothing; the batch goes on.
    pub fn add<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<()> {
        self.write.put_on_tape(record)?;
        if self.write.tape.size() >= self.tape_bytes {
            self.hand_over();
        }
        Ok(())
    }

    /// Passes the full tape to the worker and takes an empty one (interning it here if no
    /// worker can be started).
    fn hand_over(&mut self) {
        if self.worker.is_none() {
            self.worker = Worker::start(self.write);
        }
        let write = &mut *self.write;
        let Some(worker) = &mut self.worker else {
            write
                .tape
                .intern(&write.schema, &write.layout, &mut write.types, &mut []);
            return;
        };
        let next = match worker.empty.try_recv() {
            Ok(tape) => tape,
            Err(_) if worker.tapes < TAPES => {
                worker.tapes += 1;
                Tape::default()
            }
            // A failed receive means the worker died; the drop reports its panic.
            Err(_) => worker.empty.recv().unwrap_or_default(),
        };
        let full = std::mem::replace(&mut write.tape, next);
        let _ = worker.full.send(full);
    }
}

impl Drop for AddBatch<'_> {
    fn drop(&mut self) {
        let write = &mut *self.write;
        let Some(worker) = self.worker.take() else {
            write
                .tape
                .intern(&write.schema, &write.layout, &mut write.types, &mut []);
            return;
        };
        let Worker {
            full,
            empty,
            thread,
            ..
        } = worker;
        let _ = full.send(std::mem::take(&mut write.tape));
        drop(full);
        match thread.join() {
            Ok(types) => write.types = types,
            Err(panic) if !std::thread::panicking() => std::panic::resume_unwind(panic),
            Err(_) => {}
        }
        if let Ok(tape) = empty.try_recv() {
            write.tape = tape;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use crate::{SchemaBuilder, WriteState};

    #[derive(Serialize, serde::Deserialize)]
    struct Line {
        id: i64,
        text: String,
        words: Vec<String>,
    }

    fn line(i: i64) -> Line {
        Line {
            id: i % 5000,
            text: format!("{:>120}", i % 777),
            words: (0..i % 4).map(|w| format!("w{}", (i + w) % 50)).collect(),
        }
    }

    /// Several tapes' worth of records (so the worker thread interns most of them) build the
    /// same state as adding one by one, and the tables come back for the next adds.
    #[test]
    fn a_batch_larger_than_a_tape_uses_the_worker_and_equals_single_adds() {
        let schema = || SchemaBuilder::new().add::<Line>().build().unwrap();
        let lines: Vec<Line> = (0..40_000).map(line).collect();
        let tape_bytes = lines.len() * 120;
        assert!(
            tape_bytes > 2 * super::BATCH_BYTES,
            "must span several tapes"
        );

        let mut single = WriteState::new(schema());
        for l in &lines {
            single.add(l).unwrap();
        }
        let mut batched = WriteState::new(schema());
        let mut batch = batched.batch();
        for l in &lines {
            batch.add(l).unwrap();
        }
        assert!(batch.worker.is_some(), "the worker interned the full tapes");
        drop(batch);
        assert_eq!(
            batched.write_snapshot(1).unwrap(),
            single.write_snapshot(1).unwrap()
        );

        let extra = line(1_000_001);
        assert_eq!(batched.add(&extra).unwrap(), single.add(&extra).unwrap());
        assert_eq!(
            batched.record_count("Line").unwrap(),
            single.record_count("Line").unwrap()
        );
    }
}
