//! Secondary hash indexes: key value(s) → every record that has them, in O(1). A key is one
//! or more field paths (see [`FieldPath`](crate::schema::FieldPath)): `country`, or `cast.id` (a movie is found under each
//! of its actors' ids).
//!
//! Layout: shards of about 4,096 keys, chosen by the top bits of the key's hash. Each is a table
//! of distinct keys (open addressing, linear probing), each key naming a run of a postings
//! array that holds the ordinals of its records in ascending order, runs in bucket order. A
//! delta rewrites only the shards whose keys it changes, copying the runs between the changed
//! keys, and shares the other shards with the state before: never a rebuild (Netflix Hollow
//! rebuilds its hash indexes on every delta). Keys are identified by 96 bits of a hash of their
//! values.

mod delta;

use std::ops::Range;
use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_128;

use crate::error::{Error, Result, SchemaProblem};
use crate::format::saved_indexes::{SavedHashIndex, SavedShard};
use crate::index::{combine, kind_class, mix, part_class, stored_part, Key, KeyMismatch, KeyPart};
use crate::parallel::map_ordinals;
use crate::schema::{FieldPath, TypeId, TypeKind};
use crate::type_data::StateTypes;

pub(crate) use delta::{IndexedChanges, Patched};

/// A key's hash: two words (see [`finished`] for the bits that count).
type KeyHash = [u64; 2];

/// The hash a key starts from, before its fields are combined in.
const SEED: KeyHash = [0x9E37_79B9_7F4A_7C15, 0x243F_6A88_85A3_08D3];

fn part_hash(p: KeyPart<'_>) -> KeyHash {
    match p {
        KeyPart::Null => [0x6e75_6c6c, 0x4e55_4c4c],
        KeyPart::Int(v) => [mix(v as u64), mix(!(v as u64) ^ 0x2545_f491_4f6c_dd1d)],
        KeyPart::Float(b) => [mix(b ^ 0x5bd1_e995), mix(b ^ 0x27d4_eb2f_1656_67c5)],
        KeyPart::Bytes(b) => {
            let h = xxh3_128(b);
            [h as u64, (h >> 64) as u64]
        }
    }
}

fn combined(h: KeyHash, part: KeyHash) -> KeyHash {
    [
        combine(h[0], part[0]),
        (h[1].rotate_left(31) ^ part[1]).wrapping_mul(0xc2b2_ae3d_27d4_eb4f),
    ]
}

/// The key's identity: 96 bits of its hash (the low bit of the first word set, so that no key
/// looks like an empty bucket); the 32 bits of the second word travel beside an ordinal in one word when sorting.
fn finished(h: KeyHash) -> KeyHash {
    [h[0] | 1, h[1] & 0xffff_ffff]
}

/// A key and an ordinal as one sortable pair: (first word, second word ‹‹ 32 | ordinal).
fn pair(h: KeyHash, ordinal: u32) -> (u64, u64) {
    (h[0], h[1] << 32 | ordinal as u64)
}

fn unpair(p: (u64, u64)) -> (KeyHash, u32) {
    ([p.0, p.1 >> 32], p.1 as u32)
}

/// The number of distinct keys of `pairs`, sorted by key.
fn distinct_keys(pairs: &[(u64, u64)]) -> usize {
    pairs
        .iter()
        .enumerate()
        .filter(|&(i, &p)| i == 0 || unpair(p).0 != unpair(pairs[i - 1]).0)
        .count()
}

/// (key, ordinal) pairs (see [`pair`]) sorted by key, then ordinal.
type SortedPairs = Vec<(u64, u64)>;

/// Sorts pairs by key then ordinal: a radix sort by the top bits of the key's first word
/// (as many bits as there are pairs, about), then each run of equal top bits by the rest. Keys
/// then come in the order of their home buckets, whatever the table's size (see [`home`]).
fn sort_pairs(pairs: &mut Vec<(u64, u64)>) {
    let bits = (pairs.len() | 1)
        .next_power_of_two()
        .trailing_zeros()
        .clamp(1, 32);
    crate::radix_sort::sort_by_bits(pairs, |p| p.0, 64 - bits, bits);
    let mut start = 0;
    while start < pairs.len() {
        let top = pairs[start].0 >> (64 - bits);
        let end = pairs[start..]
            .iter()
            .position(|p| p.0 >> (64 - bits) != top)
            .map_or(pairs.len(), |n| start + n);
        // Pairs of one key are in ordinal order already (the sort is stable); only a run
        // where keys share their top bits needs sorting.
        let key = |p: &(u64, u64)| (p.0, p.1 >> 32);
        if pairs[start + 1..end]
            .iter()
            .any(|p| key(p) != key(&pairs[start]))
        {
            pairs[start..end].sort_unstable();
        }
        start = end;
    }
}

