//! A snapshot's bit-packed arrays laid out for a compressor, and back.
//!
//! zstd finds little in bit-packed rows: a column's values start at any bit, and the columns
//! of a row interleave. Before a snapshot is compressed, each of its packed arrays (a type's
//! rows, a collection's ends, a dictionary's ends) is rewritten column by column, every value
//! in whole bytes, and ends (which grow from one to the next) as the difference from the one
//! before; every other byte of the blob is kept, in order. zstd at level 3 makes 21.0 MB of
//! the 29.7 MB snapshot of the benchmark's 1 M movies so laid out, 25.2 MB of it as it is. The
//! layout is a copy of the snapshot's size, held while the snapshot is compressed.
//!
//! ```text
//! array_count u64
//! per array:  offset u64 | bytes u64 | values u64 | ends u8 (1: as differences) | 0 × 3 |
//!             column_count u32 | widths u8 × column_count
//! the blob's other bytes, in order
//! the arrays' columns, in array order, column after column: each value in ⌈width / 8⌉ bytes LE
//! ```
//! An array of `values` rows of the given column widths holds them end to end, row after
//! row, as [`BitWriter`](crate::packed::BitWriter) packs them, padding word included
//! (`bytes`). Restoring checks every count, width and offset against what is there before it
//! writes, so a crafted layout is an error, never a panic; the blob restored is then checked
//! against its own checksums as any other.

use bytes::Bytes;

#[cfg(any(feature = "zstd", test))]
use super::{type_section::TypeSection, BlobKind, SectionKind};
use crate::byte_io::ByteReader;
use crate::error::{CorruptReason, Error};
#[cfg(any(feature = "zstd", test))]
use crate::packed::PackedBits;
use crate::packed::{low_mask, packed_len_bytes};

/// One packed array of a blob.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PackedArray {
    /// Where it starts in the blob.
    offset: u64,
    /// Its bytes (a whole number of words, the padding word included).
    bytes: u64,
    /// Its rows (or ends).
    values: u64,
    /// Ends, stored as differences.
    ends: bool,
    /// The bit width of each column of a row (one column for ends).
    widths: Vec<u8>,
}

impl PackedArray {
    fn row_bits(&self) -> u64 {
        self.widths.iter().map(|&w| w as u64).sum()
    }

    /// Bytes of its columns, laid out.
    fn column_bytes(&self) -> Option<u64> {
        let row: u64 = self.widths.iter().map(|&w| w.div_ceil(8) as u64).sum();
        row.checked_mul(self.values)
    }
}

/// `blob` laid out for a compressor; `None` when it is not a snapshot whose type sections
/// read, or when the layout would not give `blob` back exactly (bits set past an array's
/// values): such a blob is compressed as it is.
#[cfg(any(feature = "zstd", test))] // laying out is compressing's
pub(crate) fn lay_out(blob: &Bytes) -> Option<Vec<u8>> {
    arrange(blob, &packed_arrays(blob)?)
}

/// `blob` laid out with its packed `arrays` (in blob order, apart) by columns; `None` when an
/// array would not come back bit for bit.
#[cfg(any(feature = "zstd", test))] // laying out is compressing's
fn arrange(blob: &Bytes, arrays: &[PackedArray]) -> Option<Vec<u8>> {
    let other: u64 = blob.len() as u64 - arrays.iter().map(|a| a.bytes).sum::<u64>();
    let columns: u64 = arrays
        .iter()
        .map(|a| a.column_bytes())
        .sum::<Option<u64>>()?;
    let mut out = Vec::with_capacity((64 + other + columns) as usize);
    out.extend_from_slice(&(arrays.len() as u64).to_le_bytes());
    for a in arrays {
        out.extend_from_slice(&a.offset.to_le_bytes());
        out.extend_from_slice(&a.bytes.to_le_bytes());
        out.extend_from_slice(&a.values.to_le_bytes());
        out.extend_from_slice(&[a.ends as u8, 0, 0, 0]);
        out.extend_from_slice(&(a.widths.len() as u32).to_le_bytes());
        out.extend_from_slice(&a.widths);
    }
    let mut at = 0usize;
    for a in arrays {
        out.extend_from_slice(&blob[at..a.offset as usize]);
        at = (a.offset + a.bytes) as usize;
    }
    out.extend_from_slice(&blob[at..]);
    for a in arrays {
        let bits = a.row_bits() * a.values;
        let bytes = blob.slice(a.offset as usize..(a.offset + a.bytes) as usize);
        // The array comes back bit for bit when its bits past the values are zero, as a
        // writer leaves them (a blob with others set is compressed as it is).
        let last = (bits / 64 * 8) as usize;
        let past = read_le(&bytes, last) & !low_mask((bits % 64) as u8);
        if a.bytes != packed_len_bytes(bits)
            || past != 0
            || bytes[last + 8..].iter().any(|&b| b != 0)
        {
            return None;
        }
        let start = out.len();
        lay_out_array(a, &PackedBits::new(bytes.clone(), bits)?, &mut out);
        debug_assert!({
            let mut restored = vec![0; bytes.len()];
            restore_array(a, &out[start..], &mut restored).is_ok() && restored == bytes
        });
    }
    Some(out)
}

