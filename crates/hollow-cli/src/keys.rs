//! Key values typed on the command line, read as the fields they look up.

use anyhow::{bail, Context};
use hollow_core::schema::Kind;
use hollow_core::KeyPart;

/// A key field's value parsed for a field of some kind: what a [`KeyPart`] borrows.
pub enum Parsed {
    /// An integer or a boolean.
    Int(i64),
    /// A float, as its bits.
    Float(u64),
    /// A string, or a 128-bit integer's 16 bytes.
    Bytes(Vec<u8>),
    /// `null` for a field that may be null.
    Null,
}

impl Parsed {
    /// The key part.
    pub fn part(&self) -> KeyPart<'_> {
        match self {
            Parsed::Int(i) => KeyPart::Int(*i),
            Parsed::Float(f) => KeyPart::Float(*f),
            Parsed::Bytes(b) => KeyPart::Bytes(b),
            Parsed::Null => KeyPart::Null,
        }
    }
}

/// `text` read as a value of field `field` of `kind`.
pub fn parse(text: &str, kind: Kind, nullable: bool, field: &str) -> anyhow::Result<Parsed> {
    if nullable && text == "null" {
        return Ok(Parsed::Null);
    }
    let what = |k: &str| format!("field {field} holds {k}, and {text:?} is not one");
    Ok(match kind {
        Kind::I32 | Kind::I64 => Parsed::Int(text.parse().with_context(|| what("integers"))?),
        Kind::U64 => Parsed::Int(text.parse::<u64>().with_context(|| what("u64 values"))? as i64),
        Kind::I128 => Parsed::Bytes(
            text.parse::<i128>()
                .with_context(|| what("i128 values"))?
                .to_le_bytes()
                .to_vec(),
        ),
        Kind::U128 => Parsed::Bytes(
            text.parse::<u128>()
                .with_context(|| what("u128 values"))?
                .to_le_bytes()
                .to_vec(),
        ),
        Kind::F32 => Parsed::Float(u64::from(
            text.parse::<f32>().with_context(|| what("floats"))?.to_bits(),
        )),
        Kind::F64 => Parsed::Float(text.parse::<f64>().with_context(|| what("floats"))?.to_bits()),
        Kind::Bool => Parsed::Int(i64::from(
            text.parse::<bool>()
                .with_context(|| what("booleans (true or false)"))?,
        )),
        Kind::String | Kind::Bytes => Parsed::Bytes(text.as_bytes().to_vec()),
        Kind::Reference(_) => bail!("field {field} is a reference; name a field of the record it references (e.g. {field}.id)"),
    })
}
