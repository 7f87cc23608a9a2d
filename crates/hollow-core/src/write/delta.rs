//! Writing deltas: the records and dictionary entries that differ between the last committed
//! state and the current one, in either direction.

use bytes::Bytes;

use super::interner::Interner;
use super::type_packing::{choose_encodings, type_section, RowPacking, Which};
use super::{TypeWriter, WriteState};
use crate::bitset::Bitset;
use crate::byte_io::ByteWriter;
use crate::error::{Error, Result};
use crate::format::delta_section::{DictDelta, TypeDelta};
use crate::format::type_section::{PackedParts, TypeSection};
use crate::format::{BlobHeader, BlobKind, BlobWriter, SectionKind};
use crate::packed::{bits_needed, pack_values, BitWriter};
use crate::schema::{TypeDef, TypeId};
use crate::StateId;

/// Which way a delta goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Direction {
    /// From the committed state to the current one.
    Forward,
    /// From the current state back to the committed one.
    Reverse,
}

/// The ordinals and slot count of one side of the change.
struct Side<'a> {
    present: &'a Bitset,
    slots: u32,
}

fn sides(i: &Interner, dir: Direction) -> (Side<'_>, Side<'_>) {
    let previous = Side {
        present: i.previous(),
        slots: i.previous_slots(),
    };
    let current = Side {
        present: i.present(),
        slots: i.present_slots(),
    };
    match dir {
        Direction::Forward => (previous, current),
        Direction::Reverse => (current, previous),
    }
}

/// Ordinals in `a` and not in `b`, ascending: a word at a time, so a type whose records did
/// not change costs a pass over its words, not over its records.
fn difference(a: &Bitset, b: &Bitset) -> Vec<u32> {
    a.iter_minus(b).map(|o| o as u32).collect()
}

fn dict_delta(dict: &Interner, dir: Direction) -> DictDelta {
    let (from, to) = sides(dict, dir);
    let added = difference(to.present, from.present);
    let mut pool = Vec::new();
    let mut lengths = Vec::with_capacity(added.len());
    for &e in &added {
        let bytes = dict.get(e);
        pool.extend_from_slice(bytes);
        lengths.push(bytes.len() as u64);
    }
    let lengths_width = bits_needed(lengths.iter().copied().max().unwrap_or(0));
    DictDelta {
        slot_count: to.slots as u64,
        removed: difference(from.present, to.present),
        lengths: pack_values(lengths.into_iter(), lengths_width),
        lengths_width,
        added,
        pool: Bytes::from(pool),
    }
}

/// The changes to one type whose definition is the same on both sides, or `None` if none.
fn patch(tw: &mut TypeWriter, def: &TypeDef, dir: Direction) -> Result<Option<TypeDelta>> {
    let current = choose_encodings(tw, def)?;
    let previous = tw
        .previous_encodings
        .clone()
        .unwrap_or_else(|| current.clone());
    let (from_enc, to_enc) = match dir {
        Direction::Forward => (previous, current),
        Direction::Reverse => (current, previous),
    };
    let (from, to) = sides(&tw.records, dir);
    let removed = difference(from.present, to.present);
    let added = difference(to.present, from.present);
    let dicts: Vec<DictDelta> = tw
        .dicts
        .iter()
        .flatten()
        .map(|d| dict_delta(d, dir))
        .collect();
    let dicts_unchanged = dicts
        .iter()
        .zip(tw.dicts.iter().flatten())
        .all(|(d, dict)| {
            let (f, _) = sides(dict, dir);
            d.removed.is_empty() && d.added.is_empty() && d.slot_count == f.slots as u64
        });
    if removed.is_empty()
        && added.is_empty()
        && from_enc == to_enc
        && from.slots == to.slots
        && dicts_unchanged
    {
        return Ok(None);
    }
    let packing = RowPacking::new(to_enc);
    let collection = def.is_collection();
    let mut sizes = Vec::new();
    let row_count: u64 = if collection {
        added
            .iter()
            .map(|&o| {
                let n = tw.rows_of(o);
                sizes.push(n);
                n
            })
            .sum()
    } else {
        added.len() as u64
    };
    let mut rows = BitWriter::with_bits(row_count * packing.row_bits);
    let mut next_row = 0;
    let mut words = Vec::new();
    for &o in &added {
        let record = tw.record(o, &mut words);
        packing.put_record(
            &mut rows,
            next_row,
            record,
            tw.shape.mask_words,
            tw.shape.row_words,
        );
        next_row += (record.len() / tw.shape.row_words) as u64;
    }
    let sizes = collection.then(|| {
        let width = bits_needed(sizes.iter().copied().max().unwrap_or(0));
        (width, pack_values(sizes.into_iter(), width))
    });
    Ok(Some(TypeDelta {
        slot_count: to.slots as u64,
        removed,
        added,
        encodings: packing.encodings,
        sizes,
        row_count,
        rows: rows.into_bytes(),
        dicts,
    }))
}

fn add_patch(blob: &mut BlobWriter, type_id: usize, delta: TypeDelta) {
    let mut w = ByteWriter::new();
    delta.encode(&mut w);
    blob.section(SectionKind::TypeData, type_id as u32, w);
}

fn add_replacement(blob: &mut BlobWriter, type_id: usize, section: TypeSection<PackedParts>) {
    let mut w = ByteWriter::new();
    section.encode(&mut w);
    blob.section(SectionKind::TypeReplace, type_id as u32, w);
}

pub(super) fn write(
    ws: &mut WriteState,
    dir: Direction,
    origin: StateId,
    destination: StateId,
) -> Result<Vec<u8>> {
    if !ws.committed {
        return Err(Error::Write(
            "there is no committed state to write a delta from: write a snapshot and commit the cycle first".into(),
        ));
    }
    let mut blob = BlobWriter::new(BlobHeader {
        kind: match dir {
            Direction::Forward => BlobKind::Delta,
            Direction::Reverse => BlobKind::ReverseDelta,
        },
        origin,
        destination,
    });
    let (current, previous) = (ws.schema.clone(), ws.previous_schema.clone());
    match dir {
        Direction::Forward => {
            blob.schema_section(&current);
            crate::format::tags_section(&ws.tags, &mut blob);
            for (i, def) in current.types().iter().enumerate() {
                if ws.replaced[i] {
                    add_replacement(
                        &mut blob,
                        i,
                        type_section(&mut ws.types[i], def, Which::Current)?,
                    );
                } else if let Some(delta) = patch(&mut ws.types[i], def, dir)? {
                    add_patch(&mut blob, i, delta);
                }
            }
        }
        Direction::Reverse => {
            blob.schema_section(&previous);
            crate::format::tags_section(&ws.previous_tags, &mut blob);
            for (p, def) in previous.types().iter().enumerate() {
                let carried = previous
                    .counterpart_in(TypeId(p as u32), &current)
                    .filter(|c| !ws.replaced[c.index()]);
                if let Some(c) = carried {
                    if let Some(delta) = patch(&mut ws.types[c.index()], def, dir)? {
                        add_patch(&mut blob, p, delta);
                    }
                    continue;
                }
                let retired = ws
                    .retired
                    .get_mut(p)
                    .and_then(Option::as_mut)
                    .ok_or_else(|| {
                        Error::Write(format!("the previous state of type {} is gone", def.name()))
                    })?;
                add_replacement(&mut blob, p, type_section(retired, def, Which::Previous)?);
            }
        }
    }
    Ok(blob.finish())
}