/// Buckets of a table for `keys` keys: 2/3 full (at least 16), so that deltas can add keys
/// until it is 3/4 full before it is built again.
fn table_len(keys: usize) -> usize {
    (keys + keys / 2 + 1).max(16)
}

/// The home bucket of key `h` in a shard table of `len` buckets: the bits of the key's first
/// word below the `shard_bits` that chose the shard, scaled to the table (so that keys sorted
/// by that word are sorted by home, for any table size).
#[inline(always)]
fn home(h: KeyHash, len: usize, shard_bits: u32) -> usize {
    (((h[0] << shard_bits) as u128 * len as u128) >> 64) as usize
}

/// The shard of key `h` among `1 << shard_bits`: the top bits of its first word.
#[inline(always)]
fn shard_of(h: KeyHash, shard_bits: u32) -> usize {
    h[0].checked_shr(64 - shard_bits).unwrap_or(0) as usize
}

/// Shards of an index of `keys` keys: about 4,096 keys each, at most 256, so that a delta
/// rewrites only the shards whose keys it changes.
fn shard_bits_for(keys: usize) -> u32 {
    (keys / 4096).max(1).ilog2().min(8)
}

/// Where each shard's pairs are in `pairs` (sorted by key): one range per shard.
fn shard_ranges(pairs: &[(u64, u64)], shard_bits: u32) -> Vec<Range<usize>> {
    let mut ranges = Vec::with_capacity(1 << shard_bits);
    let mut start = 0;
    for shard in 0..1usize << shard_bits {
        let end =
            start + pairs[start..].partition_point(|&p| shard_of(unpair(p).0, shard_bits) <= shard);
        ranges.push(start..end);
        start = end;
    }
    ranges
}

/// The keys of a saved shard, each with its run of the postings (`None` for a run that goes
/// past them).
fn saved_runs(shard: &SavedShard) -> impl Iterator<Item = (KeyHash, Option<&[u32]>)> {
    shard.keys.iter().scan(0usize, |at, &(hash, low, run)| {
        let start = *at;
        *at += run as usize;
        Some(([hash, low as u64], shard.postings.get(start..*at)))
    })
}

/// One bucket of a shard's table: a key, and where its run of the postings starts. Runs
/// follow each other in the postings in bucket order, so a run ends where the next bucket's
/// starts, and an empty bucket's run is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bucket {
    /// The first word of the key's hash; 0 for an empty bucket (a real key's has its low bit
    /// set, see [`finished`]).
    hash: u64,
    /// The second word of the key's hash (it has 32 bits).
    hash_low: u32,
    start: u32,
}

impl Bucket {
    fn empty(start: u32) -> Self {
        Bucket {
            hash: 0,
            hash_low: 0,
            start,
        }
    }

    #[inline(always)]
    fn holds(&self, h: KeyHash) -> bool {
        self.hash == h[0] && self.hash_low as u64 == h[1]
    }

    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.hash == 0
    }

    #[cfg(test)]
    fn key(&self) -> KeyHash {
        [self.hash, self.hash_low as u64]
    }
}

/// A secondary index of one object type on one or more field paths: each key maps to the
/// records that have it (a record with several values on a path, like a movie's cast, is found
/// under each). Declare it on a state with [`ReadState::add_hash_index`](crate::ReadState::add_hash_index) (a consumer does with
/// `ConsumerBuilder::with_hash_index`); it is built once, then updated by each delta.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use hollow_core::{ReadState, SchemaBuilder, WriteState};
///
/// #[derive(Serialize, Deserialize)]
/// struct Actor { id: i64 }
/// #[derive(Serialize, Deserialize)]
/// struct Movie { id: i64, country: String, cast: Vec<Actor> }
///
/// let schema = SchemaBuilder::new().add::<Movie>().build()?;
/// let mut w = WriteState::new(schema);
/// let heat = w.add(&Movie { id: 1, country: "US".into(), cast: vec![Actor { id: 7 }, Actor { id: 8 }] })?;
/// let ran = w.add(&Movie { id: 2, country: "JP".into(), cast: vec![Actor { id: 8 }] })?;
/// let mut state = ReadState::from_snapshot(w.write_snapshot(1)?.into())?;
///
/// state.add_hash_index("Movie", &["cast.id"])?;
/// let by_actor = state.hash_index("Movie", &["cast.id"])?;
/// assert_eq!(by_actor.find(&8i64)?, &[heat, ran]);
/// assert_eq!(by_actor.find(&9i64)?, &[] as &[u32]);
/// // Keys known only at run time (a tool's arguments) are looked up part by part.
/// assert_eq!(by_actor.find_parts(&[hollow_core::KeyPart::Int(8)])?, &[heat, ran]);
/// # Ok::<(), hollow_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct HashIndex {
    pub(crate) type_name: String,
    pub(crate) fields: Vec<String>,
    paths: Vec<FieldPath>,
    /// The kind class of each field's values, 2 bits each (as in the primary key index).
    classes: u64,
    /// The keys, in `1 << shard_bits` shards by the top bits of their hash; a delta rewrites
    /// only the shards whose keys it changes, and shares the others with the state before.
    shards: Vec<Arc<Shard>>,
    shard_bits: u32,
}

