//! One type's records in a read state: decoded from a type section, validated once, then read
//! without further checks beyond an ordinal bounds test.

use std::sync::Arc;

use bytes::Bytes;

use crate::bitset::Bitset;
use crate::encoding::{decode, ColumnEncoding};
use crate::error::{CorruptReason, Error, Result};
use crate::format::type_section::{DictSection, TypeSection};
use crate::packed::{same_bit_range, same_bits, BitWriter, PackedArray, PackedBits};
use crate::row_overlay::RowOverlay;
use crate::schema::{Kind, Schema, TypeDef, TypeId};

/// Where a column lives in a row and how to decode it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ColumnLayout {
    pub(crate) encoding: ColumnEncoding,
    /// Bit offset within the row.
    pub(crate) offset: u64,
    pub(crate) nullable: bool,
    pub(crate) kind: Kind,
}

/// Feeds `hasher` the first `bits` bits of the packed little-endian `bytes`, as whole words,
/// the bits past them in the last word cleared: whatever follows the data (another row of a
/// base, padding) is not part of it.
fn hash_packed(hasher: &mut xxhash_rust::xxh3::Xxh3, bytes: &[u8], bits: u64) {
    let whole = (bits / 64) as usize * 8;
    hasher.update(&bytes[..whole.min(bytes.len())]);
    if !bits.is_multiple_of(64) {
        let mut last = [0u8; 8];
        let tail = bytes.get(whole..).unwrap_or_default();
        let n = tail.len().min(8);
        last[..n].copy_from_slice(&tail[..n]);
        let word = u64::from_le_bytes(last) & ((1u64 << (bits % 64)) - 1);
        hasher.update(&word.to_le_bytes());
    }
}

/// Feeds a hasher packed bits appended piece by piece, a block of words at a time: the same
/// digest as [`hash_packed`] of all of them at once.
struct PackedStream<'h> {
    hasher: &'h mut xxhash_rust::xxh3::Xxh3,
    block: BitWriter,
    /// Bits in the block.
    bits: u64,
}

impl<'h> PackedStream<'h> {
    /// Words in a block (64 KiB).
    const BLOCK_WORDS: usize = 8192;
    const BLOCK_BITS: u64 = Self::BLOCK_WORDS as u64 * 64;

    fn new(hasher: &'h mut xxhash_rust::xxh3::Xxh3) -> Self {
        Self {
            hasher,
            block: BitWriter::with_bits(Self::BLOCK_BITS),
            bits: 0,
        }
    }

    /// Appends `n` bits of `from` at bit `at`.
    fn append(&mut self, from: &PackedBits, at: u64, n: u64) {
        let mut done = 0;
        while done < n {
            let k = (Self::BLOCK_BITS - self.bits).min(n - done);
            self.block.copy_bits(self.bits, from, at + done, k);
            (self.bits, done) = (self.bits + k, done + k);
            if self.bits >= Self::BLOCK_BITS {
                self.flush();
            }
        }
    }

    /// Appends the low `width` bits of `value`.
    fn push(&mut self, value: u64, width: u8) {
        self.block.put(self.bits, width, value);
        self.bits += width as u64;
        if self.bits >= Self::BLOCK_BITS {
            self.flush();
        }
    }

    /// Hashes the block's words, a full block's, and starts the next block with the bits
    /// past it (in the padding word).
    fn flush(&mut self) {
        let words = self.block.words_mut();
        words.iter_mut().for_each(|w| *w = w.to_le());
        self.hasher
            .update(bytemuck::cast_slice(&words[..Self::BLOCK_WORDS]));
        let carried = u64::from_le(words[Self::BLOCK_WORDS]);
        words.fill(0);
        words[0] = carried;
        self.bits -= Self::BLOCK_BITS;
    }

    /// Hashes the bits left, as [`hash_packed`] would, and gives the hasher back.
    fn finish(mut self) -> &'h mut xxhash_rust::xxh3::Xxh3 {
        let words = self.block.words_mut();
        words.iter_mut().for_each(|w| *w = w.to_le());
        hash_packed(self.hasher, bytemuck::cast_slice(words), self.bits);
        self.hasher
    }
}

/// The bytes a section stores for `bits` packed bits (a buffer in memory may hold padding).
fn exact(bits: &PackedBits, len: u64) -> Bytes {
    bits.bytes()
        .slice(..crate::packed::packed_len_bytes(len) as usize)
}

