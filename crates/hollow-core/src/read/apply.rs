//! Applying a delta: a new state that shares every type the delta does not touch and rebuilds
//! the ones it does, copying unchanged runs of bits in bulk; an object type whose records the
//! delta changes few of shares its rows too, under an overlay of the changed ones (see
//! [`crate::row_overlay`]). The rebuilt sections go through the same validation as a
//! snapshot's, so a state reached by deltas keeps every guarantee.

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
use crate::index::{OpenUpdate, PrimaryKeyIndex};
use crate::packed::{bits_needed, pack_values, BitWriter, PackedArray, PackedBits};
use crate::row_overlay::{held_after, OverlayBuilder, RowOverlay};
use crate::schema::{TypeDef, TypeId};
use crate::type_data::{BlobAddresses, Dictionary, Overlaid, TypeData};

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

    /// Copies `count` old rows from `old_row` to `new_row`: rows that, under an overlay, are
    /// all on the same side of it.
    fn copy(&self, w: &mut BitWriter, new_row: u64, old_row: u64, count: u64) {
        let one_buffer = self.old.overlay.as_ref().is_none_or(|o| o.has_spans());
        if self.same && one_buffer {
            if count > 0 {
                let (rows, at) = self.old.row_at(old_row);
                w.copy_bits(new_row * self.row_bits, rows, at, count * self.row_bits);
            }
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

/// The rows a delta leaves a type with.
enum PatchedRows {
    /// Written out whole: the rows, and a collection's ends (width, bytes).
    Whole(Bytes, Option<(u8, Bytes)>),
    /// The old type's base, shared, under an overlay of every record changed since.
    Overlaid(Overlaid),
}

fn patch_object(
    name: &str,
    old: &TypeData,
    d: &TypeDelta,
    population: &Bitset,
) -> Result<PatchedRows> {
    let copier = RowCopier::new(old, &d.encodings);
    let row_bits = copier.row_bits;
    let slots = d.slot_count;
    let delta_rows = PackedBits::new(d.rows.clone(), d.row_count * row_bits)
        .ok_or_else(|| Error::corrupt(name, CorruptReason::Missing { what: "added rows" }))?;
    if copier.same {
        if let Some(overlay) = overlay_after(old, d, &delta_rows) {
            let (rows, ends) = (old.rows.clone(), None);
            return Ok(PatchedRows::Overlaid(Overlaid {
                rows,
                ends,
                overlay,
            }));
        }
    }
    let mut w = if copier.same {
        let mut w = old.whole_rows_writer(slots);
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
    for (i, &a) in d.added.iter().enumerate() {
        w.copy_bits(
            a as u64 * row_bits,
            &delta_rows,
            i as u64 * row_bits,
            row_bits,
        );
    }
    Ok(PatchedRows::Whole(w.into_bytes(), None))
}

/// The overlay of `old`'s rows after delta `d` (encodings unchanged): `old`'s overlay, the
/// rows `d` adds, the zeroed rows of the records it removes and of new empty slots. `None`
/// when that overlay is not worth keeping ([`held_after`]): the rows are then written out
/// whole.
fn overlay_after(old: &TypeData, d: &TypeDelta, delta_rows: &PackedBits) -> Option<RowOverlay> {
    let (slots, old_slots, row_bits) = (d.slot_count, old.row_count, old.row_bits);
    let base_rows = old.overlay.as_ref().map_or(old_slots, |o| o.base_rows());
    let held = held_after(old.overlay.as_ref(), &d.removed, &d.added, old_slots, slots)?;
    let mut added = d.added.iter().enumerate().peekable();
    let mut removed = d.removed.iter().peekable();
    let overlay = OverlayBuilder::new(held, row_bits, base_rows);
    Some(overlay.fill(|o| {
        while removed.next_if(|&&r| (r as u64) < o).is_some() {}
        if let Some((i, _)) = added.next_if(|&(_, &a)| a as u64 == o) {
            return Some((delta_rows, i as u64 * row_bits));
        }
        let emptied = removed.peek().is_some_and(|&&r| r as u64 == o);
        (!emptied && o < old_slots).then(|| old.row_at(o))
    }))
}

/// The rows a delta leaves a collection type with, and how many there are.
fn patch_collection(name: &str, old: &TypeData, d: &TypeDelta) -> Result<(PatchedRows, u64)> {
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
    if copier.same {
        if let Some(overlay) = spans_overlay_after(old, d, &delta_rows, &sizes) {
            let (rows, ends) = (old.rows.clone(), old.ends.clone());
            return Ok((
                PatchedRows::Overlaid(Overlaid {
                    rows,
                    ends,
                    overlay,
                }),
                total,
            ));
        }
    }
    let mut w = BitWriter::with_bits(total * row_bits);
    let ends_width = bits_needed(total);
    let mut ends = BitWriter::with_bits(d.slot_count * ends_width as u64);
    let old_slots = old.slot_count();
    // Rows from this one on are in the old type's overlay: a run of old rows to copy at once
    // stays on one side.
    let overlay_from = old.overlay.as_ref().map_or(u64::MAX, |o| o.base_rows());
    let (mut added, mut removed) = (d.added.iter().peekable(), d.removed.iter().peekable());
    let (mut cursor, mut next_added, mut delta_row) = (0u64, 0u64, 0u64);
    // A run of old rows still to copy: (first old row, first new row, count).
    let mut run = (0u64, 0u64, 0u64);
    for o in 0..d.slot_count {
        while removed.next_if(|&&r| (r as u64) < o).is_some() {}
        if added.next_if_eq(&&(o as u32)).is_some() {
            let n = sizes.get(next_added);
            w.copy_bits(
                cursor * row_bits,
                &delta_rows,
                delta_row * row_bits,
                n * row_bits,
            );
            (delta_row, next_added, cursor) = (delta_row + n, next_added + 1, cursor + n);
        } else if o < old_slots && removed.peek().is_none_or(|&&r| r as u64 != o) {
            // Kept (an empty slot has no rows: `TypeData::from_section`).
            let r = old.row_range(o);
            if r.end > r.start {
                let follows = run.0 + run.2 == r.start
                    && run.1 + run.2 == cursor
                    && (run.0 >= overlay_from) == (r.start >= overlay_from);
                if !follows {
                    copier.copy(&mut w, run.1, run.0, run.2);
                    run = (r.start, cursor, 0);
                }
                run.2 += r.end - r.start;
                cursor += r.end - r.start;
            }
        }
        ends.put(o * ends_width as u64, ends_width, cursor);
    }
    copier.copy(&mut w, run.1, run.0, run.2);
    let ends = (ends_width, ends.into_bytes());
    Ok((PatchedRows::Whole(w.into_bytes(), Some(ends)), total))
}

/// The overlay of collection type `old` after delta `d` (encodings unchanged): `old`'s
/// overlay, and the records `d` adds (`sizes` rows each, in `delta_rows`), removes, or that
/// are new empty slots. `None` when that overlay is not worth keeping ([`held_after`]): the
/// rows are then written out whole.
fn spans_overlay_after(
    old: &TypeData,
    d: &TypeDelta,
    delta_rows: &PackedBits,
    sizes: &PackedArray,
) -> Option<RowOverlay> {
    let (slots, old_slots, row_bits) = (d.slot_count, old.slot_count(), old.row_bits);
    // The base's ends: its records' rows (all of them when there is no overlay yet).
    let base_slots = old.ends.as_ref().map_or(0, |e| e.len());
    let base_rows = old
        .overlay
        .as_ref()
        .map_or(old.row_count, |o| o.base_rows());
    let held = held_after(old.overlay.as_ref(), &d.removed, &d.added, old_slots, slots)?;
    // Where each added record's rows start in the delta's.
    let starts: Vec<u64> = (0..sizes.len())
        .scan(0u64, |at, i| {
            let start = *at;
            *at += sizes.get(i);
            Some(start)
        })
        .collect();
    let added_at = |o: u64| d.added.binary_search(&(o as u32)).ok();
    let kept = |o: u64| o < old_slots && d.removed.binary_search(&(o as u32)).is_err();
    let length = |o: u64| match added_at(o) {
        Some(i) => sizes.get(i as u64),
        None if kept(o) => old.row_range(o).end - old.row_range(o).start,
        None => 0,
    };
    let lengths: Vec<u64> = held.iter().map(length).collect();
    let overlay =
        OverlayBuilder::with_spans(held, row_bits, base_rows, base_slots, lengths.into_iter());
    Some(overlay.fill(|o| match added_at(o) {
        Some(i) => Some((delta_rows, starts[i] * row_bits)),
        None if kept(o) => {
            let r = old.row_range(o);
            (r.end > r.start).then(|| old.row_at(r.start))
        }
        None => None,
    }))
}

fn patch_dictionary(old: &Dictionary, d: &DictDelta, what: &str) -> Result<Dictionary> {
    if d.removed.is_empty() && d.added.is_empty() && d.pool.is_empty() && d.slot_count == old.len()
    {
        // Unchanged: shared, not copied entry by entry.
        return Ok(old.clone());
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
    // The bytes of each added entry, checked to be text in a string dictionary.
    let mut added = Vec::with_capacity(d.added.len());
    let mut at = 0usize;
    for (i, &e) in d.added.iter().enumerate() {
        let len = lengths.get(i as u64) as usize;
        let bytes = (at.checked_add(len))
            .and_then(|end| d.pool.get(at..end))
            .ok_or_else(|| {
                Error::corrupt(
                    what,
                    CorruptReason::Missing {
                        what: "pool bytes of the added entries",
                    },
                )
            })?;
        if old.is_utf8() && std::str::from_utf8(bytes).is_err() {
            return Err(Error::corrupt(
                format!("{what}, dictionary entry {e}"),
                CorruptReason::NotUtf8 {
                    what: "an added entry",
                },
            ));
        }
        added.push(bytes);
        at += len;
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
    // An entry after the delta: added, or kept from `old`.
    let entry = |e: u64| match d.added.binary_search(&(e as u32)) {
        Ok(i) => Some(added[i]),
        Err(_) if population.contains(e) => old.get(e),
        Err(_) => None,
    };
    if let Some(overlay) = dictionary_overlay_after(old, d, &entry) {
        return Ok(Dictionary::overlaid(old, population, overlay));
    }
    let mut pool = Vec::new();
    let mut ends = Vec::with_capacity(d.slot_count as usize);
    for e in 0..d.slot_count {
        pool.extend_from_slice(entry(e).unwrap_or_default());
        ends.push(pool.len() as u64);
    }
    let ends_width = bits_needed(pool.len() as u64);
    let section = DictSection {
        population,
        ends_width,
        ends: pack_values(ends.into_iter(), ends_width),
        pool: Bytes::from(pool),
    };
    Dictionary::from_section(section, old.is_utf8(), what)
}

/// The overlay of dictionary `old` after delta `d`: `old`'s overlay and the entries `d`
/// changes, each as `entry` gives it after the delta (`None`: empty). `None` when that overlay
/// is not worth keeping ([`held_after`]): the pool is then written out whole.
fn dictionary_overlay_after<'a>(
    old: &Dictionary,
    d: &DictDelta,
    entry: &impl Fn(u64) -> Option<&'a [u8]>,
) -> Option<RowOverlay> {
    let (slots, old_slots) = (d.slot_count, old.len());
    let held = held_after(old.overlay(), &d.removed, &d.added, old_slots, slots)?;
    let base_bytes = old.overlay().map_or(old.base_pool_len(), |o| o.base_rows());
    let lengths: Vec<u64> = (held.iter())
        .map(|e| entry(e).map_or(0, |b| b.len() as u64))
        .collect();
    let overlay =
        OverlayBuilder::with_spans(held, 8, base_bytes, old.base_len(), lengths.into_iter());
    Some(overlay.fill_bytes(entry))
}

/// Below this many bytes of old type data in all, a delta is applied on the caller's thread.
const PARALLEL_BYTES: u64 = 1 << 20;

/// A keyed type's section of a delta of at least this many bytes has the records it removes
/// marked in the primary key table on a thread of its own while the types are patched
/// (tens of thousands of changed records); a smaller one is not worth a thread.
pub(crate) const EARLY_REMOVAL_BYTES: usize = 256 << 10;

fn patch_type(old: &TypeData, def: &TypeDef, d: TypeDelta) -> Result<TypeData> {
    let name = def.name();
    let population = patch_population(&old.population, d.slot_count, &d.removed, &d.added, name)?;
    let (patched, row_count) = match def.is_collection() {
        true => patch_collection(name, old, &d)?,
        false => (patch_object(name, old, &d, &population)?, d.slot_count),
    };
    let (rows, ends, overlaid) = match patched {
        PatchedRows::Whole(rows, ends) => (rows, ends, None),
        PatchedRows::Overlaid(overlaid) => (Bytes::new(), None, Some(overlaid)),
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
    TypeData::from_section_over(
        TypeSection {
            population,
            encodings: d.encodings,
            row_count,
            rows,
            ends,
            dicts: Vec::new(),
        },
        overlaid,
        Some(dicts),
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

    /// The primary key index of this state that patching section `s` of `plan` will update,
    /// if any.
    fn keyed_origin(&self, plan: &DeltaPlan, s: &format::Section) -> Option<&PrimaryKeyIndex> {
        let origin = plan.carried.get(s.type_id as usize).copied().flatten()?;
        let keyed = !plan.schema.get(TypeId(s.type_id)).primary_key().is_empty();
        match s.kind == SectionKind::TypeData && keyed {
            true => self.indexes.get(origin.index())?.as_deref(),
            false => None,
        }
    }

    /// The first half of updating the primary key index of the type of `s`, a section of
    /// `plan` (see [`PrimaryKeyIndex::open_update`]): `None` when it has none, or the section
    /// does not decode or removes a record this state does not hold (patching it reports
    /// why).
    fn open_key_update(&self, plan: &DeltaPlan, s: format::Section) -> Option<OpenUpdate<'_>> {
        let index = self.keyed_origin(plan, &s)?;
        let origin = &self.types[plan.carried[s.type_id as usize]?.index()];
        let def = plan.schema.get(TypeId(s.type_id));
        let delta = TypeDelta::decode(s.data, s.offset, def).ok()?;
        if !delta
            .removed
            .iter()
            .all(|&r| origin.population.contains(r as u64))
        {
            return None;
        }
        let records = (origin.record_count + delta.added.len() as u64)
            .checked_sub(delta.removed.len() as u64)?;
        index.open_update(delta.slot_count, records, &delta.removed, delta.added.len())
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
    /// not change is shared, not copied, and so are the rows of a type (and the entries of a
    /// dictionary) it changes little, under an overlay of the records changed since they were
    /// last written whole (see the `row_overlay` module): the memory a delta costs grows with
    /// what it changes. (When the
    /// delta leaves less than half of a snapshot buffer this state reads in use, and the
    /// buffer's sections are not released one by one, what is still read of it is copied out,
    /// so that the buffer can be freed.) Primary key indexes are updated for the records that
    /// changed. A delta that does not fit this state is an error, never a corrupt state.
    pub fn apply_delta(&self, blob: Bytes) -> Result<ReadState> {
        let mut plan = self.plan_delta(blob)?;
        let jobs = std::mem::take(&mut plan.sections);
        let keyed: Vec<format::Section> = (jobs.iter())
            .filter(|s| s.data.len() >= EARLY_REMOVAL_BYTES)
            .filter(|s| self.keyed_origin(&plan, s).is_some())
            .cloned()
            .collect();
        let plan = &plan;
        // Types are patched independently, the large ones on separate cores, while the
        // primary key tables of large changes are copied (they read only this state); the
        // keys the delta adds are hashed in the state it reaches before those copies are
        // waited for.
        std::thread::scope(|scope| {
            let opening = (!keyed.is_empty()).then(|| {
                scope.spawn(|| {
                    (keyed.into_iter())
                        .filter_map(|s| Some((TypeId(s.type_id), self.open_key_update(plan, s)?)))
                        .collect::<Vec<_>>()
                })
            });
            let patched = crate::parallel::map_balanced(
                jobs,
                |s| self.patch_weight(plan, s),
                PARALLEL_BYTES,
                |s| self.patch_section(plan, s),
            );
            let (state, patched) = self.patched_state(plan, patched)?;
            let opened = || match opening {
                Some(opening) => (opening.join()).unwrap_or_else(|p| std::panic::resume_unwind(p)),
                None => Vec::new(),
            };
            self.with_indexes(state, &plan.carried, &patched, opened)
        })
    }

    /// The state `plan` reaches, from its patched types (`results`) and those it carries over
    /// as they are, without indexes; and the changes of each type patched.
    fn patched_state(
        &self,
        plan: &DeltaPlan,
        results: Vec<Result<PatchedType>>,
    ) -> Result<(ReadState, Vec<(TypeId, Patched)>)> {
        let mut types: Vec<Option<Arc<TypeData>>> = (plan.carried.iter())
            .map(|c| c.map(|a| self.types[a.index()].clone()))
            .collect();
        let mut patched: Vec<(TypeId, Patched)> = Vec::new();
        for result in results {
            let (t, data, changes) = result?;
            types[t as usize] = Some(Arc::new(data));
            if let Some(changes) = changes {
                patched.push((TypeId(t), changes));
            }
        }
        let types = types
            .into_iter()
            .zip(plan.schema.types())
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
        let state = ReadState {
            id: plan.destination,
            schema: plan.schema.clone(),
            types,
            indexes: Vec::new(),
            hash_indexes: Vec::new(),
            tags: match *self.tags == plan.tags {
                true => self.tags.clone(),
                false => Arc::new(plan.tags.clone()),
            },
            blob: snapshot_blob,
            snapshot_checksum: None,
        };
        Ok((state, patched))
    }

    /// `state`, reached from this one by a delta that patched the types of `patched` and
    /// carried the others as `carried` says, with this state's indexes carried over to it;
    /// `opened` waits for the primary key updates whose tables were opened early.
    fn with_indexes<'a>(
        &'a self,
        mut state: ReadState,
        carried: &[Option<TypeId>],
        patched: &[(TypeId, Patched)],
        opened: impl FnOnce() -> Vec<(TypeId, OpenUpdate<'a>)>,
    ) -> Result<ReadState> {
        // The hash indexes are carried on another core while the primary key indexes are.
        let (indexes, hash_indexes) = match self.hash_indexes.is_empty() {
            true => (
                self.carry_primary_key_indexes(&state, carried, patched, opened),
                Ok(Vec::new()),
            ),
            false => std::thread::scope(|s| {
                let hash = s.spawn(|| self.carry_hash_indexes(&state, patched));
                let indexes = self.carry_primary_key_indexes(&state, carried, patched, opened);
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
/// last state that reads it. The rows an overlay's base reads are still read: a memory-mapped
/// snapshot keeps serving them from the page cache. A buffer whose type sections give their
/// pages back apart (see [`crate::snapshot_buffer`]) holds no dead copy, and is left as it is.
fn let_go_of_mostly_replaced_blob(
    types: Vec<Arc<TypeData>>,
    blob: Option<BlobAddresses>,
) -> (Vec<Arc<TypeData>>, Option<BlobAddresses>) {
    let Some(blob) = blob else {
        return (types, None);
    };
    let still_read: usize = types.iter().map(|t| t.bytes_in(blob)).sum();
    if blob.releases_sections() || still_read * 2 > blob.len() {
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
    /// `opened` hands over the updates whose tables were opened (copied) early: it is called
    /// once the keys added are hashed.
    fn carry_primary_key_indexes<'a>(
        &'a self,
        next: &ReadState,
        carried: &[Option<TypeId>],
        patched: &[(TypeId, Patched)],
        opened: impl FnOnce() -> Vec<(TypeId, OpenUpdate<'a>)>,
    ) -> Vec<Option<Arc<PrimaryKeyIndex>>> {
        let schema = next.schema();
        let origin_index = |b: usize| {
            let def = &schema.types()[b];
            match def.primary_key().is_empty() {
                true => None,
                false => carried[b].and_then(|a| self.indexes.get(a.index()).cloned().flatten()),
            }
        };
        // The keys of the records added are hashed first: that reads only `next`, while the
        // tables may still be being copied.
        // (`None` keys: the table cannot take the update and is built instead.)
        let updates: Vec<_> = (0..schema.types().len())
            .map(|b| {
                let id = TypeId(b as u32);
                let index = origin_index(b)?;
                let (_, changes) = patched.iter().find(|p| p.0 == id)?;
                let keys = index.keys_to_add(next, id, &changes.0, &changes.1);
                Some((index, changes, keys))
            })
            .collect();
        let mut opened = opened();
        (schema.types().iter().enumerate().zip(updates))
            .map(|((b, def), update)| {
                if def.primary_key().is_empty() {
                    return None;
                }
                let id = TypeId(b as u32);
                if let Some((index, (removed, added), keys)) = update {
                    let open =
                        (opened.iter().position(|k| k.0 == id)).map(|at| opened.swap_remove(at).1);
                    let updated = keys.and_then(|keys| match open {
                        Some(open) => open.finish(keys, removed, added),
                        None => index.updated(keys, removed, added),
                    });
                    return Some(Arc::new(updated.unwrap_or_else(|| {
                        PrimaryKeyIndex::build_after_growth(next, id, index.records())
                    })));
                }
                Some(match origin_index(b) {
                    // Not patched. A key through references reads their records: the index
                    // stays only if they are the same.
                    Some(index) if index.paths_unchanged_in(next, id) => index,
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

    /// A chain of small deltas keeps the rows of an object type, of a collection type and of
    /// a dictionary shared under an overlay of the records (entries) they change, reads and
    /// compares (bit for bit) as the snapshot of each version, and writes them out whole once
    /// the overlay would hold more than its share.
    #[test]
    fn small_deltas_overlay_the_rows_they_change() {
        use std::collections::BTreeMap;

        use bytes::Bytes;
        use serde::{Deserialize, Serialize};

        use crate::packed::{BitWriter, PackedBits};
        use crate::read::equality::same_data;
        use crate::type_data::TypeData;
        use crate::{ReadState, SchemaBuilder, WriteState};

        #[derive(Serialize, Deserialize)]
        struct Item {
            id: i64,
            price: i32,
            name: String,
            /// A list of its own per item (lists are deduplicated), as long as the price says.
            marks: Vec<i64>,
            /// A string of its own per item, changing with the price.
            label: String,
        }
        let schema = SchemaBuilder::new()
            .add::<Item>()
            .primary_key("Item", &["id"])
            .build()
            .unwrap();
        let item = schema.type_id("Item").unwrap().index();
        let list = schema.type_id("ListOfI64").unwrap().index();
        let mut w = WriteState::new(schema);
        let mut items: BTreeMap<i64, i32> = (0..1000).map(|id| (id, id as i32 % 50)).collect();
        let write = |w: &mut WriteState, items: &BTreeMap<i64, i32>, version: u64| {
            for (&id, &price) in items {
                let name = format!("item {}", id % 7);
                let marks = (0..price as i64 % 4 + 1).map(|m| id * 8 + m).collect();
                let label = format!("{id}é{}", "x".repeat(price as usize % 5));
                w.add(&Item {
                    id,
                    price,
                    name,
                    marks,
                    label,
                })
                .unwrap();
            }
            let snapshot = w.write_snapshot(version).unwrap();
            let delta = (version > 1).then(|| w.write_delta(version - 1, version).unwrap());
            w.commit_cycle().unwrap();
            let snapshot = ReadState::from_snapshot(Bytes::from(snapshot)).unwrap();
            (snapshot, delta.map(Bytes::from))
        };
        let mut chain = write(&mut w, &items, 1).0;
        // Per type, and for the labels' dictionary: deltas that left it overlaid, and that
        // rewrote an overlaid one whole.
        let (mut overlaid, mut rewritten) = ([0; 3], [0; 3]);
        let labels = |state: &ReadState| state.types[item].dicts[4].clone().unwrap();
        for version in 2..=20u64 {
            let k = version as i64;
            // 2% changed, 0.5% removed, 0.5% added (at the end when no slot is free).
            for id in (0..20).map(|i| (i * 47 + k * 13) % 1000) {
                items.entry(id).and_modify(|p| *p += 1);
            }
            for i in 0..5 {
                items.remove(&((i * 97 + k * 31) % 1000));
                items.insert(1000 + k * 5 + i, 7);
            }
            let (snapshot, delta) = write(&mut w, &items, version);
            let next = chain.apply_delta(delta.unwrap()).unwrap();
            assert_eq!(next.checksum(), snapshot.checksum(), "v{version}");
            match (labels(&chain).overlay(), labels(&next).overlay()) {
                (_, Some(_)) => overlaid[2] += 1,
                (Some(_), None) => rewritten[2] += 1,
                (None, None) => {}
            }
            let (mine, theirs) = (labels(&next), labels(&snapshot));
            assert!(mine.same_bytes_as(&theirs), "v{version}: labels");
            // Every version changes some labels: the last version's differ, overlaid or not.
            let before = labels(&chain);
            for (a, b) in [(&mine, &before), (&before, &mine), (&theirs, &before)] {
                assert!(!a.same_bytes_as(b), "v{version}: the labels changed");
            }
            for e in 0..theirs.len() {
                assert_eq!(mine.get_str(e), theirs.get_str(e), "v{version}: label {e}");
            }
            for (i, t) in [item, list].into_iter().enumerate() {
                let (mine, theirs): (&TypeData, &TypeData) = (&next.types[t], &snapshot.types[t]);
                match (&chain.types[t].overlay, &mine.overlay) {
                    (_, Some(_)) => overlaid[i] += 1,
                    (Some(_), None) => rewritten[i] += 1,
                    (None, None) => {}
                }
                assert!(
                    same_data(mine, theirs),
                    "v{version}, type {t}: not laid out as the snapshot"
                );
                // A bit flipped anywhere in the snapshot's rows is seen, in an overlaid row or
                // not.
                let flipped = |row: u64| {
                    let mut other = theirs.clone();
                    let bits = theirs.row_count * theirs.row_bits;
                    let mut rows = BitWriter::from_le_bytes(theirs.rows.bytes(), bits);
                    let at = row * theirs.row_bits + 3;
                    rows.set(at, 1, 1 - theirs.rows.get(at, 1));
                    other.rows = PackedBits::new(rows.into_bytes(), bits).unwrap();
                    other
                };
                // The first row of the first overlaid record, as the snapshot numbers it.
                let held = (mine.overlay.as_ref())
                    .and_then(|o| o.held().iter().find(|&o| theirs.population.contains(o)))
                    .map(|o| theirs.row_range(o).start);
                for row in [0, theirs.row_count / 2, theirs.row_count - 1]
                    .into_iter()
                    .chain(held)
                {
                    assert!(!same_data(mine, &flipped(row)), "v{version}: {row}");
                    assert!(!same_data(&flipped(row), mine), "v{version}: {row}");
                }
            }
            chain = next;
        }
        // About 3% of the records change each cycle: an overlay holds four cycles' worth.
        for i in 0..3 {
            assert!(
                overlaid[i] >= 10 && rewritten[i] >= 2,
                "{i}: {overlaid:?} overlaid, {rewritten:?} rewritten"
            );
        }
    }
}
