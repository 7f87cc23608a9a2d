//! `hollow stats`: which type and field takes the memory.

use hollow_core::{ReadState, TypeStats};
use serde_json::json;

use crate::{size, Outcome};

/// `part` of `total` in percent, for the table.
fn share(part: usize, total: usize) -> String {
    format!("{:.1}%", 100.0 * part as f64 / total.max(1) as f64)
}

/// Lowercase name of a type kind.
pub fn kind_name(t: &TypeStats) -> String {
    format!("{:?}", t.kind).to_lowercase()
}

pub fn run(state: &ReadState, as_json: bool) -> anyhow::Result<Outcome> {
    let types = state.type_stats();
    let data: usize = types.iter().map(|t| t.bytes).sum();
    let indexes: usize = types.iter().filter_map(|t| t.primary_key_index_bytes).sum();
    if as_json {
        let out = json!({
            "version": state.version(),
            "state": state.id().to_string(),
            "bytes": data,
            "primary_key_index_bytes": indexes,
            "types": types.iter().map(|t| json!({
                "name": t.name,
                "kind": kind_name(t),
                "records": t.records,
                "rows": t.rows,
                "bits_per_row": t.bits_per_row,
                "bytes": t.bytes,
                "share": t.bytes as f64 / data.max(1) as f64,
                "primary_key_index_bytes": t.primary_key_index_bytes,
                "fields": t.fields.iter().map(|f| json!({
                    "name": f.name,
                    "type": f.type_name,
                    "bits": f.bits,
                    "bytes": f.bytes,
                    "dictionary": f.dictionary.map(|d| json!({"entries": d.entries, "bytes": d.bytes})),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Done);
    }
    println!(
        "version {} (state {}): {} in {} types, primary key indexes {}",
        state.version(),
        state.id(),
        size::human(data as u64),
        types.len(),
        size::human(indexes as u64)
    );
    println!();
    println!(
        "{:<32} {:<14} {:>11} {:>6} {:>10} {:>6}  dictionary",
        "type / field", "kind", "records", "bits", "bytes", "share"
    );
    for t in &types {
        println!(
            "{:<32} {:<14} {:>11} {:>6} {:>10} {:>6}",
            t.name,
            kind_name(t),
            t.records,
            t.bits_per_row,
            size::human(t.bytes as u64),
            share(t.bytes, data)
        );
        for f in &t.fields {
            let dictionary = f
                .dictionary
                .map(|d| format!("{} entries, {}", d.entries, size::human(d.bytes as u64)))
                .unwrap_or_default();
            println!(
                "  {:<30} {:<14} {:>11} {:>6} {:>10} {:>6}  {dictionary}",
                f.name,
                f.type_name,
                "",
                f.bits,
                size::human(f.bytes as u64),
                share(f.bytes, data)
            );
        }
        if let Some(index) = t.primary_key_index_bytes {
            println!(
                "  {:<30} {:<14} {:>11} {:>6} {:>10}",
                "(primary key index)",
                "",
                "",
                "",
                size::human(index as u64)
            );
        }
    }
    Ok(Outcome::Done)
}
