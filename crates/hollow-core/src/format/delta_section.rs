//! The raw layout of one type's section in a delta (or reverse delta): which ordinals leave,
//! which arrive with their rows, and the encodings of the destination state. Types a delta does
//! not mention are unchanged.
//!
//! ```text
//! slot_count u64                         of the destination state
//! removed    count u64 | varint gaps, zero-padded to 8
//! added      count u64 | varint gaps, zero-padded to 8
//! column_count u32 | 0 u32, per column: base u64 | width u8 | 7 × 0
//! objects:      rows of the added records, packed
//! collections:  sizes_width u8 | 7 × 0 | sizes packed (rows per added record) |
//!               row_count u64 | rows packed
//! per string/bytes column:
//!   slot_count u64 | removed | added | lengths_width u8 | 7 × 0 | lengths packed |
//!   pool_len u64 | pool bytes zero-padded to 8
//! ```
//! Gap lists hold ascending ordinals as the difference to the previous one (the first as is).

use bytes::Bytes;

use super::field_codec::{
    check_row_count, dictionary_columns, packed_len_bytes_checked, read_count, read_encodings,
    read_width, write_encodings,
};
use crate::byte_io::{ByteReader, ByteWriter};
use crate::encoding::ColumnEncoding;
use crate::error::{CorruptReason, Error, OrdinalProblem, Result};
use crate::schema::TypeDef;

/// Changes to one dictionary.
#[derive(Clone, Debug, Default)]
pub struct DictDelta {
    /// Entry slots of the destination dictionary.
    pub slot_count: u64,
    /// Entries that leave, ascending.
    pub removed: Vec<u32>,
    /// Entries that arrive, ascending.
    pub added: Vec<u32>,
    /// Bit width of `lengths`.
    pub lengths_width: u8,
    /// Packed byte length of each added entry.
    pub lengths: Bytes,
    /// The added entries' bytes, back to back.
    pub pool: Bytes,
}

/// Changes to one type.
#[derive(Clone, Debug, Default)]
pub struct TypeDelta {
    /// Ordinal slots of the destination state.
    pub slot_count: u64,
    /// Records that leave, ascending.
    pub removed: Vec<u32>,
    /// Records that arrive, ascending.
    pub added: Vec<u32>,
    /// Column encodings of the destination state.
    pub encodings: Vec<ColumnEncoding>,
    /// For collections: (bit width, packed row count of each added record).
    pub sizes: Option<(u8, Bytes)>,
    /// Rows of the added records, packed in the destination encodings.
    pub row_count: u64,
    /// Packed rows.
    pub rows: Bytes,
    /// Per string or bytes column.
    pub dicts: Vec<DictDelta>,
}

fn write_ordinals(w: &mut ByteWriter, ordinals: &[u32]) {
    w.u64(ordinals.len() as u64);
    let mut prev = 0u64;
    for (i, &o) in ordinals.iter().enumerate() {
        let o = o as u64;
        w.varint(if i == 0 { o } else { o - prev });
        prev = o;
    }
    w.align8();
}

fn read_ordinals(r: &mut ByteReader, what: &'static str, slot_count: u64) -> Result<Vec<u32>> {
    let count = r.u64(what)?;
    // Every ordinal takes at least one byte: a count past the bytes left is corrupt.
    if count > r.remaining() as u64 {
        return Err(Error::Truncated {
            what,
            offset: r.position(),
            needed: count,
            available: r.remaining() as u64,
        });
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut prev = 0u64;
    for i in 0..count {
        let gap = r.varint(what)?;
        let o = if i == 0 {
            gap
        } else {
            prev.checked_add(gap).filter(|_| gap > 0).ok_or_else(|| {
                Error::corrupt(
                    what,
                    CorruptReason::OutOfOrder {
                        what: "ordinals",
                        at: i,
                    },
                )
            })?
        };
        if o >= slot_count {
            return Err(Error::corrupt(
                what,
                CorruptReason::Ordinal {
                    ordinal: o,
                    problem: OrdinalProblem::PastSlotCount { slot_count },
                },
            ));
        }
        out.push(o as u32);
        prev = o;
    }
    r.align8(what)?;
    Ok(out)
}

fn packed(r: &mut ByteReader, what: &'static str, bits: Option<u64>) -> Result<Bytes> {
    let bits =
        bits.ok_or_else(|| Error::corrupt(what, CorruptReason::Overflow { what: "size" }))?;
    r.take(what, packed_len_bytes_checked(what, bits)?)
}

impl TypeDelta {
    /// Appends the section's bytes.
    pub fn encode(&self, w: &mut ByteWriter) {
        w.u64(self.slot_count);
        write_ordinals(w, &self.removed);
        write_ordinals(w, &self.added);
        write_encodings(w, &self.encodings);
        if let Some((width, sizes)) = &self.sizes {
            w.u8(*width);
            w.align8();
            w.bytes(sizes);
            w.u64(self.row_count);
        }
        w.share(&self.rows);
        for d in &self.dicts {
            w.u64(d.slot_count);
            write_ordinals(w, &d.removed);
            write_ordinals(w, &d.added);
            w.u8(d.lengths_width);
            w.align8();
            w.share(&d.lengths);
            w.u64(d.pool.len() as u64);
            w.share(&d.pool);
            w.align8();
        }
    }

    /// Reads the section of type `def` (as the destination schema defines it).
    pub fn decode(data: Bytes, base: usize, def: &TypeDef) -> Result<Self> {
        let mut r = ByteReader::new(data, base);
        let slot_count = read_count(&mut r, "slot count")?;
        let removed = read_ordinals(&mut r, "removed ordinals", u32::MAX as u64)?;
        let added = read_ordinals(&mut r, "added ordinals", slot_count)?;
        let encodings = read_encodings(&mut r, def)?;
        let row_bits: u64 = encodings.iter().map(|e| e.width as u64).sum();
        let (sizes, row_count) = if def.is_collection() {
            let w = read_width(&mut r, "sizes width")?;
            let sizes = packed(&mut r, "sizes", (added.len() as u64).checked_mul(w as u64))?;
            (Some((w, sizes)), r.u64("row count")?)
        } else {
            (None, added.len() as u64)
        };
        check_row_count(def.name(), row_count, row_bits, &r)?;
        let rows = packed(&mut r, "added rows", row_count.checked_mul(row_bits))?;
        let mut dict_deltas = Vec::new();
        for _ in 0..dictionary_columns(def) {
            let slot_count = read_count(&mut r, "dictionary slot count")?;
            let removed = read_ordinals(&mut r, "removed entries", u32::MAX as u64)?;
            let added = read_ordinals(&mut r, "added entries", slot_count)?;
            let lengths_width = read_width(&mut r, "lengths width")?;
            let lengths = packed(
                &mut r,
                "entry lengths",
                (added.len() as u64).checked_mul(lengths_width as u64),
            )?;
            let pool_len = r.u64("pool length")?;
            let pool = r.take("pool", pool_len)?;
            r.align8("pool padding")?;
            dict_deltas.push(DictDelta {
                slot_count,
                removed,
                added,
                lengths_width,
                lengths,
                pool,
            });
        }
        r.finish("delta section")?;
        Ok(Self {
            slot_count,
            removed,
            added,
            encodings,
            sizes,
            row_count,
            rows,
            dicts: dict_deltas,
        })
    }
}
