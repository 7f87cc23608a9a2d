//! The write state engine: records go in through serde, every type deduplicates them to
//! ordinals, and the current state is written out as a snapshot blob.

mod batch;
mod delta;
mod interner;
mod known_names;
mod reference_counts;
mod row_codec;
mod serialize;
mod slot_table;
mod snapshot;
mod sweep;
mod tape;
mod type_packing;
mod verify;

use std::sync::Arc;

use serde::Serialize;

use crate::encoding::ColumnEncoding;
use crate::error::{Error, Result};
use crate::schema::{Kind, Schema, TypeId};
use interner::Interner;
use tape::{Tape, TapeLayout};

pub use batch::{AddBatch, OnStaged, StagedBatch};

/// Per-type write tables.
#[derive(Debug)]
pub(crate) struct TypeWriter {
    /// Canonical records: one row (object) or one row per element (collection), their words
    /// encoded by [`row_codec`]; read them with [`TypeWriter::record`].
    pub(crate) records: Interner,
    /// Per column: the dictionary of a string or bytes column.
    pub(crate) dicts: Vec<Option<Interner>>,
    /// How the type's canonical rows are laid out.
    pub(crate) shape: RowShape,
    /// The encodings used last time, kept while the values still fit so that unchanged rows keep
    /// their bits from one state to the next.
    pub(crate) encodings: Vec<Option<ColumnEncoding>>,
    /// The encodings of the current state, once chosen; cleared when a record is added.
    pub(crate) current_encodings: Option<Vec<ColumnEncoding>>,
    /// The encodings of the last committed state.
    pub(crate) previous_encodings: Option<Vec<ColumnEncoding>>,
}

/// Builds states from records. Add every record of the dataset, then write the state.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use hollow_core::{SchemaBuilder, WriteState, ReadState};
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct Movie { id: i64, title: String }
///
/// let schema = SchemaBuilder::new().add::<Movie>().primary_key("Movie", &["id"]).build()?;
/// let mut w = WriteState::new(schema);
/// w.add(&Movie { id: 1, title: "Alien".into() })?;
/// w.add(&Movie { id: 2, title: "Heat".into() })?;
/// let blob = w.write_snapshot(1)?;
///
/// let state = ReadState::from_snapshot(blob.into())?;
/// assert_eq!(state.version(), 1);
/// let movies = state.object("Movie")?;
/// let ordinal = state.primary_key_index("Movie")?.find(&2i64)?.unwrap();
/// assert_eq!(movies.string("title")?.get(ordinal), Some("Heat"));
/// assert_eq!(state.get::<Movie>(ordinal)?, Movie { id: 2, title: "Heat".into() });
/// # Ok::<(), hollow_core::Error>(())
/// ```
#[derive(Debug)]
pub struct WriteState {
    pub(crate) schema: Arc<Schema>,
    pub(crate) types: Vec<TypeWriter>,
    /// Records serialized and waiting to be interned.
    tape: Tape,
    /// Staged records (see [`WriteState::stage`]) still on the tape: their pending indices.
    staged: Vec<u32>,
    /// Staged records interned already: their ordinals, in order.
    staged_ordinals: Vec<u32>,
    /// How the tape maps to the tables of the schema.
    layout: Arc<TapeLayout>,
    /// True once a cycle was committed: there is a previous state to write deltas from.
    pub(crate) committed: bool,
    /// True once a record was added in the current cycle.
    pub(crate) cycle_started: bool,
    /// The schema of the last committed state.
    pub(crate) previous_schema: Arc<Schema>,
    /// Per current type: it has no committed state of its own (new, or its definition changed),
    /// so deltas carry it whole.
    pub(crate) replaced: Vec<bool>,
    /// Per type of the previous schema: the writer of a type that the current schema dropped or
    /// redefined, kept until commit for the reverse delta.
    pub(crate) retired: Vec<Option<TypeWriter>>,
    /// The tags of the state being written, and of the last committed one.
    pub(crate) tags: crate::Tags,
    pub(crate) previous_tags: crate::Tags,
    /// What makes an incremental cycle's sweep cost in proportion to its change, once counted.
    pub(crate) reference_counts: Option<reference_counts::ReferenceCounts>,
}

