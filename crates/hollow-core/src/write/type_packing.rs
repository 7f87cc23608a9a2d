//! One type's records as a type section: choose each column's encoding, pack the rows, and lay
//! out dictionaries in ordinal order. Snapshots write every type this way; deltas write the
//! types they replace whole, and pack their added rows with the same encodings.

use bytes::Bytes;

use super::TypeWriter;
use crate::bitset::Bitset;
use crate::encoding::{ColumnEncoding, ValueRange};
use crate::error::Result;
use crate::format::type_section::{DictSection, PackedParts, TypeSection};
use crate::packed::{bits_needed, pack_values, ChunkedBitWriter, PutBits};
use crate::schema::TypeDef;

#[inline]
fn is_null(row: &[u64], mask_words: usize, column: usize) -> bool {
    mask_words > 0 && (row[column / 64] >> (column % 64)) & 1 == 1
}

/// How rows of one type are packed in one state: encodings and bit offsets.
pub(super) struct RowPacking {
    pub(super) encodings: Vec<ColumnEncoding>,
    offsets: Vec<u64>,
    pub(super) row_bits: u64,
}

impl RowPacking {
    pub(super) fn new(encodings: Vec<ColumnEncoding>) -> Self {
        let mut offsets = Vec::with_capacity(encodings.len());
        let mut row_bits = 0;
        for e in &encodings {
            offsets.push(row_bits);
            row_bits += e.width as u64;
        }
        Self {
            encodings,
            offsets,
            row_bits,
        }
    }

    /// Packs the canonical rows of one record starting at row `first_row`.
    pub(super) fn put_record(
        &self,
        w: &mut impl PutBits,
        first_row: u64,
        record: &[u64],
        mask_words: usize,
        row_words: usize,
    ) {
        for (r, row) in record.chunks_exact(row_words).enumerate() {
            let bit = (first_row + r as u64) * self.row_bits;
            for (c, enc) in self.encodings.iter().enumerate() {
                let value = (!is_null(row, mask_words, c)).then(|| row[mask_words + c]);
                w.put_bits(bit + self.offsets[c], enc.width, enc.encode(value));
            }
        }
    }
}

/// The range of each column's values over the present records that `skip` does not hold.
fn column_ranges(tw: &TypeWriter, def: &TypeDef, skip: &Bitset) -> Vec<ValueRange> {
    let mut ranges = vec![ValueRange::default(); def.columns().len()];
    let mut words = Vec::new();
    for o in tw.records.present().iter_minus(skip) {
        for row in tw
            .record(o as u32, &mut words)
            .chunks_exact(tw.shape.row_words)
        {
            for (c, col) in def.columns().iter().enumerate() {
                if !is_null(row, tw.shape.mask_words, c) {
                    ranges[c].add(col.ty.kind, row[tw.shape.mask_words + c]);
                }
            }
        }
    }
    ranges
}

/// The narrowest column a type may have. The elements of a collection take at least one bit,
/// so that a blob's bytes bound how many elements it can claim (see
/// [`max_zero_width_rows`](crate::format::field_codec::max_zero_width_rows)).
fn min_width(def: &TypeDef) -> u8 {
    def.is_collection() as u8
}

/// The encodings of the current state: the previous ones while the present values still fit,
/// else the minimal ones. Computed once per cycle and kept until the next record is added.
///
/// While the encodings are still those of the committed state, every committed record fits
/// them, so only the records new in this cycle are checked (a whole scan only when one does
/// not fit).
pub(super) fn choose_encodings(tw: &mut TypeWriter, def: &TypeDef) -> Result<Vec<ColumnEncoding>> {
    if let Some(e) = &tw.current_encodings {
        return Ok(e.clone());
    }
    let committed = tw.previous_encodings.as_ref().filter(|p| {
        p.len() == tw.encodings.len()
            && tw
                .encodings
                .iter()
                .zip(p.iter())
                .all(|(e, p)| *e == Some(*p))
    });
    if let Some(committed) = committed {
        let previous = tw.records.previous();
        let new = column_ranges(tw, def, previous);
        let all_fit = def
            .columns()
            .iter()
            .zip(committed)
            .zip(&new)
            .all(|((col, e), r)| {
                e.fits(col.ty.kind, col.ty.nullable, r) && e.width >= min_width(def)
            });
        if all_fit {
            let out = committed.clone();
            tw.current_encodings = Some(out.clone());
            return Ok(out);
        }
    }
    let ncols = def.columns().len();
    let ranges = column_ranges(tw, def, &Bitset::default());
    let mut out = Vec::with_capacity(ncols);
    for (c, col) in def.columns().iter().enumerate() {
        let mut enc = match tw.encodings[c] {
            Some(e) if e.fits(col.ty.kind, col.ty.nullable, &ranges[c]) => e,
            _ => ColumnEncoding::minimal(col.ty, &ranges[c])?,
        };
        enc.width = enc.width.max(min_width(def));
        tw.encodings[c] = Some(enc);
        out.push(enc);
    }
    tw.current_encodings = Some(out.clone());
    Ok(out)
}

