//! Applying a delta: a new state that shares every type the delta does not touch and rebuilds
//! the ones it does, copying unchanged runs of bits in bulk. The rebuilt sections go through the
//! same validation as a snapshot's, so a state reached by deltas keeps every guarantee.

use std::sync::Arc;

use bytes::Bytes;

use super::ReadState;
use crate::bitset::Bitset;
use crate::encoding::ColumnEncoding;
use crate::error::{CorruptReason, Error, OrdinalProblem, Result};
use crate::format::delta_section::{DictDelta, TypeDelta};
use crate::format::type_section::{DictSection, TypeSection};
use crate::format::{self, BlobKind, SectionKind};
use crate::hash_index::Patched;
use crate::index::PrimaryKeyIndex;
use crate::packed::{bits_needed, pack_values, BitWriter, PackedArray, PackedBits};
use crate::schema::{TypeDef, TypeId};
use crate::type_data::{BlobAddresses, Dictionary, TypeData};

/// The population after the delta, checked against the one before.
///
/// A delta carries no population bitmap, so nothing in it justifies a large slot count: the
/// destination may grow to at most twice the records it can hold (plus slack). An honest writer
/// reuses freed ordinals lowest first and stays far inside this; anything beyond asks for a
/// snapshot rather than allocate what the inputs cannot justify.
pub(super) fn patch_population(
    old: &Bitset,
    slots: u64,
    removed: &[u32],
    added: &[u32],
    what: &str,
) -> Result<Bitset> {
    let limit = old.len().max(2 * (old.count() + added.len() as u64) + 4096);
    if slots > limit {
        return Err(Error::SnapshotRequired(format!(
            "{what}: the delta grows the type to {slots} ordinals (limit {limit})"
        )));
    }
    for &r in removed {
        if !old.contains(r as u64) {
            return Err(Error::corrupt(
                what,
                CorruptReason::Ordinal {
                    ordinal: r.into(),
                    problem: OrdinalProblem::RemovedButEmpty,
                },
            ));
        }
    }
    // Only the words from the one holding ordinal `slots` on: a pass over the whole set would
    // cost a small delta as much as a snapshot.
    if let Some(o) = (old.iter_words(slots as usize / 64..old.word_count()))
        .skip_while(|&o| o < slots)
        .find(|&o| removed.binary_search(&(o as u32)).is_err())
    {
        return Err(Error::corrupt(
            what,
            CorruptReason::Ordinal {
                ordinal: o,
                problem: OrdinalProblem::KeptPastSlotCount { slot_count: slots },
            },
        ));
    }
    let mut population = old.clone_with_len(slots);
    for &r in removed {
        population.remove(r as u64);
    }
    for &a in added {
        if population.contains(a as u64) {
            return Err(Error::corrupt(
                what,
                CorruptReason::Ordinal {
                    ordinal: a.into(),
                    problem: OrdinalProblem::AddedButTaken,
                },
            ));
        }
        population.insert(a as u64);
    }
    Ok(population)
}

/// Copies the rows of old records into the new layout, re-encoding when encodings changed.
struct RowCopier<'a> {
    old: &'a TypeData,
    new: &'a [ColumnEncoding],
    offsets: Vec<u64>,
    row_bits: u64,
    same: bool,
}

impl<'a> RowCopier<'a> {
    fn new(old: &'a TypeData, new: &'a [ColumnEncoding]) -> Self {
        let same = old.columns.len() == new.len()
            && old.columns.iter().zip(new).all(|(c, e)| c.encoding == *e);
        let mut offsets = Vec::with_capacity(new.len());
        let mut row_bits = 0;
        for e in new {
            offsets.push(row_bits);
            row_bits += e.width as u64;
        }
        Self {
            old,
            new,
            offsets,
            row_bits,
            same,
        }
    }

