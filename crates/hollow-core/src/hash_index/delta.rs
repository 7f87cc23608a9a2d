//! Updating a hash index by a delta: the (key, ordinal) pairs of the records the delta removed
//! and added are worked out, and only the shards whose keys they change are rewritten (on the
//! machine's cores); the others are shared with the index of the state before.

use std::ops::Range;
use std::sync::Arc;

use super::{
    pair, shard_ranges, sort_pairs, unpair, Bucket, HashIndex, KeyHash, KeyScratch, Shard,
    SortedPairs, BATCH,
};
use crate::parallel::map_balanced;
use crate::schema::{FieldPath, Hop};
use crate::type_data::StateTypes;

/// The ordinals of one type that a delta removed, and those it added.
pub(crate) type Patched = (Vec<u32>, Vec<u32>);

/// What a delta changed, as an index of one type needs it to be updated.
#[derive(Clone, Copy)]
pub(crate) struct IndexedChanges<'a> {
    /// The records of the indexed type the delta removed, ascending.
    pub(crate) removed: &'a [u32],
    /// The records of the indexed type the delta added, ascending.
    pub(crate) added: &'a [u32],
    /// Per type of the new state: true when every record whose ordinal is in both states is
    /// the same record in both (the type is shared, or patched without reusing an ordinal).
    pub(crate) unchanged_records: &'a [bool],
}

/// The records a delta removed and added are keyed on two cores when there are this many.
const PARALLEL_CHANGES: u64 = 6_250;

/// Shards a delta rewrites are spread over the cores when they hold this many 4-byte words of
/// buckets and postings in all.
const PARALLEL_SHARD_WORDS: u64 = 1 << 18;

/// `work` on a delta's removed side and its added side (weighed by `records`), on two
/// cores when they hold enough records between them.
fn on_both_sides<T: Send, R: Send + Default>(
    gone: T,
    arrived: T,
    records: impl Fn(&T) -> usize,
    work: impl Fn(T) -> R + Sync,
) -> (R, R) {
    let mut sides = map_balanced(
        vec![gone, arrived],
        |side| records(side) as u64,
        PARALLEL_CHANGES,
        work,
    );
    let arrived = sides.pop().unwrap_or_default();
    (sides.pop().unwrap_or_default(), arrived)
}

/// The end of the run of key `key` that starts at `start` in `pairs`, sorted by key (`start`
/// itself when the key is not there).
fn run_end(pairs: &[(u64, u64)], start: usize, key: KeyHash) -> usize {
    start
        + pairs[start..]
            .iter()
            .take_while(|&&p| unpair(p).0 == key)
            .count()
}

