//! The raw blob container, shared by snapshots, deltas and reverse deltas.
//!
//! ```text
//! header   (56 B)  magic "HOLLOWRS" | format version u32 | blob kind u32 |
//!                  origin version u64 | origin tag u64 | destination version u64 |
//!                  destination tag u64 | section count u32 | 0 u32
//! table    (32 B × sections)  section kind u32 | type id u32 | offset u64 | length u64 | xxh3 u64
//! sections each 8-byte aligned, in table order
//! footer   (16 B)  magic "HOLLOWFT" | xxh3 of every byte before the footer
//! ```
//! All integers are little-endian. The reader checks the footer, then that sections lie in order
//! inside the blob, before any section is decoded. A footer that matches covers every section,
//! so their own checksums are computed only when it does not, to name the section that is
//! corrupt.
//!
//! The schema section comes first; a tags section (the state's key/value metadata: a varint
//! count, then each key and value as u32-length UTF-8, keys sorted and unique) may follow it,
//! and is left out when the state has no tags. Readers older than tags refuse a blob with one
//! (unknown section kind 4) rather than drop its tags.
//!
//! Format 1 had a 40-byte header without the two tags (origin version | destination version |
//! section count | 0); it is still read, its states with tag 0.

mod columnar;
pub mod compressed;
pub mod delta_section;
pub(crate) mod field_codec;
pub mod saved_indexes;
pub mod type_section;

use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_64;

pub use crate::blob_kind::BlobKind;
use crate::byte_io::{ByteReader, ByteWriter};
use crate::error::{CorruptReason, Error, Result};
use crate::StateId;

/// Magic bytes at the start of every blob.
pub const MAGIC: [u8; 8] = *b"HOLLOWRS";
/// Magic bytes at the start of the footer.
pub const FOOTER_MAGIC: [u8; 8] = *b"HOLLOWFT";
/// The newest format version this library writes and reads. A blob is written in format 3
/// only when its schema needs it (a primary key through a reference, a declared hash index);
/// otherwise in format 2, which readers older than format 3 read too. Format 1, whose header
/// had no tags, is still read.
pub const FORMAT_VERSION: u32 = 3;
/// The oldest format version this library reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

/// Bytes of a format-2 (or later) header.
pub const HEADER_LEN: usize = 56;
/// Bytes of a format-1 header.
const HEADER_LEN_V1: usize = 40;
/// Offset of the section count in a header of `format` (it ends the header, with 4 reserved bytes).
fn section_count_at(format: u32) -> usize {
    if format == 1 {
        HEADER_LEN_V1 - 8
    } else {
        HEADER_LEN - 8
    }
}
/// Bytes of one entry of the section table (kind u32, type u32, offset, length, checksum u64).
pub const SECTION_ENTRY_LEN: usize = 32;
/// Bytes of the footer (magic, checksum u64).
pub const FOOTER_LEN: usize = 16;

/// What a section holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionKind {
    /// The schema of the destination state.
    Schema,
    /// The records of one type: whole in a snapshot, the changes to it in a delta.
    TypeData,
    /// In a delta: the whole of one type, replacing what the origin state had under that name
    /// (the type is new, or its definition changed).
    TypeReplace,
    /// The destination state's tags (user key/value metadata), right after the schema.
    Tags,
}

impl SectionKind {
    fn code(self) -> u32 {
        match self {
            SectionKind::Schema => 1,
            SectionKind::TypeData => 2,
            SectionKind::TypeReplace => 3,
            SectionKind::Tags => 4,
        }
    }

    fn from_code(code: u32) -> Result<Self> {
        Ok(match code {
            1 => SectionKind::Schema,
            2 => SectionKind::TypeData,
            3 => SectionKind::TypeReplace,
            4 => SectionKind::Tags,
            c => {
                return Err(Error::corrupt(
                    "section table",
                    CorruptReason::UnknownCode {
                        what: "section kind",
                        code: c.into(),
                    },
                ))
            }
        })
    }
}

/// The fixed header fields of a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobHeader {
    /// Snapshot, delta or reverse delta.
    pub kind: BlobKind,
    /// The state a delta applies to (version 0 for a snapshot).
    pub origin: StateId,
    /// The state the blob produces.
    pub destination: StateId,
}

/// One verified section of a parsed blob.
#[derive(Clone, Debug)]
pub struct Section {
    /// What it holds.
    pub kind: SectionKind,
    /// For type data, the type's id in the blob's schema.
    pub type_id: u32,
    /// The section's bytes.
    pub data: Bytes,
    /// Offset of the section in the blob.
    pub offset: usize,
}