    /// Copies `count` old rows from `old_row` to `new_row`.
    fn copy(&self, w: &mut BitWriter, new_row: u64, old_row: u64, count: u64) {
        if self.same {
            w.copy_bits(
                new_row * self.row_bits,
                &self.old.rows,
                old_row * self.old.row_bits,
                count * self.row_bits,
            );
            return;
        }
        for r in 0..count {
            for (c, enc) in self.new.iter().enumerate() {
                let value = self.old.value(old_row + r, c);
                w.set(
                    (new_row + r) * self.row_bits + self.offsets[c],
                    enc.width,
                    enc.encode(value),
                );
            }
        }
    }
}

fn patch_object(
    name: &str,
    old: &TypeData,
    d: &TypeDelta,
    population: &Bitset,
) -> Result<(Bytes, u64)> {
    let copier = RowCopier::new(old, &d.encodings);
    let row_bits = copier.row_bits;
    let slots = d.slot_count;
    let mut w = if copier.same {
        let mut w = BitWriter::from_le_bytes(old.rows.bytes(), slots * row_bits);
        for &r in &d.removed {
            if (r as u64) < slots {
                w.copy_bits(r as u64 * row_bits, &PackedBits::default(), 0, row_bits);
            }
        }
        w
    } else {
        let mut w = BitWriter::with_bits(slots * row_bits);
        let mut added = d.added.iter().peekable();
        for o in population.iter() {
            if added.next_if_eq(&&(o as u32)).is_none() {
                copier.copy(&mut w, o, o, 1);
            }
        }
        w
    };
    let delta_rows = PackedBits::new(d.rows.clone(), d.row_count * row_bits)
        .ok_or_else(|| Error::corrupt(name, CorruptReason::Missing { what: "added rows" }))?;
    for (i, &a) in d.added.iter().enumerate() {
        w.copy_bits(
            a as u64 * row_bits,
            &delta_rows,
            i as u64 * row_bits,
            row_bits,
        );
    }
    Ok((w.into_bytes(), slots))
}

fn patch_collection(
    name: &str,
    old: &TypeData,
    d: &TypeDelta,
) -> Result<(Bytes, u64, (u8, Bytes))> {
    let copier = RowCopier::new(old, &d.encodings);
    let row_bits = copier.row_bits;
    let (sizes_width, sizes) = d
        .sizes
        .clone()
        .ok_or_else(|| Error::corrupt(name, CorruptReason::Missing { what: "sizes" }))?;
    let sizes = PackedArray::new(sizes, d.added.len() as u64, sizes_width)
        .ok_or_else(|| Error::corrupt(name, CorruptReason::Missing { what: "sizes" }))?;
    // Checked: sizes that add up to the row count only modulo 2^64 would send the copy below
    // past the rows.
    let added_rows = (0..sizes.len())
        .try_fold(0u64, |sum, i| sum.checked_add(sizes.get(i)))
        .filter(|&sum| sum == d.row_count)
        .ok_or_else(|| {
            Error::corrupt(
                name,
                CorruptReason::Mismatch {
                    what: "row count",
                    expected: (0..sizes.len())
                        .fold(0u64, |sum, i| sum.saturating_add(sizes.get(i))),
                    found: d.row_count,
                },
            )
        })?;
    let delta_rows = PackedBits::new(d.rows.clone(), d.row_count * row_bits)
        .ok_or_else(|| Error::corrupt(name, CorruptReason::Missing { what: "added rows" }))?;
    let removed_rows: u64 = d
        .removed
        .iter()
        .map(|&o| {
            let r = old.row_range(o as u64);
            r.end - r.start
        })
        .sum();
    let kept_rows = old.row_count - removed_rows;
    let total = kept_rows + added_rows;
    let mut w = BitWriter::with_bits(total * row_bits);
    let ends_width = bits_needed(total);
    let mut ends = BitWriter::with_bits(d.slot_count * ends_width as u64);
    let old_ends = old.ends.clone().unwrap_or_default();
    // Where the old rows of ordinal `o` end (past the old slots: where the last one ended).
    let old_end_at = |o: u64| match old_ends.len() {
        0 => 0,
        len => old_ends.get(o.min(len - 1)),
    };
    // The ordinals the delta touches, ascending. Between two of them every ordinal keeps its
    // old record, or stays empty (and an empty slot has no rows: `TypeData::from_section`), so
    // a stretch of them is one run of old rows, and their ends the old ones shifted alike.
    let mut touched = merge_ascending(&d.removed, &d.added)
        .filter(|&o| (o as u64) < d.slot_count)
        .peekable();
    let (mut cursor, mut next_added, mut delta_row) = (0u64, 0usize, 0u64);
    // A run of old rows still to copy: (first old row, first new row, count).
    let mut run = (0u64, 0u64, 0u64);
    let mut o = 0u64;
    loop {
        let stretch_end = touched.peek().map_or(d.slot_count, |&t| t as u64);
        if stretch_end > o {
            let start = if o == 0 { 0 } else { old_end_at(o - 1) };
            let end = old_end_at(stretch_end - 1);
            if run.0 + run.2 != start || run.1 + run.2 != cursor {
                copier.copy(&mut w, run.1, run.0, run.2);
                run = (start, cursor, 0);
            }
            run.2 += end - start;
            for k in o..stretch_end {
                ends.put(
                    k * ends_width as u64,
                    ends_width,
                    old_end_at(k) - start + cursor,
                );
            }
            cursor += end - start;
            o = stretch_end;
        }
        if o >= d.slot_count {
            break;
        }
        touched.next();
        // A touched ordinal is a record added (or re-added), or one removed that leaves its
        // slot empty (the population is the old one less the removed plus the added).
        if d.added.get(next_added) == Some(&(o as u32)) {
            let n = sizes.get(next_added as u64);
            w.copy_bits(
                cursor * row_bits,
                &delta_rows,
                delta_row * row_bits,
                n * row_bits,
            );
            delta_row += n;
            next_added += 1;
            cursor += n;
        }
        ends.put(o * ends_width as u64, ends_width, cursor);
        o += 1;
    }
    copier.copy(&mut w, run.1, run.0, run.2);
    Ok((w.into_bytes(), total, (ends_width, ends.into_bytes())))
}

