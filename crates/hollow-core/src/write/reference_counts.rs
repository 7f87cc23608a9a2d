//! Reference counts, so that the sweep of an incremental cycle costs in proportion to the cycle's
//! change instead of a pass over every record.
//!
//! For every record of a type that other types reference, and every dictionary entry: how many
//! present records hold it. In an acyclic schema a record (or entry) is reachable exactly when
//! its count is above zero, counted parents first. So a sweep needs only the records whose
//! presence changed: those of root types added or removed by the cycle, then, type by type,
//! those whose count crossed zero. The counts are those of the committed state; a sweep makes
//! them the current state's (pending), and its commit keeps them if nothing was added or removed
//! since (the presence it swept to has the same fingerprint). Anything else (a cycle abandoned,
//! a schema change, a cycle not ended by a sweep) drops them, and the next sweep counts afresh.

use super::sweep::{tally_links, LinkCounts, Tally};
use super::{TypeWriter, WriteState};
use crate::bitset::Bitset;
use crate::schema::{Kind, TypeId};

/// See the module docs.
#[derive(Debug)]
pub(crate) struct ReferenceCounts {
    /// Per type: per ordinal, the present records that reference it (empty for a type no column
    /// references).
    records: Vec<Vec<u32>>,
    /// Per type, per column: per dictionary entry, the present records of the type that hold it.
    dicts: Vec<Vec<Vec<u32>>>,
    /// `Some` when the counts are those of the current cycle's state (not yet committed): the
    /// fingerprint of its presence when the sweep ended.
    pub(super) pending: Option<u64>,
}

/// What a sweep by counts has yet to settle, per table: the ordinals whose count changed (or,
/// after counting afresh, that were present with a count of zero).
#[derive(Default)]
struct Candidates {
    records: Vec<Vec<u32>>,
    dicts: Vec<Vec<Vec<u32>>>,
}

/// The values the linking columns `links` of the record at `ordinal` of `tw` hold, non-null,
/// as (column, value).
fn for_each_link(
    tw: &TypeWriter,
    links: &[usize],
    ordinal: u32,
    words: &mut Vec<u64>,
    mut f: impl FnMut(usize, u32),
) {
    let mask_words = tw.shape.mask_words;
    for row in tw.record(ordinal, words).chunks_exact(tw.shape.row_words) {
        for &c in links {
            if mask_words == 0 || row[c / 64] >> (c % 64) & 1 == 0 {
                f(c, row[mask_words + c] as u32);
            }
        }
    }
}

/// Adds `by` to `counts[at]` (growing it), noting `at` as a candidate; `false` when a count
/// would go below zero (the counts are not those of the state they were taken for).
fn add(counts: &mut Vec<u32>, candidates: &mut Vec<u32>, at: u32, by: i32) -> bool {
    if counts.len() <= at as usize {
        counts.resize(at as usize + 1, 0);
    }
    let Some(c) = counts[at as usize].checked_add_signed(by) else {
        return false;
    };
    counts[at as usize] = c;
    candidates.push(at);
    true
}

impl WriteState {
    /// Per type: whether a column of the schema references it.
    pub(super) fn referenced_types(&self) -> Vec<bool> {
        let mut referenced = vec![false; self.schema.len()];
        for t in self.schema.types() {
            for c in t.columns() {
                if let Kind::Reference(r) = c.ty.kind {
                    referenced[r.index()] = true;
                }
            }
        }
        referenced
    }

    /// A fingerprint of which records and dictionary entries are present now.
    pub(super) fn presence_fingerprint(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for tw in &self.types {
            h.update(&tw.records.present().fingerprint().to_le_bytes());
            for d in tw.dicts.iter().flatten() {
                h.update(&d.present().fingerprint().to_le_bytes());
            }
        }
        h.digest()
    }

    /// The counts of the committed state, taken afresh from every committed record, with the
    /// committed records and entries no record holds as candidates (a state written by full
    /// cycles may hold records of referenced types that nothing references).
    fn count_committed(&self, referenced: &[bool]) -> (ReferenceCounts, Candidates) {
        let mut counts = ReferenceCounts {
            records: vec![Vec::new(); self.types.len()],
            dicts: self
                .types
                .iter()
                .map(|tw| vec![Vec::new(); tw.dicts.len()])
                .collect(),
            pending: None,
        };
        for (t, tw) in self.types.iter().enumerate() {
            let id = TypeId(t as u32);
            let (def, links) = (self.schema.get(id), self.layout.linking_columns(id));
            let tallies: Vec<LinkCounts> =
                tally_links(&self.types, def, links, id, tw.records.previous());
            for (&c, tally) in links.iter().zip(tallies) {
                let target = match def.columns()[c].ty.kind {
                    Kind::Reference(r) => &mut counts.records[r.index()],
                    _ => &mut counts.dicts[t][c],
                };
                let mut sum = LinkCounts(std::mem::take(target));
                sum.merge(&tally);
                *target = sum.0;
            }
        }
        let unreferenced = |set: &Bitset, counts: &[u32]| -> Vec<u32> {
            set.iter()
                .filter(|&o| counts.get(o as usize).is_none_or(|&c| c == 0))
                .map(|o| o as u32)
                .collect()
        };
        let candidates = Candidates {
            records: self
                .types
                .iter()
                .enumerate()
                .map(|(t, tw)| match referenced[t] {
                    true => unreferenced(tw.records.previous(), &counts.records[t]),
                    false => Vec::new(),
                })
                .collect(),
            dicts: self
                .types
                .iter()
                .enumerate()
                .map(|(t, tw)| {
                    tw.dicts
                        .iter()
                        .enumerate()
                        .map(|(c, d)| {
                            d.as_ref().map_or(Vec::new(), |d| {
                                unreferenced(d.previous(), &counts.dicts[t][c])
                            })
                        })
                        .collect()
                })
                .collect(),
        };
        (counts, candidates)
    }