/// The blob of `len` bytes that [`lay_out`] laid out as `data`; an error naming what does
/// not fit.
pub(crate) fn restore(data: Bytes, len: u64) -> crate::Result<Vec<u8>> {
    let array = |i: u64| format!("array {i} of a snapshot laid out by columns");
    let mut r = ByteReader::new(data, 0);
    let count = r.u64("array count")?;
    let mut arrays = Vec::new();
    let mut end = 0u64;
    let mut columns = 0u64;
    for i in 0..count {
        let offset = r.u64("array offset")?;
        let bytes = r.u64("array length")?;
        let values = r.u64("array values")?;
        let ends = match r.u32("array flags")? {
            0 => false,
            1 => true,
            code => {
                let reason = CorruptReason::UnknownCode {
                    what: "array flags",
                    code: code.into(),
                };
                return Err(Error::corrupt(array(i), reason));
            }
        };
        let column_count = r.u32("column count")?;
        let widths = r.take_slice("column widths", column_count.into())?.to_vec();
        let a = PackedArray {
            offset,
            bytes,
            values,
            ends,
            widths,
        };
        let fits = a.widths.iter().all(|&w| w <= 64)
            && !(a.ends && a.widths.len() != 1)
            && offset >= end
            && offset.checked_add(bytes).is_some_and(|e| e <= len)
            && a.row_bits()
                .checked_mul(values)
                .is_some_and(|bits| packed_len_bytes(bits) == bytes);
        let laid_out = a.column_bytes().filter(|_| fits);
        let Some(laid_out) = laid_out else {
            let what = format!(
                "{} ({values} values of widths {:?}, {bytes} bytes at {offset}; the blob has \
                 {len}, the array before ends at {end})",
                array(i),
                a.widths
            );
            let reason = CorruptReason::Unexpected {
                what: "an array that does not fit after the one before",
            };
            return Err(Error::corrupt(what, reason));
        };
        end = offset + bytes;
        columns = columns.checked_add(laid_out).ok_or_else(|| {
            let reason = CorruptReason::Overflow {
                what: "the arrays' columns",
            };
            Error::corrupt(array(i), reason)
        })?;
        arrays.push(a);
    }
    let other = len - arrays.iter().map(|a| a.bytes).sum::<u64>();
    let available = r.remaining() as u64;
    if Some(available) != other.checked_add(columns) {
        let reason = CorruptReason::Mismatch {
            what: "bytes after the arrays' table",
            expected: other.saturating_add(columns),
            found: available,
        };
        return Err(Error::corrupt("a snapshot laid out by columns", reason));
    }
    let mut blob = vec![0u8; len as usize];
    let mut at = 0usize;
    for a in &arrays {
        let piece = r.take_slice("the blob's other bytes", a.offset - at as u64)?;
        blob[at..a.offset as usize].copy_from_slice(piece);
        at = (a.offset + a.bytes) as usize;
    }
    let rest = r.take_slice("the blob's other bytes", len - at as u64)?;
    blob[at..].copy_from_slice(rest);
    for (i, a) in arrays.iter().enumerate() {
        let laid_out = r.take_slice("columns", a.column_bytes().unwrap_or(0))?;
        let target = &mut blob[a.offset as usize..(a.offset + a.bytes) as usize];
        restore_array(a, laid_out, target).map_err(|what| {
            let reason = CorruptReason::Unexpected { what };
            Error::corrupt(array(i as u64), reason)
        })?;
    }
    Ok(blob)
}