/// A blob whose header, footer and checksums have been verified.
#[derive(Clone, Debug)]
pub struct ParsedBlob {
    /// Header fields.
    pub header: BlobHeader,
    /// The format version the blob was written in.
    pub format: u32,
    /// The sections, in order.
    pub sections: Vec<Section>,
    /// The checksum of the whole blob, as its footer stores it.
    pub footer_checksum: u64,
}

/// How much of a blob's bytes a read verifies against its checksums. Its structure is always
/// validated whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContentCheck {
    /// Every byte, against the footer's checksum (and a section's own, to name the section
    /// that is corrupt when the footer does not match).
    Verify,
    /// None: the blob was verified before and its footer stored this checksum. The caller
    /// answers for the bytes not having changed since (as for a cache file whose size and
    /// change time are the same); a blob with another footer checksum is refused.
    AlreadyVerified {
        /// The footer checksum of the blob that was verified.
        footer_checksum: u64,
    },
}

impl ParsedBlob {
    /// Decodes the schema, which every blob carries as its first section, and the tags that
    /// may follow it, and returns them with the sections that follow.
    pub fn split_schema(self) -> Result<SplitBlob> {
        let mut sections = self.sections.into_iter().peekable();
        let first = sections
            .next()
            .filter(|s| s.kind == SectionKind::Schema)
            .ok_or_else(|| {
                Error::corrupt(
                    "section table",
                    CorruptReason::Missing {
                        what: "the schema section, first",
                    },
                )
            })?;
        let mut r = ByteReader::new(first.data, first.offset);
        let schema = crate::schema::Schema::decode(&mut r, self.format)?;
        r.finish("schema section")?;
        let tags = match sections.next_if(|s| s.kind == SectionKind::Tags) {
            Some(s) => decode_tags(s)?,
            None => Tags::new(),
        };
        Ok(SplitBlob {
            schema,
            tags,
            sections: sections.collect::<Vec<_>>().into_iter(),
        })
    }
}

/// A state's tags: user key/value metadata (as Kafka offsets), carried by every blob that
/// reaches the state.
pub type Tags = std::collections::BTreeMap<String, String>;

/// A parsed blob's schema and tags, and the sections after them.
#[derive(Debug)]
pub struct SplitBlob {
    /// The destination state's schema.
    pub schema: crate::schema::Schema,
    /// The destination state's tags (none when the blob has no tags section).
    pub tags: Tags,
    /// The type sections.
    pub sections: std::vec::IntoIter<Section>,
}

/// Appends a tags section, if there are tags.
pub fn tags_section(tags: &Tags, blob: &mut BlobWriter) {
    if tags.is_empty() {
        return;
    }
    let mut w = ByteWriter::new();
    w.varint(tags.len() as u64);
    for (key, value) in tags {
        w.str(key);
        w.str(value);
    }
    blob.section(SectionKind::Tags, 0, w);
}

fn decode_tags(section: Section) -> Result<Tags> {
    let mut r = ByteReader::new(section.data, section.offset);
    let count = r.varint("tag count")?;
    let mut tags = Tags::new();
    for at in 0..count {
        let key = r.str("tag key")?;
        let value = r.str("tag value")?;
        if tags.last_key_value().is_some_and(|(last, _)| *last >= key) {
            return Err(Error::corrupt(
                format!("tags, {key:?}"),
                CorruptReason::OutOfOrder {
                    what: "tag names",
                    at,
                },
            ));
        }
        tags.insert(key, value);
    }
    r.finish("tags section")?;
    Ok(tags)
}

/// Assembles a blob from sections.
#[derive(Debug)]
pub struct BlobWriter {
    header: BlobHeader,
    /// The format version written: the oldest that holds the schema.
    format: u32,
    /// Kind, type id and the section's bytes (in parts, copied once into the blob).
    sections: Vec<(SectionKind, u32, Vec<Bytes>)>,
}

impl BlobWriter {
    /// A blob with the given header and no sections yet.
    pub fn new(header: BlobHeader) -> Self {
        Self {
            header,
            format: FORMAT_VERSION - 1,
            sections: Vec::new(),
        }
    }

    /// Adds the schema section, which every blob starts with, and writes the blob in the
    /// oldest format that holds the schema.
    pub fn schema_section(&mut self, schema: &crate::schema::Schema) {
        let mut w = ByteWriter::new();
        schema.encode(&mut w);
        self.format = schema.format_version();
        self.section(SectionKind::Schema, 0, w);
    }

