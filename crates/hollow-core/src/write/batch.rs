//! Adding records in batches: the caller's thread serializes records onto a tape while a worker
//! thread interns the tape before it, so the two halves of adding a record run side by side.
//! [`AddBatch`] adds records; [`StagedBatch`] stages records whose ordinals a handler needs (as
//! upserts do, to replace the records that had their keys) and runs the handler where the tape
//! is interned.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use serde::Serialize;

use super::tape::{Tape, TapeLayout};
use super::{AddedRecords, TypeWriter, WriteState};
use crate::error::{Error, Result};
use crate::index::KeyPart;
use crate::schema::{Schema, TypeId};

/// The tape size at which it is interned: large enough for long runs of lookups per table,
/// small enough to stay in the cache while it is read back.
const BATCH_BYTES: usize = 1 << 21;

/// Tapes in circulation between the caller and the worker: one being filled, one being
/// interned, one waiting.
const TAPES: usize = 3;

/// What a [`StagedBatch`] does with each staged record once the tape holding it is interned:
/// on the interning thread, in the order the records were staged.
pub trait OnStaged: Send + 'static {
    /// What the caller's thread notes about a staged record from its primary key when it is
    /// staged (see [`StagedBatch::stage_noting`]), handed over with its ordinal: work that
    /// needs no ordinal, such as looking the key up elsewhere, is so done beside the
    /// interning instead of after it.
    type Note: Send + 'static;

    /// The staged record of type `ty`, noted `note`, has `ordinal`. An error stops the calls;
    /// the batch reports it when settled.
    fn added(
        &mut self,
        records: &mut AddedRecords<'_>,
        ty: TypeId,
        ordinal: u32,
        note: Self::Note,
    ) -> Result<()>;
}

/// The handler of a batch that stages nothing ([`AddBatch`]).
struct NothingStaged;

impl OnStaged for NothingStaged {
    type Note = ();

    fn added(&mut self, _: &mut AddedRecords<'_>, _: TypeId, _: u32, _: ()) -> Result<()> {
        Ok(())
    }
}

/// A full tape on its way to be interned, with the records staged on it.
struct Job<N> {
    tape: Tape,
    /// The staged records' pending indices on the tape.
    staged: Vec<u32>,
    /// Their types and notes.
    notes: Vec<(TypeId, N)>,
}

/// Interns `job` into `types` and hands its staged records to `handler` (unless an earlier
/// call failed: `error`).
fn intern<H: OnStaged>(
    schema: &Schema,
    layout: &TapeLayout,
    types: &mut [TypeWriter],
    job: &mut Job<H::Note>,
    handler: Option<&mut H>,
    error: &mut Option<Error>,
) {
    job.tape.intern(schema, layout, types, &mut job.staged);
    if let (Some(handler), None) = (handler, &error) {
        let mut records = AddedRecords::new(schema, types);
        let mut staged = job.notes.drain(..).zip(&job.staged);
        let handled =
            staged.try_for_each(|((ty, note), &o)| handler.added(&mut records, ty, o, note));
        if let Err(e) = handled {
            *error = Some(e);
        }
    }
    job.staged.clear();
    job.notes.clear();
}

/// The thread interning full tapes. It owns the write state's tables, and the handler, until
/// the batch settles.
struct Worker<H: OnStaged> {
    full: SyncSender<Job<H::Note>>,
    empty: Receiver<Tape>,
    /// Tapes made so far.
    tapes: usize,
    thread: JoinHandle<(Vec<TypeWriter>, H, Option<Error>)>,
}