/// Some keys of an index: a table of them and the postings their buckets name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Shard {
    /// The table: `homes` buckets where keys have their homes (see [`home`]), then the few
    /// keys that ran past the last one, then one empty bucket whose start is the postings'
    /// length. A key is in its home or in the first bucket after it that was empty: a probe
    /// goes forward until it finds the key or an empty bucket, and never wraps around.
    buckets: Vec<Bucket>,
    homes: usize,
    postings: Vec<u32>,
    /// Buckets in use (keys, including those whose records all left).
    keys: usize,
    /// Keys whose records all left: kept as tombstones until the next rebuild.
    emptied: usize,
}

/// Reused buffers for the keys of one record.
#[derive(Default)]
struct KeyScratch {
    keys: Vec<KeyHash>,
    next: Vec<KeyHash>,
    /// Per path, the values a batch of records reaches (see [`HashIndex::pairs_of`]).
    parts: Vec<Vec<(u32, KeyHash)>>,
    /// (position in a batch, key number) pairs (see [`HashIndex::fill_through_leaves`]).
    numbers: Vec<(u32, u32)>,
}

/// Records are keyed in batches of this many, walked together (see
/// [`FieldPath::for_each_in_batch`]).
const BATCH: usize = 256;

/// The key numbers of the records an index's one path ends in (see
/// [`HashIndex::fill_through_leaves`]).
struct LeafKeys<'a> {
    path: &'a FieldPath,
    /// The hop that reads the key from those records.
    leaf: usize,
    /// Per record ordinal of the hop's type, its key's number; `u32::MAX` for none.
    number_of_leaf: &'a [u32],
}

impl LeafKeys<'_> {
    /// Appends (key number ‹‹ 32 | ordinal) for each key of each record of `batch`, records in
    /// order; a record reaching one key twice is listed once under it. `numbers` is scratch.
    fn key_numbers(
        &self,
        state: &impl StateTypes,
        batch: &[u32],
        out: &mut Vec<u64>,
        numbers: &mut Vec<(u32, u32)>,
    ) {
        numbers.clear();
        self.path
            .for_each_reached_in_batch(state, batch, self.leaf, &mut |i, l| match self
                .number_of_leaf
                .get(l as usize)
            {
                Some(&k) if k != u32::MAX => numbers.push((i as u32, k)),
                _ => {}
            });
        for run in numbers.chunk_by_mut(|a, b| a.0 == b.0) {
            let o = batch[run[0].0 as usize] as u64;
            run.sort_unstable();
            let mut last = None;
            for &(_, k) in run.iter() {
                if last != Some(k) {
                    out.push((k as u64) << 32 | o);
                    last = Some(k);
                }
            }
        }
    }
}

impl HashIndex {
    /// Builds the index of `type_name` of `state` on `fields` (paths such as `cast.id`).
    pub(crate) fn build(state: &impl StateTypes, type_name: &str, fields: &[&str]) -> Result<Self> {
        let mut index = Self::empty(state, type_name, fields)?;
        let id = state.schema().require(type_name)?;
        index.fill(state, id);
        Ok(index)
    }