/// The packed arrays of the type sections of `blob`, a snapshot, in blob order.
#[cfg(any(feature = "zstd", test))] // laying out is compressing's
fn packed_arrays(blob: &Bytes) -> Option<Vec<PackedArray>> {
    let parsed = super::parse(blob.clone()).ok()?;
    if parsed.header.kind != BlobKind::Snapshot {
        return None;
    }
    let split = parsed.split_schema().ok()?;
    let base = blob.as_ptr() as usize;
    let offset_of = |part: &Bytes| -> Option<u64> {
        let at = (part.as_ptr() as usize).checked_sub(base)?;
        (at + part.len() <= blob.len()).then_some(at as u64)
    };
    let mut arrays = Vec::new();
    for section in split.sections {
        if section.kind != SectionKind::TypeData {
            continue;
        }
        let def = split.schema.types().get(section.type_id as usize)?;
        let ts = TypeSection::decode(section.data, section.offset, def).ok()?;
        let mut push = |part: &Bytes, values: u64, ends: bool, widths: Vec<u8>| -> Option<()> {
            if !part.is_empty() && values > 0 && widths.iter().any(|&w| w > 0) {
                arrays.push(PackedArray {
                    offset: offset_of(part)?,
                    bytes: part.len() as u64,
                    values,
                    ends,
                    widths,
                });
            }
            Some(())
        };
        let widths = ts.encodings.iter().map(|e| e.width).collect();
        push(&ts.rows, ts.row_count, false, widths)?;
        if let Some((width, ends)) = &ts.ends {
            push(ends, ts.population.len(), true, vec![*width])?;
        }
        for d in &ts.dicts {
            push(&d.ends, d.population.len(), true, vec![d.ends_width])?;
        }
    }
    arrays.sort_by_key(|a| a.offset);
    let apart = arrays
        .windows(2)
        .all(|w| w[0].offset + w[0].bytes <= w[1].offset);
    apart.then_some(arrays)
}

/// Appends the columns of array `a`, packed in `packed`: row by row, each value to its
/// column's place.
#[cfg(any(feature = "zstd", test))] // laying out is compressing's
fn lay_out_array(a: &PackedArray, packed: &PackedBits, out: &mut Vec<u8>) {
    let start = out.len();
    let total = a.column_bytes().unwrap_or(0) as usize;
    out.resize(start + total, 0);
    let columns = Columns::of(a, start);
    let mut at = columns.starts.clone();
    let mut before = 0u64;
    let mut bit = 0u64;
    for _ in 0..a.values {
        for (c, &width) in a.widths.iter().enumerate() {
            let mut v = packed.get(bit, width);
            bit += width as u64;
            if a.ends {
                (v, before) = (v.wrapping_sub(before) & low_mask(width), v);
            }
            let size = columns.sizes[c];
            write_le(&mut out[at[c]..at[c] + size], v);
            at[c] += size;
        }
    }
}

/// Writes the low bytes of `v` into `to`, little-endian.
#[inline(always)]
#[cfg(any(feature = "zstd", test))] // laying out is compressing's
fn write_le(to: &mut [u8], v: u64) {
    match to.len() {
        1 => to[0] = v as u8,
        2 => to.copy_from_slice(&(v as u16).to_le_bytes()),
        4 => to.copy_from_slice(&(v as u32).to_le_bytes()),
        8 => to.copy_from_slice(&v.to_le_bytes()),
        n => to.copy_from_slice(&v.to_le_bytes()[..n]),
    }
}

