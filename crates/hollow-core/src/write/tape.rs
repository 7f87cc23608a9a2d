//! Records on their way into the tables. The serializer writes each record, with everything it
//! references, to a tape of pending values whose references point at other pending values; a
//! flush then interns the tape table by table, children before parents, so each table sees a
//! long run of lookups whose cache misses overlap (see [`super::interner::Interner::intern_many`])
//! instead of a chain of dependent ones per record.
//!
//! The result equals interning each value as it is serialized: every table receives its values
//! in the same order (a table's values all have the same depth in an acyclic schema; a schema
//! with cycles is interned value by value in serialization order).

use std::ops::Range;

use super::known_names::KnownNames;
use super::row_codec::encode_words;
use super::{RowShape, TypeWriter};
use crate::index::KeyPart;
use crate::schema::{Kind, Schema, TypeId, TypeKind};

/// A table of the write state: the records of a type, or the dictionary of a string or bytes
/// column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Table {
    Records(TypeId),
    Dictionary(TypeId, usize),
}

/// A value waiting to be interned: its table and its place on the tape (words of canonical rows
/// for a record, whose string and reference columns hold indices of other pending values;
/// bytes for a dictionary entry).
#[derive(Clone, Debug)]
struct Pending {
    table: u32,
    place: Range<usize>,
    ordinal: u32,
}

/// How the tape maps to the tables of one schema.
#[derive(Debug, Default)]
pub(super) struct TapeLayout {
    tables: Vec<Table>,
    /// Per type: how its rows are laid out.
    shapes: Vec<RowShape>,
    /// Per type, per column: the table of the column's dictionary.
    dictionaries: Vec<Vec<Option<u32>>>,
    /// Per type: the columns that link to other values (strings, bytes, references); on the
    /// tape their values are pending values.
    linking_columns: Vec<Vec<usize>>,
    /// Tables with children before parents; `None` when the schema has a cycle.
    order: Option<Vec<u32>>,
}

impl TapeLayout {
    pub(super) fn new(schema: &Schema) -> Self {
        let mut tables: Vec<Table> = (0..schema.len())
            .map(|t| Table::Records(TypeId(t as u32)))
            .collect();
        let mut dictionaries = Vec::with_capacity(schema.len());
        let mut linking_columns = Vec::with_capacity(schema.len());
        for (t, def) in schema.types().iter().enumerate() {
            let mut dicts = Vec::with_capacity(def.columns().len());
            let mut pending = Vec::new();
            for (c, col) in def.columns().iter().enumerate() {
                let dict = col.ty.kind.is_var_length().then(|| {
                    tables.push(Table::Dictionary(TypeId(t as u32), c));
                    (tables.len() - 1) as u32
                });
                if dict.is_some() || matches!(col.ty.kind, Kind::Reference(_)) {
                    pending.push(c);
                }
                dicts.push(dict);
            }
            dictionaries.push(dicts);
            linking_columns.push(pending);
        }
        let order = depths(schema).map(|depth| {
            let depth_of = |t: &Table| match t {
                Table::Records(t) => depth[t.index()],
                Table::Dictionary(..) => 0,
            };
            let mut order: Vec<u32> = (0..tables.len() as u32).collect();
            order.sort_by_key(|&i| depth_of(&tables[i as usize]));
            order
        });
        Self {
            tables,
            shapes: schema.types().iter().map(RowShape::of).collect(),
            dictionaries,
            linking_columns,
            order,
        }
    }

    /// The types, each after every type it references; `None` when the schema has a cycle.
    pub(super) fn types_children_first(
        &self,
    ) -> Option<impl DoubleEndedIterator<Item = TypeId> + '_> {
        let order = self.order.as_ref()?;
        Some(order.iter().filter_map(|&t| match self.tables[t as usize] {
            Table::Records(t) => Some(t),
            Table::Dictionary(..) => None,
        }))
    }

    /// How the rows of `ty` are laid out.
    pub(super) fn shape(&self, ty: TypeId) -> RowShape {
        self.shapes[ty.index()]
    }

    /// The columns of `ty` that link to other values: strings, bytes and references.
    pub(super) fn linking_columns(&self, ty: TypeId) -> &[usize] {
        &self.linking_columns[ty.index()]
    }

    /// The table of the dictionary of `column` of `ty`.
    pub(super) fn dictionary(&self, ty: TypeId, column: usize) -> Option<u32> {
        self.dictionaries[ty.index()][column]
    }
}

/// Per type, 1 + the greatest depth of the types it references (dictionaries have depth 0);
/// `None` when a type reaches itself.
fn depths(schema: &Schema) -> Option<Vec<u32>> {
    fn visit(schema: &Schema, t: usize, depth: &mut [Option<u32>], open: &mut [bool]) -> bool {
        if depth[t].is_some() {
            return true;
        }
        if open[t] {
            return false;
        }
        open[t] = true;
        let mut d = 1;
        for col in schema.types()[t].columns() {
            if let Kind::Reference(r) = col.ty.kind {
                if !visit(schema, r.index(), depth, open) {
                    return false;
                }
                d = d.max(depth[r.index()].unwrap_or(0) + 1);
            }
        }
        open[t] = false;
        depth[t] = Some(d);
        true
    }
    let mut depth = vec![None; schema.len()];
    let mut open = vec![false; schema.len()];
    for t in 0..schema.len() {
        if !visit(schema, t, &mut depth, &mut open) {
            return None;
        }
    }
    depth.into_iter().collect()
}