    /// Adds a section.
    pub fn section(&mut self, kind: SectionKind, type_id: u32, data: ByteWriter) {
        self.sections.push((kind, type_id, data.into_parts()));
    }

    /// The finished blob.
    pub fn finish(self) -> Vec<u8> {
        let table_end = HEADER_LEN + SECTION_ENTRY_LEN * self.sections.len();
        let data_len: usize = (self.sections.iter())
            .map(|(_, _, parts)| {
                parts
                    .iter()
                    .map(Bytes::len)
                    .sum::<usize>()
                    .next_multiple_of(8)
            })
            .sum();
        let buffer = Vec::with_capacity(table_end + data_len + FOOTER_LEN);
        let mut w = ByteWriter::from(buffer);
        w.bytes(&MAGIC);
        w.u32(self.format);
        w.u32(self.header.kind.code());
        w.u64(self.header.origin.version);
        w.u64(self.header.origin.tag);
        w.u64(self.header.destination.version);
        w.u64(self.header.destination.tag);
        w.u32(self.sections.len() as u32);
        w.u32(0);
        // The section table is filled in once the sections are copied in, each part let go of
        // as soon as it is: a blob and all of its sections are never held whole at once (at
        // 10 M movies that would be a second snapshot's worth of memory).
        let table_start = w.len();
        w.bytes(&vec![0; table_end - table_start]);
        let mut offset = table_end;
        for (i, (kind, type_id, parts)) in self.sections.into_iter().enumerate() {
            let mut checksum = xxhash_rust::xxh3::Xxh3::new();
            let mut len = 0;
            for part in parts {
                checksum.update(&part);
                w.bytes(&part);
                len += part.len();
            }
            w.align8();
            let mut entry = ByteWriter::new();
            entry.u32(kind.code());
            entry.u32(type_id);
            entry.u64(offset as u64);
            entry.u64(len as u64);
            entry.u64(checksum.digest());
            let at = table_start + i * SECTION_ENTRY_LEN;
            w.buf_mut()[at..at + SECTION_ENTRY_LEN].copy_from_slice(&entry.into_inner());
            offset += len.next_multiple_of(8);
        }
        let checksum = xxh3_64(w.buf_mut());
        w.bytes(&FOOTER_MAGIC);
        w.u64(checksum);
        w.into_inner()
    }
}

fn magic_at(blob: &[u8], offset: usize) -> [u8; 8] {
    let mut m = [0u8; 8];
    if let Some(s) = blob.get(offset..offset + 8) {
        m.copy_from_slice(s);
    }
    m
}

/// Reads only the header of a blob (magic, version, kind, states), without verifying checksums.
pub fn read_header(blob: &[u8]) -> Result<BlobHeader> {
    if compressed::is_compressed(blob) {
        let inner = compressed::decompress_if_compressed(Bytes::copy_from_slice(blob))?;
        return read_header_and_format(&inner).map(|(header, _)| header);
    }
    read_header_and_format(blob).map(|(header, _)| header)
}

fn truncated_header(blob: &[u8], needed: usize) -> Error {
    Error::Truncated {
        what: "blob header",
        offset: 0,
        needed: needed as u64,
        available: blob.len() as u64,
    }
}

/// The header and the format version it was written in.
fn read_header_and_format(blob: &[u8]) -> Result<(BlobHeader, u32)> {
    if blob.len() < 16 {
        return Err(truncated_header(blob, HEADER_LEN_V1));
    }
    if blob[..8] != MAGIC {
        return Err(Error::BadMagic {
            offset: 0,
            expected: MAGIC,
            found: magic_at(blob, 0),
        });
    }
    let mut r = ByteReader::new(Bytes::copy_from_slice(&blob[8..16]), 8);
    let format = r.u32("format version")?;
    let kind = r.u32("blob kind")?;
    let len = match format {
        1 => HEADER_LEN_V1,
        2..=FORMAT_VERSION => HEADER_LEN,
        found => {
            return Err(Error::UnsupportedFormatVersion {
                found,
                supported: FORMAT_VERSION,
            })
        }
    };
    if blob.len() < len {
        return Err(truncated_header(blob, len));
    }
    let kind = BlobKind::from_code(kind).ok_or_else(|| {
        Error::corrupt(
            "header",
            CorruptReason::UnknownCode {
                what: "blob kind",
                code: kind.into(),
            },
        )
    })?;
    let mut r = ByteReader::new(Bytes::copy_from_slice(&blob[16..len]), 16);
    let header = if format == 1 {
        BlobHeader {
            kind,
            origin: StateId::from(r.u64("origin version")?),
            destination: StateId::from(r.u64("destination version")?),
        }
    } else {
        BlobHeader {
            kind,
            origin: StateId::new(r.u64("origin version")?, r.u64("origin tag")?),
            destination: StateId::new(r.u64("destination version")?, r.u64("destination tag")?),
        }
    };
    Ok((header, format))
}

