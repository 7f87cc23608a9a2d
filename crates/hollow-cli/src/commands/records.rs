//! `hollow get`, `find` and `dump`: records as JSON.

use std::io::{self, BufWriter, Write};

use anyhow::{anyhow, bail, Context};
use hollow_core::{KeyPart, ReadState, Value};

use crate::keys::{self, Parsed};
use crate::{json, progress, DumpFormat, Outcome};

/// The ordinal of the `type_name` record whose primary key is `key` (one value per key field).
pub fn lookup(state: &ReadState, type_name: &str, key: &[String]) -> anyhow::Result<Option<u32>> {
    let def = state.schema().get(state.schema().require(type_name)?);
    let fields = def.primary_key();
    if fields.is_empty() {
        bail!("{type_name} has no primary key; look records up with `hollow find`");
    }
    if key.len() != fields.len() {
        bail!(
            "the key of {type_name} has {} fields ({}); {} values were given",
            fields.len(),
            def.key_field_names().join(", "),
            key.len()
        );
    }
    let parsed = key
        .iter()
        .zip(fields)
        .map(|(text, field)| {
            let ty = field.value_type();
            keys::parse(text, ty.kind, ty.nullable, field.path())
        })
        .collect::<anyhow::Result<Vec<Parsed>>>()?;
    let parts: Vec<KeyPart<'_>> = parsed.iter().map(Parsed::part).collect();
    Ok(state.primary_key_index(type_name)?.find_parts(&parts)?)
}

/// `hollow get`.
pub fn get(
    state: &ReadState,
    type_name: &str,
    keys: &[String],
    depth: Option<u32>,
) -> anyhow::Result<Outcome> {
    let arity = state
        .schema()
        .get(state.schema().require(type_name)?)
        .primary_key()
        .len();
    let groups: Vec<&[String]> = if arity == 1 {
        keys.chunks(1).collect()
    } else {
        vec![keys]
    };
    let mut outcome = Outcome::Done;
    for key in groups {
        match lookup(state, type_name, key)? {
            Some(ordinal) => {
                let value = state.value_of(type_name, ordinal, depth)?;
                println!("{}", serde_json::to_string_pretty(&json::to_json(&value))?);
            }
            None => {
                eprintln!(
                    "no {type_name} with key {} in version {}",
                    key.join(" "),
                    state.version()
                );
                outcome = Outcome::Found;
            }
        }
    }
    Ok(outcome)
}

/// `hollow find`.
pub fn find(
    state: &mut ReadState,
    type_name: &str,
    conditions: &[String],
    depth: Option<u32>,
    limit: usize,
) -> anyhow::Result<Outcome> {
    let (fields, values): (Vec<&str>, Vec<&str>) = conditions
        .iter()
        .map(|c| {
            c.split_once('=')
                .ok_or_else(|| anyhow!("{c:?} is not FIELD=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .unzip();
    state
        .add_hash_index(type_name, &fields)
        .with_context(|| format!("indexing {type_name} on {}", fields.join(", ")))?;
    let index = state.hash_index(type_name, &fields)?;
    let parsed = values
        .iter()
        .zip(index.kinds())
        .zip(&fields)
        .map(|((text, kind), field)| keys::parse(text, kind, false, field))
        .collect::<anyhow::Result<Vec<Parsed>>>()?;
    let parts: Vec<KeyPart<'_>> = parsed.iter().map(Parsed::part).collect();
    let found = index.find_parts(&parts)?;
    eprintln!(
        "{} {type_name} records match in version {}{}",
        found.len(),
        state.version(),
        if found.len() > limit {
            format!(" (showing {limit}; see --limit)")
        } else {
            String::new()
        }
    );
    let records = found
        .iter()
        .take(limit)
        .map(|&o| Ok(json::to_json(&state.value_of(type_name, o, depth)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    println!("{}", serde_json::to_string_pretty(&records)?);
    Ok(if found.is_empty() {
        Outcome::Found
    } else {
        Outcome::Done
    })
}

/// `hollow dump`: every record of an object type, streamed.
pub fn dump(
    state: &ReadState,
    type_name: &str,
    format: DumpFormat,
    depth: Option<u32>,
) -> anyhow::Result<Outcome> {
    let reader = state.object(type_name)?;
    let bar = progress::bar(reader.len(), format!("dumping {type_name}"), "records");
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let columns: Vec<String> = state
        .schema()
        .get(state.schema().require(type_name)?)
        .columns()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let written = (|| -> anyhow::Result<()> {
        match format {
            DumpFormat::Json => out.write_all(b"[")?,
            DumpFormat::Csv => {
                let header: Vec<String> = columns.iter().map(|c| csv_field(c)).collect();
                writeln!(out, "{}", header.join(","))?;
            }
            DumpFormat::Ndjson => {}
        }
        for (i, ordinal) in reader.ordinals().enumerate() {
            let value = state.value_of(type_name, ordinal, depth)?;
            match format {
                DumpFormat::Json => {
                    let sep = if i == 0 { "\n" } else { ",\n" };
                    write!(out, "{sep}{}", json::text(&value))?;
                }
                DumpFormat::Ndjson => writeln!(out, "{}", json::text(&value))?,
                DumpFormat::Csv => {
                    let row: Vec<String> = columns
                        .iter()
                        .map(|c| csv_field(&csv_text(value.field(c))))
                        .collect();
                    writeln!(out, "{}", row.join(","))?;
                }
            }
            if i % 4096 == 0 {
                bar.set_position(i as u64);
            }
        }
        if format == DumpFormat::Json {
            out.write_all(b"\n]\n")?;
        }
        out.flush()?;
        Ok(())
    })();
    bar.finish_and_clear();
    match written {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if broken_pipe(&e) => Ok(Outcome::Done),
        other => other.map(|()| Outcome::Done),
    }
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// A field's value as CSV cell text: scalars as they are, nested values as JSON.
fn csv_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => json::text(other),
    }
}

/// `text` as a CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}