/// The union of two ascending lists, ascending, each value once.
fn merge_ascending<'a>(a: &'a [u32], b: &'a [u32]) -> impl Iterator<Item = u32> + 'a {
    let (mut a, mut b) = (a.iter().copied().peekable(), b.iter().copied().peekable());
    std::iter::from_fn(move || match (a.peek().copied(), b.peek().copied()) {
        (Some(x), Some(y)) if x == y => {
            b.next();
            a.next()
        }
        (Some(x), Some(y)) if x < y => a.next(),
        (Some(_), Some(_)) | (None, Some(_)) => b.next(),
        (Some(_), None) => a.next(),
        (None, None) => None,
    })
}

fn patch_dictionary(old: &Dictionary, d: &DictDelta, what: &str) -> Result<DictSection> {
    if d.removed.is_empty() && d.added.is_empty() && d.pool.is_empty() && d.slot_count == old.len()
    {
        // Unchanged: shared, not copied entry by entry.
        return Ok(old.to_section());
    }
    let population = patch_population(&old.population, d.slot_count, &d.removed, &d.added, what)?;
    let lengths = PackedArray::new(d.lengths.clone(), d.added.len() as u64, d.lengths_width)
        .ok_or_else(|| {
            Error::corrupt(
                what,
                CorruptReason::Missing {
                    what: "entry lengths",
                },
            )
        })?;
    let mut pool = Vec::new();
    let mut ends = Vec::with_capacity(d.slot_count as usize);
    let (mut next_added, mut at) = (0usize, 0usize);
    for e in 0..d.slot_count {
        if population.contains(e) {
            if d.added.get(next_added) == Some(&(e as u32)) {
                let len = lengths.get(next_added as u64) as usize;
                let bytes = at
                    .checked_add(len)
                    .and_then(|end| d.pool.get(at..end))
                    .ok_or_else(|| {
                        Error::corrupt(
                            what,
                            CorruptReason::Missing {
                                what: "pool bytes of the added entries",
                            },
                        )
                    })?;
                pool.extend_from_slice(bytes);
                at += len;
                next_added += 1;
            } else {
                pool.extend_from_slice(old.get(e).unwrap_or_default());
            }
        }
        ends.push(pool.len() as u64);
    }
    if at != d.pool.len() {
        return Err(Error::corrupt(
            what,
            CorruptReason::LeftOver {
                what: "added entries",
                bytes: (d.pool.len() - at) as u64,
            },
        ));
    }
    let ends_width = bits_needed(pool.len() as u64);
    Ok(DictSection {
        population,
        ends_width,
        ends: pack_values(ends.into_iter(), ends_width),
        pool: Bytes::from(pool),
    })
}

