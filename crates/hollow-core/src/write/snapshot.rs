//! Writing the current state as a snapshot: every type's section (see [`super::type_packing`]),
//! spread over the machine's cores.

use super::type_packing::{type_section, Which};
use super::WriteState;
use crate::byte_io::ByteWriter;
use crate::error::Result;
use crate::format::{BlobHeader, BlobKind, BlobWriter, SectionKind};
use crate::StateId;

pub(super) fn write(ws: &mut WriteState, id: StateId) -> Result<Vec<u8>> {
    let mut blob = BlobWriter::new(BlobHeader {
        kind: BlobKind::Snapshot,
        origin: StateId::default(),
        destination: id,
    });
    blob.schema_section(&ws.schema);
    crate::format::tags_section(&ws.tags, &mut blob);
    for (i, section) in type_sections(ws)?.into_iter().enumerate() {
        blob.section(SectionKind::TypeData, i as u32, section);
    }
    Ok(blob.finish())
}

/// Below this many row words in all, the sections are encoded on the caller's thread.
const PARALLEL_WORDS: u64 = 1 << 20;

/// The encoded snapshot section of every type, in type order. Types are independent, so a
/// large state spreads them over the machine's cores, in bins of about equal size.
fn type_sections(ws: &mut WriteState) -> Result<Vec<ByteWriter>> {
    let schema = ws.schema.clone();
    crate::parallel::map_balanced(
        ws.types.iter_mut().enumerate().collect(),
        |(_, tw)| tw.records.present_slots() as u64 * tw.shape.row_words as u64,
        PARALLEL_WORDS,
        |(i, tw)| {
            let section = type_section(tw, &schema.types()[i], Which::Current)?;
            let mut w = ByteWriter::new();
            section.encode(&mut w);
            Ok(w)
        },
    )
    .into_iter()
    .collect()
}