/// Where a blob buffer is in memory: a state loaded from a snapshot reads its types in place,
/// as slices of the snapshot's buffer, and one slice keeps the whole buffer allocated. A state
/// remembers where that buffer is, so that once deltas have replaced most of what it reads from
/// it, the rest can be copied out and the buffer let go (see [`TypeData::copied_out_of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlobAddresses {
    start: usize,
    len: usize,
    /// When each type section gives its pages back as soon as no type reads it (see
    /// [`crate::snapshot_buffer`]): the bytes outside the type sections, which are all that
    /// stays allocated of what no type reads.
    outside_type_sections: Option<usize>,
}

impl BlobAddresses {
    pub(crate) fn of(blob: &[u8]) -> Self {
        Self {
            start: blob.as_ptr() as usize,
            len: blob.len(),
            outside_type_sections: None,
        }
    }

    /// The same buffer, whose type sections, `type_section_bytes` in all, give their pages
    /// back apart.
    pub(crate) fn releasing_sections(self, type_section_bytes: usize) -> Self {
        Self {
            outside_type_sections: Some(self.len.saturating_sub(type_section_bytes)),
            ..self
        }
    }

    /// Whether its type sections give their pages back apart.
    pub(crate) fn releases_sections(&self) -> bool {
        self.outside_type_sections.is_some()
    }

    /// The bytes of the buffer that stay allocated although no type reads them, given that
    /// types read `referenced` bytes of it.
    pub(crate) fn unreferenced_but_held(&self, referenced: usize) -> usize {
        match self.outside_type_sections {
            Some(outside) => outside,
            None => self.len.saturating_sub(referenced),
        }
    }

    /// The buffer's length.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether `bytes` is a (non-empty) slice of this buffer.
    fn holds(&self, bytes: &[u8]) -> bool {
        let at = bytes.as_ptr() as usize;
        !bytes.is_empty() && at >= self.start && at - self.start < self.len
    }

    /// The length of `bytes` if it is a slice of this buffer, else 0.
    fn share_of(&self, bytes: &[u8]) -> usize {
        if self.holds(bytes) {
            bytes.len()
        } else {
            0
        }
    }
}

/// A column's dictionary of byte strings.
#[derive(Clone, Debug)]
pub(crate) struct Dictionary {
    pub(crate) population: Bitset,
    /// Where each entry ends in `pool` (its base's, under an overlay).
    ends: PackedArray,
    pool: Bytes,
    utf8: bool,
    /// For a dictionary reached by deltas: the entries changed since its base, one byte per
    /// row (see [`crate::row_overlay`]).
    overlay: Option<RowOverlay>,
}

impl Dictionary {
    pub(crate) fn from_section(d: DictSection, utf8: bool, what: &str) -> Result<Self> {
        let entries = d.population.len();
        if d.population.end() != entries {
            return Err(Error::corrupt(
                what,
                CorruptReason::Mismatch {
                    what: "dictionary entries in use",
                    expected: entries,
                    found: d.population.end(),
                },
            ));
        }
        let ends = PackedArray::new(d.ends, entries, d.ends_width).ok_or_else(|| {
            Error::corrupt(
                what,
                CorruptReason::Missing {
                    what: "dictionary entry ends",
                },
            )
        })?;
        let mut prev = 0u64;
        for e in 0..entries {
            let end = ends.get(e);
            if end < prev {
                return Err(Error::corrupt(
                    what,
                    CorruptReason::OutOfOrder {
                        what: "dictionary entry ends",
                        at: e,
                    },
                ));
            }
            if utf8 && end < d.pool.len() as u64 && (d.pool[end as usize] as i8) < -64 {
                return Err(Error::corrupt(
                    format!("{what}, dictionary entry {e}"),
                    CorruptReason::NotUtf8 {
                        what: "the end of the entry",
                    },
                ));
            }
            prev = end;
        }
        if prev != d.pool.len() as u64 {
            return Err(Error::corrupt(
                what,
                CorruptReason::Mismatch {
                    what: "dictionary pool bytes",
                    expected: prev,
                    found: d.pool.len() as u64,
                },
            ));
        }
        if utf8 && std::str::from_utf8(&d.pool).is_err() {
            return Err(Error::corrupt(
                what,
                CorruptReason::NotUtf8 {
                    what: "string pool",
                },
            ));
        }
        Ok(Self {
            population: d.population,
            ends,
            pool: d.pool,
            utf8,
            overlay: None,
        })
    }

    /// `base`'s entries (its base's, shared) under `overlay`, with `population`. The overlay
    /// must hold every entry from the base's slot count on, each valid UTF-8 in a string
    /// dictionary: it is built from checked entries (`read::apply`).
    pub(crate) fn overlaid(base: &Dictionary, population: Bitset, overlay: RowOverlay) -> Self {
        Self {
            population,
            ends: base.ends.clone(),
            pool: base.pool.clone(),
            utf8: base.utf8,
            overlay: Some(overlay),
        }
    }

