//! `hollow versions`: what is announced, and every state the store holds.

use std::collections::{BTreeMap, HashSet};

use hollow_core::StateId;
use hollow_store::layout::BlobName;
use serde_json::json;

use crate::dataset::Dataset;
use crate::{size, Outcome};

/// The blobs of one state and what can be done with it.
#[derive(Default)]
struct StateRow {
    snapshot: Option<u64>,
    /// Deltas into it: (from, bytes).
    deltas_in: Vec<(StateId, u64)>,
    /// Reverse deltas out of it, back to an older state: (to, bytes).
    reverse_out: Vec<(StateId, u64)>,
}

/// Whether a state can be loaded, and whether it is on the announced line.
fn status(
    state: StateId,
    announced: Option<StateId>,
    line: &HashSet<StateId>,
    reachable: bool,
) -> &'static str {
    match () {
        _ if Some(state) == announced => "announced",
        _ if announced.is_some() && !line.contains(&state) => "not on the announced line",
        _ if !reachable => "unreachable: no snapshot leads to it",
        _ if announced.is_some_and(|a| state.version > a.version) => {
            "newer than the announced (not announced)"
        }
        _ => "retained",
    }
}

pub async fn run(dataset: &Dataset, as_json: bool) -> anyhow::Result<Outcome> {
    let blobs = dataset.blobs().await?;
    let names: Vec<BlobName> = blobs.iter().map(|(b, _)| *b).collect();
    let announcement = dataset.store.announcement_object().await?;
    let epoch = announcement.as_ref().map(|a| a.body.epoch);
    let announced = announcement.and_then(|a| a.announcement()).map(|a| a.state);
    let lease = dataset.store.lease().await.ok().flatten();
    let mut rows: BTreeMap<StateId, StateRow> = BTreeMap::new();
    for &(blob, bytes) in &blobs {
        match blob {
            BlobName::Snapshot(s) => rows.entry(s).or_default().snapshot = Some(bytes),
            BlobName::Delta { from, to } => {
                rows.entry(to).or_default().deltas_in.push((from, bytes));
                rows.entry(from).or_default();
            }
            BlobName::ReverseDelta { from, to } => {
                rows.entry(from).or_default().reverse_out.push((to, bytes));
                rows.entry(to).or_default();
            }
        }
    }
    let line: HashSet<StateId> = announced
        .map(|a| hollow_store::announced_line(&names, a))
        .unwrap_or_default()
        .into_iter()
        .collect();
    let total: u64 = blobs.iter().map(|(_, b)| b).sum();
    let listed: Vec<_> = rows
        .iter()
        .map(|(&state, row)| {
            let reachable = hollow_store::plan(&names, None, state, usize::MAX).is_ok();
            (
                state,
                row,
                reachable,
                status(state, announced, &line, reachable),
            )
        })
        .collect();
    if as_json {
        let states: Vec<_> = listed
            .iter()
            .map(|(state, row, reachable, status)| {
                json!({
                    "version": state.version,
                    "state": state.to_string(),
                    "snapshot_bytes": row.snapshot,
                    "deltas_in": row.deltas_in.iter().map(|(f, b)| json!({"from": f.to_string(), "bytes": b})).collect::<Vec<_>>(),
                    "reverse_deltas_out": row.reverse_out.iter().map(|(t, b)| json!({"to": t.to_string(), "bytes": b})).collect::<Vec<_>>(),
                    "reachable": reachable,
                    "status": status,
                })
            })
            .collect();
        let out = json!({
            "store": dataset.store.location(""),
            "announced": announced.map(|a| json!({"version": a.version, "state": a.to_string(), "epoch": epoch})),
            "leader": lease.map(|l| json!({"holder": l.lease.holder, "epoch": l.lease.epoch, "released": l.lease.released})),
            "blobs": blobs.len(),
            "bytes": total,
            "states": states,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Done);
    }
    println!("store:     {}", dataset.store.location(""));
    match announced {
        Some(a) => println!(
            "announced: version {} (state {a}{})",
            a.version,
            epoch
                .filter(|&e| e > 0)
                .map(|e| format!(", leader epoch {e}"))
                .unwrap_or_default()
        ),
        None => println!("announced: nothing"),
    }
    if let Some(l) = lease {
        let l = l.lease;
        let held = if l.released { "released by" } else { "held by" };
        println!("leader:    epoch {}, {held} {}", l.epoch, l.holder);
    }
    println!("blobs:     {} ({})", blobs.len(), size::human(total));
    println!();
    println!(
        "{:>8}  {:<19}  {:>9}  {:>9}  {:>9}  status",
        "version", "state tag", "snapshot", "delta in", "reverse"
    );
    for (state, row, _, status) in &listed {
        let sum = |v: &[(StateId, u64)]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                size::human(v.iter().map(|(_, b)| b).sum())
            }
        };
        println!(
            "{:>8}  {:016x}     {:>9}  {:>9}  {:>9}  {status}",
            state.version,
            state.tag,
            row.snapshot.map_or("-".to_string(), size::human),
            sum(&row.deltas_in),
            sum(&row.reverse_out),
        );
    }
    Ok(Outcome::Done)
}
