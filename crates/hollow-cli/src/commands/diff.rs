//! `hollow diff`: what changed between two versions, record by record.

use hollow_core::{Difference, ReadState, TypeDiff};
use serde_json::{json, Value as Json};

use crate::dataset::Dataset;
use crate::{json, Outcome};

/// What to compare and how to print it.
pub struct Options {
    /// Only this type.
    pub type_name: Option<String>,
    /// JSON instead of text.
    pub json: bool,
    /// Records listed per kind of change and type, in text.
    pub limit: usize,
}

/// How a record is named in listings: `name=value` of its primary key fields, or (a type
/// without one) its fields, references not followed, cut at 120 characters.
pub fn key_text(state: &ReadState, type_name: &str, ordinal: u32) -> String {
    let Ok(def) = state
        .schema()
        .require(type_name)
        .map(|t| state.schema().get(t))
    else {
        return format!("#{ordinal}");
    };
    // Deep enough for the key's paths through references.
    let depth = def
        .primary_key()
        .iter()
        .map(|f| f.columns().len() as u32 - 1)
        .max();
    let Ok(record) = state.value_of(type_name, ordinal, Some(depth.unwrap_or(0))) else {
        return format!("#{ordinal}");
    };
    if def.primary_key().is_empty() {
        return json::human(&record, 120);
    }
    let parts: Vec<String> = def
        .key_field_names()
        .into_iter()
        .map(|path| {
            let value = path
                .split('.')
                .try_fold(&record, |v, name| v.field(name))
                .map_or("?".into(), |v| json::human(v, usize::MAX));
            format!("{path}={value}")
        })
        .collect();
    parts.join(" ")
}

/// The field-level differences of a changed record.
pub fn differences(
    from: &ReadState,
    to: &ReadState,
    type_name: &str,
    (old, new): (u32, u32),
) -> anyhow::Result<Vec<Difference>> {
    Ok(from
        .value_of(type_name, old, None)?
        .differences(&to.value_of(type_name, new, None)?))
}

/// A difference as one line of text: `path: old → new`.
pub fn difference_text(d: &Difference) -> String {
    let side = |v: &Option<hollow_core::Value>| {
        v.as_ref()
            .map_or("(none)".into(), |v| json::human(v, usize::MAX))
    };
    let path = if d.path.is_empty() {
        "(record)"
    } else {
        &d.path
    };
    format!("{path}: {} → {}", side(&d.old), side(&d.new))
}

pub async fn run(
    dataset: &Dataset,
    v1: u64,
    v2: u64,
    options: &Options,
) -> anyhow::Result<Outcome> {
    let blobs = dataset.blob_names().await?;
    let from_id = dataset.resolve_in(&blobs, Some(v1)).await?;
    let to_id = dataset.resolve_in(&blobs, Some(v2)).await?;
    let (from, _) = dataset.load_in(&blobs, None, from_id).await?;
    let (to, plan) = dataset.load_in(&blobs, Some(&from), to_id).await?;
    let types = match &options.type_name {
        Some(t) => vec![from.diff_type(&to, t)?],
        None => from.diff(&to)?.types,
    };
    if options.json {
        let types = types
            .iter()
            .map(|t| type_json(&from, &to, t))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let out = json!({"from": from_id.to_string(), "to": to_id.to_string(), "types": types});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Done);
    }
    println!(
        "diff version {v1} → {v2} (states {from_id} → {to_id}; {})",
        plan.describe()
    );
    let mut quiet = 0;
    for t in &types {
        if t.is_empty() {
            quiet += 1;
            continue;
        }
        print_type(&from, &to, t, options.limit)?;
    }
    if quiet > 0 {
        println!("{quiet} other types: no change");
    }
    Ok(Outcome::Done)
}

fn print_type(from: &ReadState, to: &ReadState, t: &TypeDiff, limit: usize) -> anyhow::Result<()> {
    let name = &t.type_name;
    let matched = if t.by_primary_key {
        "matched by primary key"
    } else {
        "no primary key: a changed record is removed and added"
    };
    println!(
        "\n{name} ({matched}): {} added, {} removed, {} changed, {} unchanged",
        t.added.len(),
        t.removed.len(),
        t.changed.len(),
        t.unchanged
    );
    let more = |n: usize, what: &str| {
        if n > limit {
            println!("  … and {} more {what} (--limit)", n - limit);
        }
    };
    for &o in t.added.iter().take(limit) {
        println!("  + {}", key_text(to, name, o));
    }
    more(t.added.len(), "added");
    for &o in t.removed.iter().take(limit) {
        println!("  - {}", key_text(from, name, o));
    }
    more(t.removed.len(), "removed");
    for &pair in t.changed.iter().take(limit) {
        println!("  ~ {}", key_text(to, name, pair.1));
        for d in differences(from, to, name, pair)? {
            println!("      {}", difference_text(&d));
        }
    }
    more(t.changed.len(), "changed");
    Ok(())
}

fn type_json(from: &ReadState, to: &ReadState, t: &TypeDiff) -> anyhow::Result<Json> {
    let name = &t.type_name;
    let records = |state: &ReadState, ordinals: &[u32]| {
        ordinals
            .iter()
            .map(|&o| Ok(json::to_json(&state.value_of(name, o, None)?)))
            .collect::<anyhow::Result<Vec<_>>>()
    };
    let changed = t
        .changed
        .iter()
        .map(|&pair| {
            let differences: Vec<Json> = differences(from, to, name, pair)?
                .iter()
                .map(|d| {
                    json!({
                        "path": d.path,
                        "old": d.old.as_ref().map(json::to_json),
                        "new": d.new.as_ref().map(json::to_json),
                    })
                })
                .collect();
            Ok(json!({"key": key_text(to, name, pair.1), "differences": differences}))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(json!({
        "type": name,
        "by_primary_key": t.by_primary_key,
        "unchanged": t.unchanged,
        "added": records(to, &t.added)?,
        "removed": records(from, &t.removed)?,
        "changed": changed,
    }))
}