    /// Whether it holds strings (checked as UTF-8), not bytes.
    pub(crate) fn is_utf8(&self) -> bool {
        self.utf8
    }

    /// The overlay of a dictionary reached by deltas.
    pub(crate) fn overlay(&self) -> Option<&RowOverlay> {
        self.overlay.as_ref()
    }

    /// How many bytes its base's pool holds.
    pub(crate) fn base_pool_len(&self) -> u64 {
        self.pool.len() as u64
    }

    /// How many entry slots its base holds.
    pub(crate) fn base_len(&self) -> u64 {
        self.ends.len()
    }

    /// True when both dictionaries hold the same entries in the same bytes.
    pub(crate) fn same_bytes_as(&self, other: &Dictionary) -> bool {
        if self.overlay.is_some() || other.overlay.is_some() {
            let (a, b) = (self.to_section(), other.to_section());
            return a.population == b.population
                && a.ends_width == b.ends_width
                && a.ends == b.ends
                && a.pool == b.pool;
        }
        self.population == other.population
            && self.ends.width() == other.ends.width()
            && self.ends.bits().bytes() == other.ends.bits().bytes()
            && self.pool == other.pool
    }

    /// The dictionary as stored: the inverse of `from_section`, sharing its buffers (written
    /// out whole under an overlay).
    pub(crate) fn to_section(&self) -> DictSection {
        if self.overlay.is_some() {
            let mut pool = Vec::new();
            let ends = (0..self.len()).map(|e| {
                pool.extend_from_slice(self.get(e).unwrap_or_default());
                pool.len() as u64
            });
            let ends: Vec<u64> = ends.collect();
            let ends_width = crate::packed::bits_needed(pool.len() as u64);
            return DictSection {
                population: self.population.clone(),
                ends_width,
                ends: crate::packed::pack_values(ends.into_iter(), ends_width).slice(
                    ..crate::packed::packed_len_bytes(self.len() * ends_width as u64) as usize,
                ),
                pool: Bytes::from(pool),
            };
        }
        DictSection {
            population: self.population.clone(),
            ends_width: self.ends.width(),
            ends: exact(self.ends.bits(), self.ends.len() * self.ends.width() as u64),
            pool: self.pool.clone(),
        }
    }

    /// Number of entry slots.
    pub(crate) fn len(&self) -> u64 {
        self.population.len()
    }

    /// The bytes of entry `i`, `None` past the end.
    #[inline]
    pub(crate) fn get(&self, i: u64) -> Option<&[u8]> {
        if let Some(overlay) = &self.overlay {
            return self.overlaid_get(overlay, i);
        }
        if i >= self.ends.len() {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends.get(i - 1) } as usize;
        let end = self.ends.get(i) as usize;
        self.pool.get(start..end)
    }

    /// [`Dictionary::get`] under an overlay: out of line, so that a dictionary without one
    /// reads as before.
    #[inline(never)]
    fn overlaid_get<'a>(&'a self, overlay: &'a RowOverlay, i: u64) -> Option<&'a [u8]> {
        if i >= self.population.len() {
            return None;
        }
        if let Some(span) = overlay.span(i) {
            let base = overlay.base_rows();
            let bytes = overlay.rows().bytes();
            return bytes.get((span.start - base) as usize..(span.end - base) as usize);
        }
        if i >= self.ends.len() {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends.get(i - 1) } as usize;
        self.pool.get(start..self.ends.get(i) as usize)
    }

    /// Entry `i` as a string (`None` past the end or for a bytes dictionary).
    #[inline]
    pub(crate) fn get_str(&self, i: u64) -> Option<&str> {
        if !self.utf8 {
            return None;
        }
        let bytes = self.get(i)?;
        // SAFETY: `from_section` checked that the pool is valid UTF-8 and that every entry ends
        // (so the next one starts) on a character boundary, and an overlay holds entries that
        // were each checked as UTF-8 (`read::apply`); `get` only returns whole entries. This
        // skips re-validating on every hot-path string read.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.population.heap_bytes()
            + self.ends.heap_bytes()
            + self.pool.len()
            + self.overlay.as_ref().map_or(0, |o| o.heap_bytes())
    }

    /// Bytes of this dictionary that are slices of `blob`.
    fn bytes_in(&self, blob: BlobAddresses) -> usize {
        blob.share_of(self.ends.bits().bytes()) + blob.share_of(&self.pool)
    }