impl HashIndex {
    /// The index of `new`, a state reached from `old` (whose index this is) by a delta that
    /// removed and added the records `removed` and `added` of the indexed type. `None` when the
    /// paths no longer resolve alike or the table needs rebuilding: then build it afresh.
    pub(crate) fn updated<S: StateTypes>(
        &self,
        old: &S,
        new: &S,
        changes: &IndexedChanges<'_>,
    ) -> Option<Self> {
        let IndexedChanges {
            removed,
            added,
            unchanged_records,
        } = *changes;
        let schema = new.schema();
        let id = schema.type_id(&self.type_name)?;
        // The paths must read the same columns of types that carried over unchanged in shape
        // (their ids may differ: `paths` are the new state's).
        let mut paths = Vec::with_capacity(self.paths.len());
        for (path, field) in self.paths.iter().zip(&self.fields) {
            let now = schema.resolve_path(id, field).ok()?;
            let alike = now.kind == path.kind
                && now.hops.len() == path.hops.len()
                && now.hops.iter().zip(&path.hops).all(|(a, b)| {
                    a.column == b.column
                        && a.collection == b.collection
                        && schema.counterpart_in(a.ty, old.schema()) == Some(b.ty)
                });
            if !alike {
                return None;
            }
            paths.push(now);
        }
        let (gone, arrived) = match &paths[..] {
            [path] if Self::tail_keys_alike(path, unchanged_records) => {
                self.changed_pairs_by_reference(old, new, path, removed, added)
            }
            _ => self.changed_pairs_in_each_state(old, new, &paths, removed, added),
        };
        let (gone_shards, arrived_shards) = (
            shard_ranges(&gone, self.shard_bits),
            shard_ranges(&arrived, self.shard_bits),
        );
        // The shards whose keys changed are rewritten on the machine's cores, weighed by size.
        let jobs: Vec<_> = self
            .shards
            .iter()
            .zip(gone_shards.into_iter().zip(arrived_shards))
            .map(|(shard, (g, a))| (shard, &gone[g], &arrived[a]))
            .collect();
        let shards = map_balanced(
            jobs,
            |(shard, g, a)| match g.is_empty() && a.is_empty() {
                true => 0,
                false => (shard.buckets.len() * 4 + shard.postings.len()) as u64,
            },
            PARALLEL_SHARD_WORDS,
            |(shard, g, a)| match g.is_empty() && a.is_empty() {
                true => Some(shard.clone()),
                false => shard.updated(g, a, self.shard_bits).map(Arc::new),
            },
        )
        .into_iter()
        .collect::<Option<Vec<_>>>()?;
        Some(Self {
            shards,
            paths,
            fields: self.fields.clone(),
            type_name: self.type_name.clone(),
            ..*self
        })
    }

    /// The (key, ordinal) pairs that left with the records `removed` of `old` and arrived
    /// with the records `added` of `new` (whose paths are `paths`), each sorted by key: each
    /// record keyed in its own state, the two sides on two cores.
    fn changed_pairs_in_each_state<S: StateTypes>(
        &self,
        old: &S,
        new: &S,
        paths: &[FieldPath],
        removed: &[u32],
        added: &[u32],
    ) -> (SortedPairs, SortedPairs) {
        on_both_sides(
            (old, &self.paths[..], removed),
            (new, paths, added),
            |(_, _, ordinals)| ordinals.len(),
            |(state, paths, ordinals)| {
                let mut pairs = Self::keyed_pairs(paths, state, ordinals);
                sort_pairs(&mut pairs);
                pairs
            },
        )
    }

    /// The (key, ordinal) pairs of the records `ordinals` of `state` on `paths`, record by
    /// record, keyed in batches.
    fn keyed_pairs(
        paths: &[FieldPath],
        state: &impl StateTypes,
        ordinals: &[u32],
    ) -> Vec<(u64, u64)> {
        let mut scratch = KeyScratch::default();
        let mut pairs = Vec::with_capacity(ordinals.len() * 2);
        for batch in ordinals.chunks(BATCH) {
            Self::pairs_of(paths, state, batch, &mut pairs, &mut scratch);
        }
        pairs
    }

    /// True when `path` starts with a reference (`cast` in `cast.id`) and every type after
    /// it is one whose records a delta kept as they were wherever it kept their ordinals
    /// (`unchanged_records`, per type of the new state): then a record reaches the same keys
    /// in both states through the same reference.
    fn tail_keys_alike(path: &FieldPath, unchanged_records: &[bool]) -> bool {
        path.hops.len() >= 2
            && !path.hops[0].collection
            && (path.hops[1..].iter()).all(|h| unchanged_records.get(h.ty.index()) == Some(&true))
    }

