//! Secondary hash indexes: key value(s) → every record that has them, in O(1). A key is one
//! or more field paths (see [`KeyPath`]): `country`, or `cast.id` (a movie is found under each
//! of its actors' ids).
//!
//! Layout: a table of distinct keys (open addressing, linear probing), each naming a run of a
//! postings array that holds the ordinals of its records in ascending order. Runs lie in bucket
//! order, so a delta is applied by copying the runs between the keys it changes and rewriting
//! only those: a pass over the table and a copy of the postings, never a rebuild (Netflix
//! Hollow rebuilds its hash indexes on every delta). Keys are identified by a 128-bit hash of
//! their values.

use std::collections::HashMap;

use xxhash_rust::xxh3::xxh3_128;

use crate::error::{Error, Result};
use crate::index::{combine, kind_class, mix, part_class, Key, KeyMismatch, KeyPart};
use crate::key_path::KeyPath;
use crate::read::ReadState;
use crate::schema::{TypeId, TypeKind};

/// The ordinals of one type that a delta removed, and those it added.
pub(crate) type Patched = (Vec<u32>, Vec<u32>);

/// A key's 128-bit hash; `[0, 0]` marks an empty bucket (real hashes have the low bit set).
type KeyHash = [u64; 2];

const EMPTY: KeyHash = [0, 0];

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

fn finished(h: KeyHash) -> KeyHash {
    [h[0] | 1, h[1]]
}

/// One distinct key: its hash and its run of the postings.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    hash: KeyHash,
    offset: u32,
    len: u32,
}

const EMPTY_BUCKET: Bucket = Bucket {
    hash: EMPTY,
    offset: 0,
    len: 0,
};

/// A secondary index of one object type on one or more field paths: each key maps to the
/// records that have it (a record with several values on a path, like a movie's cast, is found
/// under each). Declare it on a state with [`ReadState::add_hash_index`] (a consumer does with
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
/// # Ok::<(), hollow_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct HashIndex {
    type_name: String,
    fields: Vec<String>,
    paths: Vec<KeyPath>,
    /// The kind class of each field's values, 2 bits each (as in the primary key index).
    classes: u64,
    buckets: Vec<Bucket>,
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
    parts: Vec<KeyHash>,
}

