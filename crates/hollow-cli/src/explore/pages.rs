//! The explorer's pages: overview, a type's records (browse, search, lookup by key), one
//! record, and the diff between two versions.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use hollow_core::ReadState;
use serde::Deserialize;

use super::html::{self, escape, url_part};
use super::{respond, At, Explorer, PageError, PageResult};
use crate::commands::diff::{difference_text, differences, key_text};
use crate::commands::records::lookup;
use crate::commands::stats::kind_name;
use crate::{keys, size};

/// The pages, every one a GET (any other method is refused with 405).
pub(super) fn routes(explorer: Arc<Explorer>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/types/{type_name}", get(browse))
        .route("/types/{type_name}/key", get(by_key))
        .route("/types/{type_name}/{ordinal}", get(record))
        .route("/diff", get(diff))
        .with_state(explorer)
}

/// Records per page when browsing a type.
const PAGE: usize = 50;
/// Records listed per kind of change and type in the diff view.
const DIFF_LIMIT: usize = 100;

/// The header line of every page about a state: which version, and the live one.
fn version_line(state: &ReadState, explorer: &Explorer) -> String {
    let live = explorer.consumer.version();
    let note = match live {
        Some(v) if v == state.version() => " (live: follows new announcements)".to_string(),
        Some(v) => format!(" · live version is <a href=\"/\">{v}</a>"),
        None => String::new(),
    };
    format!(
        "<p>Version <b>{}</b> (state <code>{}</code>){note}</p>",
        state.version(),
        state.id()
    )
}

async fn overview(State(x): State<Arc<Explorer>>, Query(at): Query<At>) -> PageResult {
    let state = x.state(&at).await?;
    let types = state.type_stats();
    let total: usize = types.iter().map(|t| t.bytes).sum();
    let mut body = version_line(&state, &x);
    let health = x.consumer.health();
    if let Some(e) = health.last_error {
        let _ = write!(
            body,
            "<p class=\"del\">Last refresh failed: {}</p>",
            escape(&e)
        );
    }
    let _ = write!(
        body,
        "<p>Store: <code>{}</code></p>",
        escape(&x.dataset.store.location(""))
    );
    body.push_str("<h2>Types</h2><table><tr><th>type</th><th>kind</th><th>records</th><th>bytes</th><th>share</th></tr>");
    for t in &types {
        let name = if t.kind == hollow_core::schema::TypeKind::Object {
            format!(
                "<a href=\"/types/{}{}\">{}</a>",
                url_part(&t.name),
                at.query(),
                escape(&t.name)
            )
        } else {
            escape(&t.name)
        };
        let _ = write!(
            body,
            "<tr><td>{name}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}%</td></tr>",
            kind_name(t),
            t.records,
            size::human(t.bytes as u64),
            100.0 * t.bytes as f64 / total.max(1) as f64
        );
    }
    body.push_str("</table>");
    let blobs = x.dataset.blob_names().await?;
    let mut versions: Vec<u64> = blobs.iter().map(|b| b.destination().version).collect();
    versions.sort_unstable();
    versions.dedup();
    body.push_str("<h2>Versions</h2><p>");
    for v in versions.iter().rev().take(50) {
        let _ = write!(body, "<a href=\"/?v={v}\">{v}</a> ");
    }
    body.push_str("</p>");
    if versions.len() >= 2 {
        let (a, b) = (versions[versions.len() - 2], versions[versions.len() - 1]);
        let _ = write!(
            body,
            "<h2>Compare</h2><form action=\"/diff\" method=\"get\">from <input name=\"from\" value=\"{a}\" size=\"8\"> to <input name=\"to\" value=\"{b}\" size=\"8\"> <button>diff</button></form>"
        );
    }
    respond("Overview", &body)
}

/// The query of the browse page.
#[derive(Deserialize, Default)]
struct Browse {
    v: Option<u64>,
    page: Option<usize>,
    /// FIELD=VALUE to search.
    q: Option<String>,
}

