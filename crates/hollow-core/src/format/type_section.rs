//! The raw layout of one type's section in a snapshot. Every part is a whole number of 8-byte
//! words, so every array starts 8-byte aligned and can be read in place.
//!
//! ```text
//! slot_count u64                      ordinals 0..slot_count
//! population  ⌈slot_count/64⌉ × u64   bit o set = ordinal o holds a record
//! column_count u32 | 0 u32
//! per column: base u64 | width u8 | 7 × 0
//! row_count u64                       objects: = slot_count; collections: total elements
//! rows        packed, row_count × Σwidth bits + padding word
//! collections only: ends_width u8 | 7 × 0, ends packed (slot_count values: end row of each record)
//! per string/bytes column, in column order, its dictionary:
//!   entry_count u64 | population ⌈entry_count/64⌉ × u64 | pool_len u64 | ends_width u8 | 7 × 0
//!   ends packed (entry_count values: end byte of each entry) | pool bytes, zero-padded to 8
//! ```

use bytes::Bytes;

use crate::bitset::Bitset;
use crate::byte_io::{ByteReader, ByteWriter};
use crate::encoding::ColumnEncoding;
use crate::error::{CorruptReason, Error, Result};
use crate::schema::TypeDef;

use super::field_codec::{
    check_row_count, dictionary_columns, packed_len_bytes_checked, read_count, read_encodings,
    read_width, write_encodings,
};

/// A per-column dictionary of byte strings, as stored.
#[derive(Clone, Debug)]
pub struct DictSection {
    /// Which entries are in use.
    pub population: Bitset,
    /// Bit width of `ends`.
    pub ends_width: u8,
    /// Packed end offsets, one per entry.
    pub ends: Bytes,
    /// The entries' bytes, back to back in entry order.
    pub pool: Bytes,
}

/// One type's records, as stored. Its packed arrays are `Rows`: one [`Bytes`] each when read
/// from a blob, or the chunks a writer packed them in (`PackedParts`).
#[derive(Clone, Debug)]
pub struct TypeSection<Rows = Bytes> {
    /// Which ordinals hold a record (its length is the slot count).
    pub population: Bitset,
    /// One encoding per column.
    pub encodings: Vec<ColumnEncoding>,
    /// Number of rows.
    pub row_count: u64,
    /// Packed rows.
    pub rows: Rows,
    /// For collections: (bit width, packed end row per ordinal).
    pub ends: Option<(u8, Rows)>,
    /// One dictionary per string or bytes column.
    pub dicts: Vec<DictSection>,
}

/// A packed array written as chunks, end to end (see
/// [`ChunkedBitWriter`](crate::packed::ChunkedBitWriter)).
pub type PackedParts = Vec<Bytes>;

/// The bytes of a packed array of a [`TypeSection`], however it holds them.
pub trait PackedBytes {
    /// Appends the bytes, shared rather than copied.
    fn share_into(&self, w: &mut ByteWriter);
}

impl PackedBytes for Bytes {
    fn share_into(&self, w: &mut ByteWriter) {
        w.share(self)
    }
}

impl PackedBytes for PackedParts {
    fn share_into(&self, w: &mut ByteWriter) {
        self.iter().for_each(|part| w.share(part))
    }
}

impl<Rows> TypeSection<Rows> {
    /// Bits in one row.
    pub fn row_bits(&self) -> u64 {
        self.encodings.iter().map(|e| e.width as u64).sum()
    }
}

impl<Rows: PackedBytes> TypeSection<Rows> {
    /// Appends the section's bytes.
    pub fn encode(&self, w: &mut ByteWriter) {
        w.u64(self.population.len());
        self.population.write_to(w.buf_mut());
        write_encodings(w, &self.encodings);
        w.u64(self.row_count);
        self.rows.share_into(w);
        if let Some((width, ends)) = &self.ends {
            w.u8(*width);
            w.align8();
            ends.share_into(w);
        }
        for d in &self.dicts {
            w.u64(d.population.len());
            d.population.write_to(w.buf_mut());
            w.u64(d.pool.len() as u64);
            w.u8(d.ends_width);
            w.align8();
            w.share(&d.ends);
            w.share(&d.pool);
            w.align8();
        }
    }
}

impl TypeSection {
    /// Reads the section of type `def`. Checks that every part is within the section; never
    /// allocates more than the bytes present justify.
    pub fn decode(data: Bytes, base: usize, def: &TypeDef) -> Result<Self> {
        let mut r = ByteReader::new(data, base);
        let slot_count = read_count(&mut r, "slot count")?;
        let population = read_population(&mut r, slot_count)?;
        let encodings = read_encodings(&mut r, def)?;
        let row_count = r.u64("row count")?;
        let row_bits: u64 = encodings.iter().map(|e| e.width as u64).sum();
        let bits = row_count.checked_mul(row_bits).ok_or_else(|| {
            Error::corrupt(def.name(), CorruptReason::Overflow { what: "row bits" })
        })?;
        check_row_count(def.name(), row_count, row_bits, &r)?;
        let rows = r.take("rows", packed_len_bytes_checked("rows", bits)?)?;
        let ends = if def.is_collection() {
            let width = read_width(&mut r, "ends width")?;
            let bytes = r.take(
                "ends",
                packed_len_bytes_checked("ends", slot_count * width as u64)?,
            )?;
            Some((width, bytes))
        } else {
            None
        };
        let mut dict_sections = Vec::new();
        for _ in 0..dictionary_columns(def) {
            let entries = read_count(&mut r, "dictionary entry count")?;
            let population = read_population(&mut r, entries)?;
            let pool_len = r.u64("dictionary pool length")?;
            let ends_width = read_width(&mut r, "dictionary ends width")?;
            let ends = r.take(
                "dictionary ends",
                packed_len_bytes_checked("dictionary ends", entries * ends_width as u64)?,
            )?;
            let pool = r.take("dictionary pool", pool_len)?;
            r.align8("dictionary pool padding")?;
            dict_sections.push(DictSection {
                population,
                ends_width,
                ends,
                pool,
            });
        }
        r.finish("type section")?;
        Ok(Self {
            population,
            encodings,
            row_count,
            rows,
            ends,
            dicts: dict_sections,
        })
    }
}

fn read_population(r: &mut ByteReader, len: u64) -> Result<Bitset> {
    let at = r.blob_offset();
    let bytes = r.take_slice("population", len.div_ceil(64) * 8)?;
    Bitset::from_le_bytes(bytes, len).ok_or_else(|| {
        Error::corrupt(
            format!("population at offset {at}"),
            CorruptReason::Unexpected {
                what: "bits past the population's length",
            },
        )
    })
}