/// Packs the columns `laid_out` of array `a` into `target` (its bytes, zeroed).
fn restore_array(a: &PackedArray, laid_out: &[u8], target: &mut [u8]) -> Result<(), &'static str> {
    if (laid_out.len() as u64) < a.column_bytes().unwrap_or(u64::MAX) {
        return Err("columns cut short");
    }
    let columns = Columns::of(a, 0);
    let mut at = columns.starts.clone();
    let mut before = 0u64;
    let mut bit = 0u64;
    for _ in 0..a.values {
        for (c, &width) in a.widths.iter().enumerate() {
            let mut v = read_le(laid_out, at[c]) & low_mask(columns.sizes[c] as u8 * 8);
            at[c] += columns.sizes[c];
            if v > low_mask(width) {
                return Err("a value wider than its column");
            }
            if a.ends {
                v = before.wrapping_add(v) & low_mask(width);
                before = v;
            }
            // The target starts zeroed and every value has bits of its own.
            let (word, shift) = ((bit >> 6) as usize * 8, (bit & 63) as u32);
            if width > 0 {
                or_le(&mut target[word..word + 8], v << shift);
                if shift + width as u32 > 64 {
                    or_le(&mut target[word + 8..word + 16], v >> (64 - shift));
                }
            }
            bit += width as u64;
        }
    }
    Ok(())
}

/// ORs `v` into the 8 little-endian bytes `word`.
#[inline(always)]
fn or_le(word: &mut [u8], v: u64) {
    let now = u64::from_le_bytes(word.try_into().unwrap_or_default());
    word.copy_from_slice(&(now | v).to_le_bytes());
}

/// Where each column of an array starts among its laid-out bytes, and its bytes per value.
struct Columns {
    starts: Vec<usize>,
    sizes: Vec<usize>,
}

impl Columns {
    fn of(a: &PackedArray, first: usize) -> Self {
        let sizes: Vec<usize> = a.widths.iter().map(|w| w.div_ceil(8) as usize).collect();
        let starts = (sizes.iter())
            .scan(first, |at, size| {
                let start = *at;
                *at += size * a.values as usize;
                Some(start)
            })
            .collect();
        Self { starts, sizes }
    }
}

