//! `hollow history`: every retained version in which one record changed, and how.

use hollow_core::{ReadState, Value};
use serde_json::json;

use crate::commands::diff::difference_text;
use crate::commands::records::lookup;
use crate::dataset::Dataset;
use crate::{json, Outcome};

/// What happened to the record in one version.
enum Event {
    /// The oldest retained version that has it.
    Present(Value),
    Added(Value),
    Removed,
    Changed(Value, Value),
}

pub async fn run(
    dataset: &Dataset,
    type_name: &str,
    key: &[String],
    as_json: bool,
) -> anyhow::Result<Outcome> {
    let names = dataset.blob_names().await?;
    let announced = dataset.announced().await?.map(|a| a.state);
    let mut states: Vec<_> = match announced {
        Some(a) => hollow_store::announced_line(&names, a),
        None => names.iter().map(|b| b.destination()).collect(),
    };
    states.sort();
    states.dedup();
    let mut current: Option<ReadState> = None;
    let mut before: Option<Value> = None;
    let mut events = Vec::new();
    for state in states {
        let loaded = match dataset.load_in(&names, current.as_ref(), state).await {
            Ok((loaded, _)) => loaded,
            // A state no snapshot leads to (older than the retained snapshots) is skipped.
            Err(_) if current.is_none() => continue,
            Err(e) => return Err(e),
        };
        let now = match lookup(&loaded, type_name, key)? {
            Some(o) => Some(loaded.value_of(type_name, o, None)?),
            None => None,
        };
        let event = match (before.take(), &now, current.is_none()) {
            (_, Some(v), true) => Some(Event::Present(v.clone())),
            (None, Some(v), false) => Some(Event::Added(v.clone())),
            (Some(_), None, _) => Some(Event::Removed),
            (Some(a), Some(b), _) if !a.same_as(b) => Some(Event::Changed(a, b.clone())),
            _ => None,
        };
        if let Some(e) = event {
            events.push((loaded.version(), e));
        }
        before = now;
        current = Some(loaded);
    }
    if as_json {
        let out: Vec<_> = events
            .iter()
            .map(|(version, e)| match e {
                Event::Present(v) => json!({"version": version, "event": "present", "record": json::to_json(v)}),
                Event::Added(v) => json!({"version": version, "event": "added", "record": json::to_json(v)}),
                Event::Removed => json!({"version": version, "event": "removed"}),
                Event::Changed(a, b) => json!({"version": version, "event": "changed", "differences": a.differences(b).iter().map(|d| json!({
                    "path": d.path, "old": d.old.as_ref().map(json::to_json), "new": d.new.as_ref().map(json::to_json)
                })).collect::<Vec<_>>()}),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        if events.is_empty() {
            println!(
                "no {type_name} with key {} in any retained version",
                key.join(" ")
            );
        }
        for (version, e) in &events {
            match e {
                Event::Present(v) => println!(
                    "version {version}: present (the oldest retained version) {}",
                    json::human(v, usize::MAX)
                ),
                Event::Added(v) => {
                    println!("version {version}: added {}", json::human(v, usize::MAX))
                }
                Event::Removed => println!("version {version}: removed"),
                Event::Changed(a, b) => {
                    println!("version {version}: changed");
                    for d in a.differences(b) {
                        println!("    {}", difference_text(&d));
                    }
                }
            }
        }
    }
    Ok(if events.is_empty() {
        Outcome::Found
    } else {
        Outcome::Done
    })
}