impl WriteState {
    /// An empty state for `schema`.
    pub fn new(schema: Schema) -> Self {
        let schema = Arc::new(schema);
        let types = schema.types().iter().map(TypeWriter::new).collect();
        Self {
            replaced: vec![true; schema.len()],
            retired: Vec::new(),
            previous_schema: schema.clone(),
            layout: Arc::new(TapeLayout::new(&schema)),
            schema,
            types,
            tape: Tape::default(),
            staged: Vec::new(),
            staged_ordinals: Vec::new(),
            committed: false,
            cycle_started: false,
            tags: crate::Tags::new(),
            previous_tags: crate::Tags::new(),
            reference_counts: None,
        }
    }

    /// A write state whose committed state is `state`: the same records at the same ordinals,
    /// the same dictionary entries and encodings. The next cycle's delta applies to `state`.
    /// This is how a producer restarts and continues the delta chain of what it announced.
    pub fn restore(state: &crate::ReadState) -> Self {
        let mut ws = Self::new(state.schema().as_ref().clone());
        let mut encoded = Vec::new();
        for (i, tw) in ws.types.iter_mut().enumerate() {
            let data = state.type_data(TypeId(i as u32));
            let mut rows = Vec::new();
            for o in data.population.iter() {
                rows.clear();
                for row in data.row_range(o) {
                    let start = rows.len();
                    rows.resize(start + tw.shape.row_words, 0);
                    for w in 0..tw.shape.mask_words {
                        rows[start + w] = tw.shape.all_null_mask(w);
                    }
                    for c in 0..data.columns.len() {
                        if let Some(v) = data.value(row, c) {
                            rows[start + tw.shape.mask_words + c] = v;
                            if tw.shape.mask_words > 0 {
                                rows[start + c / 64] &= !(1 << (c % 64));
                            }
                        }
                    }
                }
                encoded.clear();
                row_codec::encode_words(&rows, &mut encoded);
                tw.records.restore(o as u32, &encoded);
            }
            tw.records.finish_restore();
            for (c, dict) in tw.dicts.iter_mut().enumerate() {
                let (Some(dict), Some(source)) = (dict, &data.dicts[c]) else {
                    continue;
                };
                for e in source.population.iter() {
                    dict.restore(e as u32, source.get(e).unwrap_or_default());
                }
                dict.finish_restore();
            }
            let encodings: Vec<ColumnEncoding> = data.columns.iter().map(|c| c.encoding).collect();
            tw.encodings = encodings.iter().copied().map(Some).collect();
            tw.previous_encodings = Some(encodings);
        }
        ws.committed = true;
        ws.replaced = vec![false; ws.types.len()];
        ws.tags = state.tags().clone();
        ws.previous_tags = state.tags().clone();
        ws
    }

    /// Starts an incremental cycle: the committed state (an empty one before the first commit)
    /// carries over whole, to be changed by
    /// [`WriteState::add`] and [`WriteState::remove`], then finished with
    /// [`WriteState::sweep_unreachable`].
    pub fn begin_incremental(&mut self) -> Result<()> {
        if self.cycle_started {
            return Err(Error::Write(
                "an incremental cycle starts before anything is added".into(),
            ));
        }
        // A type redefined by a schema change starts empty: an incremental cycle would publish
        // it with only the records the cycle upserts. (Before the first commit every type
        // starts empty, and that is the state an incremental cycle starts from.)
        if let Some(t) = self.schema.types().iter().enumerate().find(|(i, t)| {
            self.committed && self.replaced[*i] && self.previous_schema.type_id(t.name()).is_some()
        }) {
            return Err(Error::FullCycleRequired {
                type_name: t.1.name().to_string(),
            });
        }
        for t in &mut self.types {
            t.records.carry_over();
            t.dicts.iter_mut().flatten().for_each(|d| d.carry_over());
            t.current_encodings = None;
        }
        self.cycle_started = true;
        Ok(())
    }

    /// Takes the record at `ordinal` of `type_name` out of the current state.
    pub fn remove(&mut self, type_name: &str, ordinal: u32) -> Result<()> {
        let t = self.schema.require(type_name)?;
        AddedRecords::new(&self.schema, &mut self.types).remove(t, ordinal);
        Ok(())
    }