/// The 8 bytes at `at` of `bytes` as a little-endian number, zeros past the end.
#[inline(always)]
fn read_le(bytes: &[u8], at: usize) -> u64 {
    match bytes.get(at..at + 8) {
        Some(eight) => u64::from_le_bytes(eight.try_into().unwrap_or_default()),
        None => {
            let mut le = [0u8; 8];
            let rest = bytes.get(at..).unwrap_or_default();
            le[..rest.len().min(8)].copy_from_slice(&rest[..rest.len().min(8)]);
            u64::from_le_bytes(le)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::{SchemaBuilder, WriteState};

    #[derive(Serialize, Deserialize)]
    struct Part {
        code: i32,
        label: String,
    }

    #[derive(Serialize, Deserialize)]
    struct Item {
        id: i64,
        name: String,
        note: Option<String>,
        price: f32,
        flag: bool,
        parts: Vec<Part>,
        tags: Vec<String>,
        #[serde(with = "serde_bytes")]
        raw: Vec<u8>,
        /// The same in every record: a column of width 0.
        kind: i32,
    }

    fn item(i: i64) -> Item {
        Item {
            id: i * 7 - 300,
            name: format!("item {}", i % 97),
            note: (i % 3 == 0).then(|| "noted".repeat((i % 5) as usize)),
            price: (i % 100) as f32 / 10.0,
            flag: i % 2 == 0,
            parts: (0..i % 4)
                .map(|p| Part {
                    code: (i * p) as i32 % 1000,
                    label: format!("p{}", (i + p) % 13),
                })
                .collect(),
            tags: (0..i % 3).map(|t| format!("t{t}")).collect(),
            raw: vec![(i % 256) as u8; (i % 7) as usize],
            kind: 5,
        }
    }

    fn writer() -> WriteState {
        let schema = SchemaBuilder::new()
            .add::<Item>()
            .primary_key("Item", &["id"])
            .build()
            .unwrap();
        WriteState::new(schema)
    }

    fn snapshot(n: i64) -> Bytes {
        let mut w = writer();
        for i in 0..n {
            w.add(&item(i)).unwrap();
        }
        Bytes::from(w.write_snapshot(1).unwrap())
    }

    /// Rows, collection ends and dictionary ends of every type are laid out, and the blob
    /// comes back from the layout byte for byte.
    #[test]
    fn a_snapshot_comes_back_from_its_columns() {
        for n in [1, 2, 63, 64, 65, 1000] {
            let blob = snapshot(n);
            let arrays = packed_arrays(&blob).unwrap();
            if n >= 63 {
                // Items, parts; the lists' ends, the strings' and bytes' dictionaries.
                assert!(arrays.iter().filter(|a| !a.ends).count() >= 3, "{arrays:?}");
                assert!(arrays.iter().filter(|a| a.ends).count() >= 5, "{arrays:?}");
            }
            let laid_out = lay_out(&blob).unwrap();
            assert_ne!(&laid_out[..], &blob[..]);
            let back = restore(Bytes::from(laid_out), blob.len() as u64).unwrap();
            assert!(back == blob, "{n} records");
        }
    }

    /// Deltas and blobs that do not read are compressed as they are.
    #[test]
    fn only_snapshots_are_laid_out() {
        let mut w = writer();
        for i in 0..50 {
            w.add(&item(i)).unwrap();
        }
        w.write_snapshot(1).unwrap();
        w.commit_cycle().unwrap();
        for i in 25..80 {
            w.add(&item(i)).unwrap();
        }
        let delta = Bytes::from(w.write_delta(1, 2).unwrap());
        assert!(lay_out(&delta).is_none());
        assert!(lay_out(&Bytes::from_static(b"not a blob at all")).is_none());
        let mut damaged = snapshot(10).to_vec();
        damaged[100] ^= 1;
        assert!(lay_out(&Bytes::from(damaged)).is_none());
    }

    /// An array with bits set past its values (which no writer sets) would not come back:
    /// such a blob is not laid out.
    #[test]
    fn bits_past_the_values_keep_a_blob_as_it_is() {
        let array = |bytes: u64| PackedArray {
            offset: 8,
            bytes,
            values: 3,
            ends: false,
            widths: vec![5, 12],
        };
        let mut blob = vec![0xAB; 8];
        let mut packed = vec![0u8; 16];
        packed[0] = 0b1011_0110;
        packed[5] = 0x0F;
        blob.extend_from_slice(&packed);
        blob.extend_from_slice(&[0xCD; 5]);
        let laid_out = arrange(&Bytes::from(blob.clone()), &[array(16)]).unwrap();
        assert_eq!(
            restore(Bytes::from(laid_out), blob.len() as u64).unwrap(),
            blob
        );
        blob[8 + 12] = 1; // the padding word
        assert!(arrange(&Bytes::from(blob), &[array(16)]).is_none());
    }

    /// Whatever the laid-out bytes say, restoring them is an error or some blob, never a panic
    /// nor an allocation larger than they justify.
    #[test]
    fn damaged_layouts_are_errors_not_panics() {
        let blob = snapshot(200);
        let laid_out = lay_out(&blob).unwrap();
        let len = blob.len() as u64;
        let table_end = 8 + (laid_out.len().min(4096));
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let mut damaged = laid_out.clone();
            let at = (next() % table_end as u64) as usize;
            damaged[at] ^= 1 << (next() % 8);
            if next() % 4 == 0 {
                let at = (next() % table_end as u64) as usize & !7;
                let huge = [u64::MAX, 1 << 40, len, len + 8, 0][(next() % 5) as usize];
                damaged[at..at + 8].copy_from_slice(&huge.to_le_bytes());
            }
            if let Ok(back) = restore(Bytes::from(damaged), len) {
                assert_eq!(back.len() as u64, len);
            }
        }
        for cut in [0, 7, 8, 40, laid_out.len() / 2, laid_out.len() - 1] {
            assert!(
                restore(Bytes::copy_from_slice(&laid_out[..cut]), len).is_err(),
                "cut at {cut}"
            );
        }
        for len in [0, len - 8, len + 8, 1 << 40] {
            assert!(
                restore(Bytes::from(laid_out.clone()), len).is_err(),
                "length {len}"
            );
        }
    }
}