    /// The index of `type_name` of `state` on `fields`, with no keys yet.
    fn empty(state: &impl StateTypes, type_name: &str, fields: &[&str]) -> Result<Self> {
        let schema = state.schema();
        let id = schema.require(type_name)?;
        if schema.get(id).kind() != TypeKind::Object {
            return Err(Error::invalid_schema(
                type_name,
                SchemaProblem::HashIndexOnNonObject,
            ));
        }
        if fields.is_empty() || fields.len() > 32 {
            return Err(Error::invalid_schema(
                type_name,
                SchemaProblem::HashIndexFieldCount {
                    fields: fields.len(),
                },
            ));
        }
        let paths = fields
            .iter()
            .map(|f| schema.resolve_path(id, f))
            .collect::<Result<Vec<_>>>()?;
        let classes = paths
            .iter()
            .enumerate()
            .fold(0, |c, (i, p)| c | kind_class(p.kind) << (2 * i));
        Ok(Self {
            type_name: type_name.to_string(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            paths,
            classes,
            shards: Vec::new(),
            shard_bits: 0,
        })
    }

    /// The index as saved beside a snapshot (see [`crate::ReadState::save_indexes`]): its keys
    /// and postings, shard by shard; `type_id` is its type's.
    pub(crate) fn saved(&self, type_id: TypeId) -> SavedHashIndex {
        let shards = self
            .shards
            .iter()
            .map(|shard| {
                let mut saved = SavedShard::default();
                for (b, next) in shard.buckets.iter().zip(&shard.buckets[1..]) {
                    let run = &shard.postings[b.start as usize..next.start as usize];
                    // Keys whose records all left (after deltas) are not saved.
                    if !b.is_empty() && !run.is_empty() {
                        saved.keys.push((b.hash, b.hash_low, run.len() as u32));
                        saved.postings.extend_from_slice(run);
                    }
                }
                saved
            })
            .collect();
        SavedHashIndex {
            type_id: type_id.0,
            fields: self.fields.clone(),
            shard_bits: self.shard_bits,
            shards,
        }
    }

    /// The index `saved` (by [`HashIndex::saved`]) for `state`, its tables laid out again: the
    /// index a build would give, or an [`Error::SavedIndexes`] if `saved` is not one (keys out
    /// of order or in the wrong shard, runs not ascending, ordinals the type does not have).
    pub(crate) fn from_saved(state: &impl StateTypes, saved: SavedHashIndex) -> Result<Self> {
        let unusable = |why: String| Error::SavedIndexes(why);
        let schema = state.schema();
        let id = TypeId(saved.type_id);
        if id.index() >= schema.len() {
            return Err(unusable(format!("no type {}", saved.type_id)));
        }
        let type_name = schema.get(id).name().to_string();
        let fields: Vec<&str> = saved.fields.iter().map(String::as_str).collect();
        let what = format!("the hash index of {type_name}({})", fields.join(", "));
        let mut index = Self::empty(state, &type_name, &fields)
            .map_err(|e| unusable(format!("{what}: {e}")))?;
        let keys: usize = saved.shards.iter().map(|s| s.keys.len()).sum();
        let bits = shard_bits_for(keys);
        if saved.shard_bits != bits || saved.shards.len() != 1 << bits {
            return Err(unusable(format!(
                "{what} has 2^{} shards for {keys} keys",
                saved.shard_bits
            )));
        }
        let population = &state.type_data(id).population;
        for (number, shard) in saved.shards.iter().enumerate() {
            let in_order = shard
                .keys
                .windows(2)
                .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1));
            let placed = shard.keys.iter().all(|&(hash, low, run)| {
                hash & 1 == 1 && run > 0 && shard_of([hash, low as u64], bits) == number
            });
            let postings_fit = saved_runs(shard).all(|(_, run)| {
                run.is_some_and(|r| {
                    r.windows(2).all(|w| w[0] < w[1])
                        && r.iter().all(|&o| population.contains(o as u64))
                })
            });
            let total: usize = shard.keys.iter().map(|k| k.2 as usize).sum();
            if !(in_order && placed && postings_fit && total == shard.postings.len()) {
                return Err(unusable(format!("{what}: shard {number} is damaged")));
            }
        }
        index.shard_bits = bits;
        index.shards = saved
            .shards
            .iter()
            .map(|shard| {
                let runs =
                    saved_runs(shard).map(|(h, run)| (h, run.unwrap_or_default().iter().copied()));
                let (keys, postings) = (shard.keys.len(), shard.postings.len());
                Arc::new(Shard::from_runs(keys, postings, runs, bits))
            })
            .collect();
        Ok(index)
    }

    /// Fills the empty index from the records of type `id`.
    fn fill(&mut self, state: &impl StateTypes, id: TypeId) {
        match self.leaf_hop() {
            Some(hop) => self.fill_through_leaves(state, id, hop),
            None => self.fill_by_pairs(state, id),
        }
    }

    /// For an index on one path that ends in a field of records reached by reference
    /// (`cast.id` ends in actors' `id`): the hop that reads that field. Those records' keys are
    /// worked out once each rather than once per reference to them.
    fn leaf_hop(&self) -> Option<usize> {
        let [path] = &self.paths[..] else {
            return None;
        };
        let last = path.hops.len() - 1;
        (last > 0 && !path.hops[last].collection).then_some(last)
    }

    /// Fills the index by collecting every (key, ordinal) pair in ordinal order and sorting
    /// them, so that the table is filled front to back and the postings written in one
    /// sequential pass.
    fn fill_by_pairs(&mut self, state: &impl StateTypes, id: TypeId) {
        let this = &*self;
        let keyed = map_ordinals(
            &state.type_data(id).population,
            BATCH,
            |batch, pairs, scratch| Self::pairs_of(&this.paths, state, batch, pairs, scratch),
        );
        let mut pairs: Vec<(u64, u64)> = Vec::with_capacity(keyed.iter().map(Vec::len).sum());
        keyed.into_iter().for_each(|p| pairs.extend(p));
        sort_pairs(&mut pairs);
        let keys = distinct_keys(&pairs);
        self.shard_bits = shard_bits_for(keys);
        self.shards = shard_ranges(&pairs, self.shard_bits)
            .into_iter()
            .map(|r| Arc::new(Shard::from_sorted(&pairs[r], self.shard_bits)))
            .collect();
    }

    /// The key of each record the one path's hop `leaf` reads (an actor, for `cast.id`), as
    /// a number: per record ordinal its key's number (`u32::MAX` for a null value), and the
    /// distinct keys' hashes in hash order, numbered from 0.
    fn leaf_key_numbers(&self, state: &impl StateTypes, leaf: usize) -> (Vec<u32>, Vec<KeyHash>) {
        let path = &self.paths[0];
        let hop = path.hops[leaf];
        let leaves = state.type_data(hop.ty);
        let mut leaf_keys: Vec<(u64, u64)> = leaves
            .population
            .iter()
            .filter_map(|o| {
                let v = leaves.value(o, hop.column)?;
                let part = stored_part(path.kind, v, |e| leaves.dicts[hop.column].as_ref()?.get(e));
                Some(pair(finished(combined(SEED, part_hash(part))), o as u32))
            })
            .collect();
        sort_pairs(&mut leaf_keys);
        let mut number_of_leaf = vec![u32::MAX; leaves.slot_count() as usize];
        let mut hashes: Vec<KeyHash> = Vec::new();
        for &p in &leaf_keys {
            let (h, o) = unpair(p);
            if hashes.last() != Some(&h) {
                hashes.push(h);
            }
            number_of_leaf[o as usize] = (hashes.len() - 1) as u32;
        }
        (number_of_leaf, hashes)
    }

    /// Fills the index of a path whose hop `leaf` reads the key from records reached by
    /// reference: each such record is keyed once and the distinct keys numbered in hash order;
    /// then each record's key numbers are counted and placed (a counting sort) straight into
    /// the postings. The index is the one [`HashIndex::fill_by_pairs`] builds.
    fn fill_through_leaves(&mut self, state: &impl StateTypes, id: TypeId, leaf: usize) {
        let (number_of_leaf, hashes) = self.leaf_key_numbers(state, leaf);
        let leaves = LeafKeys {
            path: &self.paths[0],
            leaf,
            number_of_leaf: &number_of_leaf,
        };
        // (key number, ordinal) of every record, in ordinal order.
        let keyed = map_ordinals(
            &state.type_data(id).population,
            BATCH,
            |batch, out, scratch: &mut KeyScratch| {
                leaves.key_numbers(state, batch, out, &mut scratch.numbers)
            },
        );
        let mut starts = vec![0u32; hashes.len() + 1];
        for &e in keyed.iter().flatten() {
            starts[(e >> 32) as usize + 1] += 1;
        }
        for k in 0..hashes.len() {
            starts[k + 1] += starts[k];
        }
        let mut postings = vec![0u32; starts[hashes.len()] as usize];
        let mut next = starts.clone();
        for &e in keyed.iter().flatten() {
            let k = (e >> 32) as usize;
            postings[next[k] as usize] = e as u32;
            next[k] += 1;
        }
        drop(keyed);
        // Keys no record reaches are left out.
        let used: Vec<usize> = (0..hashes.len())
            .filter(|&k| starts[k + 1] > starts[k])
            .collect();
        self.shard_bits = shard_bits_for(used.len());
        let run = |k: usize| {
            (
                hashes[k],
                postings[starts[k] as usize..starts[k + 1] as usize]
                    .iter()
                    .copied(),
            )
        };
        let mut rest = &used[..];
        self.shards = (0..1usize << self.shard_bits)
            .map(|shard| {
                let n = rest.partition_point(|&k| shard_of(hashes[k], self.shard_bits) <= shard);
                let (here, after) = rest.split_at(n);
                rest = after;
                let total = here
                    .iter()
                    .map(|&k| (starts[k + 1] - starts[k]) as usize)
                    .sum();
                Arc::new(Shard::from_runs(
                    here.len(),
                    total,
                    here.iter().map(|&k| run(k)),
                    self.shard_bits,
                ))
            })
            .collect();
    }

    /// Appends the (key, ordinal) pairs of the records `ordinals` to `pairs`: per record, every
    /// combination of the values its fields reach, each key once.
    fn pairs_of(
        paths: &[FieldPath],
        state: &impl StateTypes,
        ordinals: &[u32],
        pairs: &mut Vec<(u64, u64)>,
        scratch: &mut KeyScratch,
    ) {
        // Per path, (position in `ordinals`, hash) of every value reached, by position.
        scratch.parts.resize_with(paths.len(), Vec::new);
        for (path, parts) in paths.iter().zip(&mut scratch.parts) {
            parts.clear();
            path.for_each_in_batch(state, ordinals, &mut |i, p| {
                parts.push((i as u32, part_hash(p)))
            });
        }
        let mut cursors = vec![0usize; paths.len()];
        for (i, &o) in ordinals.iter().enumerate() {
            scratch.keys.clear();
            scratch.keys.push(SEED);
            for (parts, cursor) in scratch.parts.iter().zip(&mut cursors) {
                let start = *cursor;
                *cursor += parts[start..]
                    .iter()
                    .take_while(|p| p.0 == i as u32)
                    .count();
                scratch.next.clear();
                for &k in &scratch.keys {
                    for &(_, p) in &parts[start..*cursor] {
                        scratch.next.push(combined(k, p));
                    }
                }
                std::mem::swap(&mut scratch.keys, &mut scratch.next);
            }
            for k in &mut scratch.keys {
                *k = finished(*k);
            }
            // A record with the same value twice on a path is listed once under it.
            if scratch.keys.len() > 1 {
                scratch.keys.sort_unstable();
                scratch.keys.dedup();
            }
            pairs.extend(scratch.keys.iter().map(|&h| pair(h, o)));
        }
    }

    /// The ordinals of the records whose key is `key` (a value, or a tuple of values for an
    /// index on several fields, in their order), ascending; empty when none. A key of another
    /// kind than the fields' is an error.
    #[inline]
    pub fn find<K: Key + ?Sized>(&self, key: &K) -> Result<&[u32], KeyMismatch> {
        if K::ARITY == self.paths.len() {
            let h = (0..K::ARITY).fold(SEED, |h, i| combined(h, part_hash(key.part(i))));
            let h = finished(h);
            let shard = &self.shards[shard_of(h, self.shard_bits)];
            if let Some(run) = shard.run(h, self.shard_bits) {
                return Ok(run);
            }
        }
        let classes = (0..K::ARITY.min(32)).fold(0, |c, i| c | part_class(&key.part(i)) << (2 * i));
        KeyMismatch::check((self.paths.len(), self.classes), (K::ARITY, classes))?;
        Ok(&[])
    }

    /// [`HashIndex::find`] with the key given as one part per field, for keys known only at
    /// run time (a tool's command line).
    pub fn find_parts(&self, parts: &[KeyPart<'_>]) -> Result<&[u32], KeyMismatch> {
        if parts.len() == self.paths.len() {
            let h = parts.iter().fold(SEED, |h, p| combined(h, part_hash(*p)));
            let h = finished(h);
            let shard = &self.shards[shard_of(h, self.shard_bits)];
            if let Some(run) = shard.run(h, self.shard_bits) {
                return Ok(run);
            }
        }
        let classes = parts
            .iter()
            .take(32)
            .enumerate()
            .fold(0, |c, (i, p)| c | part_class(p) << (2 * i));
        KeyMismatch::check((self.paths.len(), self.classes), (parts.len(), classes))?;
        Ok(&[])
    }

    /// The kind of the values each field path reaches, in the order of [`HashIndex::fields`].
    pub fn kinds(&self) -> impl Iterator<Item = crate::schema::Kind> + '_ {
        self.paths.iter().map(|p| p.kind)
    }

    /// The indexed type.
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The indexed field paths.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// True when this is the index of `type_name` on `fields`.
    pub(crate) fn is(&self, type_name: &str, fields: &[&str]) -> bool {
        self.type_name == type_name
            && self
                .fields
                .iter()
                .map(String::as_str)
                .eq(fields.iter().copied())
    }

    /// Distinct keys.
    pub fn key_count(&self) -> usize {
        self.shards.iter().map(|s| s.keys - s.emptied).sum()
    }

    /// Bytes held by the index (shards shared with other states counted whole).
    pub fn heap_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.buckets.capacity() * std::mem::size_of::<Bucket>() + s.postings.capacity() * 4
            })
            .sum()
    }
}