/// Pending values of records serialized but not yet interned.
#[derive(Debug, Default)]
pub(super) struct Tape {
    pending: Vec<Pending>,
    words: Vec<u64>,
    bytes: Vec<u8>,
    /// Row buffers reused across records (one per nesting level in use).
    scratch: Vec<Vec<u64>>,
    /// Names the serializer matched to the schema.
    pub(super) names: KnownNames,
    /// Buffers of the flush, kept to be reused.
    by_table: Vec<Vec<u32>>,
    resolved: Vec<u64>,
    /// Records of the run being interned, encoded as the write state keeps them.
    encoded: Vec<u8>,
    ranges: Vec<Range<usize>>,
    ordinals: Vec<u32>,
}

/// A mark on the tape, to drop a record that failed half way.
#[derive(Clone, Copy, Debug)]
pub(super) struct TapeMark {
    pending: usize,
    words: usize,
    bytes: usize,
}

impl Tape {
    /// Appends a pending record (canonical rows) of `table`; returns its index.
    pub(super) fn push_record(&mut self, table: u32, rows: &[u64]) -> u64 {
        let start = self.words.len();
        self.words.extend_from_slice(rows);
        self.push(table, start..self.words.len())
    }

    /// Appends a pending dictionary entry of `table`; returns its index.
    pub(super) fn push_bytes(&mut self, table: u32, bytes: &[u8]) -> u64 {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        self.push(table, start..self.bytes.len())
    }

    fn push(&mut self, table: u32, place: Range<usize>) -> u64 {
        self.pending.push(Pending {
            table,
            place,
            ordinal: 0,
        });
        (self.pending.len() - 1) as u64
    }

    /// A row buffer to build a record in.
    pub(super) fn take_buffer(&mut self) -> Vec<u64> {
        let mut buf = self.scratch.pop().unwrap_or_default();
        buf.clear();
        buf
    }

    /// Returns a row buffer for reuse.
    pub(super) fn return_buffer(&mut self, buf: Vec<u64>) {
        self.scratch.push(buf);
    }

    /// Where the tape ends now, to drop what a failing record appends after it.
    pub(super) fn mark(&self) -> TapeMark {
        TapeMark {
            pending: self.pending.len(),
            words: self.words.len(),
            bytes: self.bytes.len(),
        }
    }

    /// Drops everything appended after `mark`.
    pub(super) fn truncate(&mut self, mark: TapeMark) {
        self.pending.truncate(mark.pending);
        self.words.truncate(mark.words);
        self.bytes.truncate(mark.bytes);
    }

    /// The index of the last value put on the tape (the last record's root), if any.
    pub(super) fn last(&self) -> Option<u32> {
        self.pending.len().checked_sub(1).map(|i| i as u32)
    }

    /// The last record put on the tape (a root record, after a serializer put it): its index and
    /// type. (The tables of records come first, table `t` holding type `t`: see
    /// [`TapeLayout::new`].)
    pub(super) fn last_record(&self) -> Option<(u32, TypeId)> {
        let i = self.last()?;
        Some((i, TypeId(self.pending[i as usize].table)))
    }

    /// The primary key of the pending record `i` of type `t`, as [`super::key_of`] reads it
    /// from the tables: the tape holds the record and every value it references (`None` if
    /// the type has no primary key).
    pub(super) fn key_of(
        &self,
        schema: &Schema,
        layout: &TapeLayout,
        t: TypeId,
        i: u32,
    ) -> Option<Vec<KeyPart<'_>>> {
        let place = |i: u64| Some(self.pending.get(usize::try_from(i).ok()?)?.place.clone());
        super::key_parts(
            schema,
            |ty| layout.shape(ty).mask_words,
            |_, i, words| {
                words.clear();
                if let Some(rows) = place(i).and_then(|p| self.words.get(p)) {
                    words.extend_from_slice(rows);
                }
            },
            |_, _, e| self.bytes.get(place(e)?),
            t,
            u64::from(i),
        )
    }

    /// Bytes of pending values: the tape is flushed when it passes a few megabytes.
    pub(super) fn size(&self) -> usize {
        self.pending.len() * std::mem::size_of::<Pending>()
            + self.words.len() * 8
            + self.bytes.len()
    }
}

