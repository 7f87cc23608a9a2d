//! The pieces both kinds of type section (a snapshot's and a delta's) read and write alike:
//! counts, bit widths, column encodings, and the bounds that keep a hostile count from costing
//! work the section's bytes cannot justify.

use crate::byte_io::{ByteReader, ByteWriter};
use crate::encoding::ColumnEncoding;
use crate::error::{CorruptReason, Error, Result};
use crate::packed::packed_len_bytes;
use crate::schema::TypeDef;

/// Rows of zero bits take no bytes, so nothing in a blob bounds how many of them it claims; yet
/// reading, checksumming or patching them costs work per row. A section may claim at most this
/// many of them: eight per byte of the section (as if each took a bit) and a little slack. A
/// writer never needs more, since the elements of collections take at least one bit and an
/// object's rows are bounded by its population bitmap.
pub fn max_zero_width_rows(section_len: usize) -> u64 {
    8 * section_len as u64 + 4096
}

/// Rejects a row count that the bytes of `type_name`'s section, read by `r`, cannot justify.
pub(crate) fn check_row_count(
    type_name: &str,
    row_count: u64,
    row_bits: u64,
    r: &ByteReader,
) -> Result<()> {
    let limit = max_zero_width_rows(r.position() + r.remaining());
    if row_bits == 0 && row_count > limit {
        return Err(Error::corrupt(
            type_name,
            CorruptReason::OutOfRange {
                what: "rows of zero bits",
                value: row_count,
                limit,
            },
        ));
    }
    Ok(())
}

/// Number of string or bytes columns: the dictionaries a section of `def` holds.
pub(crate) fn dictionary_columns(def: &TypeDef) -> usize {
    def.columns()
        .iter()
        .filter(|c| c.ty.kind.is_var_length())
        .count()
}

/// Reads a slot or entry count (ordinals are `u32`).
pub(crate) fn read_count(r: &mut ByteReader, what: &'static str) -> Result<u64> {
    let count = r.u64(what)?;
    if count > u32::MAX as u64 {
        return Err(Error::corrupt(
            format!("{what} at offset {}", r.blob_offset() - 8),
            CorruptReason::OutOfRange {
                what,
                value: count,
                limit: u32::MAX as u64,
            },
        ));
    }
    Ok(count)
}

/// Reads a bit width (at most 64) and its padding.
pub(crate) fn read_width(r: &mut ByteReader, what: &'static str) -> Result<u8> {
    let at = r.blob_offset();
    let width = r.u8(what)?;
    r.align8(what)?;
    if width > 64 {
        return Err(Error::corrupt(
            format!("{what} at offset {at}"),
            CorruptReason::OutOfRange {
                what,
                value: width.into(),
                limit: 64,
            },
        ));
    }
    Ok(width)
}

/// Writes the column count and each column's encoding (read back by [`read_encodings`]).
pub(crate) fn write_encodings(w: &mut ByteWriter, encodings: &[ColumnEncoding]) {
    w.u32(encodings.len() as u32);
    w.u32(0);
    for e in encodings {
        w.u64(e.base);
        w.u8(e.width);
        w.align8();
    }
}

/// Reads the column count (which must be the schema's) and each column's encoding.
pub(crate) fn read_encodings(r: &mut ByteReader, def: &TypeDef) -> Result<Vec<ColumnEncoding>> {
    let columns = def.columns().len();
    let stored = r.u32("column count")? as usize;
    r.u32("reserved")?;
    if stored != columns {
        return Err(Error::corrupt(
            def.name(),
            CorruptReason::Mismatch {
                what: "column count",
                expected: columns as u64,
                found: stored as u64,
            },
        ));
    }
    let mut encodings = Vec::with_capacity(columns);
    for _ in 0..columns {
        let base = r.u64("column base")?;
        let width = read_width(r, "column width")?;
        encodings.push(ColumnEncoding { base, width });
    }
    Ok(encodings)
}

/// The bytes `bits` packed bits of `what` take, or an error for a count that overflows.
pub(crate) fn packed_len_bytes_checked(what: &'static str, bits: u64) -> Result<u64> {
    if bits > u64::MAX - 128 {
        return Err(Error::corrupt(
            what,
            CorruptReason::Overflow { what: "bit count" },
        ));
    }
    Ok(packed_len_bytes(bits))
}