/// Below this many bytes of old type data in all, a delta is applied on the caller's thread.
const PARALLEL_BYTES: u64 = 1 << 20;

fn patch_type(old: &TypeData, def: &TypeDef, d: TypeDelta) -> Result<TypeData> {
    let name = def.name();
    let population = patch_population(&old.population, d.slot_count, &d.removed, &d.added, name)?;
    let (rows, row_count, ends) = if def.is_collection() {
        let (rows, count, ends) = patch_collection(name, old, &d)?;
        (rows, count, Some(ends))
    } else {
        let (rows, count) = patch_object(name, old, &d, &population)?;
        (rows, count, None)
    };
    let mut dicts = Vec::with_capacity(d.dicts.len());
    let mut deltas = d.dicts.iter();
    for (c, col) in def.columns().iter().enumerate() {
        if let Some(dict) = &old.dicts[c] {
            let delta = deltas.next().ok_or_else(|| {
                Error::corrupt(
                    format!("{name}.{}", col.name),
                    CorruptReason::Missing {
                        what: "dictionary delta",
                    },
                )
            })?;
            dicts.push(patch_dictionary(
                dict,
                delta,
                &format!("{name}.{}", col.name),
            )?);
        }
    }
    TypeData::from_section(
        TypeSection {
            population,
            encodings: d.encodings,
            row_count,
            rows,
            ends,
            dicts,
        },
        def,
    )
}

/// A delta parsed and checked against the state it applies to: the destination's schema and
/// tags, the origin type each destination type carries over, and the type sections to patch.
pub(super) struct DeltaPlan {
    pub(super) destination: crate::StateId,
    pub(super) schema: Arc<crate::schema::Schema>,
    pub(super) tags: crate::Tags,
    /// Per destination type: the origin type defined alike, whose records carry over.
    carried: Vec<Option<TypeId>>,
    pub(super) sections: Vec<format::Section>,
}

/// A type patched by a delta: its type id, its data, and (for a type patched rather than
/// replaced) the ordinals removed and added.
type PatchedType = (u32, TypeData, Option<Patched>);

impl ReadState {
    /// Parses `blob` and checks that it is a delta of this state with well-ordered sections.
    pub(super) fn plan_delta(&self, blob: Bytes) -> Result<DeltaPlan> {
        let parsed = format::parse(blob)?;
        let header = parsed.header;
        if header.kind == BlobKind::Snapshot {
            return Err(Error::WrongBlobKind {
                expected: BlobKind::Delta,
                found: header.kind,
            });
        }
        if header.origin != self.id {
            return Err(Error::DeltaOriginMismatch {
                state: self.id,
                delta_origin: header.origin,
            });
        }
        let format::SplitBlob {
            schema: decoded,
            tags,
            sections,
        } = parsed.split_schema()?;
        let schema = if decoded == *self.schema {
            self.schema.clone()
        } else {
            Arc::new(decoded)
        };
        // Per destination type: the origin type defined alike, whose records carry over.
        let carried: Vec<Option<TypeId>> = (0..schema.len() as u32)
            .map(|b| schema.counterpart_in(TypeId(b), &self.schema))
            .collect();
        let mut last: Option<u32> = None;
        let mut jobs = Vec::new();
        for s in sections {
            let t = s.type_id;
            let section = || format!("section of type #{t}");
            if t as usize >= schema.len() {
                return Err(Error::corrupt(
                    section(),
                    CorruptReason::OutOfRange {
                        what: "type id",
                        value: t.into(),
                        limit: schema.len() as u64,
                    },
                ));
            }
            if last.is_some_and(|l| l >= t) {
                return Err(Error::corrupt(
                    section(),
                    CorruptReason::OutOfOrder {
                        what: "type sections",
                        at: t.into(),
                    },
                ));
            }
            if matches!(s.kind, SectionKind::Schema | SectionKind::Tags) {
                return Err(Error::corrupt(
                    section(),
                    CorruptReason::Unexpected {
                        what: "a schema or tags section among the types",
                    },
                ));
            }
            last = Some(t);
            jobs.push(s);
        }
        Ok(DeltaPlan {
            destination: header.destination,
            schema,
            tags,
            carried,
            sections: jobs,
        })
    }

