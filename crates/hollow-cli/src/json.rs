//! Records as JSON: a [`Value`] rendered for people and scripts.

use hollow_core::Value;
use serde_json::{Map, Number, Value as Json};

/// `value` as JSON. Objects and maps whose keys are strings or integers become JSON objects;
/// maps with other keys become arrays of `[key, value]` pairs. Integers beyond what JSON
/// numbers hold exactly (128-bit ones) and non-finite floats become strings; bytes become
/// arrays of numbers.
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        Value::I128(i) => {
            i64::try_from(*i).map_or_else(|_| Json::String(i.to_string()), Json::from)
        }
        Value::U128(u) => {
            u64::try_from(*u).map_or_else(|_| Json::String(u.to_string()), Json::from)
        }
        Value::Float(f) => {
            Number::from_f64(*f).map_or_else(|| Json::String(f.to_string()), Json::Number)
        }
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::Array(b.iter().map(|&x| Json::from(x)).collect()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => {
            let keys: Option<Vec<String>> = entries.iter().map(|(k, _)| key_text(k)).collect();
            match keys {
                Some(keys) => Json::Object(
                    keys.into_iter()
                        .zip(entries)
                        .map(|(k, (_, v))| (k, to_json(v)))
                        .collect::<Map<_, _>>(),
                ),
                None => Json::Array(
                    entries
                        .iter()
                        .map(|(k, v)| Json::Array(vec![to_json(k), to_json(v)]))
                        .collect(),
                ),
            }
        }
        _ => Json::String(format!("{value:?}")),
    }
}

/// A map key as a JSON object key, if it is a string or an integer.
fn key_text(key: &Value) -> Option<String> {
    match key {
        Value::String(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        _ => None,
    }
}

/// `value` as compact JSON text.
pub fn text(value: &Value) -> String {
    to_json(value).to_string()
}

/// `value` as compact JSON text of at most `max` characters (cut with `…`).
pub fn text_cut(value: &Value, max: usize) -> String {
    let text = text(value);
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