    /// This dictionary with every buffer that is a slice of `blob` copied into one of its own.
    fn copied_out_of(&self, blob: BlobAddresses) -> Self {
        let mut copy = self.clone();
        if blob.holds(self.ends.bits().bytes()) {
            copy.ends = self.ends.copied();
        }
        if blob.holds(&self.pool) {
            copy.pool = Bytes::copy_from_slice(&self.pool);
        }
        copy
    }
}

/// A type's rows as a delta leaves them: its base's rows (and a collection's ends), shared,
/// under an overlay of the rows changed since.
pub(crate) struct Overlaid {
    pub(crate) rows: PackedBits,
    pub(crate) ends: Option<PackedArray>,
    pub(crate) overlay: RowOverlay,
}

/// The records of one type.
#[derive(Clone, Debug)]
pub(crate) struct TypeData {
    pub(crate) population: Bitset,
    pub(crate) record_count: u64,
    pub(crate) columns: Vec<ColumnLayout>,
    pub(crate) row_bits: u64,
    pub(crate) row_count: u64,
    /// The rows, `row_bits` each; for a type reached by deltas, the rows of its base, shared,
    /// with `overlay` holding the rows that changed since.
    pub(crate) rows: PackedBits,
    pub(crate) overlay: Option<RowOverlay>,
    /// For a collection type, where each record's rows end in `rows` (its base's, under an
    /// overlay).
    pub(crate) ends: Option<PackedArray>,
    /// Per column, the dictionary of a string or bytes column.
    pub(crate) dicts: Vec<Option<Dictionary>>,
}

impl TypeData {
    /// Decodes and validates the snapshot section of type `def` (`base`: its offset in the blob).
    pub(crate) fn decode(data: Bytes, base: usize, def: &TypeDef) -> Result<Self> {
        Self::from_section(TypeSection::decode(data, base, def)?, def)
    }

    /// Validates a decoded section against its type definition.
    /// The type as stored, to write into a snapshot: the inverse of `from_section`, sharing
    /// its buffers.
    pub(crate) fn to_section(&self) -> TypeSection {
        let flat = self.flattened();
        TypeSection {
            rows: exact(&flat.rows, self.row_count * self.row_bits),
            ends: flat
                .ends
                .as_ref()
                .map(|e| (e.width(), exact(e.bits(), e.len() * e.width() as u64))),
            ..self.to_section_without_rows()
        }
    }

    /// [`TypeData::to_section`] without the rows (nor a collection's ends), which stay where
    /// they are: no type under an overlay is flattened.
    pub(crate) fn to_section_without_rows(&self) -> TypeSection {
        TypeSection {
            population: self.population.clone(),
            encodings: self.columns.iter().map(|c| c.encoding).collect(),
            row_count: self.row_count,
            rows: Bytes::new(),
            ends: None,
            dicts: self
                .dicts
                .iter()
                .flatten()
                .map(Dictionary::to_section)
                .collect(),
        }
    }

    /// Feeds `hasher` the rows of an object type as a snapshot lays them out (see
    /// [`TypeData::whole_rows`]), a block at a time, so that a type under an overlay is never
    /// flattened whole.
    pub(crate) fn hash_whole_rows(&self, hasher: &mut xxhash_rust::xxh3::Xxh3) {
        // Rows per block: a multiple of 64, so that every block starts on a word.
        const BLOCK_ROWS: u64 = 4096;
        let row_bits = self.row_bits;
        let base = self.rows.bytes();
        let Some(overlay) = &self.overlay else {
            // The same bytes as the blocks below, hashed in place.
            return hash_packed(hasher, base, self.row_count * row_bits);
        };
        let mut held = overlay.held().iter().enumerate().peekable();
        let mut first = 0;
        while first < self.row_count && row_bits > 0 {
            let n = BLOCK_ROWS.min(self.row_count - first);
            let start = (first * row_bits / 8) as usize;
            let mut block =
                BitWriter::from_le_bytes(base.get(start..).unwrap_or_default(), n * row_bits);
            while let Some((i, o)) = held.next_if(|&(_, o)| o < first + n) {
                let at = i as u64 * row_bits;
                block.copy_bits((o - first) * row_bits, overlay.rows(), at, row_bits);
            }
            let words = block.words_mut();
            words.iter_mut().for_each(|w| *w = w.to_le());
            hash_packed(hasher, bytemuck::cast_slice(words), n * row_bits);
            first += n;
        }
    }

