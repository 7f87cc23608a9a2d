//! `hollow verify`: every blob fetched and checked, the chains replayed and compared with
//! the snapshots of the states they reach.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use hollow_core::{ReadState, StateId};
use hollow_store::layout::BlobName;

use crate::dataset::Dataset;
use crate::{progress, size, Outcome};

/// What verifying found.
#[derive(Default)]
struct Report {
    problems: Vec<String>,
    skipped: Vec<String>,
    checked: usize,
    compared: usize,
}

impl Report {
    fn problem(&mut self, what: String) {
        self.problems.push(what);
    }
}

pub async fn run(dataset: &Dataset) -> anyhow::Result<Outcome> {
    let mut report = Report::default();
    let announced = match dataset.store.announcement().await {
        Ok(a) => a.map(|a| a.state),
        Err(e) => {
            report.problem(format!("the announcement cannot be read: {e}"));
            None
        }
    };
    if announced.is_none() && report.problems.is_empty() {
        report.problem(format!(
            "nothing is announced at {}",
            dataset.store.location(hollow_store::layout::ANNOUNCEMENT)
        ));
    }
    let blobs = dataset.blobs().await?;
    let sizes: HashMap<BlobName, u64> = blobs.iter().copied().collect();
    let states: BTreeSet<StateId> = blobs
        .iter()
        .flat_map(|(b, _)| match *b {
            BlobName::Snapshot(s) => vec![s],
            BlobName::Delta { from, to } | BlobName::ReverseDelta { from, to } => vec![from, to],
        })
        .collect();
    // The last state (in the order they are verified) that needs each state: as the origin of
    // a delta, or as where a reverse delta must lead back to. A state is dropped after that,
    // so memory holds the states a chain still needs, not every state of the store.
    let mut last_use: HashMap<StateId, StateId> = HashMap::new();
    // Deltas by the state they reach; reverse deltas by the state they start from.
    let mut deltas_into: HashMap<StateId, Vec<(StateId, BlobName)>> = HashMap::new();
    let mut reverse_from: HashMap<StateId, Vec<(StateId, BlobName)>> = HashMap::new();
    for &(blob, _) in &blobs {
        let (needed, by) = match blob {
            BlobName::Delta { from, to } => {
                deltas_into.entry(to).or_default().push((from, blob));
                (from, to)
            }
            BlobName::ReverseDelta { from, to } => {
                reverse_from.entry(from).or_default().push((to, blob));
                (to, from)
            }
            BlobName::Snapshot(_) => continue,
        };
        let last = last_use.entry(needed).or_insert(by);
        *last = (*last).max(by);
    }
    let bar = progress::bar(blobs.len() as u64, "verifying".into(), "blobs");
    let mut known: HashMap<StateId, ReadState> = HashMap::new();
    let mut loaded: BTreeSet<StateId> = BTreeSet::new();
    for &state in &states {
        // Every way to the state: deltas from states already reached, and its snapshot.
        let mut reached: Vec<(BlobName, ReadState)> = Vec::new();
        for &(from, blob) in deltas_into.get(&state).into_iter().flatten() {
            bar.inc(1);
            let Some(origin) = known.get(&from) else {
                report.skipped.push(format!(
                    "{}: its origin state {from} cannot be loaded",
                    blob.path()
                ));
                continue;
            };
            if let Some(s) = open(dataset, &mut report, blob, |b| origin.apply_delta(b)).await {
                reached.push((blob, s));
            }
        }
        if sizes.contains_key(&BlobName::Snapshot(state)) {
            bar.inc(1);
            let blob = BlobName::Snapshot(state);
            let read = |b: Bytes| match reached.is_empty() {
                true => ReadState::from_snapshot(b),
                false => ReadState::from_snapshot_without_indexes(b),
            };
            if let Some(s) = open(dataset, &mut report, blob, read).await {
                reached.push((blob, s));
            }
        }
        let Some(((first_blob, first), rest)) = reached.split_first() else {
            continue;
        };
        for (blob, other) in rest {
            report.compared += 1;
            if !first.same_content_as(other) {
                report.problem(format!(
                    "{} and {} reach state {state} with different content",
                    first_blob.path(),
                    blob.path()
                ));
            }
        }
        for (key, index) in first
            .schema()
            .types()
            .iter()
            .filter(|t| !t.primary_key().is_empty())
            .map(|t| (t.name(), first.primary_key_index(t.name())))
        {
            if let Ok(Some((a, b))) = index.map(|i| i.first_duplicate()) {
                report.problem(format!(
                    "state {state}: records {a} and {b} of {key} have the same primary key"
                ));
            }
        }
        known.insert(state, first.clone());
        loaded.insert(state);
        // Reverse deltas from here lead back to states reached before.
        for &(to, blob) in reverse_from.get(&state).into_iter().flatten() {
            bar.inc(1);
            let here = &known[&state];
            if let Some(back) = open(dataset, &mut report, blob, |b| here.apply_delta(b)).await {
                match known.get(&to) {
                    Some(expected) => {
                        report.compared += 1;
                        if !back.same_content_as(expected) {
                            report.problem(format!(
                                "{} leads to a state {to} other than the one reached before",
                                blob.path()
                            ));
                        }
                    }
                    None => report.skipped.push(format!(
                        "{}: state {to} was not reached otherwise, nothing to compare with",
                        blob.path()
                    )),
                }
            }
        }
        known.retain(|s, _| last_use.get(s).is_some_and(|&last| last > state));
    }
    bar.finish_and_clear();
    // Blobs whose states were never reached (deltas from unreachable states) were counted as
    // skipped; the announced state must have been reached.
    if let Some(a) = announced {
        if !loaded.contains(&a) {
            report.problem(format!("the announced state {a} cannot be loaded: no snapshot and chain of deltas lead to it"));
        }
    }
    let total: u64 = sizes.values().sum();
    for s in &report.skipped {
        println!("skipped: {s}");
    }
    println!(
        "{} blobs ({}): {} checked, {} skipped; {} states reached two ways and compared; {} problems",
        blobs.len(),
        size::human(total),
        report.checked,
        report.skipped.len(),
        report.compared,
        report.problems.len()
    );
    if report.problems.is_empty() {
        println!("ok: {}", dataset.name);
        Ok(Outcome::Done)
    } else {
        for p in &report.problems {
            println!("problem: {p}");
        }
        Ok(Outcome::Found)
    }
}

/// Fetches `blob`, reads it with `read` and checks it reaches the state its name says; a
/// failure is a problem of the report.
async fn open(
    dataset: &Dataset,
    report: &mut Report,
    blob: BlobName,
    read: impl FnOnce(Bytes) -> hollow_core::Result<ReadState>,
) -> Option<ReadState> {
    let path = dataset.store.location(&blob.path());
    let bytes = match dataset.store.get(blob).await {
        Ok(b) => b,
        Err(e) => {
            report.problem(format!("{path}: cannot be fetched: {e}"));
            return None;
        }
    };
    match read(bytes) {
        Ok(state) if state.id() == blob.destination() => {
            report.checked += 1;
            Some(state)
        }
        Ok(state) => {
            report.problem(format!(
                "{path} holds state {}, not the one its name says",
                state.id()
            ));
            None
        }
        Err(e) => {
            report.problem(format!("{path}: {e}"));
            None
        }
    }
}