    /// [`HashIndex::changed_pairs_in_each_state`] for an index on one path whose records past
    /// the first hop keep their keys (see [`HashIndex::tail_keys_alike`]). A changed record
    /// mostly still references the record it referenced before (a movie whose year changed,
    /// its cast list), so each referenced record is keyed once and its keys given to every
    /// changed record that references it.
    fn changed_pairs_by_reference<S: StateTypes>(
        &self,
        old: &S,
        new: &S,
        path: &FieldPath,
        removed: &[u32],
        added: &[u32],
    ) -> (SortedPairs, SortedPairs) {
        let (gone, arrived) = on_both_sides(
            (old, self.paths[0].hops[0], removed),
            (new, path.hops[0], added),
            |(_, _, ordinals)| ordinals.len(),
            |(state, hop, ordinals)| References::of(state, hop, ordinals),
        );
        // A removed record shares the keys of a record the new state has (a corrupt delta
        // could reference one it does not).
        let new_records = &new.type_data(path.hops[1].ty).population;
        let referenced = Referenced::new(&gone, &arrived, |r| new_records.contains(r as u64));
        let (old_keys, new_keys) = self.keys_of_referenced(old, new, path, &referenced);
        let keys_of = |slot: u32| match slot & IN_OLD {
            0 => new_keys.of(slot as usize),
            _ => old_keys.of((slot & !IN_OLD) as usize),
        };
        // Each side's pairs, in ordinal order per key, then sorted by key.
        on_both_sides(
            (gone, &referenced.gone),
            (arrived, &referenced.arrived),
            |(side, _)| side.refs.len(),
            |(side, slots)| {
                let mut pairs = Vec::with_capacity(side.refs.len() * 3);
                for (&(o, _), &slot) in side.refs.iter().zip(slots) {
                    pairs.extend(keys_of(slot).iter().map(|&p| pair(unpair(p).0, o)));
                }
                sort_pairs(&mut pairs);
                pairs
            },
        )
    }

    /// The keys of the records `referenced` lists, old and new, read through the rest of the
    /// path (the old state's path is this index's, `path` the new state's).
    fn keys_of_referenced<S: StateTypes>(
        &self,
        old: &S,
        new: &S,
        path: &FieldPath,
        referenced: &Referenced,
    ) -> (KeysByRecord, KeysByRecord) {
        let rest = |p: &FieldPath| FieldPath {
            hops: p.hops[1..].to_vec(),
            ..p.clone()
        };
        let (old_rest, new_rest) = ([rest(&self.paths[0])], [rest(path)]);
        let jobs: Vec<_> = (referenced.in_old.chunks(BATCH * 16))
            .map(|c| (false, c))
            .chain(referenced.in_new.chunks(BATCH * 16).map(|c| (true, c)))
            .collect();
        let keyed = map_balanced(
            jobs,
            |(_, records)| records.len() as u64,
            PARALLEL_CHANGES,
            |(in_new, records)| match in_new {
                true => (true, Self::keyed_pairs(&new_rest, new, records)),
                false => (false, Self::keyed_pairs(&old_rest, old, records)),
            },
        );
        let (mut old_pairs, mut new_pairs) = (Vec::new(), Vec::new());
        for (in_new, pairs) in keyed {
            match in_new {
                true => new_pairs.extend(pairs),
                false => old_pairs.extend(pairs),
            }
        }
        (
            KeysByRecord::new(&referenced.in_old, old_pairs),
            KeysByRecord::new(&referenced.in_new, new_pairs),
        )
    }
}

/// The records one side of a delta changed (removed, or added) that reference a record
/// through the first hop of an index's path.
#[derive(Default)]
struct References {
    /// (ordinal, referenced record) per changed record whose reference is not null, in
    /// ordinal order.
    refs: Vec<(u32, u32)>,
    /// referenced record ‹‹ 32 | position in `refs`, sorted.
    by_record: Vec<u64>,
}

impl References {
    /// The references of the records `ordinals` of `state`, read by `hop`.
    fn of(state: &impl StateTypes, hop: Hop, ordinals: &[u32]) -> Self {
        let data = state.type_data(hop.ty);
        let value = |o: u32| data.value(o as u64, hop.column);
        let refs: Vec<(u32, u32)> = (ordinals.iter())
            .filter(|&&o| (o as u64) < data.slot_count())
            .filter_map(|&o| Some((o, u32::try_from(value(o)?).ok()?)))
            .collect();
        let mut by_record: Vec<u64> = (refs.iter().enumerate())
            .map(|(i, &(_, r))| (r as u64) << 32 | i as u64)
            .collect();
        let bits = u32::BITS - refs.iter().map(|r| r.1).max().unwrap_or(0).leading_zeros();
        crate::radix_sort::sort_by_bits(&mut by_record, |&e| e, 32, bits);
        Self { refs, by_record }
    }
}