    pub(crate) fn from_section(s: TypeSection, def: &TypeDef) -> Result<Self> {
        Self::from_section_over(s, None, None, def)
    }

    /// [`TypeData::from_section`] for a type whose rows are a base's with an overlay over
    /// them (the section's own rows, and ends, are then ignored), or as stored when `None`;
    /// and whose dictionaries are `dicts` (already checked: the section's are then ignored),
    /// or the section's when `None`.
    pub(crate) fn from_section_over(
        s: TypeSection,
        overlaid: Option<Overlaid>,
        dicts: Option<Vec<Dictionary>>,
        def: &TypeDef,
    ) -> Result<Self> {
        let name = def.name();
        let slots = s.population.len();
        if s.population.end() != slots {
            return Err(Error::corrupt(
                name,
                CorruptReason::Mismatch {
                    what: "ordinals in use",
                    expected: slots,
                    found: s.population.end(),
                },
            ));
        }
        let row_bits = s.row_bits();
        let mut offset = 0;
        let columns: Vec<ColumnLayout> = s
            .encodings
            .iter()
            .zip(def.columns())
            .map(|(enc, col)| {
                let layout = ColumnLayout {
                    encoding: *enc,
                    offset,
                    nullable: col.ty.nullable,
                    kind: col.ty.kind,
                };
                offset += enc.width as u64;
                layout
            })
            .collect();
        let (rows, overlay, section_ends) = match overlaid {
            Some(Overlaid {
                rows,
                ends,
                overlay,
            }) => {
                if def.is_collection() != overlay.has_spans()
                    || def.is_collection() != ends.is_some()
                {
                    return Err(Error::corrupt(
                        name,
                        CorruptReason::Unexpected {
                            what: "an overlay of another kind of type",
                        },
                    ));
                }
                (rows, Some(overlay), ends.map(Ok))
            }
            None => {
                let rows = PackedBits::new(s.rows, s.row_count * row_bits)
                    .ok_or_else(|| Error::corrupt(name, CorruptReason::Missing { what: "rows" }))?;
                (rows, None, s.ends.map(Err))
            }
        };
        // The ends of an overlay's base were checked when the base was; a section's are here.
        let ends = match (def.is_collection(), section_ends) {
            (true, Some(Ok(base_ends))) => Some(base_ends),
            (_, Some(Ok(_))) => None,
            (false, None) => {
                if s.row_count != slots {
                    return Err(Error::corrupt(
                        name,
                        CorruptReason::Mismatch {
                            what: "row count",
                            expected: slots,
                            found: s.row_count,
                        },
                    ));
                }
                None
            }
            (false, Some(Err(_))) => {
                return Err(Error::corrupt(
                    name,
                    CorruptReason::Unexpected {
                        what: "record end offsets of a type that is not a collection",
                    },
                ))
            }
            (true, None) => {
                return Err(Error::corrupt(
                    name,
                    CorruptReason::Missing {
                        what: "record end offsets",
                    },
                ))
            }
            (true, Some(Err((width, bytes)))) => {
                let ends = PackedArray::new(bytes, slots, width).ok_or_else(|| {
                    Error::corrupt(
                        name,
                        CorruptReason::Missing {
                            what: "record end offsets",
                        },
                    )
                })?;
                let mut prev = 0;
                for o in 0..slots {
                    let e = ends.get(o);
                    if e < prev {
                        return Err(Error::corrupt(
                            name,
                            CorruptReason::OutOfOrder {
                                what: "record end offsets",
                                at: o,
                            },
                        ));
                    }
                    // An empty slot holds no elements: states are laid out alike (see
                    // `read::equality`), and a delta copies the rows between two changes as one
                    // run.
                    if e != prev && !s.population.contains(o) {
                        return Err(Error::corrupt(
                            format!("{name}, ordinal {o}"),
                            CorruptReason::Unexpected {
                                what: "elements in an empty slot",
                            },
                        ));
                    }
                    prev = e;
                }
                if prev != s.row_count {
                    return Err(Error::corrupt(
                        name,
                        CorruptReason::Mismatch {
                            what: "row count",
                            expected: prev,
                            found: s.row_count,
                        },
                    ));
                }
                Some(ends)
            }
        };
        let mut section_dicts = s.dicts.into_iter();
        let mut checked_dicts = dicts.map(Vec::into_iter);
        let mut dicts = Vec::with_capacity(columns.len());
        for col in def.columns() {
            dicts.push(match col.ty.kind {
                k if k.is_var_length() => {
                    let what = format!("{name}.{}", col.name);
                    let missing =
                        || Error::corrupt(&what, CorruptReason::Missing { what: "dictionary" });
                    match &mut checked_dicts {
                        Some(checked) => Some(checked.next().ok_or_else(missing)?),
                        None => {
                            let d = section_dicts.next().ok_or_else(missing)?;
                            let utf8 = col.ty.kind == Kind::String;
                            Some(Dictionary::from_section(d, utf8, &what)?)
                        }
                    }
                }
                _ => None,
            });
        }
        let record_count = s.population.count();
        Ok(Self {
            population: s.population,
            record_count,
            columns,
            row_bits,
            row_count: s.row_count,
            rows,
            overlay,
            ends,
            dicts,
        })
    }