impl<H: OnStaged> Worker<H> {
    /// Moves the tables of `write`, and `handler`, to a new thread; gives the handler back
    /// (tables left in place) if no thread can be started.
    fn start(write: &mut WriteState, handler: H) -> std::result::Result<Self, H> {
        let (schema, layout) = (write.schema.clone(), write.layout.clone());
        let (full, full_rx) = sync_channel::<Job<H::Note>>(1);
        let (empty_tx, empty) = sync_channel::<Tape>(TAPES);
        // The tables go to the thread once it runs: a thread that fails to start must not take
        // them down with its closure.
        let (send_tables, tables_rx) = std::sync::mpsc::channel::<(Vec<TypeWriter>, H)>();
        let thread = std::thread::Builder::new()
            .name("hollow-intern".into())
            .spawn(move || {
                // Sent as soon as the thread is started (below).
                let (mut types, mut handler) = tables_rx.recv().expect("the tables are sent");
                let mut error = None;
                for mut job in full_rx {
                    intern(
                        &schema,
                        &layout,
                        &mut types,
                        &mut job,
                        Some(&mut handler),
                        &mut error,
                    );
                    // The caller may be gone already (it stops taking tapes at the end).
                    let _ = empty_tx.send(job.tape);
                }
                (types, handler, error)
            });
        match thread {
            Ok(thread) => {
                // The thread's receiver lives until it has taken them.
                let _ = send_tables.send((std::mem::take(&mut write.types), handler));
                Ok(Self {
                    full,
                    empty,
                    tapes: 1,
                    thread,
                })
            }
            Err(_) => Err(handler),
        }
    }
}

/// What both batches share: the tape goes to a worker thread whenever it fills.
struct Pipeline<'w, H: OnStaged> {
    write: &'w mut WriteState,
    /// The tape size at which the tape goes to the worker.
    tape_bytes: usize,
    /// The handler, while no worker holds it.
    handler: Option<H>,
    /// Started when the first tape fills, so that small batches stay on the caller's thread.
    worker: Option<Worker<H>>,
    /// The types and notes of the records staged on the current tape (their indices are
    /// `write.staged`).
    staged_notes: Vec<(TypeId, H::Note)>,
    /// The handler's first error, until reported.
    error: Option<Error>,
}

impl<'w, H: OnStaged> Pipeline<'w, H> {
    fn new(write: &'w mut WriteState, handler: H) -> Self {
        // Records staged before go first, so that their ordinals are known to the write state.
        write.add_held_back();
        Self {
            write,
            tape_bytes: BATCH_BYTES,
            handler: Some(handler),
            worker: None,
            staged_notes: Vec::new(),
            error: None,
        }
    }

    /// The tape's records, and the ones staged on it, as a job; the write state gets `next`.
    fn job(&mut self, next: Tape) -> Job<H::Note> {
        Job {
            tape: std::mem::replace(&mut self.write.tape, next),
            staged: std::mem::take(&mut self.write.staged),
            notes: std::mem::take(&mut self.staged_notes),
        }
    }

    /// Passes the tape to the worker once it is full, and takes an empty one (interning it
    /// here if no worker can be started).
    fn hand_over_if_full(&mut self) {
        if self.write.tape.size() < self.tape_bytes {
            return;
        }
        if self.worker.is_none() {
            if let Some(handler) = self.handler.take() {
                match Worker::start(self.write, handler) {
                    Ok(worker) => self.worker = Some(worker),
                    Err(handler) => self.handler = Some(handler),
                }
            }
        }
        let Some(worker) = &mut self.worker else {
            return self.intern_here();
        };
        let next = match worker.empty.try_recv() {
            Ok(tape) => tape,
            Err(_) if worker.tapes < TAPES => {
                worker.tapes += 1;
                Tape::default()
            }
            // A failed receive means the worker died; settling reports its panic.
            Err(_) => worker.empty.recv().unwrap_or_default(),
        };
        let job = self.job(next);
        if let Some(worker) = &self.worker {
            let _ = worker.full.send(job);
        }
    }

    /// Interns the tape on this thread.
    fn intern_here(&mut self) {
        let mut job = self.job(Tape::default());
        let write = &mut *self.write;
        let handler = self.handler.as_mut();
        intern(
            &write.schema,
            &write.layout,
            &mut write.types,
            &mut job,
            handler,
            &mut self.error,
        );
        (write.tape, write.staged, self.staged_notes) = (job.tape, job.staged, job.notes);
    }

