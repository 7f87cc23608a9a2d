//! Safe HTML: every text from a record (untrusted) is escaped, and pages are assembled from
//! escaped pieces only.

use std::fmt::Write;

use hollow_core::Value;

/// `text` with `&`, `<`, `>`, `"` and `'` escaped, safe in element content and quoted
/// attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as a URL query or path component (percent-encoded), then escaped for an attribute.
pub fn url_part(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A whole page: the title (escaped here) and a body assembled from escaped pieces.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · hollow explorer</title>\
<style>body{{font:14px system-ui,sans-serif;margin:1.5em;color:#222}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}}th{{background:#f3f3f3}}\
.num{{text-align:right}}a{{color:#0645ad}}nav a{{margin-right:1em}}.add{{color:#070}}.del{{color:#a00}}\
code,pre{{font-family:ui-monospace,monospace}}form{{margin:.5em 0}}</style></head>\
<body><nav><a href=\"/\">hollow explorer</a></nav><h1>{}</h1>{body}</body></html>",
        escape(title),
        escape(title)
    )
}

/// A record value as nested HTML: objects and maps as tables, lists as ordered lists,
/// references not followed (`{"$ref": .., "$ordinal": ..}`) as links, `v` the version query.
pub fn value(v: &Value, version: &str) -> String {
    match v {
        Value::Null => "<i>null</i>".into(),
        Value::String(s) => escape(s),
        Value::Map(entries) => {
            if let (Some(Value::String(ty)), Some(Value::UInt(o))) =
                (v.field("$ref"), v.field("$ordinal"))
            {
                return format!(
                    "<a href=\"/types/{}/{o}{version}\">{} #{o}</a>",
                    url_part(ty),
                    escape(ty)
                );
            }
            let rows: String = entries
                .iter()
                .map(|(k, val)| {
                    format!(
                        "<tr><th>{}</th><td>{}</td></tr>",
                        key(k, version),
                        value(val, version)
                    )
                })
                .collect();
            format!("<table>{rows}</table>")
        }
        Value::List(items) if items.is_empty() => "<i>empty</i>".into(),
        Value::List(items) => {
            let rows: String = items
                .iter()
                .map(|i| format!("<li>{}</li>", value(i, version)))
                .collect();
            format!("<ol start=\"0\">{rows}</ol>")
        }
        other => escape(&crate::json::text(other)),
    }
}

fn key(k: &Value, version: &str) -> String {
    match k {
        Value::String(s) => escape(s),
        other => value(other, version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_text_cannot_inject_markup() {
        let s = |t: &str| Value::String(t.into());
        let hostile = Value::Map(vec![
            (
                s("<script>x</script>"),
                s("\"><img src=x onerror=alert(1)>"),
            ),
            (
                s("ref"),
                Value::Map(vec![
                    (s("$ref"), s("A\"><script>")),
                    (s("$ordinal"), Value::UInt(3)),
                ]),
            ),
        ]);
        let html = value(&hostile, "");
        assert!(!html.contains('<') || !html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("/types/A%22%3E%3Cscript%3E/3"), "{html}");
        assert_eq!(escape("a&'b"), "a&amp;&#39;b");
    }
}