impl Shard {
    /// The shard of the (key, ordinal) pairs `pairs`, sorted by key then ordinal.
    fn from_sorted(pairs: &[(u64, u64)], shard_bits: u32) -> Self {
        let runs = pairs
            .chunk_by(|a, b| unpair(*a).0 == unpair(*b).0)
            .map(|run| (unpair(run[0]).0, run.iter().map(|&p| unpair(p).1)));
        Self::from_runs(distinct_keys(pairs), pairs.len(), runs, shard_bits)
    }

    /// The shard of `keys` keys and their runs of `postings` ordinals in all, keys sorted by
    /// hash: keys come in the order of their home buckets, so each goes to its home or just
    /// past the last one placed, and the postings are written in one pass, in bucket order.
    fn from_runs<R: Iterator<Item = u32>>(
        keys: usize,
        postings: usize,
        runs: impl Iterator<Item = (KeyHash, R)>,
        shard_bits: u32,
    ) -> Self {
        let homes = table_len(keys);
        let mut shard = Shard {
            buckets: Vec::with_capacity(homes + 1),
            homes,
            postings: Vec::with_capacity(postings),
            keys,
            emptied: 0,
        };
        for (h, run) in runs {
            let start = shard.postings.len() as u32;
            let b = home(h, homes, shard_bits).max(shard.buckets.len());
            shard.buckets.resize(b, Bucket::empty(start));
            shard.buckets.push(Bucket {
                hash: h[0],
                hash_low: h[1] as u32,
                start,
            });
            shard.postings.extend(run);
        }
        let start = shard.postings.len() as u32;
        let end = shard.buckets.len().max(homes) + 1;
        shard.buckets.resize(end, Bucket::empty(start));
        shard
    }