    /// One more than the highest ordinal.
    #[inline]
    pub(crate) fn slot_count(&self) -> u64 {
        self.population.len()
    }

    /// The canonical value of `column` in `row` (`None` = null). `row` must be below `row_count`.
    #[inline(always)]
    pub(crate) fn value(&self, row: u64, column: usize) -> Option<u64> {
        let c = &self.columns[column];
        let (bits, at) = self.row_at(row);
        let stored = bits.get(at + c.offset, c.encoding.width);
        decode(stored, c.encoding, c.nullable)
    }

    /// Hints the CPU to load the bits of `column` of `row`, which a later
    /// [`TypeData::value`] will read.
    #[inline(always)]
    pub(crate) fn prefetch_value(&self, row: u64, column: usize) {
        let (bits, at) = self.row_at(row);
        bits.prefetch(at + self.columns[column].offset);
    }

    /// Where the bits of `row` are: in the overlay, or in the rows.
    #[inline(always)]
    pub(crate) fn row_at(&self, row: u64) -> (&PackedBits, u64) {
        match &self.overlay {
            None => (&self.rows, row * self.row_bits),
            Some(overlay) => self.overlaid_row_at(overlay, row),
        }
    }

    /// [`TypeData::row_at`] with an overlay: out of line, so that loops over the rows of a
    /// type without one stay as tight as before. A collection's overlay numbers its rows on
    /// from the base's; an object type's row is its ordinal's.
    #[inline(never)]
    fn overlaid_row_at<'a>(&'a self, overlay: &'a RowOverlay, row: u64) -> (&'a PackedBits, u64) {
        let in_overlay = match overlay.has_spans() {
            true => row.checked_sub(overlay.base_rows()),
            false => overlay.position(row),
        };
        match in_overlay {
            Some(i) => (overlay.rows(), i * self.row_bits),
            None => (&self.rows, row * self.row_bits),
        }
    }

    /// This type without its overlay: the rows (and a collection's ends) written out as a
    /// snapshot stores them. Itself, borrowed, when it has no overlay.
    pub(crate) fn flattened(&self) -> std::borrow::Cow<'_, TypeData> {
        let Some(overlay) = &self.overlay else {
            return std::borrow::Cow::Borrowed(self);
        };
        let mut flat = self.clone();
        flat.overlay = None;
        match overlay.has_spans() {
            false => flat.rows = self.whole_rows(),
            true => {
                let (rows, ends) = self.whole_spans();
                (flat.rows, flat.ends) = (rows, Some(ends));
            }
        }
        std::borrow::Cow::Owned(flat)
    }

    /// Feeds `hasher` a collection's rows and ends as a snapshot stores them (see
    /// [`TypeData::whole_spans`]), a block at a time, so that a collection under an overlay is
    /// never flattened whole (at 10 M movies their lists of actors would take 26 MB).
    pub(crate) fn hash_whole_spans(&self, hasher: &mut xxhash_rust::xxh3::Xxh3) {
        let (slots, row_bits) = (self.slot_count(), self.row_bits);
        let ends_width = crate::packed::bits_needed(self.row_count);
        hasher.update(&[ends_width]);
        if let (None, Some(ends)) = (&self.overlay, &self.ends) {
            // The same bytes as the blocks below, hashed in place.
            hash_packed(hasher, self.rows.bytes(), self.row_count * row_bits);
            let ends_bits = ends.len() * ends.width() as u64;
            return hash_packed(hasher, ends.bits().bytes(), ends_bits);
        }
        let mut rows = PackedStream::new(hasher);
        let mut run: Option<(&PackedBits, u64, u64)> = None;
        for o in 0..slots {
            let r = self.row_range(o);
            if r.is_empty() {
                continue;
            }
            let (from, at) = self.row_at(r.start);
            let bits = (r.end - r.start) * row_bits;
            match &mut run {
                Some((f, a, n)) if std::ptr::eq(*f, from) && *a + *n == at => *n += bits,
                _ => {
                    if let Some((f, a, n)) = run {
                        rows.append(f, a, n);
                    }
                    run = Some((from, at, bits));
                }
            }
        }
        if let Some((f, a, n)) = run {
            rows.append(f, a, n);
        }
        let hasher = rows.finish();
        let mut ends = PackedStream::new(hasher);
        let mut cursor = 0;
        for o in 0..slots {
            let r = self.row_range(o);
            cursor += r.end - r.start;
            ends.push(cursor, ends_width);
        }
        ends.finish();
    }

    /// A collection's rows and ends as a snapshot stores them: every record's rows in ordinal
    /// order, runs that follow each other in the same buffer copied at once.
    fn whole_spans(&self) -> (PackedBits, PackedArray) {
        let (slots, row_bits) = (self.slot_count(), self.row_bits);
        let ends_width = crate::packed::bits_needed(self.row_count);
        let mut rows = BitWriter::with_bits(self.row_count * row_bits);
        let mut ends = BitWriter::with_bits(slots * ends_width as u64);
        // A run still to copy: from (buffer, bit), to bit, bits.
        let mut run: Option<(&PackedBits, u64, u64, u64)> = None;
        let mut cursor = 0u64;
        for o in 0..slots {
            let r = self.row_range(o);
            let n = r.end - r.start;
            if n > 0 {
                let (from, at) = self.row_at(r.start);
                match &mut run {
                    Some((f, a, _, bits)) if std::ptr::eq(*f, from) && *a + *bits == at => {
                        *bits += n * row_bits
                    }
                    _ => {
                        if let Some((f, a, to, bits)) = run {
                            rows.copy_bits(to, f, a, bits);
                        }
                        run = Some((from, at, cursor * row_bits, n * row_bits));
                    }
                }
                cursor += n;
            }
            ends.put(o * ends_width as u64, ends_width, cursor);
        }
        if let Some((f, a, to, bits)) = run {
            rows.copy_bits(to, f, a, bits);
        }
        let rows = PackedBits::new(rows.into_bytes(), self.row_count * row_bits);
        let ends = PackedArray::new(ends.into_bytes(), slots, ends_width);
        (rows.unwrap_or_default(), ends.unwrap_or_default())
    }

    /// The rows with the overlay's written over them: the rows as a snapshot stores them.
    /// Shared, not copied, when there is no overlay.
    pub(crate) fn whole_rows(&self) -> PackedBits {
        if self.overlay.is_none() {
            return self.rows.clone();
        }
        let bits = self.row_count * self.row_bits;
        PackedBits::new(self.whole_rows_writer(self.row_count).into_bytes(), bits)
            .unwrap_or_default()
    }

    /// A writer holding the whole rows (see [`TypeData::whole_rows`]) of the first `rows`
    /// ordinals, zeros past the row count.
    pub(crate) fn whole_rows_writer(&self, rows: u64) -> BitWriter {
        let row_bits = self.row_bits;
        let mut w = BitWriter::from_le_bytes(self.rows.bytes(), rows * row_bits);
        if let Some(overlay) = &self.overlay {
            for (i, o) in overlay.held().iter().enumerate() {
                if o < rows {
                    let at = i as u64 * row_bits;
                    w.copy_bits(o * row_bits, overlay.rows(), at, row_bits);
                }
            }
        }
        w
    }

    /// Whether the rows of both types (alike in layout and row count) hold the same bits: the
    /// runs that neither overlays compared at memory speed, the overlaid rows one by one.
    pub(crate) fn same_rows_as(&self, other: &TypeData) -> bool {
        let (rb, count) = (self.row_bits, self.row_count);
        if self.overlay.is_none() && other.overlay.is_none() {
            return same_bit_range(&self.rows, &other.rows, 0..count * rb);
        }
        fn held(t: &TypeData) -> &[u64] {
            t.overlay.as_ref().map_or(&[], |o| o.held().words())
        }
        let (mine, theirs) = (held(self), held(other));
        let words = mine.len().max(theirs.len());
        let mut from = 0;
        for w in 0..words {
            let mut either =
                mine.get(w).copied().unwrap_or(0) | theirs.get(w).copied().unwrap_or(0);
            while either != 0 {
                let o = w as u64 * 64 + either.trailing_zeros() as u64;
                either &= either - 1;
                if o >= count {
                    break;
                }
                let ((a, a_at), (b, b_at)) = (self.row_at(o), other.row_at(o));
                if !same_bit_range(&self.rows, &other.rows, from * rb..o * rb)
                    || !same_bits(a, a_at, b, b_at, rb)
                {
                    return false;
                }
                from = o + 1;
            }
        }
        same_bit_range(&self.rows, &other.rows, from * rb..count * rb)
    }

    /// The rows of collection record `ordinal` (numbered on past the base's for rows in an
    /// overlay: see [`crate::row_overlay`]).
    #[inline]
    pub(crate) fn row_range(&self, ordinal: u64) -> std::ops::Range<u64> {
        if let Some(span) = self.overlay.as_ref().and_then(|o| o.span(ordinal)) {
            return span;
        }
        match &self.ends {
            Some(ends) if ordinal < ends.len() => {
                let start = if ordinal == 0 {
                    0
                } else {
                    ends.get(ordinal - 1)
                };
                start..ends.get(ordinal)
            }
            Some(_) => 0..0,
            None => ordinal..ordinal + 1,
        }
    }

    /// Bytes of this type's buffers that are slices of `blob`.
    pub(crate) fn bytes_in(&self, blob: BlobAddresses) -> usize {
        blob.share_of(self.rows.bytes())
            + self
                .ends
                .as_ref()
                .map_or(0, |e| blob.share_of(e.bits().bytes()))
            + self
                .dicts
                .iter()
                .flatten()
                .map(|d| d.bytes_in(blob))
                .sum::<usize>()
    }

    /// This type with every buffer that is a slice of `blob` copied into one of its own: the
    /// same records, no longer keeping `blob` allocated.
    pub(crate) fn copied_out_of(&self, blob: BlobAddresses) -> Self {
        let mut copy = self.clone();
        if blob.holds(self.rows.bytes()) {
            copy.rows = self.rows.copied();
        }
        if let Some(ends) = self.ends.as_ref().filter(|e| blob.holds(e.bits().bytes())) {
            copy.ends = Some(ends.copied());
        }
        for d in copy.dicts.iter_mut().flatten() {
            *d = d.copied_out_of(blob);
        }
        copy
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.population.heap_bytes()
            + self.columns.capacity() * std::mem::size_of::<ColumnLayout>()
            + self.rows.heap_bytes()
            + self.overlay.as_ref().map_or(0, |o| o.heap_bytes())
            + self.ends.as_ref().map_or(0, |e| e.heap_bytes())
            + self
                .dicts
                .iter()
                .flatten()
                .map(|d| d.heap_bytes())
                .sum::<usize>()
    }
}