    /// Everything staged is interned and handled, the tables and the handler are back here;
    /// the handler's first error, if it failed.
    fn settle(&mut self) -> Result<()> {
        match self.worker.take() {
            None => self.intern_here(),
            Some(worker) => {
                let job = self.job(Tape::default());
                let Worker {
                    full,
                    empty,
                    thread,
                    ..
                } = worker;
                let _ = full.send(job);
                drop(full);
                match thread.join() {
                    Ok((types, handler, error)) => {
                        self.write.types = types;
                        self.handler = Some(handler);
                        self.error = self.error.take().or(error);
                    }
                    Err(panic) if !std::thread::panicking() => std::panic::resume_unwind(panic),
                    Err(_) => {}
                }
                if let Ok(tape) = empty.try_recv() {
                    self.write.tape = tape;
                }
            }
        }
        self.error.take().map_or(Ok(()), Err)
    }
}

/// The pipeline's state, without its tables or handler.
impl<H: OnStaged> std::fmt::Debug for Pipeline<'_, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("tape_bytes", &self.tape_bytes)
            .field("worker", &self.worker.is_some())
            .finish()
    }
}

impl<H: OnStaged> Drop for Pipeline<'_, H> {
    fn drop(&mut self) {
        // An error not reported by now goes with the batch (the caller dropped it without
        // settling, on an error of its own).
        let _ = self.settle();
    }
}

/// Records being added in batches; see [`WriteState::batch`]. Everything added is interned by
/// the time this is dropped.
#[derive(Debug)]
pub struct AddBatch<'w> {
    pipeline: Pipeline<'w, NothingStaged>,
}

impl<'w> AddBatch<'w> {
    pub(super) fn new(write: &'w mut WriteState) -> Self {
        Self {
            pipeline: Pipeline::new(write, NothingStaged),
        }
    }

    /// Hands each tape to the interning thread once it holds `bytes` bytes (default 2 MiB,
    /// tuned for throughput). Small values make every few records cross threads: for tests.
    pub fn with_tape_bytes(mut self, bytes: usize) -> Self {
        self.pipeline.tape_bytes = bytes.max(1);
        self
    }

    /// Sets a tag of the state being written (see [`WriteState::set_tag`]).
    pub fn set_tag(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.pipeline.write.set_tag(key, value);
    }

    /// Adds a record of an object type and everything it references (see
    /// [`WriteState::add`]). A record that fails to serialize adds nothing; the batch goes on.
    pub fn add<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<()> {
        self.pipeline.write.put_on_tape(record)?;
        self.pipeline.hand_over_if_full();
        Ok(())
    }
}

/// Records staged in batches, each handed with its ordinal to an [`OnStaged`] handler once
/// interned; see [`WriteState::staged_batch`]. Serializing runs on the caller's thread while a
/// worker thread interns the tape before and runs the handler. Everything staged is interned
/// and handled by the time this is dropped.
#[derive(Debug)]
pub struct StagedBatch<'w, H: OnStaged> {
    pipeline: Pipeline<'w, H>,
}

impl<'w, H: OnStaged> StagedBatch<'w, H> {
    pub(super) fn new(write: &'w mut WriteState, handler: H) -> Self {
        Self {
            pipeline: Pipeline::new(write, handler),
        }
    }

    /// Hands each tape to the interning thread once it holds `bytes` bytes (default 2 MiB):
    /// small values make every few records cross threads.
    #[cfg(test)]
    fn with_tape_bytes(mut self, bytes: usize) -> Self {
        self.pipeline.tape_bytes = bytes.max(1);
        self
    }

    /// Sets a tag of the state being written (see [`WriteState::set_tag`]).
    pub fn set_tag(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.pipeline.write.set_tag(key, value);
    }

    /// The tags of the state being written.
    pub fn tags(&self) -> &crate::Tags {
        self.pipeline.write.tags()
    }

    /// The schema of the state being written.
    pub fn schema(&self) -> &std::sync::Arc<Schema> {
        self.pipeline.write.schema()
    }