async fn browse(
    State(x): State<Arc<Explorer>>,
    Path(type_name): Path<String>,
    Query(b): Query<Browse>,
) -> PageResult {
    let at = At { v: b.v };
    let mut state = x.state(&at).await?;
    let reader = state.object(&type_name)?;
    let total = reader.len();
    let key_fields: Vec<String> = {
        let def = state.schema().get(state.schema().require(&type_name)?);
        def.key_field_names()
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    let (ordinals, heading): (Vec<u32>, String) =
        match b.q.as_deref().filter(|q| !q.trim().is_empty()) {
            Some(q) => {
                let (field, value) = q.split_once('=').ok_or_else(|| {
                    PageError(StatusCode::BAD_REQUEST, format!("{q:?} is not FIELD=VALUE"))
                })?;
                let (field, value) = (field.trim(), value.trim());
                state.add_hash_index(&type_name, &[field])?;
                x.keep(&state);
                let index = state.hash_index(&type_name, &[field])?;
                let kind = index.kinds().next().expect("one field");
                let parsed = keys::parse(value, kind, false, field)?;
                let found = index
                    .find_parts(&[parsed.part()])
                    .map_err(hollow_core::Error::from)?;
                (
                    found.iter().copied().take(PAGE).collect(),
                    format!(
                        "{} records where {} = {}",
                        found.len(),
                        escape(field),
                        escape(value)
                    ),
                )
            }
            None => {
                let page = b.page.unwrap_or(0);
                let reader = state.object(&type_name)?;
                (
                    reader.ordinals().skip(page * PAGE).take(PAGE).collect(),
                    format!(
                        "{total} records, page {} of {}",
                        page + 1,
                        (total as usize).div_ceil(PAGE).max(1)
                    ),
                )
            }
        };
    let mut body = version_line(&state, &x);
    let v_field =
        at.v.map(|v| format!("<input type=\"hidden\" name=\"v\" value=\"{v}\">"))
            .unwrap_or_default();
    if !key_fields.is_empty() {
        let inputs: String = key_fields
            .iter()
            .map(|f| format!("{} <input name=\"k\" size=\"12\"> ", escape(f)))
            .collect();
        let _ = write!(body, "<form action=\"/types/{}/key\" method=\"get\">Look up by key: {inputs}{v_field}<button>go</button></form>", url_part(&type_name));
    }
    let _ = write!(
        body,
        "<form action=\"/types/{}\" method=\"get\">Search FIELD=VALUE: <input name=\"q\" size=\"30\" value=\"{}\">{v_field}<button>search</button></form><p>{heading}</p><table><tr><th>#</th><th>record</th></tr>",
        url_part(&type_name),
        escape(b.q.as_deref().unwrap_or(""))
    );
    for o in ordinals {
        let summary = summary(&state, &type_name, o)?;
        let _ = write!(
            body,
            "<tr><td><a href=\"/types/{}/{o}{}\">{o}</a></td><td>{}</td></tr>",
            url_part(&type_name),
            at.query(),
            escape(&summary)
        );
    }
    body.push_str("</table>");
    if b.q.is_none() {
        let page = b.page.unwrap_or(0);
        let v = at.v.map(|v| format!("&v={v}")).unwrap_or_default();
        if page > 0 {
            let _ = write!(
                body,
                "<a href=\"/types/{}?page={}{v}\">previous</a> ",
                url_part(&type_name),
                page - 1
            );
        }
        if (page + 1) * PAGE < total as usize {
            let _ = write!(
                body,
                "<a href=\"/types/{}?page={}{v}\">next</a>",
                url_part(&type_name),
                page + 1
            );
        }
    }
    respond(&type_name, &body)
}

/// A record in one line: its fields, references not followed, cut at 200 characters.
fn summary(state: &ReadState, type_name: &str, ordinal: u32) -> anyhow::Result<String> {
    Ok(crate::json::human(
        &state.value_of(type_name, ordinal, Some(0))?,
        200,
    ))
}

/// The query of a lookup by key: one `k` per key field.
#[derive(Deserialize)]
struct ByKey {
    v: Option<u64>,
    #[serde(default)]
    k: Vec<String>,
}

async fn by_key(
    State(x): State<Arc<Explorer>>,
    Path(type_name): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> PageResult {
    let q: ByKey = parse_query(query.as_deref().unwrap_or(""))?;
    let at = At { v: q.v };
    let state = x.state(&at).await?;
    match lookup(&state, &type_name, &q.k)? {
        Some(o) => Ok(Redirect::to(&format!(
            "/types/{}/{o}{}",
            url_part(&type_name),
            at.query()
        ))
        .into_response()),
        None => Err(PageError(
            StatusCode::NOT_FOUND,
            format!(
                "no {type_name} with key {} in version {}",
                q.k.join(" "),
                state.version()
            ),
        )),
    }
}

/// A query string with repeated keys (`k=1&k=2`), which axum's `Query` does not collect.
fn parse_query(query: &str) -> Result<ByKey, PageError> {
    let mut out = ByKey {
        v: None,
        k: Vec::new(),
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = url::form_urlencoded::parse(format!("x={value}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        match name {
            "k" => out.k.push(value),
            "v" if !value.is_empty() => {
                out.v = Some(value.parse().map_err(|_| {
                    PageError(
                        StatusCode::BAD_REQUEST,
                        format!("version {value:?} is not a number"),
                    )
                })?)
            }
            _ => {}
        }
    }
    Ok(out)
}

async fn record(
    State(x): State<Arc<Explorer>>,
    Path((type_name, ordinal)): Path<(String, u32)>,
    Query(at): Query<At>,
) -> PageResult {
    let state = x.state(&at).await?;
    if !state.object(&type_name)?.contains(ordinal) {
        return Err(PageError(
            StatusCode::NOT_FOUND,
            format!(
                "no {type_name} at ordinal {ordinal} in version {}",
                state.version()
            ),
        ));
    }
    let value = state.value_of(&type_name, ordinal, Some(0))?;
    let mut body = version_line(&state, &x);
    let _ = write!(
        body,
        "<p><a href=\"/types/{}{}\">all {}</a> · key {}</p>{}",
        url_part(&type_name),
        at.query(),
        escape(&type_name),
        escape(&key_text(&state, &type_name, ordinal)),
        html::value(&value, &at.query(), &|ty, o| format!(
            "{ty} {}",
            key_text(&state, ty, o)
        ))
    );
    respond(&format!("{type_name} #{ordinal}"), &body)
}

/// The query of the diff view.
#[derive(Deserialize)]
struct DiffQuery {
    from: u64,
    to: u64,
    #[serde(rename = "type")]
    type_name: Option<String>,
}

async fn diff(State(x): State<Arc<Explorer>>, Query(q): Query<DiffQuery>) -> PageResult {
    let from = x.state(&At { v: Some(q.from) }).await?;
    let to = x.state(&At { v: Some(q.to) }).await?;
    let types = match q.type_name.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => vec![from.diff_type(&to, t)?],
        None => from.diff(&to)?.types,
    };
    let mut body = format!(
        "<p>From version {} to version {}.</p>",
        from.version(),
        to.version()
    );
    for t in types.iter().filter(|t| !t.is_empty()) {
        let name = &t.type_name;
        let _ = write!(
            body,
            "<h2>{}</h2><p>{} added, {} removed, {} changed, {} unchanged{}</p><table>",
            escape(name),
            t.added.len(),
            t.removed.len(),
            t.changed.len(),
            t.unchanged,
            if t.by_primary_key {
                ""
            } else {
                " (no primary key: a changed record is removed and added)"
            }
        );
        let link = |state: &ReadState, o: u32| {
            format!(
                "<a href=\"/types/{}/{o}?v={}\">{}</a>",
                url_part(name),
                state.version(),
                escape(&key_text(state, name, o))
            )
        };
        for &pair in t.changed.iter().take(DIFF_LIMIT) {
            let lines: Vec<String> = differences(&from, &to, name, pair)?
                .iter()
                .map(|d| escape(&difference_text(d)))
                .collect();
            let _ = write!(
                body,
                "<tr><td>~ changed</td><td>{}</td><td>{}</td></tr>",
                link(&to, pair.1),
                lines.join("<br>")
            );
        }
        for &o in t.added.iter().take(DIFF_LIMIT) {
            let _ = write!(
                body,
                "<tr class=\"add\"><td>+ added</td><td>{}</td><td></td></tr>",
                link(&to, o)
            );
        }
        for &o in t.removed.iter().take(DIFF_LIMIT) {
            let _ = write!(
                body,
                "<tr class=\"del\"><td>− removed</td><td>{}</td><td></td></tr>",
                link(&from, o)
            );
        }
        body.push_str("</table>");
        let listed = t.added.len().min(DIFF_LIMIT)
            + t.removed.len().min(DIFF_LIMIT)
            + t.changed.len().min(DIFF_LIMIT);
        let all = t.added.len() + t.removed.len() + t.changed.len();
        if listed < all {
            let _ = write!(
                body,
                "<p>… {} more (see <code>hollow diff</code>)</p>",
                all - listed
            );
        }
    }
    if types.iter().all(|t| t.is_empty()) {
        body.push_str("<p>No record changed.</p>");
    }
    respond(&format!("Diff {} → {}", q.from, q.to), &body)
}

#[cfg(test)]
mod tests {
    #[test]
    fn repeated_key_parameters_are_collected_and_decoded() {
        let q = super::parse_query("k=a%20b&k=2&v=40").unwrap_or_else(|_| panic!("parses"));
        assert_eq!(q.k, ["a b", "2"]);
        assert_eq!(q.v, Some(40));
    }
}