/// Marks a place in [`Referenced::in_old`] rather than [`Referenced::in_new`].
const IN_OLD: u32 = 1 << 31;

/// The distinct records the changed records of a delta reference, to be keyed once each: in
/// the new state when an arrived record references it (it is the same record in both states),
/// else in the old one.
struct Referenced {
    in_new: Vec<u32>,
    in_old: Vec<u32>,
    /// Per removed record (in [`References::refs`] order), the place of the record it
    /// references: an index into `in_new`, or into `in_old` with [`IN_OLD`] set.
    gone: Vec<u32>,
    /// Per added record, the index of the record it references in `in_new`.
    arrived: Vec<u32>,
}

impl Referenced {
    /// `in_new_state` says whether the new state has a referenced record.
    fn new(gone: &References, arrived: &References, in_new_state: impl Fn(u32) -> bool) -> Self {
        let (mut in_new, mut in_old) = (Vec::new(), Vec::new());
        let mut arrived_places = vec![0u32; arrived.refs.len()];
        for &e in &arrived.by_record {
            let r = (e >> 32) as u32;
            if in_new.last() != Some(&r) {
                in_new.push(r);
            }
            arrived_places[e as u32 as usize] = (in_new.len() - 1) as u32;
        }
        let mut gone_places = vec![0u32; gone.refs.len()];
        let mut next_new = 0;
        for &e in &gone.by_record {
            let r = (e >> 32) as u32;
            while in_new.get(next_new).is_some_and(|&n| n < r) {
                next_new += 1;
            }
            gone_places[e as u32 as usize] =
                match in_new.get(next_new) == Some(&r) && in_new_state(r) {
                    true => next_new as u32,
                    false => {
                        if in_old.last() != Some(&r) {
                            in_old.push(r);
                        }
                        (in_old.len() - 1) as u32 | IN_OLD
                    }
                };
        }
        Self {
            in_new,
            in_old,
            gone: gone_places,
            arrived: arrived_places,
        }
    }
}

/// The keys of a list of records: their (key, record) pairs, record by record in the list's
/// order, and where each record's start.
struct KeysByRecord {
    pairs: Vec<(u64, u64)>,
    starts: Vec<u32>,
}

impl KeysByRecord {
    /// `pairs` holds the keys of `records`, record by record in that order.
    fn new(records: &[u32], pairs: Vec<(u64, u64)>) -> Self {
        let mut starts = Vec::with_capacity(records.len() + 1);
        let mut k = 0;
        for &r in records {
            starts.push(k as u32);
            while pairs.get(k).is_some_and(|&p| unpair(p).1 == r) {
                k += 1;
            }
        }
        starts.push(k as u32);
        Self { pairs, starts }
    }

    /// The (key, record) pairs of the `i`-th record.
    fn of(&self, i: usize) -> &[(u64, u64)] {
        &self.pairs[self.starts[i] as usize..self.starts[i + 1] as usize]
    }
}

/// A key a delta changes in a shard: its bucket, the key, and its pairs in the sorted pairs
/// that left and those that arrived.
type ChangedKey = (usize, KeyHash, Range<usize>, Range<usize>);