    /// The primary key of the current record at `ordinal` of `type_name`, as parts to look up
    /// in a [`crate::PrimaryKeyIndex`] (`None` if the type has no primary key).
    pub fn key_of(&self, type_name: &str, ordinal: u32) -> Result<Option<Vec<crate::KeyPart<'_>>>> {
        let t = self.schema.require(type_name)?;
        Ok(key_of(&self.schema, &self.types, t, ordinal))
    }

    /// Sets the tag `key` of the state being written: key/value metadata that every blob
    /// reaching the state carries and [`ReadState::tags`](crate::ReadState::tags) reads back.
    /// Tags stay from cycle to cycle until changed; a cycle that changes only tags still has
    /// changes.
    pub fn set_tag(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.tags.insert(key.into(), value.into());
    }

    /// Removes the tag `key` from the state being written; its old value, if it had one.
    pub fn remove_tag(&mut self, key: &str) -> Option<String> {
        self.tags.remove(key)
    }

    /// The tags of the state being written.
    pub fn tags(&self) -> &crate::Tags {
        &self.tags
    }

    /// True when the current cycle's state differs from the committed one (or there is none).
    pub fn has_changes(&self) -> bool {
        !self.committed
            || self.schema != self.previous_schema
            || self.tags != self.previous_tags
            || self.types.iter().any(|t| {
                t.records.present() != t.records.previous()
                    || t.dicts
                        .iter()
                        .flatten()
                        .any(|d| d.present() != d.previous())
            })
    }

    /// Changes the schema between cycles (before the first record of a cycle is added). Types
    /// defined alike in both schemas keep their records and ordinals; a new or redefined type
    /// starts empty, and the cycle's delta carries it whole (the reverse delta carries the old
    /// one back), so consumers following deltas end up equal to a fresh snapshot.
    pub fn set_schema(&mut self, schema: Schema) -> Result<()> {
        if self.cycle_started {
            return Err(Error::Write(
                "the schema can only change between cycles: commit or abandon this cycle first"
                    .into(),
            ));
        }
        let schema = Arc::new(schema);
        let mut old: Vec<Option<TypeWriter>> = std::mem::take(&mut self.types)
            .into_iter()
            .map(Some)
            .collect();
        let mut replaced = Vec::with_capacity(schema.len());
        let mut types = Vec::with_capacity(schema.len());
        for (b, def) in schema.types().iter().enumerate() {
            let carried = (0..old.len()).map(|a| TypeId(a as u32)).find(|&a| {
                self.schema.same_type_as(a, &schema, TypeId(b as u32)) && old[a.index()].is_some()
            });
            match carried {
                Some(a) => {
                    types.extend(old[a.index()].take());
                    replaced.push(self.replaced[a.index()]);
                }
                None => {
                    types.push(TypeWriter::new(def));
                    replaced.push(true);
                }
            }
        }
        if self.retired.is_empty() {
            self.retired = (0..self.previous_schema.len()).map(|_| None).collect();
        }
        for (a, writer) in old.into_iter().enumerate() {
            let a = TypeId(a as u32);
            if let (Some(writer), false) = (writer, self.replaced[a.index()]) {
                if let Some(p) = self.schema.counterpart_in(a, &self.previous_schema) {
                    self.retired[p.index()] = Some(writer);
                }
            }
        }
        self.layout = Arc::new(TapeLayout::new(&schema));
        self.tape = Tape::default();
        self.schema = schema;
        self.types = types;
        self.replaced = replaced;
        self.reference_counts = None;
        Ok(())
    }
}

/// The layout of a type's canonical rows: `[null mask words][one word per column]`, a set bit
/// in the mask meaning null.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RowShape {
    /// Null-mask words at the start of each row (0 when no column is nullable).
    pub(crate) mask_words: usize,
    /// Words per row: mask words plus one per column (one word for a type without columns).
    pub(crate) row_words: usize,
}

impl RowShape {
    pub(crate) fn of(t: &crate::schema::TypeDef) -> Self {
        let ncols = t.columns().len();
        let mask_words = if t.columns().iter().any(|c| c.ty.nullable) {
            ncols.div_ceil(64)
        } else {
            0
        };
        Self {
            mask_words,
            // A type without columns (an empty struct) still has a row per record.
            row_words: (mask_words + ncols).max(1),
        }
    }