/// The records of every type of one state: what the indexes are built and walked from. The
/// read state implements it, so the indexes depend on this layer and not on the state engine
/// that holds them.
pub(crate) trait StateTypes: Sync {
    /// The state's schema.
    fn schema(&self) -> &Arc<Schema>;
    /// The records of type `id`.
    fn type_data(&self, id: TypeId) -> &Arc<TypeData>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packed::pack_values;
    use xxhash_rust::xxh3::Xxh3;

    /// Runs and values appended across many blocks, at every bit alignment, one value across
    /// a block's end: the digest of all of them packed at once.
    #[test]
    fn a_packed_stream_hashes_what_packing_all_at_once_would() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let source_words: Vec<u64> = (0..40_000).map(|_| next()).collect();
        let source_bits = source_words.len() as u64 * 64;
        let source =
            PackedBits::new(pack_values(source_words.iter().copied(), 64), source_bits).unwrap();
        let mut all = BitWriter::with_bits(source_bits * 3);
        let mut bits = 0;
        let mut streamed = Xxh3::new();
        let mut stream = PackedStream::new(&mut streamed);
        // A value straddling the end of the first block.
        let first = PackedStream::BLOCK_BITS - 3;
        all.copy_bits(0, &source, 5, first);
        stream.append(&source, 5, first);
        all.put(first, 9, 0x1FF);
        stream.push(0x1FF, 9);
        bits += first + 9;
        while bits < source_bits * 2 {
            if next() % 2 == 0 {
                let (at, n) = (next() % (source_bits / 2), next() % 100_000);
                all.copy_bits(bits, &source, at, n);
                stream.append(&source, at, n);
                bits += n;
            } else {
                let width = (next() % 65) as u8;
                let value = next() & crate::packed::low_mask(width);
                all.put(bits, width, value);
                stream.push(value, width);
                bits += width as u64;
            }
        }
        stream.finish();
        let mut whole = Xxh3::new();
        let bytes = all.into_bytes();
        hash_packed(&mut whole, &bytes, bits);
        assert!(bits > 8 * PackedStream::BLOCK_BITS);
        assert_eq!(streamed.digest(), whole.digest());
    }
}