impl HashIndex {
    /// Builds the index of `type_name` of `state` on `fields` (paths such as `cast.id`).
    pub(crate) fn build(state: &ReadState, type_name: &str, fields: &[&str]) -> Result<Self> {
        let schema = state.schema();
        let id = schema.require(type_name)?;
        if schema.get(id).kind() != TypeKind::Object {
            return Err(Error::Schema(format!(
                "a hash index is on an object type; {type_name} is not one"
            )));
        }
        if fields.is_empty() || fields.len() > 32 {
            return Err(Error::Schema(format!(
                "a hash index of {type_name} needs 1 to 32 fields, got {}",
                fields.len()
            )));
        }
        let paths = fields
            .iter()
            .map(|f| KeyPath::resolve(schema, id, f))
            .collect::<Result<Vec<_>>>()?;
        let classes = paths
            .iter()
            .enumerate()
            .fold(0, |c, (i, p)| c | kind_class(p.kind) << (2 * i));
        let mut index = Self {
            type_name: type_name.to_string(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            paths,
            classes,
            buckets: vec![EMPTY_BUCKET; 1024],
            postings: Vec::new(),
            keys: 0,
            emptied: 0,
        };
        index.fill(state, id);
        Ok(index)
    }

    fn fill(&mut self, state: &ReadState, id: TypeId) {
        let data = state.type_data(id).clone();
        // (bucket, ordinal) of every key of every record, in ordinal order; counts in `len`.
        let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(data.record_count as usize);
        let mut scratch = KeyScratch::default();
        for o in data.population.iter() {
            self.keys_of(state, o as u32, &mut scratch);
            for &h in &scratch.keys {
                if (self.keys + 1) * 4 > self.buckets.len() * 3 {
                    let moved = self.grow();
                    for p in &mut pairs {
                        p.0 = moved[p.0 as usize];
                    }
                }
                let b = self.insert(h);
                self.buckets[b].len += 1;
                pairs.push((b as u32, o as u32));
            }
        }
        let mut offset = 0u32;
        for b in &mut self.buckets {
            b.offset = offset;
            offset += b.len;
            b.len = 0;
        }
        self.postings = vec![0; pairs.len()];
        for (b, o) in pairs {
            let b = &mut self.buckets[b as usize];
            self.postings[(b.offset + b.len) as usize] = o;
            b.len += 1;
        }
    }

    /// Doubles the table; returns where each old bucket went.
    fn grow(&mut self) -> Vec<u32> {
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY_BUCKET; 0]);
        self.buckets = vec![EMPTY_BUCKET; old.len() * 2];
        self.keys = 0;
        old.iter()
            .map(|b| {
                if b.hash == EMPTY {
                    return 0;
                }
                let n = self.insert(b.hash);
                self.buckets[n].len = b.len;
                self.buckets[n].offset = b.offset;
                n as u32
            })
            .collect()
    }

    /// The bucket of `h`, taken if it had none.
    fn insert(&mut self, h: KeyHash) -> usize {
        let mask = self.buckets.len() - 1;
        let mut b = h[0] as usize & mask;
        loop {
            let bucket = &mut self.buckets[b];
            if bucket.hash == h {
                return b;
            }
            if bucket.hash == EMPTY {
                bucket.hash = h;
                self.keys += 1;
                return b;
            }
            b = (b + 1) & mask;
        }
    }

    #[inline]
    fn bucket_of(&self, h: KeyHash) -> Option<&Bucket> {
        let mask = self.buckets.len() - 1;
        let mut b = h[0] as usize & mask;
        loop {
            let bucket = &self.buckets[b];
            if bucket.hash == h {
                return Some(bucket);
            }
            if bucket.hash == EMPTY {
                return None;
            }
            b = (b + 1) & mask;
        }
    }

    /// The keys of record `ordinal` into `scratch.keys`: every combination of the values its
    /// fields reach.
    fn keys_of(&self, state: &ReadState, ordinal: u32, scratch: &mut KeyScratch) {
        scratch.keys.clear();
        scratch
            .keys
            .push([0x9E37_79B9_7F4A_7C15, 0x243F_6A88_85A3_08D3]);
        for path in &self.paths {
            scratch.parts.clear();
            path.for_each(state, ordinal, &mut |p| scratch.parts.push(part_hash(p)));
            scratch.next.clear();
            for &k in &scratch.keys {
                for &p in &scratch.parts {
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
    }

    /// The ordinals of the records whose key is `key` (a value, or a tuple of values for an
    /// index on several fields, in their order), ascending; empty when none. A key of another
    /// kind than the fields' is an error.
    #[inline]
    pub fn find<K: Key + ?Sized>(&self, key: &K) -> Result<&[u32], KeyMismatch> {
        if K::ARITY == self.paths.len() {
            let h = (0..K::ARITY).fold([0x9E37_79B9_7F4A_7C15, 0x243F_6A88_85A3_08D3], |h, i| {
                combined(h, part_hash(key.part(i)))
            });
            if let Some(b) = self.bucket_of(finished(h)) {
                return Ok(&self.postings[b.offset as usize..(b.offset + b.len) as usize]);
            }
        }
        let classes = (0..K::ARITY.min(32)).fold(0, |c, i| c | part_class(&key.part(i)) << (2 * i));
        KeyMismatch::check((self.paths.len(), self.classes), (K::ARITY, classes))?;
        Ok(&[])
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
        self.keys - self.emptied
    }

    /// Bytes held by the index.
    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>() + self.postings.capacity() * 4
    }

    /// The index of `new`, a state reached from `old` (whose index this is) by a delta that
    /// removed and added the records `removed` and `added` of the indexed type. `None` when the
    /// paths no longer resolve alike or the table needs rebuilding: then build it afresh.
    pub(crate) fn updated(
        &self,
        old: &ReadState,
        new: &ReadState,
        removed: &[u32],
        added: &[u32],
    ) -> Option<Self> {
        let schema = new.schema();
        let id = schema.type_id(&self.type_name)?;
        // The paths must read the same columns of types that carried over unchanged in shape.
        for (path, field) in self.paths.iter().zip(&self.fields) {
            let now = KeyPath::resolve(schema, id, field).ok()?;
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
        }
        // Per changed key: the ordinals that left and arrived.
        let mut changes: HashMap<KeyHash, Patched> = HashMap::new();
        let mut scratch = KeyScratch::default();
        for &o in removed {
            self.keys_of(old, o, &mut scratch);
            for &k in &scratch.keys {
                changes.entry(k).or_default().0.push(o);
            }
        }
        for &o in added {
            self.keys_of(new, o, &mut scratch);
            for &k in &scratch.keys {
                changes.entry(k).or_default().1.push(o);
            }
        }
        let mut next = Self {
            buckets: self.buckets.clone(),
            postings: Vec::new(),
            paths: self.paths.clone(),
            fields: self.fields.clone(),
            type_name: self.type_name.clone(),
            ..*self
        };
        // New keys get buckets; their runs are placed where their buckets are.
        let mut changed: Vec<(usize, Patched)> = Vec::with_capacity(changes.len());
        for (k, c) in changes {
            if (next.keys + 1) * 4 > next.buckets.len() * 3 {
                return None;
            }
            changed.push((next.insert(k), c));
        }
        changed.sort_unstable_by_key(|c| c.0);
        next.postings = Vec::with_capacity(self.postings.len() + added.len());
        let mut pending = changed.into_iter().peekable();
        // Old runs are copied in stretches; only the changed buckets are rewritten.
        let mut stretch: Option<(usize, usize)> = None;
        let mut emptied = self.emptied as isize;
        let mut old_end = 0usize;
        for b in 0..next.buckets.len() {
            let old_bucket = self.buckets[b];
            let bucket = &mut next.buckets[b];
            if bucket.hash == EMPTY {
                continue;
            }
            let old_run = if old_bucket.hash == EMPTY {
                old_end..old_end
            } else {
                old_bucket.offset as usize..(old_bucket.offset + old_bucket.len) as usize
            };
            old_end = old_run.end;
            let Some((_, (mut gone, mut arrived))) = pending.next_if(|c| c.0 == b) else {
                match &mut stretch {
                    Some((_, end)) if *end == old_run.start => *end = old_run.end,
                    _ => {
                        if let Some((s, e)) = stretch.take() {
                            next.postings.extend_from_slice(&self.postings[s..e]);
                        }
                        stretch = Some((old_run.start, old_run.end));
                    }
                }
                let stretched = stretch.map_or(0, |(s, e)| e - s);
                bucket.offset = (next.postings.len() + stretched - old_run.len()) as u32;
                continue;
            };
            if let Some((s, e)) = stretch.take() {
                next.postings.extend_from_slice(&self.postings[s..e]);
            }
            gone.sort_unstable();
            arrived.sort_unstable();
            let start = next.postings.len();
            let run = &self.postings[old_run.clone()];
            merge_run(run, &gone, &arrived, &mut next.postings);
            let len = next.postings.len() - start;
            bucket.offset = start as u32;
            bucket.len = len as u32;
            let was_emptied = old_bucket.hash != EMPTY && run.is_empty();
            match (was_emptied, len == 0) {
                (false, true) => emptied += 1,
                (true, false) => emptied -= 1,
                _ => {}
            }
        }
        if let Some((s, e)) = stretch.take() {
            next.postings.extend_from_slice(&self.postings[s..e]);
        }
        next.emptied = emptied.max(0) as usize;
        if next.emptied * 4 > next.keys {
            return None;
        }
        Some(next)
    }
}

/// Appends `run` (ascending) without `gone` and with `arrived` (both ascending), ascending.
fn merge_run(run: &[u32], gone: &[u32], arrived: &[u32], out: &mut Vec<u32>) {
    let mut gone = gone.iter().peekable();
    let mut arrived = arrived.iter().copied().peekable();
    for &o in run {
        while gone.next_if(|&&g| g < o).is_some() {}
        if gone.next_if(|&&g| g == o).is_some() {
            continue;
        }
        while let Some(a) = arrived.next_if(|&a| a < o) {
            out.push(a);
        }
        out.push(o);
    }
    out.extend(arrived);
}

impl ReadState {
    /// Builds the hash index of `type_name` on `fields` (paths such as `country` or `cast.id`)
    /// and keeps it with the state; states reached from this one by deltas carry it, updated.
    /// Adding an index the state has already does nothing.
    pub fn add_hash_index(&mut self, type_name: &str, fields: &[&str]) -> Result<()> {
        if self.hash_indexes.iter().any(|i| i.is(type_name, fields)) {
            return Ok(());
        }
        let index = HashIndex::build(self, type_name, fields)?;
        self.hash_indexes.push(std::sync::Arc::new(index));
        Ok(())
    }

    /// The hash index of `type_name` on `fields`, added with [`ReadState::add_hash_index`].
    pub fn hash_index(&self, type_name: &str, fields: &[&str]) -> Result<&HashIndex> {
        self.hash_indexes
            .iter()
            .find(|i| i.is(type_name, fields))
            .map(|i| &**i)
            .ok_or_else(|| {
                Error::Schema(format!(
                    "no hash index of {type_name} on ({}) was added to this state",
                    fields.join(", ")
                ))
            })
    }

    /// The hash indexes of this state, carried to `next` (reached by a delta that changed the
    /// records in `patched` per type): updated where the indexed type changed, rebuilt where
    /// that cannot be done.
    pub(crate) fn carry_hash_indexes(
        &self,
        next: &ReadState,
        patched: &[(TypeId, Patched)],
    ) -> Result<Vec<std::sync::Arc<HashIndex>>> {
        let mut out = Vec::with_capacity(self.hash_indexes.len());
        for index in &self.hash_indexes {
            let fields: Vec<&str> = index.fields.iter().map(String::as_str).collect();
            let id = next.schema().type_id(&index.type_name);
            let same_type = id.and_then(|b| next.schema().counterpart_in(b, self.schema()));
            let changes = id.and_then(|b| patched.iter().find(|p| p.0 == b));
            let carried = match (same_type, changes) {
                (Some(_), None) if next.schema() == self.schema() => Some(index.clone()),
                (Some(_), Some((_, (removed, added)))) => index
                    .updated(self, next, removed, added)
                    .map(std::sync::Arc::new),
                _ => None,
            };
            out.push(match carried {
                Some(i) => i,
                None => std::sync::Arc::new(HashIndex::build(next, &index.type_name, &fields)?),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::{SchemaBuilder, WriteState};

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
            .buckets
            .iter()
            .filter(|b| b.hash != EMPTY && b.len > 0)
            .map(|b| {
                let run = &index.postings[b.offset as usize..(b.offset + b.len) as usize];
                (b.hash, run.to_vec())
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_delta_updates_the_index_in_place_of_a_rebuild() {
        let schema = SchemaBuilder::new()
            .add::<Movie>()
            .primary_key("Movie", &["id"])
            .build()
            .unwrap();
        let mut w = WriteState::new(schema);
        for id in 0..2000 {
            w.add(&movie(id, 0)).unwrap();
        }
        let mut state =
            ReadState::from_snapshot(Bytes::from(w.write_snapshot(1).unwrap())).unwrap();
        w.commit_cycle().unwrap();
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
                let updated = old
                    .updated(&state, &next, &removed, &added)
                    .expect("updated, not rebuilt");
                let rebuilt = HashIndex::build(&next, "Movie", fields).unwrap();
                assert_eq!(runs(&updated), runs(&rebuilt), "{fields:?}");
                assert_eq!(
                    runs(next.hash_index("Movie", fields).unwrap()),
                    runs(&rebuilt)
                );
            }
            state = next;
        }
    }
}