    /// The null-mask word `word` of a row in which every column is null: one bit per column.
    pub(crate) fn all_null_mask(&self, word: usize) -> u64 {
        let columns = if self.mask_words == 0 {
            0
        } else {
            self.row_words - self.mask_words
        };
        let in_word = columns.saturating_sub(word * 64).min(64);
        crate::packed::low_mask(in_word as u8)
    }
}

impl TypeWriter {
    fn new(t: &crate::schema::TypeDef) -> Self {
        let ncols = t.columns().len();
        Self {
            records: Interner::default(),
            dicts: t
                .columns()
                .iter()
                .map(|c| c.ty.kind.is_var_length().then(Interner::default))
                .collect(),
            shape: RowShape::of(t),
            encodings: vec![None; ncols],
            current_encodings: None,
            previous_encodings: None,
        }
    }

    /// The words of the record at `ordinal` (its rows, one after the other), decoded into
    /// `words`.
    #[inline]
    pub(crate) fn record<'a>(&self, ordinal: u32, words: &'a mut Vec<u64>) -> &'a [u64] {
        row_codec::decode_words(self.records.get(ordinal), words)
    }

    /// The number of rows of the record at `ordinal`: elements of a collection, 1 for an object.
    pub(crate) fn rows_of(&self, ordinal: u32) -> u64 {
        (row_codec::count_words(self.records.get(ordinal)) / self.shape.row_words) as u64
    }
}

impl WriteState {
    /// The schema.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// Adds a record of an object type (a struct of the schema) and everything it references.
    /// Returns its ordinal; adding an equal record again returns the same ordinal. A record
    /// that fails to serialize adds nothing.
    ///
    /// To add many records, [`WriteState::batch`] (or [`WriteState::add_all`]) is several
    /// times faster: it interns them in batches.
    pub fn add<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<u32> {
        self.put_on_tape(record)?;
        self.intern_tape()
            .ok_or_else(|| Error::Write("a record cannot be null".into()))
    }

    /// Serializes `record` (checked against the schema at once) and holds it back: the records
    /// held back are added together, as one batch, by [`WriteState::add_staged`] (or by the
    /// next [`WriteState::add`] or batch). For callers that need each record's ordinal, such
    /// as upserts, without paying for one lookup chain per record. The record's type must have
    /// a primary key; returns the type.
    pub fn stage<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<TypeId> {
        self.stage_noting(record, |_, _| Ok(())).map(|(t, ())| t)
    }