    /// Patches (or replaces) one type of `plan`.
    fn patch_section(&self, plan: &DeltaPlan, s: format::Section) -> Result<PatchedType> {
        let (schema, carried) = (&plan.schema, &plan.carried);
        let t = s.type_id;
        let def = schema.get(TypeId(t));
        if s.kind == SectionKind::TypeReplace {
            return Ok((t, TypeData::decode(s.data, s.offset, def)?, None));
        }
        let Some(origin) = carried[t as usize] else {
            return Err(Error::SnapshotRequired(format!(
                "type {} is new or redefined, and the delta carries only changes to it",
                def.name()
            )));
        };
        let delta = TypeDelta::decode(s.data, s.offset, def)?;
        let (removed, added) = (delta.removed.clone(), delta.added.clone());
        let data = patch_type(&self.types[origin.index()], def, delta)?;
        Ok((t, data, Some((removed, added))))
    }

    /// The weight of patching `s` as a job of [`crate::parallel::map_balanced`]: patching
    /// copies the old type's data.
    fn patch_weight(&self, plan: &DeltaPlan, s: &format::Section) -> u64 {
        match plan.carried[s.type_id as usize] {
            Some(origin) if s.kind == SectionKind::TypeData => {
                self.types[origin.index()].heap_bytes() as u64
            }
            _ => s.data.len() as u64,
        }
    }