impl Shard {
    /// This shard with the (key, ordinal) pairs `gone` left and `arrived` added (each sorted
    /// by key then ordinal), written in one pass: unchanged buckets and their runs are copied
    /// in stretches, changed keys' runs merged. `None` when the table is too full or holds
    /// too many emptied keys: then the index is built afresh.
    fn updated(
        &self,
        gone: &[(u64, u64)],
        arrived: &[(u64, u64)],
        shard_bits: u32,
    ) -> Option<Self> {
        let (changed, keys) = self.changed_buckets(gone, arrived, shard_bits)?;
        // The runs of bucket `b` on start here in the old postings (buckets past the old
        // table's end were empty).
        let old_start = |b: usize| match self.buckets.get(b) {
            Some(bucket) => bucket.start as usize,
            None => self.postings.len(),
        };
        // A new key past the old table's last bucket lengthens the table; one empty bucket
        // always ends it.
        let len = (changed.last().map_or(0, |c| c.0 + 2)).max(self.buckets.len());
        let mut next = Shard {
            buckets: Vec::with_capacity(len),
            postings: Vec::with_capacity(self.postings.len() + arrived.len()),
            keys,
            ..*self
        };
        let mut emptied = self.emptied as isize;
        let mut b = 0;
        for (c, key, gone_pairs, arrived_pairs) in changed {
            next.copy_unchanged(self, b..c, old_start(b)..old_start(c));
            let run = &self.postings[old_start(c)..old_start(c + 1)];
            let start = next.postings.len();
            merge_run(
                run,
                &gone[gone_pairs],
                &arrived[arrived_pairs],
                &mut next.postings,
            );
            next.buckets.push(Bucket {
                hash: key[0],
                hash_low: key[1] as u32,
                start: start as u32,
            });
            let was_emptied = self.buckets.get(c).is_some_and(|o| !o.is_empty()) && run.is_empty();
            match (was_emptied, next.postings.len() == start) {
                (false, true) => emptied += 1,
                (true, false) => emptied -= 1,
                _ => {}
            }
            b = c + 1;
        }
        next.copy_unchanged(self, b..len, old_start(b)..self.postings.len());
        next.emptied = emptied.max(0) as usize;
        if next.emptied * 4 > next.keys {
            return None;
        }
        Some(next)
    }

    /// The changed keys of `gone` and `arrived`, by bucket: each key's bucket, the key, and
    /// its pairs in each; with the shard's key count after. A key the shard has keeps its
    /// bucket; a new key takes the first bucket from its home that is empty and not taken by
    /// another new key (new keys come in home order, so theirs are in order too). `None` when
    /// the table would be too full.
    fn changed_buckets(
        &self,
        gone: &[(u64, u64)],
        arrived: &[(u64, u64)],
        shard_bits: u32,
    ) -> Option<(Vec<ChangedKey>, usize)> {
        let mut changed = Vec::new();
        let mut keys = self.keys;
        let mut first_free = 0;
        let (mut g, mut a) = (0, 0);
        while g < gone.len() || a < arrived.len() {
            let key = match (gone.get(g), arrived.get(a)) {
                (Some(&x), Some(&y)) => unpair(x).0.min(unpair(y).0),
                (Some(&x), None) | (None, Some(&x)) => unpair(x).0,
                (None, None) => break,
            };
            let (g_end, a_end) = (run_end(gone, g, key), run_end(arrived, a, key));
            let home = super::home(key, self.homes, shard_bits);
            let bucket = match self.probe(key, home) {
                Some(b) => b,
                None => {
                    keys += 1;
                    if keys * 4 > self.homes * 3 {
                        return None;
                    }
                    let mut b = home.max(first_free);
                    while self.buckets.get(b).is_some_and(|x| !x.is_empty()) {
                        b += 1;
                    }
                    first_free = b + 1;
                    b
                }
            };
            changed.push((bucket, key, g..g_end, a..a_end));
            (g, a) = (g_end, a_end);
        }
        // Keys come in home order, so their buckets mostly do too.
        if !changed.is_sorted_by_key(|c| c.0) {
            changed.sort_unstable_by_key(|c| c.0);
        }
        Some((changed, keys))
    }