    /// Stages `record` as [`WriteState::stage`] does, once `note` (given its type and primary
    /// key, read from the tape) succeeds; returns its type and the note.
    fn stage_noting<T: Serialize + ?Sized, N>(
        &mut self,
        record: &T,
        note: impl FnOnce(TypeId, &[crate::KeyPart<'_>]) -> Result<N>,
    ) -> Result<(TypeId, N)> {
        let mark = self.tape.mark();
        self.put_on_tape(record)?;
        let Some((pending, t)) = self.tape.last_record() else {
            return Err(Error::Write(
                "a staged record put nothing on the tape".into(),
            ));
        };
        let noted = match self.tape.key_of(&self.schema, &self.layout, t, pending) {
            Some(key) => note(t, &key),
            None => Err(Error::NoPrimaryKey {
                type_name: self.schema.get(t).name().to_string(),
            }),
        };
        match noted {
            Ok(noted) => {
                self.staged.push(pending);
                Ok((t, noted))
            }
            Err(e) => {
                self.tape.truncate(mark);
                Err(e)
            }
        }
    }

    /// Adds the records held back by [`WriteState::stage`]; returns their ordinals in the order
    /// they were staged.
    pub fn add_staged(&mut self) -> Vec<u32> {
        self.intern_tape();
        std::mem::take(&mut self.staged_ordinals)
    }

    /// Adds staged records that were not added yet (their ordinals wait for `add_staged`).
    fn add_held_back(&mut self) {
        if !self.staged.is_empty() {
            self.intern_tape();
        }
    }

    /// Interns the tape here; returns the ordinal of the last record on it.
    fn intern_tape(&mut self) -> Option<u32> {
        let mut staged = std::mem::take(&mut self.staged);
        let last = self
            .tape
            .intern(&self.schema, &self.layout, &mut self.types, &mut staged);
        self.staged_ordinals.extend(staged);
        last
    }

    /// Starts adding records in batches: each is serialized (and checked against the schema)
    /// at once, and interned with the ones around it when the batch fills or ends. The state is
    /// the same as adding them one by one with [`WriteState::add`]; batches are faster because
    /// the lookups of many records overlap in memory.
    ///
    /// ```
    /// # use serde::Serialize;
    /// # use hollow_core::{SchemaBuilder, WriteState};
    /// #[derive(Serialize, serde::Deserialize)]
    /// struct Movie { id: i64, title: String }
    ///
    /// let schema = SchemaBuilder::new().add::<Movie>().build()?;
    /// let mut w = WriteState::new(schema);
    /// let mut batch = w.batch();
    /// for id in 0..1000 {
    ///     batch.add(&Movie { id, title: format!("Title {}", id % 10) })?;
    /// }
    /// drop(batch);
    /// assert_eq!(w.record_count("Movie")?, 1000);
    /// # Ok::<(), hollow_core::Error>(())
    /// ```
    pub fn batch(&mut self) -> AddBatch<'_> {
        AddBatch::new(self)
    }

    /// Starts staging records in batches (see [`WriteState::stage`]), each handed with its
    /// ordinal to `handler` once interned: serializing runs on the caller's thread while a
    /// worker thread interns the tape before and runs the handler. For callers that act on
    /// each record's ordinal, as upserts replace the record that had the key.
    ///
    /// ```
    /// # use serde::Serialize;
    /// use hollow_core::schema::TypeId;
    /// use hollow_core::{AddedRecords, OnStaged, SchemaBuilder, WriteState};
    /// #[derive(Serialize, serde::Deserialize)]
    /// struct Movie { id: i64, title: String }
    ///
    /// /// Remembers every ordinal.
    /// struct Ordinals(Vec<u32>);
    /// impl OnStaged for Ordinals {
    ///     type Note = ();
    ///     fn added(&mut self, _: &mut AddedRecords<'_>, _: TypeId, o: u32, _: ()) -> hollow_core::Result<()> {
    ///         self.0.push(o);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let schema = SchemaBuilder::new().add::<Movie>().primary_key("Movie", &["id"]).build()?;
    /// let mut w = WriteState::new(schema);
    /// let mut batch = w.staged_batch(Ordinals(Vec::new()));
    /// for id in [1, 2, 1] {
    ///     batch.stage(&Movie { id, title: "Heat".into() })?;
    /// }
    /// assert_eq!(batch.finish()?.0, [0, 1, 0]);
    /// # Ok::<(), hollow_core::Error>(())
    /// ```
    pub fn staged_batch<H: OnStaged>(&mut self, handler: H) -> StagedBatch<'_, H> {
        StagedBatch::new(self, handler)
    }

    /// Adds every record of `records` in batches (see [`WriteState::batch`]). On an error, the
    /// records before the failing one are added and the rest are not.
    pub fn add_all<'r, T: Serialize + 'r>(
        &mut self,
        records: impl IntoIterator<Item = &'r T>,
    ) -> Result<()> {
        let mut batch = self.batch();
        records.into_iter().try_for_each(|r| batch.add(r))
    }

