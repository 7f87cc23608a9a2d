//! Small text objects sealed with a checksum line (the announcement, the leader lease): a
//! damaged or cut read is rejected whole instead of being half-understood.

use xxhash_rust::xxh3::xxh3_64;

use crate::layout::{parse_tag, preview};

/// `body` (lines ending in `\n`) followed by `checksum <16 hex digits of xxh3(body)>`.
pub(crate) fn seal(body: &str) -> Vec<u8> {
    format!("{body}checksum {:016x}\n", xxh3_64(body.as_bytes())).into_bytes()
}

/// The body of a sealed object, or what is wrong with it.
pub(crate) fn unseal(bytes: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let at = text
        .rfind("checksum ")
        .ok_or_else(|| format!("no checksum line in {:?}", preview(text)))?;
    let (body, tail) = text.split_at(at);
    let stored = tail
        .strip_prefix("checksum ")
        .and_then(|t| t.strip_suffix('\n'))
        .and_then(parse_tag)
        .ok_or_else(|| format!("a malformed checksum line {:?}", preview(tail)))?;
    let computed = xxh3_64(body.as_bytes());
    if stored != computed {
        return Err(format!(
            "checksum {stored:016x} does not match the content ({computed:016x}): a damaged read"
        ));
    }
    Ok(body)
}
