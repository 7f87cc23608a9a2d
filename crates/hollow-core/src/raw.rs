//! The blob format's building blocks, below the level of states: for tools that inspect blobs
//! section by section, and for tests that craft hostile blobs (every checksum valid) the way an
//! attacker would. Using hollow needs none of this, and it changes with the format.
//!
//! A blob is a header naming its kind and the states it joins, a table of checksummed
//! sections (the schema, then one per type), and a footer checksum over everything before it;
//! see [`parse`] and [`BlobWriter`].

pub use crate::bitset::Bitset;
pub use crate::byte_io::{ByteReader, ByteWriter};
pub use crate::encoding::ColumnEncoding;
pub use crate::format::compressed;
pub use crate::format::delta_section::{DictDelta, TypeDelta};
pub use crate::format::field_codec::max_zero_width_rows;
pub use crate::format::type_section::{DictSection, TypeSection};
pub use crate::format::{
    parse, read_header, tags_section, BlobHeader, BlobWriter, ParsedBlob, Section, SectionKind,
    SplitBlob, FOOTER_LEN, FOOTER_MAGIC, FORMAT_VERSION, HEADER_LEN, MAGIC, OLDEST_FORMAT_VERSION,
    SECTION_ENTRY_LEN,
};
pub use crate::packed::pack_values;