    /// Serializes `record` onto the tape; on an error the tape is left as it was.
    fn put_on_tape<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<()> {
        self.cycle_started = true;
        let mark = self.tape.mark();
        let result = record.serialize(serialize::ValueSer {
            cx: serialize::Context {
                schema: &self.schema,
                layout: &self.layout,
                rust_name: std::any::type_name::<T>(),
            },
            tape: &mut self.tape,
            owner: TypeId(0),
            column: 0,
            expect: None,
        });
        match result {
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                self.tape.truncate(mark);
                Err(Error::Write("a record cannot be null".into()))
            }
            Err(e) => {
                self.tape.truncate(mark);
                Err(e)
            }
        }
    }

    /// An error if a record or value of this cycle ran into a limit (more records of a type,
    /// or distinct values of a field, than `u32` ordinals can number; a value longer than 4 GiB):
    /// such a state is never written. Abandoning the cycle clears it.
    fn check_limits(&self) -> Result<()> {
        for (t, def) in self.types.iter().zip(self.schema.types()) {
            let tables = std::iter::once(t.records.exceeded())
                .chain(t.dicts.iter().flatten().map(|d| d.exceeded()));
            if let Some(limit) = tables.flatten().next() {
                return Err(Error::LimitExceeded {
                    type_name: def.name.clone(),
                    limit: match limit {
                        interner::Limit::Values(n) => format!(
                            "more than {n} records, or distinct values of one field, in one type"
                        ),
                        interner::Limit::Length => {
                            "a value (a record's row or a string) longer than 4 GiB".into()
                        }
                        interner::Limit::Arena => format!(
                            "more than 2^{} bytes of records, or of one field's distinct \
                             values, in one type",
                            interner::MAX_ARENA.trailing_zeros()
                        ),
                    },
                });
            }
        }
        Ok(())
    }

    /// Number of records of `type_name` in the current state.
    pub fn record_count(&self, type_name: &str) -> Result<u64> {
        let t = self.schema.require(type_name)?;
        Ok(self.types[t.index()].records.present().count())
    }

    /// Writes the current state as a snapshot blob of the state `id` (a version, or a version
    /// with its tag: see [`StateId`](crate::StateId)).
    pub fn write_snapshot(&mut self, id: impl Into<crate::StateId>) -> Result<Vec<u8>> {
        self.add_held_back();
        self.check_limits()?;
        snapshot::write(self, id.into())
    }

    /// Writes the delta from the last committed state (`origin`) to the current state
    /// (`destination`): only the types and records that changed. A state with a tag can only
    /// apply a delta whose origin names the same tag.
    pub fn write_delta(
        &mut self,
        origin: impl Into<crate::StateId>,
        destination: impl Into<crate::StateId>,
    ) -> Result<Vec<u8>> {
        self.add_held_back();
        self.check_limits()?;
        let (origin, destination) = (origin.into(), destination.into());
        delta::write(self, delta::Direction::Forward, origin, destination)
    }

    /// Writes the reverse delta: from the current state (`origin`) back to the last committed
    /// state (`destination`).
    pub fn write_reverse_delta(
        &mut self,
        origin: impl Into<crate::StateId>,
        destination: impl Into<crate::StateId>,
    ) -> Result<Vec<u8>> {
        self.add_held_back();
        self.check_limits()?;
        let (origin, destination) = (origin.into(), destination.into());
        delta::write(self, delta::Direction::Reverse, origin, destination)
    }

    /// Ends the cycle: the current state becomes the previous state (the origin of the next
    /// cycle's deltas) and the next [`WriteState::add`] starts a new cycle. Records not added in
    /// this cycle are dropped and their ordinals become free for reuse.
    pub fn commit_cycle(&mut self) -> Result<()> {
        self.add_held_back();
        self.check_limits()?;
        let counts_fit = self.reference_counts_fit_current_state();
        let schema = self.schema.clone();
        for (t, def) in self.types.iter_mut().zip(schema.types()) {
            t.previous_encodings = Some(type_packing::choose_encodings(t, def)?);
            t.records.commit();
            t.dicts.iter_mut().flatten().for_each(|d| d.commit());
        }
        self.commit_reference_counts(counts_fit);
        self.committed = true;
        self.cycle_started = false;
        self.previous_schema = self.schema.clone();
        self.previous_tags = self.tags.clone();
        self.replaced = vec![false; self.types.len()];
        self.retired.clear();
        Ok(())
    }

    /// Drops everything added since the last commit: the previous state stays the current origin.
    pub fn abandon_cycle(&mut self) {
        self.abandon_reference_counts();
        self.cycle_started = false;
        self.tags = self.previous_tags.clone();
        self.tape = Tape::default();
        self.staged.clear();
        self.staged_ordinals.clear();
        for t in &mut self.types {
            t.records.abandon();
            t.dicts.iter_mut().flatten().for_each(|d| d.abandon());
            t.current_encodings = None;
            t.encodings = t.previous_encodings.clone().map_or_else(
                || vec![None; t.encodings.len()],
                |e| e.into_iter().map(Some).collect(),
            );
        }
    }

    /// Bytes held by the write tables (approximate: vectors by capacity).
    pub fn heap_bytes(&self) -> usize {
        self.types
            .iter()
            .map(|t| {
                t.records.heap_bytes()
                    + t.dicts
                        .iter()
                        .flatten()
                        .map(|d| d.heap_bytes())
                        .sum::<usize>()
            })
            .sum()
    }
}