/// Verifies a whole blob and splits it into sections (zero-copy slices of `blob`). A compressed
/// blob (see [`compressed`]) is checked and decompressed first.
pub fn parse(blob: Bytes) -> Result<ParsedBlob> {
    parse_checked(blob, ContentCheck::Verify)
}

/// [`parse`], verifying the blob's bytes as `check` says.
pub fn parse_checked(blob: Bytes, check: ContentCheck) -> Result<ParsedBlob> {
    let blob = compressed::decompress_if_compressed(blob)?;
    let (header, format) = read_header_and_format(&blob)?;
    let count_at = section_count_at(format);
    let header_len = count_at + 8;
    let min = header_len + FOOTER_LEN;
    if blob.len() < min {
        return Err(Error::Truncated {
            what: "blob footer",
            offset: blob.len(),
            needed: min as u64,
            available: blob.len() as u64,
        });
    }
    let footer_at = blob.len() - FOOTER_LEN;
    if blob[footer_at..footer_at + 8] != FOOTER_MAGIC {
        return Err(Error::BadMagic {
            offset: footer_at,
            expected: FOOTER_MAGIC,
            found: magic_at(&blob, footer_at),
        });
    }
    let mut stored = [0u8; 8];
    stored.copy_from_slice(&blob[footer_at + 8..]);
    let stored = u64::from_le_bytes(stored);
    match check {
        ContentCheck::Verify => {
            let computed = xxh3_64(&blob[..footer_at]);
            if stored != computed {
                return Err(corrupt_section(&blob, count_at, footer_at).unwrap_or(
                    Error::ChecksumMismatch {
                        what: "footer (whole blob)".into(),
                        stored,
                        computed,
                    },
                ));
            }
        }
        ContentCheck::AlreadyVerified { footer_checksum } => {
            if stored != footer_checksum {
                return Err(Error::ChecksumMismatch {
                    what: "footer (whole blob), against the copy verified before".into(),
                    stored,
                    computed: footer_checksum,
                });
            }
        }
    }
    let mut r = ByteReader::new(blob.slice(count_at..footer_at), count_at);
    let count = r.u32("section count")? as u64;
    r.u32("reserved")?;
    let table_len = count * SECTION_ENTRY_LEN as u64;
    let mut table = ByteReader::new(r.take("section table", table_len)?, header_len);
    let mut sections = Vec::new();
    let mut expected_offset = header_len as u64 + table_len;
    for i in 0..count {
        let kind = SectionKind::from_code(table.u32("section kind")?)?;
        let type_id = table.u32("section type")?;
        let offset = table.u64("section offset")?;
        let len = table.u64("section length")?;
        table.u64("section checksum")?;
        if offset != expected_offset {
            return Err(Error::corrupt(
                format!("section {i} ({kind:?}, type {type_id})"),
                CorruptReason::Mismatch {
                    what: "section offset",
                    expected: expected_offset,
                    found: offset,
                },
            ));
        }
        let end = offset.checked_add(len).filter(|&e| e <= footer_at as u64);
        let Some(end) = end else {
            return Err(Error::Truncated {
                what: "section",
                offset: offset as usize,
                needed: len,
                available: (footer_at as u64).saturating_sub(offset),
            });
        };
        let data = blob.slice(offset as usize..end as usize);
        sections.push(Section {
            kind,
            type_id,
            data,
            offset: offset as usize,
        });
        expected_offset = end.next_multiple_of(8);
    }
    if expected_offset != footer_at as u64 {
        return Err(Error::corrupt(
            "section table",
            CorruptReason::LeftOver {
                what: "last section, before the footer",
                bytes: footer_at as u64 - expected_offset.min(footer_at as u64),
            },
        ));
    }
    Ok(ParsedBlob {
        header,
        format,
        sections,
        footer_checksum: stored,
    })
}