    /// The bucket of key `h`, probing from bucket `from` (its home); `None` when the shard
    /// does not have it.
    #[inline]
    fn probe(&self, h: KeyHash, from: usize) -> Option<usize> {
        let mut b = from;
        loop {
            let bucket = &self.buckets[b];
            if bucket.holds(h) {
                return Some(b);
            }
            if bucket.is_empty() {
                return None;
            }
            b += 1;
        }
    }

    /// The postings of key `h`, if the shard has it.
    #[inline]
    fn run(&self, h: KeyHash, shard_bits: u32) -> Option<&[u32]> {
        let b = self.probe(h, home(h, self.homes, shard_bits))?;
        let (start, end) = (self.buckets[b].start, self.buckets[b + 1].start);
        Some(&self.postings[start as usize..end as usize])
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::{ReadState, SchemaBuilder, WriteState};

    #[derive(Serialize, Deserialize)]
    struct Actor {
        id: i64,
        name: String,
    }

    #[derive(Serialize, Deserialize)]
    struct Film {
        id: i64,
        cast: Vec<Actor>,
        lead: Option<Actor>,
    }

    /// Keys worked out once per referenced record give the very index that sorting every
    /// (key, ordinal) pair gives: same shards, buckets and postings.
    #[test]
    fn keying_referenced_records_once_builds_the_same_index() {
        let schema = SchemaBuilder::new().add::<Film>().build().unwrap();
        let mut w = WriteState::new(schema);
        let actor = |a: i64| Actor {
            // Two actor records share each id (another name): one key, two leaves.
            id: a / 2,
            name: format!("actor {}", a % 25_000),
        };
        for id in 0..20_000i64 {
            let cast = (0..id % 5)
                .map(|i| actor((id * 7 + i * 13) % 60_000))
                .collect();
            let mut film = Film {
                id,
                cast,
                lead: (id % 3 != 0).then(|| actor(id * 3 % 60_000)),
            };
            if id % 11 == 0 {
                // The same actor twice in one cast: listed once under its key.
                film.cast.push(actor(5));
                film.cast.push(actor(5));
            }
            w.add(&film).unwrap();
        }
        let state = ReadState::from_snapshot(Bytes::from(w.write_snapshot(1).unwrap())).unwrap();
        let id = state.schema().require("Film").unwrap();
        for field in ["cast.id", "cast.name", "lead.id"] {
            let through_leaves = HashIndex::build(&state, "Film", &[field]).unwrap();
            assert!(through_leaves.leaf_hop().is_some(), "{field}");
            let mut by_pairs = HashIndex {
                shards: Vec::new(),
                ..through_leaves.clone()
            };
            by_pairs.fill_by_pairs(&state, id);
            assert_eq!(through_leaves.shard_bits, by_pairs.shard_bits, "{field}");
            assert!(through_leaves.shards == by_pairs.shards, "{field}");
            assert!(through_leaves.shards.len() > 1, "{field}: several shards");
        }
        let lead = HashIndex::build(&state, "Film", &["lead.id"]).unwrap();
        assert_eq!(lead.find(&6i64).unwrap(), &[4]);
        assert!(lead.find(&-1i64).unwrap().is_empty());
    }

    fn films(n: i64) -> ReadState {
        let schema = SchemaBuilder::new().add::<Film>().build().unwrap();
        let mut w = WriteState::new(schema);
        for id in 0..n {
            let cast = (0..id % 4)
                .map(|i| Actor {
                    id: (id + i * 7) % 20_000,
                    name: format!("actor {}", (id + i) % 9_000),
                })
                .collect();
            w.add(&Film {
                id,
                cast,
                lead: None,
            })
            .unwrap();
        }
        ReadState::from_snapshot(Bytes::from(w.write_snapshot(1).unwrap())).unwrap()
    }

    /// An index saved and read back is the one built, table for table, on one path or two.
    #[test]
    fn a_saved_index_read_back_is_the_built_one() {
        let state = films(30_000);
        let film = state.schema().require("Film").unwrap();
        for fields in [&["cast.id"][..], &["cast.name"], &["id", "cast.name"]] {
            let built = HashIndex::build(&state, "Film", fields).unwrap();
            assert!(
                built.shards.len() > 1 || fields == ["cast.name"],
                "{fields:?}"
            );
            let read = HashIndex::from_saved(&state, built.saved(film)).unwrap();
            assert_eq!(read.shard_bits, built.shard_bits);
            assert!(read.shards == built.shards, "{fields:?}");
            assert_eq!(read.find(&5i64).ok(), built.find(&5i64).ok());
        }
    }

    /// Saved keys out of order, in another shard, with runs out of order or naming records the
    /// type does not have, are refused.
    #[test]
    fn a_damaged_saved_index_is_refused() {
        let state = films(30_000);
        let film = state.schema().require("Film").unwrap();
        let saved = HashIndex::build(&state, "Film", &["cast.id"])
            .unwrap()
            .saved(film);
        type Damage = fn(&mut SavedHashIndex);
        let damages: [(&str, Damage); 6] = [
            ("keys swapped", |s| s.shards[0].keys.swap(0, 1)),
            ("a key in another shard", |s| {
                let key = s.shards[1].keys.remove(0);
                s.shards[0].keys.push(key);
            }),
            ("a run out of order", |s| {
                let shard = &mut s.shards[0];
                let longer = shard.keys.iter().position(|k| k.2 > 1).unwrap();
                let at: u32 = shard.keys[..longer].iter().map(|k| k.2).sum();
                shard.postings.swap(at as usize, at as usize + 1);
            }),
            ("an ordinal past the type", |s| {
                let last = s.shards[0].postings.len() - 1;
                s.shards[0].postings[last] = 1 << 30;
            }),
            ("runs longer than the postings", |s| {
                s.shards[0].keys[0].2 += 1
            }),
            ("another field", |s| s.fields = vec!["nothing".into()]),
        ];
        for (what, damage) in damages {
            let mut damaged = saved.clone();
            damage(&mut damaged);
            let e = HashIndex::from_saved(&state, damaged)
                .map(drop)
                .unwrap_err();
            assert!(matches!(e, Error::SavedIndexes(_)), "{what}: {e}");
        }
    }

    /// How keys are hashed and sharded is part of the saved layout: a change must bump
    /// `LAYOUT_VERSION` (and this test's figures), or saved indexes would answer wrongly.
    #[test]
    fn the_saved_key_hashes_are_frozen() {
        let state = films(30_000);
        let film = state.schema().require("Film").unwrap();
        let saved = HashIndex::build(&state, "Film", &["id", "cast.name"])
            .unwrap()
            .saved(film);
        let mut words = Vec::new();
        for (s, shard) in saved.shards.iter().enumerate() {
            for &(hash, low, run) in &shard.keys {
                words.extend([s as u64, hash, low as u64, run as u64]);
            }
        }
        let digest = xxhash_rust::xxh3::xxh3_64(bytemuck::cast_slice(&words));
        assert_eq!(
            (
                crate::format::saved_indexes::LAYOUT_VERSION,
                saved.shard_bits,
                digest
            ),
            (2, 3, 1447576804597196294)
        );
    }
}