    /// Applies a delta (or reverse delta) whose origin is this state's version. Returns the
    /// destination state; this state is untouched and stays readable. Every type the delta does
    /// not change is shared, not copied (except once the delta leaves less than half of the
    /// snapshot buffer this state reads in use: what is still read of it is then copied out,
    /// so that the buffer can be freed); primary key indexes are updated for the records that
    /// changed. A delta that does not fit this state is an error, never a corrupt state.
    pub fn apply_delta(&self, blob: Bytes) -> Result<ReadState> {
        let mut plan = self.plan_delta(blob)?;
        let jobs = std::mem::take(&mut plan.sections);
        let mut types: Vec<Option<Arc<TypeData>>> = (plan.carried.iter())
            .map(|c| c.map(|a| self.types[a.index()].clone()))
            .collect();
        // Types are patched independently, the large ones on separate cores.
        let mut patched: Vec<(TypeId, Patched)> = Vec::new();
        for result in crate::parallel::map_balanced(
            jobs,
            |s| self.patch_weight(&plan, s),
            PARALLEL_BYTES,
            |s| self.patch_section(&plan, s),
        ) {
            let (t, data, changes) = result?;
            types[t as usize] = Some(Arc::new(data));
            if let Some(changes) = changes {
                patched.push((TypeId(t), changes));
            }
        }
        let DeltaPlan {
            destination,
            schema,
            tags,
            carried,
            ..
        } = plan;
        let types = types
            .into_iter()
            .zip(schema.types())
            .map(|(t, def)| {
                t.ok_or_else(|| {
                    Error::SnapshotRequired(format!(
                        "type {} is new or redefined, and the delta does not carry it",
                        def.name()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (types, snapshot_blob) = let_go_of_mostly_replaced_blob(types, self.blob);
        let mut state = ReadState {
            id: destination,
            schema: schema.clone(),
            types,
            indexes: Vec::new(),
            hash_indexes: Vec::new(),
            tags: match *self.tags == tags {
                true => self.tags.clone(),
                false => Arc::new(tags),
            },
            blob: snapshot_blob,
            snapshot_checksum: None,
        };
        // The hash indexes are carried on another core while the primary key indexes are.
        let (indexes, hash_indexes) = match self.hash_indexes.is_empty() {
            true => (
                self.carry_primary_key_indexes(&state, &carried, &patched),
                Ok(Vec::new()),
            ),
            false => std::thread::scope(|s| {
                let hash = s.spawn(|| self.carry_hash_indexes(&state, &patched));
                let indexes = self.carry_primary_key_indexes(&state, &carried, &patched);
                let hash = hash.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                (indexes, hash)
            }),
        };
        state.indexes = indexes;
        state.hash_indexes = hash_indexes?;
        state.add_declared_hash_indexes()?;
        Ok(state)
    }
}

/// The types of a state reached by a delta, and the snapshot buffer they still read slices of.
///
/// A slice keeps its whole buffer allocated, so a type the delta left untouched (or a
/// dictionary a patched type kept) would hold on to the entire snapshot after the delta
/// replaced the rest of it, and a consumer would carry a dead copy of most of its first
/// snapshot for as long as it runs. Once half of the buffer or more is no longer read, what is
/// still read is copied out (no more than what is let go), and the buffer is freed with the
/// last state that reads it.
fn let_go_of_mostly_replaced_blob(
    types: Vec<Arc<TypeData>>,
    blob: Option<BlobAddresses>,
) -> (Vec<Arc<TypeData>>, Option<BlobAddresses>) {
    let Some(blob) = blob else {
        return (types, None);
    };
    let still_read: usize = types.iter().map(|t| t.bytes_in(blob)).sum();
    if still_read * 2 > blob.len() {
        return (types, Some(blob));
    }
    let types = types
        .into_iter()
        .map(|t| match t.bytes_in(blob) {
            0 => t,
            _ => Arc::new(t.copied_out_of(blob)),
        })
        .collect();
    (types, None)
}

impl ReadState {
    /// The primary key indexes of `next`, a state reached from this one by a delta that
    /// carried over the types `carried` and changed the records in `patched` per type: this
    /// state's, updated where the keyed records changed, built where they cannot be.
    fn carry_primary_key_indexes(
        &self,
        next: &ReadState,
        carried: &[Option<TypeId>],
        patched: &[(TypeId, Patched)],
    ) -> Vec<Option<Arc<PrimaryKeyIndex>>> {
        let schema = next.schema();
        (schema.types().iter().enumerate())
            .map(|(b, def)| {
                if def.primary_key().is_empty() {
                    return None;
                }
                let id = TypeId(b as u32);
                let origin_index =
                    carried[b].and_then(|a| self.indexes.get(a.index()).cloned().flatten());
                let patch = patched.iter().find(|p| p.0 == id);
                Some(match (origin_index, patch) {
                    // A key through references reads their records: the index stays only if
                    // they are the same.
                    (Some(index), None) if index.paths_unchanged_in(next, id) => index,
                    (Some(index), Some((_, (removed, added)))) => Arc::new(
                        index
                            .updated(next, id, removed, added)
                            .unwrap_or_else(|| PrimaryKeyIndex::build(next, id)),
                    ),
                    _ => Arc::new(PrimaryKeyIndex::build(next, id)),
                })
            })
            .collect()
    }

    /// Applies `delta` to this state (as [`ReadState::apply_delta`]) and says whether
    /// `reverse` leads from the state reached back to this one (as
    /// [`ReadState::delta_leads_to`] would). When neither delta changes the schema or an
    /// encoding, the reverse delta is checked in time proportional to what the two deltas
    /// change: only the records and dictionary entries they add can differ from this state's.
    /// Otherwise, or when that check finds a difference, the types are patched back and
    /// compared whole. A producer checks its reverse delta this way.
    pub fn apply_delta_checking_reverse(
        &self,
        delta: Bytes,
        reverse: Bytes,
    ) -> Result<(ReadState, bool)> {
        let forward = self.apply_delta(delta.clone())?;
        let back = super::reverse_check::undoes(self, &forward, delta, reverse.clone())
            || forward.delta_leads_to(reverse, self)?;
        Ok((forward, back))
    }

    /// Whether this state plus `delta` holds what `target` holds: what
    /// `self.apply_delta(delta)?.same_content_as(target)` says, without building the
    /// destination. Each type the delta changes is patched, compared with `target`'s and
    /// dropped, so the check holds one or two patched types at a time instead of a whole
    /// state, and updates no index. It is the full check behind
    /// [`ReadState::apply_delta_checking_reverse`].
    pub fn delta_leads_to(&self, delta: Bytes, target: &ReadState) -> Result<bool> {
        let mut plan = self.plan_delta(delta.clone())?;
        if plan.tags != *target.tags {
            return Ok(false);
        }
        let jobs = std::mem::take(&mut plan.sections);
        let mut in_delta = vec![false; plan.schema.len()];
        jobs.iter()
            .for_each(|s| in_delta[s.type_id as usize] = true);
        let shape_alike = *plan.schema == *target.schema
            && (0..plan.schema.len()).all(|t| {
                in_delta[t]
                    || plan.carried[t].is_some_and(|a| {
                        super::equality::same_type(&self.types[a.index()], &target.types[t])
                    })
            });
        let bits_alike = shape_alike
            && crate::parallel::map_balanced(
                jobs,
                |s| self.patch_weight(&plan, s),
                PARALLEL_BYTES,
                |s| {
                    let (t, data, _) = self.patch_section(&plan, s)?;
                    Ok(super::equality::same_data(&data, &target.types[t as usize]))
                },
            )
            .into_iter()
            .collect::<Result<Vec<bool>>>()?
            .into_iter()
            .all(|same| same);
        // States laid out differently may still hold the same content: the whole comparison
        // decides (a state written by this library never takes this path when equal).
        Ok(bits_alike || self.apply_delta(delta)?.same_content_as(target))
    }
}

#[cfg(test)]
mod tests {
    use super::patch_population;
    use crate::bitset::Bitset;
    use crate::error::{CorruptReason, Error, OrdinalProblem};

    /// A delta that shrinks a type must remove every record past its new slot count, wherever
    /// in the last words they are.
    #[test]
    fn records_kept_past_the_slot_count_are_refused() {
        let mut old = Bitset::with_len(200);
        [1, 70, 130, 190].into_iter().for_each(|o| old.insert(o));
        let kept_past =
            |slots, removed: &[u32]| match patch_population(&old, slots, removed, &[], "T") {
                Err(Error::Corrupt {
                    reason:
                        CorruptReason::Ordinal {
                            ordinal,
                            problem: OrdinalProblem::KeptPastSlotCount { .. },
                        },
                    ..
                }) => Some(ordinal),
                Err(e) => panic!("{e}"),
                Ok(_) => None,
            };
        assert_eq!(kept_past(100, &[]), Some(130));
        assert_eq!(kept_past(100, &[130]), Some(190));
        assert_eq!(kept_past(100, &[130, 190]), None);
        assert_eq!(kept_past(65, &[130, 190]), Some(70));
        assert_eq!(kept_past(71, &[130, 190]), None);
        assert_eq!(kept_past(70, &[70, 130, 190]), None);
        let shrunk = patch_population(&old, 70, &[70, 130, 190], &[], "T").unwrap();
        assert_eq!(
            (shrunk.len(), shrunk.iter().collect::<Vec<_>>()),
            (70, vec![1])
        );
    }
}