/// For a blob whose footer checksum does not match: the first section whose own checksum does
/// not either, as an error naming it; `None` when none is found (the header or table changed,
/// or the table cannot be walked).
fn corrupt_section(blob: &[u8], count_at: usize, footer_at: usize) -> Option<Error> {
    let u32_at = |at: usize| Some(u32::from_le_bytes(blob.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(blob.get(at..at + 8)?.try_into().ok()?));
    for i in 0..u32_at(count_at)? as usize {
        let entry = count_at + 8 + i * SECTION_ENTRY_LEN;
        let (kind, type_id) = (u32_at(entry)?, u32_at(entry + 4)?);
        let (offset, len, stored) = (u64_at(entry + 8)?, u64_at(entry + 16)?, u64_at(entry + 24)?);
        let end = offset.checked_add(len).filter(|&e| e <= footer_at as u64)?;
        let computed = xxh3_64(blob.get(offset as usize..end as usize)?);
        if stored != computed {
            let kind = SectionKind::from_code(kind).ok()?;
            return Some(Error::ChecksumMismatch {
                what: format!("section {i} ({kind:?}, type {type_id})"),
                stored,
                computed,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        sample_writer().finish()
    }

    fn sample_writer() -> BlobWriter {
        let mut w = BlobWriter::new(BlobHeader {
            kind: BlobKind::Delta,
            origin: StateId::new(7, 0xA7),
            destination: StateId::new(9, 0xB9),
        });
        w.section(SectionKind::Schema, 0, b"hello".to_vec().into());
        w.section(
            SectionKind::TypeData,
            3,
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9].into(),
        );
        w
    }

    #[test]
    fn round_trip() {
        let blob = sample();
        let p = parse(Bytes::from(blob)).unwrap();
        assert_eq!(p.header.kind, BlobKind::Delta);
        assert_eq!(
            (p.header.origin, p.header.destination),
            (StateId::new(7, 0xA7), StateId::new(9, 0xB9))
        );
        assert_eq!(&p.sections[0].data[..], b"hello");
        assert_eq!(p.sections[1].type_id, 3);
        assert_eq!(p.sections[1].data.len(), 9);
        assert_eq!(p.sections[1].offset % 8, 0);
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_an_error() {
        let blob = sample();
        for cut in 0..blob.len() {
            assert!(
                parse(Bytes::copy_from_slice(&blob[..cut])).is_err(),
                "cut {cut}"
            );
        }
        for i in 0..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 0x20;
            assert!(parse(Bytes::from(b)).is_err(), "flip {i}");
        }
    }

    /// A flipped byte inside a section is reported against that section; one in the header,
    /// against the footer.
    #[test]
    fn a_corrupt_section_is_named() {
        let blob = sample();
        let p = parse(Bytes::from(blob.clone())).unwrap();
        let flipped = |at: usize| {
            let mut b = blob.clone();
            b[at] ^= 1;
            match parse(Bytes::from(b)) {
                Err(Error::ChecksumMismatch { what, .. }) => what,
                other => panic!("flip at {at}: {other:?}"),
            }
        };
        assert_eq!(
            flipped(p.sections[1].offset + 4),
            "section 1 (TypeData, type 3)"
        );
        assert_eq!(flipped(24), "footer (whole blob)");
    }

    /// A blob verified before is read without its checksums, if its footer is the one
    /// verified; a byte changed since goes unseen (the caller's promise), another footer not.
    #[test]
    fn a_blob_verified_before_is_not_hashed_again() {
        let blob = sample();
        let footer_checksum = parse(Bytes::from(blob.clone())).unwrap().footer_checksum;
        let mut changed = blob.clone();
        let at = parse(Bytes::from(blob.clone())).unwrap().sections[1].offset;
        changed[at] ^= 1;
        let trusted = ContentCheck::AlreadyVerified { footer_checksum };
        let p = parse_checked(Bytes::from(changed.clone()), trusted).unwrap();
        assert_eq!(p.sections[1].data[0], 0);
        assert!(parse(Bytes::from(changed)).is_err());
        let other = ContentCheck::AlreadyVerified {
            footer_checksum: footer_checksum ^ 1,
        };
        assert!(matches!(
            parse_checked(Bytes::from(blob), other),
            Err(Error::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn typed_errors_for_magic_and_version() {
        let mut blob = sample();
        blob[0] = b'X';
        assert!(matches!(
            parse(Bytes::from(blob)),
            Err(Error::BadMagic { offset: 0, .. })
        ));
        let mut blob = sample();
        blob[8] = 4;
        assert!(matches!(
            parse(Bytes::from(blob)),
            Err(Error::UnsupportedFormatVersion {
                found: 4,
                supported: FORMAT_VERSION
            })
        ));
    }
}
