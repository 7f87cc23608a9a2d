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
/// references not followed (`{"$ref": .., "$ordinal": ..}`) as links named by `label` (of
/// the type and ordinal; escaped here), `version` the version query of the links.
pub fn value(v: &Value, version: &str, label: &dyn Fn(&str, u32) -> String) -> String {
    match v {
        Value::Null => "<i>null</i>".into(),
        Value::String(s) => escape(s),
        Value::Map(entries) => {
            if let (Some(Value::String(ty)), Some(Value::UInt(o))) =
                (v.field("$ref"), v.field("$ordinal"))
            {
                return format!(
                    "<a href=\"/types/{}/{o}{version}\">{}</a>",
                    url_part(ty),
                    escape(&label(ty, *o as u32))
                );
            }
            let rows: String = entries
                .iter()
                .map(|(k, val)| {
                    format!(
                        "<tr><th>{}</th><td>{}</td></tr>",
                        key(k, version, label),
                        value(val, version, label)
                    )
                })
                .collect();
            format!("<table>{rows}</table>")
        }
        Value::List(items) if items.is_empty() => "<i>empty</i>".into(),
        Value::List(items) => {
            let rows: String = items
                .iter()
                .map(|i| format!("<li>{}</li>", value(i, version, label)))
                .collect();
            format!("<ol start=\"0\">{rows}</ol>")
        }
        other => escape(&crate::json::human(other, usize::MAX)),
    }
}

fn key(k: &Value, version: &str, label: &dyn Fn(&str, u32) -> String) -> String {
    match k {
        Value::String(s) => escape(s),
        other => value(other, version, label),
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
        let html = value(&hostile, "", &|ty, o| format!("{ty} #{o} <b>"));
        assert!(!html.contains('<') || !html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("/types/A%22%3E%3Cscript%3E/3"), "{html}");
        assert!(
            html.contains("#3 &lt;b&gt;") && !html.contains("<b>"),
            "{html}"
        );
        assert_eq!(escape("a&'b"), "a&amp;&#39;b");
    }
}
