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

/// `value` as compact JSON text for people (listings, diffs, pages), at most `max` characters
/// (cut with `…`): as [`text`], except that a float that is exactly an `f32` (an `f32` field,
/// read widened) shows as that `f32` does, `3.9` rather than `3.9000000953674316`. Data
/// outputs (`get`, `find`, `dump`, `--json`) use [`text`], which is exact.
pub fn human(value: &Value, max: usize) -> String {
    let text = text(&narrowed(value));
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `value` with every float that is exactly an `f32` replaced by the `f64` nearest to that
/// `f32`'s shortest decimal form.
fn narrowed(value: &Value) -> Value {
    match value {
        Value::Float(f) if f64::from(*f as f32) == *f => {
            Value::Float((*f as f32).to_string().parse().unwrap_or(*f))
        }
        Value::List(items) => Value::List(items.iter().map(narrowed).collect()),
        Value::Map(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| (narrowed(k), narrowed(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_see_f32_values_as_written_and_data_stays_exact() {
        let widened = Value::Float(f64::from(3.9f32));
        assert_eq!(text(&widened), "3.9000000953674316");
        assert_eq!(human(&widened, 100), "3.9");
        assert_eq!(human(&Value::Float(0.1), 100), "0.1");
        assert_eq!(human(&Value::String("abcdef".into()), 3), "\"ab…");
    }
}