/// The primary key of the record at `ordinal` of type `t` in `types` (the tables of `schema`);
/// `None` if the type has no primary key.
fn key_of<'a>(
    schema: &Schema,
    types: &'a [TypeWriter],
    t: TypeId,
    ordinal: u32,
) -> Option<Vec<crate::KeyPart<'a>>> {
    key_parts(
        schema,
        |ty| types[ty.index()].shape.mask_words,
        |ty, o, words| {
            types[ty.index()].record(o as u32, words);
        },
        |ty, c, e| Some(types[ty.index()].dicts[c].as_ref()?.get(e as u32)),
        t,
        u64::from(ordinal),
    )
}

/// The primary key of record `root` of type `t` (`None` if the type has no primary key),
/// following each key field's path through the records it references: `record(ty, handle,
/// words)` puts the words of a record (its mask words, then one per column) in `words`
/// (none if there is no such record), and `entry(ty, column, value)` reads the dictionary
/// entry a string or bytes column holds. So one walk reads the tables, by ordinal, and the
/// tape, by pending index.
fn key_parts<'a>(
    schema: &Schema,
    mask_words: impl Fn(TypeId) -> usize,
    mut record: impl FnMut(TypeId, u64, &mut Vec<u64>),
    entry: impl Fn(TypeId, usize, u64) -> Option<&'a [u8]>,
    t: TypeId,
    root: u64,
) -> Option<Vec<crate::KeyPart<'a>>> {
    let def = schema.get(t);
    if def.primary_key().is_empty() {
        return None;
    }
    let mut words = Vec::new();
    let parts = def
        .primary_key()
        .iter()
        .map(|field| {
            // Through the records a path references, to the field's value.
            let (mut ty, mut at) = (t, root);
            for (i, &c) in field.columns().iter().enumerate() {
                record(ty, at, &mut words);
                let mask_words = mask_words(ty);
                let null =
                    mask_words > 0 && words.get(c / 64).is_some_and(|w| w >> (c % 64) & 1 == 1);
                let Some(&v) = words.get(mask_words + c).filter(|_| !null) else {
                    return crate::KeyPart::Null;
                };
                let kind = schema.get(ty).columns()[c].ty.kind;
                match kind {
                    Kind::Reference(r) if i + 1 < field.columns().len() => (ty, at) = (r, v),
                    _ => return crate::index::stored_part(kind, v, |e| entry(ty, c, e)),
                }
            }
            crate::KeyPart::Null
        })
        .collect();
    Some(parts)
}

/// The records of a write state while a [`StagedBatch`] adds to them: what an [`OnStaged`]
/// handler reads and changes, on whichever thread interns.
pub struct AddedRecords<'a> {
    schema: &'a Schema,
    types: &'a mut [TypeWriter],
}

impl<'a> AddedRecords<'a> {
    fn new(schema: &'a Schema, types: &'a mut [TypeWriter]) -> Self {
        Self { schema, types }
    }

    /// The schema of the state being written.
    pub fn schema(&self) -> &'a Schema {
        self.schema
    }

    /// The primary key of the current record at `ordinal` of type `t` (`None` if the type has
    /// no primary key); see [`WriteState::key_of`].
    pub fn key_of(&self, t: TypeId, ordinal: u32) -> Option<Vec<crate::KeyPart<'_>>> {
        key_of(self.schema, self.types, t, ordinal)
    }

    /// Takes the record at `ordinal` of type `t` out of the current state; see
    /// [`WriteState::remove`].
    pub fn remove(&mut self, t: TypeId, ordinal: u32) {
        let tw = &mut self.types[t.index()];
        tw.records.unmark(ordinal);
        tw.current_encodings = None;
    }
}