    /// Appends the unchanged buckets `buckets` of `old` and their runs `old_runs`, the
    /// buckets' starts moved to where the runs now are (buckets past `old`'s table are empty).
    fn copy_unchanged(&mut self, old: &Shard, buckets: Range<usize>, old_runs: Range<usize>) {
        let shift = (self.postings.len() as u32).wrapping_sub(old_runs.start as u32);
        let within = buckets.start.min(old.buckets.len())..buckets.end.min(old.buckets.len());
        self.buckets
            .extend(old.buckets[within.clone()].iter().map(|&b| Bucket {
                start: b.start.wrapping_add(shift),
                ..b
            }));
        self.postings.extend_from_slice(&old.postings[old_runs]);
        let end = self.postings.len() as u32;
        let past = buckets.len() - within.len();
        self.buckets
            .extend(std::iter::repeat_n(Bucket::empty(end), past));
    }
}

/// Appends `run` (ascending) without the ordinals of the pairs `gone` and with those of
/// `arrived` (pairs of one key, by ascending ordinal), ascending: the stretches of `run`
/// between them are copied whole.
fn merge_run(run: &[u32], gone: &[(u64, u64)], arrived: &[(u64, u64)], out: &mut Vec<u32>) {
    let (mut gone, mut arrived) = (gone.iter().peekable(), arrived.iter().peekable());
    let mut rest = run;
    loop {
        let (next, leaves) = match (gone.peek(), arrived.peek()) {
            (Some(&&g), Some(&&a)) if unpair(g).1 <= unpair(a).1 => (unpair(g).1, true),
            (_, Some(&&a)) => (unpair(a).1, false),
            (Some(&&g), None) => (unpair(g).1, true),
            (None, None) => break,
        };
        let before = rest.partition_point(|&o| o < next);
        out.extend_from_slice(&rest[..before]);
        rest = &rest[before..];
        if leaves {
            gone.next();
            if rest.first() == Some(&next) {
                rest = &rest[1..];
            }
        } else {
            arrived.next();
            out.push(next);
        }
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::{ReadState, SchemaBuilder, WriteState};

    #[derive(Serialize, Deserialize)]
    struct Movie {
        id: i64,
        country: String,
        cast: Vec<i64>,
    }

    fn movie(id: i64, version: i64) -> Movie {
        Movie {
            id,
            country: ["US", "FR", "JP"][(id % 3) as usize].into(),
            cast: (0..(id % 4)).map(|a| (id + a + version) % 50).collect(),
        }
    }

    /// The postings of every key, in bucket order, to compare two indexes.
    fn runs(index: &HashIndex) -> Vec<(KeyHash, Vec<u32>)> {
        let mut out: Vec<_> = index
            .shards
            .iter()
            .flat_map(|s| {
                s.buckets
                    .windows(2)
                    .filter(|b| !b[0].is_empty() && b[1].start > b[0].start)
                    .map(|b| {
                        let run = &s.postings[b[0].start as usize..b[1].start as usize];
                        (b[0].key(), run.to_vec())
                    })
            })
            .collect();
        out.sort();
        out
    }

    /// A write state that committed `n` movies as version 1, and the state it wrote.
    fn first_state(n: i64) -> (WriteState, ReadState) {
        let schema = SchemaBuilder::new()
            .add::<Movie>()
            .primary_key("Movie", &["id"])
            .build()
            .unwrap();
        let mut w = WriteState::new(schema);
        for id in 0..n {
            w.add(&movie(id, 0)).unwrap();
        }
        let state = ReadState::from_snapshot(Bytes::from(w.write_snapshot(1).unwrap())).unwrap();
        w.commit_cycle().unwrap();
        (w, state)
    }

    #[test]
    fn a_delta_updates_the_index_in_place_of_a_rebuild() {
        let (mut w, mut state) = first_state(2000);
        state.add_hash_index("Movie", &["cast"]).unwrap();
        state.add_hash_index("Movie", &["country"]).unwrap();
        for v in 1..4 {
            // A few movies change, a few leave, a few arrive.
            for id in (v * 10)..2000 + v * 10 {
                w.add(&movie(id, if id % 97 == 0 { v } else { 0 })).unwrap();
            }
            let delta = w.write_delta(v as u64, v as u64 + 1).unwrap();
            w.commit_cycle().unwrap();
            let next = state.apply_delta(Bytes::from(delta)).unwrap();
            for fields in [&["cast"][..], &["country"][..]] {
                let old = state.hash_index("Movie", fields).unwrap();
                let id = next.schema().require("Movie").unwrap();
                let patched = next.type_data(id);
                let removed: Vec<u32> = state
                    .type_data(id)
                    .population
                    .iter()
                    .filter(|&o| !patched.population.contains(o))
                    .map(|o| o as u32)
                    .collect();
                let added: Vec<u32> = patched
                    .population
                    .iter()
                    .filter(|&o| !state.type_data(id).population.contains(o))
                    .map(|o| o as u32)
                    .collect();
                assert!(!added.is_empty() && !removed.is_empty());
                let rebuilt = HashIndex::build(&next, "Movie", fields).unwrap();
                // The writer reuses no ordinal within a cycle: records of every type may be
                // keyed by reference (`cast` reaches its values through a list), or not.
                let types = next.schema().len();
                let mut updated = None;
                for unchanged in [vec![false; types], vec![true; types]] {
                    let changes = IndexedChanges {
                        removed: &removed,
                        added: &added,
                        unchanged_records: &unchanged,
                    };
                    let index = old.updated(&state, &next, &changes).expect("updated");
                    assert_eq!(runs(&index), runs(&rebuilt), "{fields:?} {}", unchanged[0]);
                    updated = Some(index);
                }
                let updated = updated.unwrap();
                let shared = updated
                    .shards
                    .iter()
                    .zip(&old.shards)
                    .filter(|(a, b)| Arc::ptr_eq(a, b))
                    .count();
                assert!(shared < old.shards.len() || old.shards.len() == 1);
                assert_eq!(
                    runs(next.hash_index("Movie", fields).unwrap()),
                    runs(&rebuilt)
                );
            }
            state = next;
        }
    }

    #[test]
    fn a_small_delta_rewrites_one_shard_and_shares_the_others() {
        let (mut w, mut state) = first_state(40_000);
        state.add_hash_index("Movie", &["id"]).unwrap();
        for id in 0..40_000 {
            w.add(&movie(id, (id == 777) as i64)).unwrap();
        }
        let delta = w.write_delta(1, 2).unwrap();
        let next = state.apply_delta(Bytes::from(delta)).unwrap();
        let (before, after) = (
            state.hash_index("Movie", &["id"]).unwrap(),
            next.hash_index("Movie", &["id"]).unwrap(),
        );
        assert_eq!(before.shards.len(), 8);
        let shared = after
            .shards
            .iter()
            .zip(&before.shards)
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert_eq!(shared, 7, "one movie changed: one shard rewritten");
        assert_eq!(
            runs(after),
            runs(&HashIndex::build(&next, "Movie", &["id"]).unwrap())
        );
        let ids = next.object("Movie").unwrap().int("id").unwrap();
        let found = after.find(&777i64).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(ids.get(found[0]), Some(777));
    }

    /// The (key, postings) of every key of `shard` that has records, probed with `run`.
    fn shard_runs(shard: &Shard) -> Vec<(KeyHash, Vec<u32>)> {
        let runs: Vec<_> = shard
            .buckets
            .iter()
            .filter(|b| !b.is_empty())
            .filter_map(|b| Some((b.key(), shard.run(b.key(), 0)?.to_vec())))
            .filter(|(_, run)| !run.is_empty())
            .collect();
        let ends = shard.buckets.windows(2).all(|b| b[0].start <= b[1].start);
        assert!(ends, "runs follow each other in bucket order");
        assert_eq!(
            shard.buckets.last().map(|b| b.start as usize),
            Some(shard.postings.len())
        );
        runs
    }

    /// Keys whose homes are the table's last buckets run past its end instead of wrapping
    /// around, when built and when a delta adds more of them; runs stay in bucket order.
    #[test]
    fn keys_past_the_last_home_stay_in_bucket_order() {
        let key = |i: u64| [(u64::MAX - i * 2) | 1, i & 0xffff];
        let pairs_of = |keys: &[u64], salt: u32| -> Vec<(u64, u64)> {
            let mut pairs: Vec<_> = keys
                .iter()
                .flat_map(|&i| (0..(i % 3 + 1) as u32).map(move |o| pair(key(i), o * 10 + salt)))
                .collect();
            pairs.sort_unstable();
            pairs
        };
        // 40 keys spread over the table, 12 of them homed in the very last bucket.
        let spread: Vec<u64> = (0..28).map(|i| i * (u64::MAX / 56) / 2 + 1_000).collect();
        let crowded: Vec<u64> = (0..12).collect();
        let all: Vec<u64> = spread.iter().chain(&crowded).copied().collect();
        let shard = Shard::from_sorted(&pairs_of(&all, 0), 0);
        assert!(
            shard.buckets.len() > shard.homes + 1,
            "keys ran past the last home"
        );
        assert_eq!(shard_runs(&shard).len(), 40);
        for &i in &all {
            assert!(shard.run(key(i), 0).is_some_and(|r| !r.is_empty()));
        }
        // Four more crowded keys arrive; a crowded key and a spread one lose a record each.
        let more: Vec<u64> = (12..16).collect();
        let arrived = pairs_of(&more, 1);
        let gone = {
            let mut g = vec![pair(key(3), 0), pair(key(spread[5]), 0)];
            g.sort_unstable();
            g
        };
        let next = shard.updated(&gone, &arrived, 0).expect("updated");
        let mut expected: Vec<(u64, u64)> = pairs_of(&all, 0)
            .into_iter()
            .filter(|p| !gone.contains(p))
            .chain(arrived.iter().copied())
            .collect();
        expected.sort_unstable();
        let mut got = shard_runs(&next);
        got.sort();
        let mut want = shard_runs(&Shard::from_sorted(&expected, 0));
        want.sort();
        assert_eq!(got, want);
    }

    #[derive(Serialize, Deserialize)]
    struct Actor {
        id: i64,
    }

    #[derive(Serialize, Deserialize)]
    struct Film {
        id: i64,
        cast: Vec<Actor>,
    }

    #[derive(Serialize, Deserialize)]
    struct Note {
        text: String,
    }

    fn film(id: i64, version: i64) -> Film {
        Film {
            id,
            cast: (0..id % 4)
                .map(|a| Actor {
                    id: (id + a + version) % 40,
                })
                .collect(),
        }
    }

    /// A delta to a schema that declares a type before the indexed ones moves their type ids:
    /// the index is updated reading the new state with the new ids.
    #[test]
    fn a_delta_that_moves_type_ids_updates_the_index_through_the_new_ones() {
        let mut w = WriteState::new(SchemaBuilder::new().add::<Film>().build().unwrap());
        for id in 0..3000 {
            w.add(&film(id, 0)).unwrap();
        }
        let mut state =
            ReadState::from_snapshot(Bytes::from(w.write_snapshot(1).unwrap())).unwrap();
        w.commit_cycle().unwrap();
        state.add_hash_index("Film", &["cast.id"]).unwrap();
        let moved = SchemaBuilder::new()
            .add::<Note>()
            .add::<Film>()
            .build()
            .unwrap();
        w.set_schema(moved).unwrap();
        w.add(&Note { text: "new".into() }).unwrap();
        for id in 0..3000 {
            w.add(&film(id, (id % 7 == 0) as i64)).unwrap();
        }
        let delta = w.write_delta(1, 2).unwrap();
        let next = state.apply_delta(Bytes::from(delta)).unwrap();
        let (before, after) = (state.schema(), next.schema());
        assert_ne!(before.type_id("Film"), after.type_id("Film"), "ids moved");
        let updated = next.hash_index("Film", &["cast.id"]).unwrap();
        let rebuilt = HashIndex::build(&next, "Film", &["cast.id"]).unwrap();
        assert_eq!(runs(updated), runs(&rebuilt));
        assert!(!updated.find(&3i64).unwrap().is_empty());
    }
}