impl Tape {
    /// Interns everything on the tape into `types` (the tables of `schema`, laid out by
    /// `layout`) and empties it; returns the ordinal of the last value (the last record added),
    /// if any. `kept` holds indices of pending values, replaced by their ordinals.
    pub(super) fn intern(
        &mut self,
        schema: &Schema,
        layout: &TapeLayout,
        types: &mut [TypeWriter],
        kept: &mut [u32],
    ) -> Option<u32> {
        match &layout.order {
            Some(order) => {
                let mut by_table = std::mem::take(&mut self.by_table);
                by_table.resize_with(layout.tables.len(), Vec::new);
                for (i, p) in self.pending.iter().enumerate() {
                    by_table[p.table as usize].push(i as u32);
                }
                for &table in order {
                    let run = &mut by_table[table as usize];
                    if !run.is_empty() {
                        self.intern_run(schema, layout, types, table, run);
                        run.clear();
                    }
                }
                self.by_table = by_table;
            }
            None => {
                for i in 0..self.pending.len() {
                    let table = self.pending[i].table;
                    self.intern_run(schema, layout, types, table, &[i as u32]);
                }
            }
        }
        for k in kept.iter_mut() {
            *k = self.pending[*k as usize].ordinal;
        }
        let last = self.pending.last().map(|p| p.ordinal);
        self.truncate(TapeMark {
            pending: 0,
            words: 0,
            bytes: 0,
        });
        last
    }

    /// Interns the pending values `run` (all of `table`, in tape order) whose pending children
    /// are interned already.
    fn intern_run(
        &mut self,
        schema: &Schema,
        layout: &TapeLayout,
        types: &mut [TypeWriter],
        table: u32,
        run: &[u32],
    ) {
        self.ordinals.clear();
        self.ranges.clear();
        match layout.tables[table as usize] {
            Table::Dictionary(t, c) => {
                self.ranges
                    .extend(run.iter().map(|&i| self.pending[i as usize].place.clone()));
                if let Some(dict) = &mut types[t.index()].dicts[c] {
                    dict.intern_many(&self.bytes, &self.ranges, &mut self.ordinals);
                }
            }
            Table::Records(t) => {
                let RowShape {
                    mask_words,
                    row_words,
                } = layout.shape(t);
                let linking_columns = &layout.linking_columns[t.index()];
                // The rows are resolved in place on the tape: each is interned once.
                for &i in run {
                    let place = self.pending[i as usize].place.clone();
                    for row in self.words[place.clone()].chunks_exact_mut(row_words) {
                        for &c in linking_columns {
                            let null = mask_words > 0 && row[c / 64] >> (c % 64) & 1 == 1;
                            if !null {
                                let child = row[mask_words + c] as usize;
                                row[mask_words + c] = self.pending[child].ordinal as u64;
                            }
                        }
                    }
                    self.ranges.push(place);
                }
                let source = match schema.get(t).kind() {
                    TypeKind::Set | TypeKind::Map => {
                        // Canonical order (by interned values) may drop repeated keys, so
                        // these are rewritten beside the tape.
                        let map = schema.get(t).kind() == TypeKind::Map;
                        let key_words = if map { row_words - 1 } else { row_words };
                        self.resolved.clear();
                        for range in &mut self.ranges {
                            let start = self.resolved.len();
                            self.resolved.extend_from_slice(&self.words[range.clone()]);
                            canonical_order(&mut self.resolved, start, row_words, key_words, map);
                            *range = start..self.resolved.len();
                        }
                        &self.resolved
                    }
                    _ => &self.words,
                };
                self.encoded.clear();
                for range in &mut self.ranges {
                    let start = self.encoded.len();
                    encode_words(&source[range.clone()], &mut self.encoded);
                    *range = start..self.encoded.len();
                }
                let tw = &mut types[t.index()];
                tw.current_encodings = None;
                tw.records
                    .intern_many(&self.encoded, &self.ranges, &mut self.ordinals);
            }
        }
        for (&i, &ordinal) in run.iter().zip(&self.ordinals) {
            self.pending[i as usize].ordinal = ordinal;
        }
    }
}

/// Sorts the rows of `buf[start..]` by their first `key_words` words and drops rows with a
/// repeated key (keeping the last, as a map insert would). For a map the key words are the mask
/// (if any) and the key column; the value's null bit (bit 1) shares the mask word, so it is
/// left out of the comparison.
fn canonical_order(
    buf: &mut Vec<u64>,
    start: usize,
    row_words: usize,
    key_words: usize,
    map: bool,
) {
    if buf.len() - start <= row_words {
        return;
    }
    let has_mask = row_words == 3;
    let key = |r: &[u64]| -> Vec<u64> {
        let mut k = r[..key_words].to_vec();
        if map && has_mask {
            k[0] &= !2;
        }
        k
    };
    let mut rows: Vec<Vec<u64>> = buf[start..]
        .chunks_exact(row_words)
        .map(<[u64]>::to_vec)
        .collect();
    rows.sort_by_key(|r| key(r));
    buf.truncate(start);
    for (i, r) in rows.iter().enumerate() {
        let same_as_next = rows.get(i + 1).is_some_and(|n| key(n) == key(r));
        if !same_as_next {
            buf.extend_from_slice(r);
        }
    }
}