    /// Serializes `record` (checked against the schema at once; see [`WriteState::stage`]);
    /// the handler gets its ordinal, and the default note, once its tape is interned. Returns
    /// its type.
    pub fn stage<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<TypeId>
    where
        H::Note: Default,
    {
        self.stage_noting(record, |_, _| Ok(H::Note::default()))
    }

    /// Serializes `record` as [`StagedBatch::stage`] does, and notes it: `note` gets its type
    /// and primary key here, on the caller's thread, and what it returns goes to the handler
    /// with the record's ordinal. A record whose note fails is not staged, and the error is
    /// returned. Returns its type.
    pub fn stage_noting<T: Serialize + ?Sized>(
        &mut self,
        record: &T,
        note: impl FnOnce(TypeId, &[KeyPart<'_>]) -> Result<H::Note>,
    ) -> Result<TypeId> {
        let (t, note) = self.pipeline.write.stage_noting(record, note)?;
        self.pipeline.staged_notes.push((t, note));
        self.pipeline.hand_over_if_full();
        Ok(t)
    }

    /// Interns and hands over everything staged, waiting for the worker; then the write state
    /// and the handler are the caller's until the next [`StagedBatch::stage`]. The handler's
    /// first error since the last settling, if it failed.
    pub fn settle(&mut self) -> Result<(&mut WriteState, &mut H)> {
        self.pipeline.settle()?;
        let handler = self
            .pipeline
            .handler
            .as_mut()
            .expect("back from the worker");
        Ok((&mut *self.pipeline.write, handler))
    }

    /// Settles (see [`StagedBatch::settle`]) and ends the batch; returns the handler.
    pub fn finish(mut self) -> Result<H> {
        self.pipeline.settle()?;
        Ok(self.pipeline.handler.take().expect("back from the worker"))
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
        assert!(
            batch.pipeline.worker.is_some(),
            "the worker interned the full tapes"
        );
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

    /// Remembers each staged record's key and ordinal; refuses the line with id `refuse`.
    #[derive(Debug)]
    struct Seen {
        ordinals: Vec<(i64, u32)>,
        refuse: i64,
    }

    impl super::OnStaged for Seen {
        type Note = ();

        fn added(
            &mut self,
            records: &mut crate::AddedRecords<'_>,
            ty: crate::schema::TypeId,
            ordinal: u32,
            (): (),
        ) -> crate::Result<()> {
            let key = records.key_of(ty, ordinal);
            let Some(&[crate::KeyPart::Int(id)]) = key.as_deref() else {
                panic!("a one-field integer key");
            };
            if id == self.refuse {
                return Err(crate::Error::Write(format!("refused {id}")));
            }
            self.ordinals.push((id, ordinal));
            Ok(())
        }
    }

    fn keyed_schema() -> crate::Schema {
        SchemaBuilder::new()
            .add::<Line>()
            .primary_key("Line", &["id"])
            .build()
            .unwrap()
    }

    /// Staged records crossing threads every few records get the ordinals they get staged one
    /// tape at a time, handed over in order, and the state is the same.
    #[test]
    fn a_staged_batch_hands_every_ordinal_over_in_order() {
        let lines: Vec<Line> = (0..3_000).map(line).collect();
        let mut single = WriteState::new(keyed_schema());
        let expected: Vec<(i64, u32)> = lines
            .iter()
            .map(|l| {
                single.stage(l).unwrap();
                (l.id, single.add_staged()[0])
            })
            .collect();

        let mut batched = WriteState::new(keyed_schema());
        let seen = Seen {
            ordinals: Vec::new(),
            refuse: -1,
        };
        let mut batch = batched.staged_batch(seen).with_tape_bytes(2_000);
        for (i, l) in lines.iter().enumerate() {
            batch.stage(l).unwrap();
            if i == 1_000 {
                assert!(batch.pipeline.worker.is_some(), "a worker interns");
                // Settling brings everything back here; staging goes on after.
                let (write, seen) = batch.settle().unwrap();
                assert_eq!(seen.ordinals.len(), 1_001);
                assert_eq!(write.record_count("Line").unwrap(), 1_001);
            }
        }
        let seen = batch.finish().unwrap();
        assert_eq!(seen.ordinals, expected);
        assert_eq!(
            batched.write_snapshot(1).unwrap(),
            single.write_snapshot(1).unwrap()
        );
    }

    /// A handler's error is reported when the batch settles, and stops the calls.
    #[test]
    fn a_handler_error_is_reported_when_the_batch_settles() {
        let mut w = WriteState::new(keyed_schema());
        let seen = Seen {
            ordinals: Vec::new(),
            refuse: 7,
        };
        let mut batch = w.staged_batch(seen).with_tape_bytes(2_000);
        for l in (0..3_000).map(line) {
            batch.stage(&l).unwrap();
        }
        let err = batch.settle().unwrap_err();
        assert_eq!(err, crate::Error::Write("refused 7".into()));
        // Reported once; the records are all interned.
        let (write, seen) = batch.settle().unwrap();
        assert_eq!(write.record_count("Line").unwrap(), 3_000);
        assert_eq!(seen.ordinals.len(), 7);
    }

    #[derive(Serialize, serde::Deserialize)]
    struct Category {
        code: String,
        rank: Option<i32>,
    }

    #[derive(Serialize, serde::Deserialize)]
    struct Product {
        sku: String,
        category: Category,
        price: f64,
        size: Option<i64>,
    }

    /// Compares the key each staged record was noted with (read from the tape) with the key
    /// of the record interned at its ordinal.
    struct KeysCompared(usize);

    impl super::OnStaged for KeysCompared {
        type Note = String;

        fn added(
            &mut self,
            records: &mut crate::AddedRecords<'_>,
            ty: crate::schema::TypeId,
            ordinal: u32,
            noted: String,
        ) -> crate::Result<()> {
            assert_eq!(noted, format!("{:?}", records.key_of(ty, ordinal).unwrap()));
            self.0 += 1;
            Ok(())
        }
    }

    /// The key a record is noted with, read from the tape before interning, is the key of the
    /// record it becomes: strings, floats, nulls and a field through a reference.
    #[test]
    fn a_staged_record_is_noted_with_the_key_it_gets_once_interned() {
        let schema = SchemaBuilder::new()
            .add::<Product>()
            .primary_key(
                "Product",
                &["category.code", "sku", "price", "size", "category.rank"],
            )
            .build()
            .unwrap();
        let mut w = WriteState::new(schema);
        let mut batch = w.staged_batch(KeysCompared(0)).with_tape_bytes(3_000);
        for i in 0..2_000i64 {
            let product = Product {
                sku: format!("sku-{}", i % 700),
                category: Category {
                    code: format!("c{}", i % 13),
                    rank: (i % 3 != 0).then_some(i as i32 % 5),
                },
                price: (i % 11) as f64 / 4.0,
                size: (i % 2 == 0).then_some(i % 9),
            };
            let ty = batch
                .stage_noting(&product, |_, key| Ok(format!("{key:?}")))
                .unwrap();
            assert_eq!(ty.index(), 0);
        }
        assert_eq!(batch.finish().unwrap().0, 2_000);
    }

    /// A record whose note fails is not staged: the error comes back and nothing is added.
    #[test]
    fn a_record_whose_note_fails_is_not_staged() {
        let mut w = WriteState::new(keyed_schema());
        let mut batch = w.staged_batch(KeysCompared(0));
        let refused = batch.stage_noting(&line(7), |_, _| Err(crate::Error::Write("no".into())));
        assert_eq!(refused, Err(crate::Error::Write("no".into())));
        batch
            .stage_noting(&line(8), |_, key| Ok(format!("{key:?}")))
            .unwrap();
        assert_eq!(batch.finish().unwrap().0, 1);
        assert_eq!(w.record_count("Line").unwrap(), 1);
    }
}
