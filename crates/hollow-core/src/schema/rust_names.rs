//! Schema names for generic Rust types. serde names `Page<Movie>` and `Page<Actor>` alike
//! ("Page"); the schema needs a name per instance, so the type arguments are read from the Rust
//! type name (of the type itself, or of the visitor serde derives for it, which carries the
//! same arguments) and appended: `PageOfMovie`, `PairOfI32AndString`.

use serde::de::{self, Visitor};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The type arguments at the end of a Rust type name, lifetimes left out:
/// `a::Page<b::Movie, '_>` → `["b::Movie"]`; none for a name without arguments.
fn type_arguments(rust_name: &str) -> Vec<&str> {
    let Some(inner) = rust_name
        .strip_suffix('>')
        .and_then(|s| s.find('<').map(|_| s))
    else {
        return Vec::new();
    };
    // Find the '<' that opens the last group.
    let bytes = inner.as_bytes();
    let mut depth = 0usize;
    let mut open = None;
    for i in (0..bytes.len()).rev() {
        match bytes[i] {
            b'>' => depth += 1,
            b'<' if depth == 0 => {
                open = Some(i);
                break;
            }
            b'<' => depth -= 1,
            _ => {}
        }
    }
    let Some(open) = open else {
        return Vec::new();
    };
    split_top_level(&inner[open + 1..])
        .into_iter()
        .filter(|a| !a.is_empty() && !a.starts_with('\''))
        .collect()
}

/// Splits `a, b<c, d>, (e, f)` at its top-level commas, trimmed.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out
}

/// A short name for a Rust type: its last path segment, capitalized, with its arguments:
/// `alloc::vec::Vec<my::Movie>` → `VecOfMovie`, `(i32, &str)` → `TupleOfI32AndStr`.
fn short_name(rust_type: &str) -> String {
    let t = rust_type.trim();
    let t = t.trim_start_matches('&').trim_start();
    let t = t.strip_prefix("mut ").unwrap_or(t);
    let t = match t.strip_prefix('\'') {
        // A lifetime before the type: `'a T`.
        Some(rest) => rest.split_once(' ').map_or(rest, |(_, ty)| ty),
        None => t,
    };
    if let Some(inner) = t.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        let parts: Vec<String> = split_top_level(inner)
            .into_iter()
            .filter(|p| !p.is_empty())
            .map(short_name)
            .collect();
        return if parts.is_empty() {
            "Unit".into()
        } else {
            format!("TupleOf{}", parts.join("And"))
        };
    }
    if let Some(inner) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        let element = inner.split(';').next().unwrap_or(inner);
        return format!("ArrayOf{}", short_name(element));
    }
    let (path, arguments) = match t.find('<') {
        Some(open) => (&t[..open], type_arguments(t)),
        None => (t, Vec::new()),
    };
    let base = path.rsplit("::").next().unwrap_or(path);
    let mut name = capitalized(base);
    append_arguments(&mut name, &arguments);
    name
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn append_arguments(name: &mut String, arguments: &[&str]) {
    for (i, a) in arguments.iter().enumerate() {
        name.push_str(if i == 0 { "Of" } else { "And" });
        name.push_str(&short_name(a));
    }
}

/// The schema name of a struct or enum whose serde name is `serde_name` and whose Rust type
/// (or derived visitor) is named `rust_name`: the serde name, followed by the type arguments
/// when the type is generic.
pub(crate) fn schema_name(serde_name: &str, rust_name: &str) -> String {
    let mut name = serde_name.to_string();
    append_arguments(&mut name, &type_arguments(rust_name));
    name
}

/// True when a struct whose serde name is `serde_name` may be stored as the schema type
/// `type_name`: the same name, or that name with type arguments.
pub(crate) fn names_instance(type_name: &str, serde_name: &str) -> bool {
    type_name
        .strip_prefix(serde_name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("Of"))
}

/// The schema name of the record type `T` (a struct, tuple struct or unit struct; a generic one
/// named with its type arguments), found by letting `T` ask a probe for itself.
pub(crate) fn record_type_name<'de, T: Deserialize<'de>>() -> Result<String> {
    let mut name = None;
    let _ = T::deserialize(NameProbe(&mut name));
    name.ok_or_else(|| Error::Read(format!("{} is not a struct", std::any::type_name::<T>())))
}

struct NameProbe<'a>(&'a mut Option<String>);

impl NameProbe<'_> {
    /// Records the name of the type whose derived visitor is `V`.
    fn found<V, T>(self, name: &'static str) -> Result<T> {
        *self.0 = Some(schema_name(name, std::any::type_name::<V>()));
        Err(Error::Read(String::new()))
    }
}

impl<'de> de::Deserializer<'de> for NameProbe<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Error::Read("not a struct".into()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value> {
        self.found::<V, _>(name)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value> {
        self.found::<V, _>(name)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: V,
    ) -> Result<V::Value> {
        self.found::<V, _>(name)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit seq tuple map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_instances_are_named_after_their_arguments() {
        let visitor = "tn::_::<impl serde_core::de::Deserialize<'_> for tn::Page<_>>::deserialize::__Visitor<'_, tn::Movie>";
        assert_eq!(schema_name("Page", visitor), "PageOfMovie");
        let plain = "tn::_::<impl serde_core::de::Deserialize<'_> for tn::Movie>::deserialize::__Visitor<'_>";
        assert_eq!(schema_name("Movie", plain), "Movie");
        let borrowed = "x::_::<impl Deserialize<'_> for x::B<'_>>::deserialize::__Visitor<'_, '_>";
        assert_eq!(schema_name("B", borrowed), "B");
        let nested = "x::__Visitor<'_, alloc::vec::Vec<(i32, alloc::string::String)>, [u8; 4]>";
        assert_eq!(
            schema_name("Pair", nested),
            "PairOfVecOfTupleOfI32AndStringAndArrayOfU8"
        );
        assert_eq!(
            schema_name("Both", "a::Both<'_, a::Page<a::Movie>>"),
            "BothOfPageOfMovie"
        );
        assert_eq!(schema_name("Ref", "a::Ref<&str, ()>"), "RefOfStrAndUnit");
        assert!(names_instance("PageOfMovie", "Page"));
        assert!(names_instance("Page", "Page"));
        assert!(!names_instance("Pager", "Page"));
    }
}