/// Which state of a type writer to lay out: the current one or the last committed one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Which {
    /// The state being built in this cycle.
    Current,
    /// The last committed state.
    Previous,
}

fn view(i: &super::Interner, which: Which) -> (&crate::bitset::Bitset, u64) {
    match which {
        Which::Current => (i.present(), i.present_slots() as u64),
        Which::Previous => (i.previous(), i.previous_slots() as u64),
    }
}

/// The whole content of one type, as a snapshot section. Its arrays are packed in chunks, so
/// that the blob they are copied into can let each go as it is copied.
pub(super) fn type_section(
    tw: &mut TypeWriter,
    def: &TypeDef,
    which: Which,
) -> Result<TypeSection<PackedParts>> {
    let encodings = match which {
        Which::Current => choose_encodings(tw, def)?,
        Which::Previous => tw
            .previous_encodings
            .clone()
            .ok_or_else(|| crate::Error::Write("no committed state".into()))?,
    };
    let packing = RowPacking::new(encodings);
    let row_bits = packing.row_bits;
    let (present, slots) = view(&tw.records, which);
    let collection = def.is_collection();
    let row_count = if collection {
        present.iter().map(|o| tw.rows_of(o as u32)).sum()
    } else {
        slots
    };
    let mut rows = ChunkedBitWriter::with_bits(row_count * row_bits);
    // A collection's end rows are packed as they come: at 10 M records a vector of them
    // would be as large as the packed rows of the whole type.
    let ends_width = bits_needed(row_count);
    let mut ends = ChunkedBitWriter::with_bits(if collection {
        slots * ends_width as u64
    } else {
        0
    });
    let mut next_row = 0u64;
    let mut words = Vec::new();
    for o in 0..slots {
        if present.contains(o) {
            let record = tw.record(o as u32, &mut words);
            let first_row = if collection { next_row } else { o };
            packing.put_record(
                &mut rows,
                first_row,
                record,
                tw.shape.mask_words,
                tw.shape.row_words,
            );
            if collection {
                next_row += (record.len() / tw.shape.row_words) as u64;
            }
        }
        if collection {
            ends.put_bits(o * ends_width as u64, ends_width, next_row);
        }
    }
    let ends = collection.then(|| (ends_width, ends.into_parts()));
    let dicts = tw
        .dicts
        .iter()
        .flatten()
        .map(|d| dict_section(d, which))
        .collect();
    Ok(TypeSection {
        population: present.clone_with_len(slots),
        encodings: packing.encodings,
        row_count,
        rows: rows.into_parts(),
        ends,
        dicts,
    })
}

fn dict_section(dict: &super::Interner, which: Which) -> DictSection {
    let (present, entries) = view(dict, which);
    let mut pool = Vec::new();
    let mut ends = Vec::with_capacity(entries as usize);
    for e in 0..entries {
        if present.contains(e) {
            pool.extend_from_slice(dict.get(e as u32));
        }
        ends.push(pool.len() as u64);
    }
    let ends_width = bits_needed(pool.len() as u64);
    DictSection {
        population: present.clone_with_len(entries),
        ends_width,
        ends: pack_values(ends.into_iter(), ends_width),
        pool: Bytes::from(pool),
    }
}