    /// The sweep of an acyclic schema by reference counts (see the module docs); `false`, with
    /// nothing changed, when the schema has cycles or the counts turn out not to fit the
    /// committed state.
    pub(super) fn sweep_by_counts(&mut self) -> bool {
        let Some(order) = self.layout.types_children_first() else {
            return false;
        };
        let order: Vec<TypeId> = order.rev().collect();
        let referenced = self.referenced_types();
        let (mut counts, mut candidates) = match self.reference_counts.take() {
            Some(counts) if counts.pending.is_none() => {
                let candidates = Candidates {
                    records: vec![Vec::new(); self.types.len()],
                    dicts: self
                        .types
                        .iter()
                        .map(|tw| vec![Vec::new(); tw.dicts.len()])
                        .collect(),
                };
                (counts, candidates)
            }
            _ => self.count_committed(&referenced),
        };
        // Per type: the records that join the state and those that leave it, settled parents
        // first; the presence of referenced types and of dictionaries is set at the end.
        let mut joining: Vec<Vec<u32>> = vec![Vec::new(); self.types.len()];
        let mut leaving: Vec<Vec<u32>> = vec![Vec::new(); self.types.len()];
        let mut dict_changes: Vec<(usize, usize, Vec<u32>, Vec<u32>)> = Vec::new();
        let settle = |candidates: &mut Vec<u32>, counts: &[u32], previous: &Bitset| {
            candidates.sort_unstable();
            candidates.dedup();
            let present = |o: u32| counts.get(o as usize).is_some_and(|&c| c > 0);
            let joins = candidates
                .iter()
                .copied()
                .filter(|&o| present(o) && !previous.contains(o as u64))
                .collect::<Vec<u32>>();
            let leaves = candidates
                .iter()
                .copied()
                .filter(|&o| !present(o) && previous.contains(o as u64))
                .collect::<Vec<u32>>();
            (joins, leaves)
        };
        let mut words = Vec::new();
        for &t in &order {
            let ti = t.index();
            let tw = &self.types[ti];
            let (joins, leaves) = match referenced[ti] {
                true => settle(
                    &mut candidates.records[ti],
                    &counts.records[ti],
                    tw.records.previous(),
                ),
                false => (
                    tw.records
                        .present()
                        .iter_minus(tw.records.previous())
                        .map(|o| o as u32)
                        .collect(),
                    tw.records
                        .previous()
                        .iter_minus(tw.records.present())
                        .map(|o| o as u32)
                        .collect(),
                ),
            };
            let def = self.schema.get(t);
            let links = self.layout.linking_columns(t);
            let mut fits = true;
            for (records, by) in [(&joins, 1), (&leaves, -1)] {
                for &o in records {
                    for_each_link(tw, links, o, &mut words, |c, v| {
                        fits &= match def.columns()[c].ty.kind {
                            Kind::Reference(r) => add(
                                &mut counts.records[r.index()],
                                &mut candidates.records[r.index()],
                                v,
                                by,
                            ),
                            _ => add(
                                &mut counts.dicts[ti][c],
                                &mut candidates.dicts[ti][c],
                                v,
                                by,
                            ),
                        };
                    });
                }
            }
            if !fits {
                return false;
            }
            for (c, d) in tw.dicts.iter().enumerate() {
                if let Some(d) = d {
                    let (j, l) = settle(
                        &mut candidates.dicts[ti][c],
                        &counts.dicts[ti][c],
                        d.previous(),
                    );
                    dict_changes.push((ti, c, j, l));
                }
            }
            joining[ti] = joins;
            leaving[ti] = leaves;
        }
        for (ti, tw) in self.types.iter_mut().enumerate() {
            if referenced[ti] {
                tw.records.carry_over();
                joining[ti].iter().for_each(|&o| {
                    tw.records.mark(o);
                });
                leaving[ti].iter().for_each(|&o| tw.records.unmark(o));
            }
        }
        for (ti, c, joins, leaves) in dict_changes {
            if let Some(d) = &mut self.types[ti].dicts[c] {
                d.carry_over();
                joins.iter().for_each(|&o| {
                    d.mark(o);
                });
                leaves.iter().for_each(|&o| d.unmark(o));
            }
        }
        counts.pending = Some(self.presence_fingerprint());
        self.reference_counts = Some(counts);
        true
    }

    /// Whether the counts are those a sweep made for the current state, still as it was swept
    /// (nothing added or removed since): asked before a commit, whose state they then are.
    pub(super) fn reference_counts_fit_current_state(&self) -> bool {
        let pending = self.reference_counts.as_ref().and_then(|c| c.pending);
        pending.is_some_and(|p| p == self.presence_fingerprint())
    }

    /// At a commit: the counts become the committed state's when they fit it (`fit`, from
    /// [`WriteState::reference_counts_fit_current_state`] before the commit); otherwise they
    /// are dropped.
    pub(super) fn commit_reference_counts(&mut self, fit: bool) {
        match (&mut self.reference_counts, fit) {
            (Some(counts), true) => counts.pending = None,
            _ => self.reference_counts = None,
        }
    }

    /// At an abandoned cycle: counts made for its state are dropped; those of the committed
    /// state stay.
    pub(super) fn abandon_reference_counts(&mut self) {
        if self
            .reference_counts
            .as_ref()
            .is_some_and(|c| c.pending.is_some())
        {
            self.reference_counts = None;
        }
    }
}
