//! The primary key index: key value(s) → ordinal in O(1).
//!
//! An open-addressing hash table with linear probing whose buckets are bit-packed: each holds
//! an ordinal (at the width the type's ordinals need) and a few bits of the key's hash, so most
//! probes that cannot match are rejected without touching the record. The key itself is not
//! copied: a candidate is confirmed by reading the key fields of its record (for a field that
//! is a path, such as `category.id`, through the records it references).

use std::sync::{Arc, OnceLock};

use xxhash_rust::xxh3::xxh3_64;

use crate::bitset::Bitset;
use crate::entry_table::{EntryTable, EntryTableWriter};
use crate::error::{Error, Result};
use crate::format::saved_indexes::SavedTable;
use crate::mapped_words::{release_words, Words};
use crate::packed::{bits_needed, low_mask, packed_len_bytes, set_bits, BitWriter};
use crate::schema::{Kind, TypeId};
use crate::type_data::{StateTypes, TypeData};

/// Hash bits kept in each bucket beside the ordinal.
const TAG_BITS: u8 = 4;

/// Records from which a new table is filled on the cores, region by region...
const PARALLEL_PLACE_RECORDS: u64 = 1 << 17;

/// ...in this many regions.
const PLACE_REGIONS: u64 = 16;

/// One field of a key, in the form keys are hashed and compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPart<'a> {
    /// A null field.
    Null,
    /// An integer field (a `u64` as its bits) or a `bool` field (as 0 / 1).
    Int(i64),
    /// An `f32` or `f64` field, as its IEEE bits.
    Float(u64),
    /// A string or bytes field, or a 128-bit integer field as its 16 little-endian bytes.
    Bytes(&'a [u8]),
}

/// A value that can be looked up in a [`PrimaryKeyIndex`]: a single field value, or a tuple of
/// them for composite keys, in the order the key was declared.
pub trait Key {
    /// Number of fields.
    const ARITY: usize;
    /// Field `i` of the key.
    fn part(&self, i: usize) -> KeyPart<'_>;
}

macro_rules! int_key {
    ($($t:ty),*) => {$(
        impl Key for $t {
            const ARITY: usize = 1;
            fn part(&self, _: usize) -> KeyPart<'_> { KeyPart::Int(*self as i64) }
        }
    )*};
}
int_key!(i8, i16, i32, i64, u8, u16, u32, bool);

impl Key for u64 {
    const ARITY: usize = 1;
    fn part(&self, _: usize) -> KeyPart<'_> {
        KeyPart::Int(*self as i64)
    }
}

impl Key for f32 {
    const ARITY: usize = 1;
    fn part(&self, _: usize) -> KeyPart<'_> {
        KeyPart::Float(self.to_bits() as u64)
    }
}

impl Key for f64 {
    const ARITY: usize = 1;
    fn part(&self, _: usize) -> KeyPart<'_> {
        KeyPart::Float(self.to_bits())
    }
}

impl Key for str {
    const ARITY: usize = 1;
    fn part(&self, _: usize) -> KeyPart<'_> {
        KeyPart::Bytes(self.as_bytes())
    }
}

impl Key for String {
    const ARITY: usize = 1;
    fn part(&self, _: usize) -> KeyPart<'_> {
        KeyPart::Bytes(self.as_bytes())
    }
}

impl Key for [u8] {
    const ARITY: usize = 1;
    fn part(&self, _: usize) -> KeyPart<'_> {
        KeyPart::Bytes(self)
    }
}

impl<K: Key + ?Sized> Key for &K {
    const ARITY: usize = K::ARITY;
    fn part(&self, i: usize) -> KeyPart<'_> {
        (**self).part(i)
    }
}

impl<K: Key> Key for Option<K> {
    const ARITY: usize = K::ARITY;
    fn part(&self, i: usize) -> KeyPart<'_> {
        match self {
            Some(k) => k.part(i),
            None => KeyPart::Null,
        }
    }
}

macro_rules! tuple_key {
    ($n:expr; $($t:ident $i:tt),*) => {
        impl<$($t: Key),*> Key for ($($t,)*) {
            const ARITY: usize = $n;
            fn part(&self, i: usize) -> KeyPart<'_> {
                match i {
                    $($i => self.$i.part(0),)*
                    _ => KeyPart::Null,
                }
            }
        }
    };
}
tuple_key!(2; A 0, B 1);
tuple_key!(3; A 0, B 1, C 2);
tuple_key!(4; A 0, B 1, C 2, D 3);

/// murmur3's 64-bit finalizer.
#[inline(always)]
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[inline(always)]
fn hash_part(p: KeyPart<'_>) -> u64 {
    match p {
        KeyPart::Null => 0x6e75_6c6c,
        KeyPart::Int(v) => mix(v as u64),
        KeyPart::Float(b) => mix(b ^ 0x5bd1_e995),
        KeyPart::Bytes(b) => xxh3_64(b),
    }
}

#[inline(always)]
pub(crate) fn combine(h: u64, part: u64) -> u64 {
    (h.rotate_left(23) ^ part).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A [`PrimaryKeyIndex`] without the records it reads (see [`PrimaryKeyIndex::detach`]).
#[derive(Debug)]
pub(crate) struct DetachedKeyTable {
    key_columns: Vec<usize>,
    key_classes: u64,
    buckets: EntryTable,
    capacity: u64,
    ordinal_bits: u8,
    entry_bits: u8,
    tombstones: u64,
    duplicates: Duplicates,
}

/// Primary key → ordinal for one type of one state.
#[derive(Debug)]
pub struct PrimaryKeyIndex {
    data: Arc<TypeData>,
    /// Per key field, its column in the keyed type (the first column of a path).
    key_columns: Vec<usize>,
    /// Empty when no key field is a path; otherwise per key field the records reached on its
    /// way and the column read in each (nothing for a field of the keyed type).
    paths: Vec<Vec<(Arc<TypeData>, usize)>>,
    /// Per key field (2 bits each, the first 32 fields): the class of key part it accepts (see
    /// [`part_class`]). Checked on every lookup, so kept inline.
    key_classes: u64,
    buckets: EntryTable,
    capacity: u64,
    /// Bits of the ordinal part of a bucket; the two highest codes mean empty and removed.
    ordinal_bits: u8,
    entry_bits: u8,
    /// Buckets holding a removed entry (kept so later probes pass over them).
    tombstones: u64,
    duplicates: Duplicates,
}

/// What an index knows of records that share a key.
#[derive(Debug)]
enum Duplicates {
    /// Nothing until asked: the first check hashes every record, and its answer is kept (so
    /// that the updates after it go on from a known answer).
    Unknown(OnceLock<Option<(u32, u32)>>),
    /// Two ordinals with the same key, or none: found while building.
    Known(Option<(u32, u32)>),
    /// None among the records of an earlier version; a duplicate can only be a record added
    /// since (at one of `added`, some perhaps removed again), and those are probed for when
    /// first asked. Updates leave the check to whoever asks (a producer's validator), so that
    /// a consumer's refresh, which never does, does not pay for it.
    UnlessAdded {
        /// The ordinals each update added, one slice per update: an update shares the
        /// slices of the updates before it instead of copying them (a consumer that refreshes
        /// and never asks would otherwise copy more at each refresh).
        added: Vec<Arc<[u32]>>,
        found: OnceLock<Option<(u32, u32)>>,
    },
}

/// Ordinals added since duplicates were last known absent are kept, to be checked when asked,
/// up to this fraction of the records (1 / this); past it, whether keys are duplicated is no
/// longer known, and a check hashes every record.
const PENDING_CHECKS_FRACTION: u64 = 8;

impl Duplicates {
    fn unknown() -> Self {
        Self::Unknown(OnceLock::new())
    }

    /// The answer, when it is known (found while building, or asked already).
    fn known(&self) -> Option<Option<(u32, u32)>> {
        match self {
            Self::Known(known) => Some(*known),
            Self::UnlessAdded { found, .. } | Self::Unknown(found) => found.get().copied(),
        }
    }

    /// What is known after an update that removed the records at `removed` and added those
    /// at `added`, leaving `records` in all.
    fn after_update(&self, removed: &[u32], added: &[u32], records: u64) -> Self {
        let pending: &[Arc<[u32]>] = match (self, self.known()) {
            (_, Some(None)) => &[],
            (_, Some(Some((a, b)))) if !removed.contains(&a) && !removed.contains(&b) => {
                return Self::Known(Some((a, b)));
            }
            (Self::UnlessAdded { added: earlier, .. }, None) => earlier,
            _ => return Self::unknown(),
        };
        let count = pending.iter().map(|a| a.len()).sum::<usize>() + added.len();
        if count as u64 > records / PENDING_CHECKS_FRACTION + 64 {
            return Self::unknown();
        }
        let mut chain = pending.to_vec();
        if !added.is_empty() {
            chain.push(added.into());
        }
        Self::UnlessAdded {
            added: chain,
            found: OnceLock::new(),
        }
    }
}

/// A [`PrimaryKeyIndex`] update under way: the next version of the table, copied and ready
/// to be written (see [`PrimaryKeyIndex::open_update`]), and the records removed whose
/// entries are still in it.
pub(crate) struct OpenUpdate<'a> {
    /// The index updated: the removed records are its state's.
    index: &'a PrimaryKeyIndex,
    buckets: EntryTableWriter<'a>,
    /// Ordinals of the removed records whose entries are still in the table.
    removed: Bitset,
    /// Buckets of the table holding a removed marker.
    tombstones: u64,
}

/// The part of a [`PrimaryKeyIndex`] update that reads only the state it reaches: the next
/// index without its table yet, and the key hashes of the records it adds (see
/// [`PrimaryKeyIndex::keys_to_add`]).
pub(crate) struct KeysToAdd {
    next: PrimaryKeyIndex,
    hashes: Vec<u64>,
}

impl OpenUpdate<'_> {
    /// The end of [`PrimaryKeyIndex::updated`]: the next index, once the records at `added`
    /// (whose keys `keys` hashed) are placed in the table and the entries of those at
    /// `removed` are gone. Both halves checked that the table takes the update
    /// ([`PrimaryKeyIndex::open_update`] and [`PrimaryKeyIndex::keys_to_add`] are `None`
    /// otherwise).
    ///
    /// An added entry takes the first free bucket on its way: empty, a removed marker, or
    /// the entry of a removed record whose tag is its own, which is then gone without being
    /// looked for. A record updated under its key finds its old version's entry that way (or
    /// one met before it), so that only the keys removed for good are hashed and probed for
    /// afterwards: one probe per updated record instead of two. (Only entries with its tag
    /// are looked up among the removed: the others are mostly records kept, and the lookup
    /// is a cache miss at 10 M records.)
    pub(crate) fn finish(
        mut self,
        keys: KeysToAdd,
        removed: &[u32],
        added: &[u32],
    ) -> Option<PrimaryKeyIndex> {
        let KeysToAdd {
            mut next,
            hashes: added_hashes,
        } = keys;
        // An ordinal both removed and added (a delta from a producer never has one: freed
        // ordinals wait a cycle) would find its own new entry taken for a removed one.
        if added.iter().any(|&a| self.removed.contains(a as u64)) {
            self.mark_removed(removed);
        }
        let (empty, tombstone) = (next.empty(), next.tombstone());
        for (i, (&a, &h)) in added.iter().zip(&added_hashes).enumerate() {
            if let Some(&ahead) = added_hashes.get(i + PROBES_AHEAD) {
                self.buckets.prefetch(next.bucket(ahead));
            }
            let mut pos = next.bucket(h);
            let tag = next.tag(h);
            loop {
                let entry = self.buckets.get(pos);
                let ordinal = entry & empty;
                if ordinal == empty {
                    break;
                }
                if ordinal == tombstone {
                    self.tombstones = self.tombstones.saturating_sub(1);
                    break;
                }
                if entry >> next.ordinal_bits == tag && self.removed.contains(ordinal) {
                    self.removed.remove(ordinal);
                    break;
                }
                pos = next.next(pos);
            }
            self.buckets.set(pos, (tag << next.ordinal_bits) | a as u64);
        }
        self.mark_removed(removed);
        next.tombstones = self.tombstones;
        if (next.data.record_count + next.tombstones) * 100 > next.capacity * MAX_FILL_PERCENT {
            return None;
        }
        next.buckets = self.buckets.finish();
        Some(next)
    }

    /// Marks removed the entries still in the table of the records at `removed` (hashing
    /// their keys in the state of the index updated).
    fn mark_removed(&mut self, removed: &[u32]) {
        let index = self.index;
        let left: Vec<u32> = (removed.iter().copied())
            .filter(|&r| self.removed.contains(r as u64))
            .collect();
        let hashes = index.hashes_of(&left);
        let (empty, tombstone) = (index.empty(), index.tombstone());
        for (i, (&r, &h)) in left.iter().zip(&hashes).enumerate() {
            if let Some(&ahead) = hashes.get(i + PROBES_AHEAD) {
                self.buckets.prefetch(index.bucket(ahead));
            }
            let mut pos = index.bucket(h);
            loop {
                let ordinal = self.buckets.get(pos) & empty;
                if ordinal == r as u64 {
                    self.buckets.set(pos, tombstone);
                    self.tombstones += 1;
                    break;
                }
                if ordinal == empty {
                    break;
                }
                pos = index.next(pos);
            }
            self.removed.remove(r as u64);
        }
    }
}

/// A primary key lookup with a key that cannot be the type's: another number of fields, or a
/// value of another kind (a string for an integer field, as after the producer changed the
/// key's type). Small and `Copy`, so that a lookup that finds its record pays nothing for it;
/// it converts into [`Error::KeyMismatch`] with `?`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyMismatch {
    /// The key's number of fields and their kinds (2 bits each, see `part_class`).
    expected: (usize, u64),
    /// The same of the key given.
    found: (usize, u64),
}

impl KeyMismatch {
    /// `Ok` when a key of `found` (fields, 2-bit kind classes) can be one of `expected`: the
    /// same number of fields, each of the same class or null. Fields past the 32nd are not
    /// checked.
    pub(crate) fn check(expected: (usize, u64), found: (usize, u64)) -> Result<(), Self> {
        let class = |classes: u64, i: usize| (classes >> (2 * i)) & 3;
        let fits = found.0 == expected.0
            && (0..found.0.min(32))
                .all(|i| class(found.1, i) == 0 || class(found.1, i) == class(expected.1, i));
        if fits {
            Ok(())
        } else {
            Err(Self { expected, found })
        }
    }

    fn describe((arity, classes): (usize, u64)) -> String {
        let names: Vec<&str> = (0..arity.min(32))
            .map(|i| ["null", "integer", "float", "string"][((classes >> (2 * i)) & 3) as usize])
            .collect();
        format!("({})", names.join(", "))
    }
}

impl std::fmt::Display for KeyMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a key of {} cannot be looked up in an index of {}",
            Self::describe(self.found),
            Self::describe(self.expected)
        )
    }
}

impl std::error::Error for KeyMismatch {}

impl From<KeyMismatch> for Error {
    fn from(e: KeyMismatch) -> Self {
        Error::KeyMismatch {
            expected: KeyMismatch::describe(e.expected),
            found: KeyMismatch::describe(e.found),
        }
    }
}

/// The class of a key part: 0 for null (fits any field), 1 integer, 2 float, 3 bytes.
#[inline]
pub(crate) fn part_class(part: &KeyPart<'_>) -> u64 {
    match part {
        KeyPart::Null => 0,
        KeyPart::Int(_) => 1,
        KeyPart::Float(_) => 2,
        KeyPart::Bytes(_) => 3,
    }
}

/// The class of key part a field of `kind` accepts.
pub(crate) fn kind_class(kind: Kind) -> u64 {
    match kind {
        Kind::F32 | Kind::F64 => 2,
        k if k.is_var_length() => 3,
        _ => 1,
    }
}

/// The key part of a stored value `v` of a field of `kind`; `entry` reads a dictionary entry
/// (strings, bytes and 128-bit integers, whose key part is their 16 little-endian bytes).
#[inline(always)]
pub(crate) fn stored_part<'a>(
    kind: Kind,
    v: u64,
    entry: impl FnOnce(u64) -> Option<&'a [u8]>,
) -> KeyPart<'a> {
    match kind {
        Kind::F32 | Kind::F64 => KeyPart::Float(v),
        k if k.is_var_length() => entry(v).map_or(KeyPart::Null, KeyPart::Bytes),
        _ => KeyPart::Int(v as i64),
    }
}

/// An update probes for the entry this many entries ahead of the one it places, so that the
/// bucket's cache line is loaded by the time it is reached.
const PROBES_AHEAD: usize = 16;

/// Buckets may be at most this full (entries plus tombstones) before a rebuild, in 1/100.
const MAX_FILL_PERCENT: u64 = 85;

impl PrimaryKeyIndex {
    /// Builds the index of type `id` of `state` from its declared primary key.
    ///
    /// Random inserts would cost a dependent cache miss each; instead every record's home bucket
    /// is computed in one sequential pass, the entries are radix-sorted by home bucket, and placed
    /// in that order, so the table is written front to back (a large table in regions, one per
    /// core at a time).
    pub(crate) fn build(state: &impl StateTypes, id: TypeId) -> Self {
        Self::build_with_room(state, id, 0)
    }

    /// [`PrimaryKeyIndex::build`] for a type that a delta grew from `before` records past what
    /// its table could take: the table has room for half as many records again as the type
    /// holds (or for as many again as the delta added, if more), so that a type growing cycle
    /// after cycle (a producer catching up on a topic, and every consumer of its deltas)
    /// rebuilds its table a logarithmic number of times instead of at nearly every cycle. A
    /// type that did not grow gets the table [`PrimaryKeyIndex::build`] makes.
    pub(crate) fn build_after_growth(state: &impl StateTypes, id: TypeId, before: u64) -> Self {
        let records = state.type_data(id).record_count;
        let room = match records > before {
            true => (records - before).max(records / 2),
            false => 0,
        };
        Self::build_with_room(state, id, room)
    }

    fn build_with_room(state: &impl StateTypes, id: TypeId, room: u64) -> Self {
        let regions = match state.type_data(id).record_count >= PARALLEL_PLACE_RECORDS {
            true => PLACE_REGIONS,
            false => 1,
        };
        Self::build_with(state, id, true, regions, room)
    }

    /// [`PrimaryKeyIndex::build`], with `room` for that many more records and slots, sorting
    /// (home bucket, entry) packed in one word when `pack` and both fit, then filling the
    /// table in `regions` at once; as pairs otherwise, filling it front to back.
    fn build_with(
        state: &impl StateTypes,
        id: TypeId,
        pack: bool,
        regions: u64,
        room: u64,
    ) -> Self {
        let mut index = Self::without_buckets(state, id, room);
        let (capacity, ordinal_bits, entry_bits) =
            (index.capacity, index.ordinal_bits, index.entry_bits);
        // (home bucket, entry) for every record, hashed on the cores, then sorted by home
        // bucket: packed in one word when both fit (types of up to 2^29 records), as a pair
        // otherwise.
        let home_bits = 64 - capacity.leading_zeros();
        let this = &index;
        // A record's key hash, and its entry: tag and ordinal.
        let hash_entry = |o: u32| {
            let h = this.record_hash(o as u64);
            (h, (this.tag(h) << ordinal_bits) | o as u64)
        };
        // The table is allocated once the entries are sorted, so that it never sits beside the
        // sort's input and output at once.
        let empty_table = || BitWriter::with_ones(capacity * entry_bits as u64);
        let mut buckets;
        let duplicate = if pack && home_bits + entry_bits as u32 <= 64 {
            // The bits to spare carry more of the hash above the entry, so that keys are
            // compared only when those bits match too (equal keys always do).
            let wide_bits = (64 - home_bits).min(entry_bits as u32 + 16) as u8;
            let check_mask = low_mask(wide_bits - entry_bits);
            let pack = |o: u32| {
                let (h, entry) = hash_entry(o);
                let check = (h >> TAG_BITS) & check_mask;
                this.bucket(h) << wide_bits | check << entry_bits | entry
            };
            let mut entries = this.sorted_words(pack, wide_bits as u32, home_bits);
            // Large entries (mapped) give their pages back as they are placed, into a table
            // left untouched until each region is set empty as it is filled: the two are never
            // held whole at once. Small ones stay for the next build to reuse.
            let release = entries.is_mapped();
            buckets = match release {
                true => BitWriter::with_bits(capacity * entry_bits as u64),
                false => empty_table(),
            };
            let entries = entries.as_mut_slice();
            this.place_packed(entries, wide_bits, &mut buckets, regions, release)
        } else {
            let home_entry = |o: u32| {
                let (h, entry) = hash_entry(o);
                (this.bucket(h), entry)
            };
            let entries = this.sorted_entries(home_entry, |e| e.0, 0, home_bits);
            buckets = empty_table();
            this.place_sorted(entries.into_iter(), &mut buckets)
        };
        index.duplicates = Duplicates::Known(duplicate);
        index.buckets =
            EntryTable::new(buckets.into_bytes(), capacity, entry_bits).unwrap_or_default();
        index
    }

    /// The index of type `id` of `state`, sized for its records, without its buckets yet.
    /// The index without the records it reads, to be attached to a state holding the same
    /// records at the same ordinals ([`PrimaryKeyIndex::attach`]): its records can go
    /// meanwhile.
    pub(crate) fn detach(self) -> DetachedKeyTable {
        DetachedKeyTable {
            key_columns: self.key_columns,
            key_classes: self.key_classes,
            buckets: self.buckets,
            capacity: self.capacity,
            ordinal_bits: self.ordinal_bits,
            entry_bits: self.entry_bits,
            tombstones: self.tombstones,
            duplicates: self.duplicates,
        }
    }

    /// A detached index over the records of type `id` of `state`, which the caller knows are
    /// the ones it was detached from, at the same ordinals.
    pub(crate) fn attach(state: &impl StateTypes, id: TypeId, table: DetachedKeyTable) -> Self {
        Self {
            data: state.type_data(id).clone(),
            paths: Self::paths_in(state, id),
            key_columns: table.key_columns,
            key_classes: table.key_classes,
            buckets: table.buckets,
            capacity: table.capacity,
            ordinal_bits: table.ordinal_bits,
            entry_bits: table.entry_bits,
            tombstones: table.tombstones,
            duplicates: table.duplicates,
        }
    }

    /// `room`: more records and slots the table is sized for (see
    /// [`PrimaryKeyIndex::build_after_growth`]).
    fn without_buckets(state: &impl StateTypes, id: TypeId, room: u64) -> Self {
        let data = state.type_data(id).clone();
        let fields = state.schema().get(id).primary_key();
        let key_columns = fields.iter().map(|f| f.columns()[0]).collect();
        let paths = Self::paths_in(state, id);
        let key_classes = fields
            .iter()
            .take(32)
            .enumerate()
            .fold(0, |classes, (i, f)| {
                classes | kind_class(f.value_type().kind) << (2 * i)
            });
        let capacity = Self::capacity_for(data.record_count + room);
        let ordinal_bits = Self::ordinal_bits_for(data.slot_count() + room);
        Self {
            data,
            key_columns,
            paths,
            key_classes,
            buckets: EntryTable::default(),
            capacity,
            ordinal_bits,
            entry_bits: ordinal_bits + TAG_BITS,
            tombstones: 0,
            duplicates: Duplicates::unknown(),
        }
    }

    /// The table of this index as saved beside its snapshot (`type_id`: the type it indexes).
    /// `None` for a table that was updated by a delta (it may hold removed markers, and whether
    /// keys are duplicated may not be known) or no longer sized as a build sizes it: only a
    /// table built on these records is saved.
    pub(crate) fn saved_table(&self, type_id: TypeId) -> Option<SavedTable> {
        let Duplicates::Known(duplicate) = self.duplicates else {
            return None;
        };
        if self.tombstones != 0 || !self.shaped_for(self.capacity, self.ordinal_bits) {
            return None;
        }
        let empty_bucket =
            (0..self.capacity).find(|&b| self.entry_at(b) & self.empty() == self.empty())?;
        Some(SavedTable {
            type_id: type_id.0,
            ordinal_bits: self.ordinal_bits,
            entry_bits: self.entry_bits,
            capacity: self.capacity,
            empty_bucket,
            duplicate,
            buckets: self.buckets.to_bytes(),
        })
    }

    /// The index of type `id` of `state` from its saved table, which must be one
    /// [`PrimaryKeyIndex::build`] or [`PrimaryKeyIndex::build_after_growth`] can make on this
    /// state ([`PrimaryKeyIndex::shaped_for`]), with the bucket it names empty, so that every
    /// probe ends. A table that passes these checks but holds other entries (one damaged past
    /// its checksum) can only make lookups miss, never answer another record: a candidate's
    /// key is always compared.
    pub(crate) fn from_saved_table(
        state: &impl StateTypes,
        id: TypeId,
        table: SavedTable,
    ) -> Result<Self> {
        let mut index = Self::without_buckets(state, id, 0);
        let name = state.schema().get(id).name();
        let unusable = |what: &str, saved: u64, built: u64| {
            Error::SavedIndexes(format!(
                "{name}: {what} {saved} saved, {built} for this snapshot"
            ))
        };
        if !index.shaped_for(table.capacity, table.ordinal_bits) {
            return Err(Error::SavedIndexes(format!(
                "{name}: a table of {} buckets of {}-bit ordinals saved, {} buckets of \
                 {}-bit ordinals (or up to twice as many) for this snapshot",
                table.capacity, table.ordinal_bits, index.capacity, index.ordinal_bits
            )));
        }
        (index.capacity, index.ordinal_bits) = (table.capacity, table.ordinal_bits);
        index.entry_bits = index.ordinal_bits + TAG_BITS;
        let expected = [
            (
                "entry bits",
                table.entry_bits.into(),
                index.entry_bits.into(),
            ),
            (
                "bucket bytes",
                table.buckets.len() as u64,
                packed_len_bytes(index.capacity * index.entry_bits as u64),
            ),
        ];
        if let Some(&(what, saved, built)) = expected.iter().find(|(_, a, b)| a != b) {
            return Err(unusable(what, saved, built));
        }
        let slots = index.data.slot_count();
        if let Some((a, b)) = table.duplicate.filter(|&(a, b)| a.max(b) as u64 >= slots) {
            return Err(unusable("duplicate ordinal", a.max(b) as u64, slots));
        }
        index.buckets =
            EntryTable::new(table.buckets, index.capacity, index.entry_bits).unwrap_or_default();
        let empty = index.empty();
        if table.empty_bucket >= index.capacity
            || index.entry_at(table.empty_bucket) & empty != empty
        {
            return Err(Error::SavedIndexes(format!(
                "{name}: bucket {} is not empty",
                table.empty_bucket
            )));
        }
        index.duplicates = Duplicates::Known(table.duplicate);
        Ok(index)
    }

    #[inline(always)]
    fn entry_at(&self, bucket: u64) -> u64 {
        self.buckets.get(bucket)
    }

    /// For a key with a field that is a path: per key field, the records of `state` reached
    /// on its way from type `id` and the column read in each. Empty when no field is a path.
    fn paths_in(state: &impl StateTypes, id: TypeId) -> Vec<Vec<(Arc<TypeData>, usize)>> {
        let schema = state.schema();
        let fields = schema.get(id).primary_key();
        if !fields.iter().any(|f| f.is_path()) {
            return Vec::new();
        }
        fields
            .iter()
            .map(|f| {
                // Each column after the first is read in the type the one before references.
                let mut ty = id;
                f.columns()
                    .windows(2)
                    .map(|pair| {
                        if let Kind::Reference(r) = schema.get(ty).columns()[pair[0]].ty.kind {
                            ty = r;
                        }
                        (state.type_data(ty).clone(), pair[1])
                    })
                    .collect()
            })
            .collect()
    }

    /// True when the records a key path reads are the same in `state` as in this index's
    /// state (always, for a key without paths).
    pub(crate) fn paths_unchanged_in(&self, state: &impl StateTypes, id: TypeId) -> bool {
        let now = Self::paths_in(state, id);
        now.len() == self.paths.len()
            && now.iter().zip(&self.paths).all(|(a, b)| {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|(x, y)| Arc::ptr_eq(&x.0, &y.0) && x.1 == y.1)
            })
    }

    /// Whether a table of `capacity` buckets and `ordinal_bits` is one a build makes for the
    /// records of this index: as [`PrimaryKeyIndex::build`] sizes it, or with room for up to
    /// as many records and slots again ([`PrimaryKeyIndex::build_after_growth`]).
    fn shaped_for(&self, capacity: u64, ordinal_bits: u8) -> bool {
        let (records, slots) = (self.data.record_count, self.data.slot_count());
        (Self::capacity_for(records)..=Self::capacity_for(records * 2)).contains(&capacity)
            && (Self::ordinal_bits_for(slots)..=Self::ordinal_bits_for(slots * 2))
                .contains(&ordinal_bits)
    }

    /// The records of the state this index is of.
    pub(crate) fn records(&self) -> u64 {
        self.data.record_count
    }

    /// Buckets of a table built for `records` records: at most three quarters in use.
    fn capacity_for(records: u64) -> u64 {
        (records + records / 3 + 1).max(2)
    }

    /// Ordinal bits for `slots` slots, keeping the two highest codes free (empty, removed).
    fn ordinal_bits_for(slots: u64) -> u8 {
        bits_needed(slots + 1).max(2)
    }

    #[inline(always)]
    fn empty(&self) -> u64 {
        low_mask(self.ordinal_bits)
    }

    #[inline(always)]
    fn tombstone(&self) -> u64 {
        low_mask(self.ordinal_bits) - 1
    }

    /// The index of the state `keys` was found in (see [`PrimaryKeyIndex::keys_to_add`]),
    /// reached from this index's state by removing the records at `removed` and adding those
    /// at `added`. Writes copies of the chunks of buckets it changes and shares the others;
    /// `None` when the table must be rebuilt instead (ordinals grew wider, or it is too full
    /// of entries and removed markers).
    ///
    /// Whether keys are duplicated stays known when it was: a new duplicate can only be an
    /// added record, and those are checked when [`PrimaryKeyIndex::first_duplicate`] is asked.
    pub(crate) fn updated(&self, keys: KeysToAdd, removed: &[u32], added: &[u32]) -> Option<Self> {
        let data = &keys.next.data;
        self.open_update(data.slot_count(), data.record_count, removed, added.len())?
            .finish(keys, removed, added)
    }

    /// What an update of this index to type `id` of `state` (the state it reaches, which holds
    /// the records at `added`) reads of `state`: the index's records and the key hashes of the
    /// added ones. It can run while [`PrimaryKeyIndex::open_update`] copies the table. `None`,
    /// before any key is hashed, when the table cannot take the update and must be rebuilt.
    pub(crate) fn keys_to_add(
        &self,
        state: &impl StateTypes,
        id: TypeId,
        removed: &[u32],
        added: &[u32],
    ) -> Option<KeysToAdd> {
        let data = state.type_data(id);
        if !self.fits(data.slot_count(), data.record_count, removed.len()) {
            return None;
        }
        let next = PrimaryKeyIndex {
            data: data.clone(),
            key_columns: self.key_columns.clone(),
            paths: PrimaryKeyIndex::paths_in(state, id),
            key_classes: self.key_classes,
            buckets: EntryTable::default(),
            capacity: self.capacity,
            ordinal_bits: self.ordinal_bits,
            entry_bits: self.entry_bits,
            tombstones: self.tombstones,
            duplicates: (self.duplicates).after_update(removed, added, data.record_count),
        };
        let hashes = next.hashes_of(added);
        Some(KeysToAdd { next, hashes })
    }

    /// The first half of [`PrimaryKeyIndex::updated`], which reads only this index's state:
    /// the next version of the table, copied and ready to be written, for a state of
    /// `slot_count` ordinals holding `records` records once the records at `removed` are
    /// removed and `added` ones added. Copying the table is most of an update's time; it can
    /// run while the delta's types are patched.
    pub(crate) fn open_update(
        &self,
        slot_count: u64,
        records: u64,
        removed: &[u32],
        added: usize,
    ) -> Option<OpenUpdate<'_>> {
        if !self.fits(slot_count, records, removed.len()) {
            return None;
        }
        let end = removed.iter().max().map_or(0, |&r| r as u64 + 1);
        let mut removed_set = Bitset::with_len(end);
        removed.iter().for_each(|&r| removed_set.insert(r as u64));
        Some(OpenUpdate {
            index: self,
            // As many writes as entries added, and markers for the keys removed for good.
            buckets: self.buckets.writer(removed.len().max(added)),
            removed: removed_set,
            tombstones: self.tombstones,
        })
    }

    /// Whether this table can take an update to a state of `slot_count` ordinals and
    /// `records` records that removes `removed`: its ordinals are as wide, and one bucket
    /// stays empty for probes to end (an added entry fills the first free bucket, empty, a
    /// marker or a removed record's, and the removed entries left become markers, so buckets
    /// in use grow to at most `records + tombstones + removed`); and the records alone leave
    /// the table no fuller than an update may (checked again once the markers are known), so
    /// that a delta adding many keys does not fill a table it must be rebuilt from anyway,
    /// its probes growing longer as it fills.
    fn fits(&self, slot_count: u64, records: u64, removed: usize) -> bool {
        Self::ordinal_bits_for(slot_count) <= self.ordinal_bits
            && records + self.tombstones + (removed as u64) < self.capacity
            && records * 100 <= self.capacity * MAX_FILL_PERCENT
    }

    #[inline(always)]
    fn bucket(&self, h: u64) -> u64 {
        ((h as u128 * self.capacity as u128) >> 64) as u64
    }

    #[inline(always)]
    fn next(&self, pos: u64) -> u64 {
        if pos + 1 == self.capacity {
            0
        } else {
            pos + 1
        }
    }

    #[inline(always)]
    fn tag(&self, h: u64) -> u64 {
        h & low_mask(TAG_BITS)
    }

    #[inline(always)]
    fn record_part(&self, ordinal: u64, column: usize) -> KeyPart<'_> {
        let Some(v) = self.data.value(ordinal, column) else {
            return KeyPart::Null;
        };
        stored_part(self.data.columns[column].kind, v, |e| {
            Some(self.data.dicts[column].as_ref()?.get(e).unwrap_or_default())
        })
    }

    /// Key field `field` of the record at `ordinal`, read through the records its path
    /// references; null where a reference on the way is null or out of range.
    fn path_part(&self, ordinal: u64, field: usize) -> KeyPart<'_> {
        let (mut data, mut column, mut row) = (&*self.data, self.key_columns[field], ordinal);
        for (next, next_column) in &self.paths[field] {
            match data.value(row, column) {
                Some(v) if v < next.slot_count() => row = v,
                _ => return KeyPart::Null,
            }
            (data, column) = (next, *next_column);
        }
        let Some(v) = data.value(row, column) else {
            return KeyPart::Null;
        };
        stored_part(data.columns[column].kind, v, |e| {
            Some(data.dicts[column].as_ref()?.get(e).unwrap_or_default())
        })
    }

    /// Key field `field` of the record at `ordinal`.
    #[inline(always)]
    fn key_part(&self, ordinal: u64, field: usize) -> KeyPart<'_> {
        match self.paths.is_empty() {
            true => self.record_part(ordinal, self.key_columns[field]),
            false => self.path_part(ordinal, field),
        }
    }

    /// The key of the record at `ordinal`, one part per key field, as lookups take it.
    pub(crate) fn key_parts(&self, ordinal: u64) -> Vec<KeyPart<'_>> {
        (0..self.key_columns.len())
            .map(|i| self.key_part(ordinal, i))
            .collect()
    }

    /// True when the records at ordinals `a` and `b` have the same key.
    fn same_key(&self, a: u64, b: u64) -> bool {
        (0..self.key_columns.len()).all(|i| self.key_part(a, i) == self.key_part(b, i))
    }

    /// The key hashes of the records at `ordinals`, in a loop of their own: its iterations do
    /// not wait on each other, so the cache misses of reading the records overlap.
    fn hashes_of(&self, ordinals: &[u32]) -> Vec<u64> {
        (ordinals.iter().enumerate())
            .map(|(i, &o)| {
                if let Some(&ahead) = ordinals.get(i + PROBES_AHEAD) {
                    self.prefetch_key(ahead);
                }
                self.record_hash(o as u64)
            })
            .collect()
    }

    /// Hints the CPU to load the first key field of the record at `ordinal`.
    #[inline(always)]
    fn prefetch_key(&self, ordinal: u32) {
        if let Some(&column) = self.key_columns.first() {
            self.data.prefetch_value(ordinal as u64, column);
        }
    }

    /// The first of `pairs` of ordinals whose records have the same key, smaller ordinal first.
    /// The records of later pairs are loaded while earlier ones are compared.
    fn first_same_key(&self, pairs: &[(u32, u32)]) -> Option<(u32, u32)> {
        (pairs.iter().enumerate()).find_map(|(i, &(a, b))| {
            if let Some(&(c, d)) = pairs.get(i + PROBES_AHEAD) {
                self.prefetch_key(c);
                self.prefetch_key(d);
            }
            self.same_key(a as u64, b as u64)
                .then_some((a.min(b), a.max(b)))
        })
    }

    fn record_hash(&self, ordinal: u64) -> u64 {
        (0..self.key_columns.len()).fold(0, |h, i| combine(h, hash_part(self.key_part(ordinal, i))))
    }

    /// The ordinal of the record whose primary key is `key`, or `None`. A tuple of values for
    /// composite keys, in declaration order. A key that cannot be the type's (another arity, a
    /// string for an integer field: say, a key type changed by the producer) is
    /// [`Error::KeyMismatch`], not a silent `None`.
    #[inline]
    pub fn find<K: Key + ?Sized>(&self, key: &K) -> Result<Option<u32>, KeyMismatch> {
        if K::ARITY == self.key_columns.len() {
            if let Some(ordinal) = self.find_with_arity(key, K::ARITY) {
                return Ok(Some(ordinal));
            }
        }
        // A key of another kind never equals a record's key, so it can only miss: its kinds
        // are checked then, and a hit costs nothing more.
        let classes = (0..K::ARITY.min(32)).fold(0, |c, i| c | part_class(&key.part(i)) << (2 * i));
        self.missed(K::ARITY, classes)
    }

    /// After a miss: `Ok(None)` when the key (`arity` parts of the 2-bit `classes`, see
    /// [`part_class`]) can be one of this index, the mismatch otherwise. Fields past the 32nd
    /// are not checked. Inlined: an out-of-line call here, even never taken, made lookups
    /// measurably slower (the registers of the probe loop are saved around it). The rule is
    /// [`KeyMismatch::check`]'s, written out: calling it reshaped the probe loop too.
    #[inline]
    fn missed(&self, arity: usize, classes: u64) -> Result<Option<u32>, KeyMismatch> {
        let class = |i: usize| (classes >> (2 * i)) & 3;
        let fits = arity == self.key_columns.len()
            && (0..arity.min(32))
                .all(|i| class(i) == 0 || class(i) == (self.key_classes >> (2 * i)) & 3);
        if fits {
            return Ok(None);
        }
        Err(KeyMismatch {
            expected: (self.key_columns.len(), self.key_classes),
            found: (arity, classes),
        })
    }

    /// The probe for `key`, its fields read by `part` (ordinal, field): chosen once per lookup,
    /// so that keys without paths pay nothing for them.
    #[inline]
    fn find_with_arity<K: Key + ?Sized>(&self, key: &K, arity: usize) -> Option<u32> {
        match self.paths.is_empty() {
            true => self.probe(key, arity, |o, i| self.record_part(o, self.key_columns[i])),
            false => self.probe(key, arity, |o, i| self.path_part(o, i)),
        }
    }

    #[inline(always)]
    fn probe<'k, K: Key + ?Sized>(
        &'k self,
        key: &K,
        arity: usize,
        part: impl Fn(u64, usize) -> KeyPart<'k>,
    ) -> Option<u32> {
        let h = (0..arity).fold(0, |h, i| combine(h, hash_part(key.part(i))));
        let tag = self.tag(h);
        let empty = self.empty();
        let mut pos = self.bucket(h);
        loop {
            let entry = self.entry_at(pos);
            let ordinal = entry & empty;
            if ordinal == empty {
                return None;
            }
            if entry >> self.ordinal_bits == tag
                && ordinal != self.tombstone()
                && (0..arity).all(|i| part(ordinal, i) == key.part(i))
            {
                return Some(ordinal as u32);
            }
            pos = self.next(pos);
        }
    }

    /// Two ordinals whose records have the same key, if any. An index built from a snapshot
    /// knows already (equal keys are neighbours once the entries are sorted by bucket); one
    /// updated from it probes, the first time it is asked, for the keys of the records added
    /// since; otherwise every record is hashed, the hashes sorted, and keys compared only
    /// within runs of equal hashes. Either answer is kept, for this index and the updates
    /// that follow it.
    pub fn first_duplicate(&self) -> Option<(u32, u32)> {
        match &self.duplicates {
            Duplicates::Known(known) => *known,
            Duplicates::UnlessAdded { added, found } => {
                *found.get_or_init(|| self.duplicate_of_any(added.iter().flat_map(|a| a.iter())))
            }
            Duplicates::Unknown(found) => *found.get_or_init(|| self.duplicate_by_hashing_all()),
        }
    }

    /// Two ordinals with the same key, one of them among `ordinals` (those of them still
    /// present), if any: each probes its key's run, and the records whose tags match its own
    /// are compared, in a loop whose reads of the records overlap.
    fn duplicate_of_any<'a>(&self, ordinals: impl Iterator<Item = &'a u32>) -> Option<(u32, u32)> {
        let present: Vec<u32> = ordinals
            .copied()
            .filter(|&o| self.data.population.contains(o as u64))
            .collect();
        let hashes = self.hashes_of(&present);
        let (empty, tombstone) = (self.empty(), self.tombstone());
        let mut suspects = Vec::new();
        for (i, (&a, &h)) in present.iter().zip(&hashes).enumerate() {
            if let Some(&ahead) = hashes.get(i + PROBES_AHEAD) {
                self.buckets.prefetch(self.bucket(ahead));
            }
            let mut pos = self.bucket(h);
            loop {
                let entry = self.entry_at(pos);
                let ordinal = entry & empty;
                if ordinal == empty {
                    break;
                }
                if ordinal != tombstone
                    && ordinal != a as u64
                    && entry >> self.ordinal_bits == self.tag(h)
                {
                    suspects.push((ordinal as u32, a));
                }
                pos = self.next(pos);
            }
        }
        self.first_same_key(&suspects)
    }

    /// Two ordinals with the same key, if any, found by hashing every record, sorting the
    /// hashes, and comparing keys only within runs of equal hashes. (Hashing on the cores and
    /// radix-sorting as a build does measured no faster: reading the records is the cost.)
    fn duplicate_by_hashing_all(&self) -> Option<(u32, u32)> {
        let mut hashes: Vec<(u64, u32)> = self
            .data
            .population
            .iter()
            .map(|o| (self.record_hash(o), o as u32))
            .collect();
        hashes.sort_unstable();
        for run in hashes.chunk_by(|a, b| a.0 == b.0).filter(|r| r.len() > 1) {
            for (i, a) in run.iter().enumerate() {
                for b in &run[i + 1..] {
                    if self.same_key(a.1 as u64, b.1 as u64) {
                        return Some((a.1, b.1));
                    }
                }
            }
        }
        None
    }

    /// `entry(o)` of every record, made on the cores, sorted by bits `low..low + bits` of
    /// `key(entry)`.
    fn sorted_entries<T: Copy + Default + Send>(
        &self,
        entry: impl Fn(u32) -> T + Sync,
        key: impl Fn(&T) -> u64 + Sync,
        low: u32,
        bits: u32,
    ) -> Vec<T> {
        let parts =
            crate::parallel::map_ordinals(&self.data.population, 1024, |batch, out, _: &mut ()| {
                out.extend(batch.iter().map(|&o| entry(o)))
            });
        crate::radix_sort::sorted_by_bits(parts, key, low, bits)
    }

    /// [`PrimaryKeyIndex::sorted_entries`] for entries of one word, each piece of them in a
    /// buffer of its own that the sort gives back as soon as it has moved its entries: at 10 M
    /// records the entries are not held twice (80 MB less at the peak of a build).
    fn sorted_words(&self, entry: impl Fn(u32) -> u64 + Sync, low: u32, bits: u32) -> Words {
        let population = &self.data.population;
        let whole = self.data.record_count as usize;
        let parts = crate::parallel::map_pieces(population, |words| {
            let mut piece = Words::zeroed_in(words.len() * 64, whole);
            let out = piece.as_mut_slice();
            let mut len = 0;
            for o in population.iter_words(words) {
                out[len] = entry(o as u32);
                len += 1;
            }
            piece.truncate(len);
            piece
        });
        crate::radix_sort::sorted_words_by_bits(parts, |&e| e, low, bits)
    }

    /// Places `entries` ((home bucket, entry), sorted by home bucket) in `buckets`, all set
    /// to ones (empty). Returns two ordinals with the same key, if any.
    fn place_sorted(
        &self,
        entries: impl Iterator<Item = (u64, u64)>,
        buckets: &mut BitWriter,
    ) -> Option<(u32, u32)> {
        let (duplicate, past_end) =
            self.place_region(entries, 0..self.capacity, buckets.words_mut());
        self.place_past(past_end, 0, buckets);
        duplicate
    }

    /// [`PrimaryKeyIndex::place_sorted`] for entries packed as `home << wide_bits | wide`
    /// (a wide entry: more hash bits above the entry), the table cut into `regions` that the
    /// cores fill at once: each region starts at a bucket whose bits start a word, so no two
    /// regions share a word. With `release`, `buckets` may be all zeros: each region is set
    /// empty before it is filled, and gives the pages of its entries back once they are placed.
    fn place_packed(
        &self,
        entries: &mut [u64],
        wide_bits: u8,
        buckets: &mut BitWriter,
        regions: u64,
        release: bool,
    ) -> Option<(u32, u32)> {
        let entry_bits = self.entry_bits as u64;
        let wide_mask = low_mask(wide_bits);
        // The fewest buckets whose bits span a whole number of words.
        let aligned = 64 >> entry_bits.trailing_zeros().min(6);
        let region_buckets = self.capacity.div_ceil(regions).next_multiple_of(aligned);
        let mut items = Vec::new();
        let (mut entries, mut words) = (entries, buckets.words_mut());
        let mut start = 0;
        while start < self.capacity {
            let end = (start + region_buckets).min(self.capacity);
            let split = entries.partition_point(|e| e >> wide_bits < end);
            let (here, after) = std::mem::take(&mut entries).split_at_mut(split);
            let word_count = match end == self.capacity {
                true => words.len(),
                false => ((end - start) * entry_bits / 64) as usize,
            };
            let (region_words, after_words) = std::mem::take(&mut words).split_at_mut(word_count);
            items.push((start..end, here, region_words));
            (entries, words, start) = (after, after_words, end);
        }
        let placed = crate::parallel::map_balanced(
            items,
            |item| item.1.len() as u64,
            0,
            |(region, entries, words)| {
                let unpack = |&e: &u64| (e >> wide_bits, e & wide_mask);
                let end = region.end;
                if release {
                    words.fill(u64::MAX);
                }
                let (duplicate, past_end) =
                    self.place_region(entries.iter().map(unpack), region, words);
                if release {
                    release_words(entries);
                }
                (duplicate, past_end, end)
            },
        );
        let mut duplicate = None;
        for (found, past_end, end) in placed {
            duplicate = duplicate.or(found);
            self.place_past(past_end, end % self.capacity, buckets);
        }
        duplicate
    }

    /// Places `entries` ((home bucket, entry), sorted by home bucket, homes in `region`) in the
    /// region's buckets, whose bits are `words` (all ones where empty): each goes to its home
    /// bucket or just after the last one placed, so the region is written front to back.
    /// Returns two ordinals with the same key, if any (equal keys have equal home buckets and
    /// tags, and equal hash bits above an entry if it is wide, so only those are compared),
    /// and the entries pushed past the region's end.
    fn place_region(
        &self,
        entries: impl Iterator<Item = (u64, u64)>,
        region: std::ops::Range<u64>,
        words: &mut [u64],
    ) -> (Option<(u32, u32)>, Vec<u64>) {
        let entry_bits = self.entry_bits;
        let (empty, entry_mask) = (self.empty(), low_mask(entry_bits));
        let mut duplicate = None;
        let mut run: Vec<u64> = Vec::new();
        let mut run_home = u64::MAX;
        let mut next_free = region.start;
        let mut past_end = Vec::new();
        for (home, wide) in entries {
            let entry = wide & entry_mask;
            if home != run_home {
                run_home = home;
                run.clear();
            } else if duplicate.is_none() {
                duplicate = run
                    .iter()
                    .find(|&&e| {
                        e >> self.ordinal_bits == wide >> self.ordinal_bits
                            && self.same_key(e & empty, entry & empty)
                    })
                    .map(|&e| ((e & empty) as u32, (entry & empty) as u32));
            }
            if duplicate.is_none() {
                run.push(wide);
            }
            let pos = home.max(next_free);
            if pos >= region.end {
                past_end.push(entry);
                continue;
            }
            let bit = (pos - region.start) * entry_bits as u64;
            set_bits(words, bit, entry_bits, entry);
            next_free = pos + 1;
        }
        (duplicate, past_end)
    }

    /// Places `entries`, pushed past the end of a region, each in the first empty bucket from
    /// bucket `from` on (wrapping around), as probing will look for them.
    fn place_past(&self, entries: Vec<u64>, from: u64, buckets: &mut BitWriter) {
        let (entry_bits, empty) = (self.entry_bits, self.empty());
        let mut pos = from;
        for entry in entries {
            while buckets.get(pos * entry_bits as u64, entry_bits) & empty != empty {
                pos = self.next(pos);
            }
            buckets.set(pos * entry_bits as u64, entry_bits, entry);
        }
    }

    /// Like [`PrimaryKeyIndex::find`], with the key given as its parts.
    pub fn find_parts(&self, parts: &[KeyPart<'_>]) -> Result<Option<u32>, KeyMismatch> {
        struct Parts<'p, 'a>(&'p [KeyPart<'a>]);
        impl Key for Parts<'_, '_> {
            const ARITY: usize = usize::MAX;
            fn part(&self, i: usize) -> KeyPart<'_> {
                self.0.get(i).copied().unwrap_or(KeyPart::Null)
            }
        }
        if parts.len() == self.key_columns.len() {
            if let Some(ordinal) = self.find_with_arity(&Parts(parts), parts.len()) {
                return Ok(Some(ordinal));
            }
        }
        let classes = parts
            .iter()
            .take(32)
            .enumerate()
            .fold(0, |c, (i, p)| c | part_class(p) << (2 * i));
        self.missed(parts.len(), classes)
    }

    /// Number of buckets.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes held by the index (the buckets; the records it points into belong to the state).
    pub fn heap_bytes(&self) -> usize {
        self.buckets.heap_bytes()
            + self.key_columns.capacity() * std::mem::size_of::<usize>()
            + self.paths.iter().map(Vec::capacity).sum::<usize>()
                * std::mem::size_of::<(Arc<TypeData>, usize)>()
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use crate::{ReadState, SchemaBuilder, WriteState};

    #[derive(Serialize, Deserialize)]
    struct Row {
        id: i32,
        v: i32,
    }

    /// A state of `rows`, keyed by `id`, and the rows' type.
    fn state_of(rows: impl IntoIterator<Item = Row>) -> (ReadState, crate::schema::TypeId) {
        let schema = row_schema();
        let mut w = WriteState::new(schema);
        for row in rows {
            w.add(&row).unwrap();
        }
        let state = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
        let id = state.schema().require("Row").unwrap();
        (state, id)
    }

    /// The schema of [`Row`], keyed by `id`.
    fn row_schema() -> crate::Schema {
        SchemaBuilder::new()
            .add::<Row>()
            .primary_key("Row", &["id"])
            .build()
            .unwrap()
    }

    /// A state of `first`, keyed by `id`, and the delta a producer writes from it to a state
    /// of `second`.
    fn state_and_delta(first: &[Row], second: &[Row]) -> (ReadState, bytes::Bytes) {
        let schema = row_schema();
        let mut w = WriteState::new(schema);
        w.add_all(first).unwrap();
        let state = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
        w.commit_cycle().unwrap();
        w.add_all(second).unwrap();
        (state, w.write_delta(1, 2).unwrap().into())
    }

    /// Two versions of rows keyed `0..n`: in the second, the keys `k` with `k % gone.0 ==
    /// gone.1` are removed, the values of keys divisible by `negated` negated (the records
    /// updated), and `new` keys added after `n`.
    struct Churn {
        n: i32,
        gone: (i32, i32),
        negated: i32,
        new: i32,
    }

    impl Churn {
        fn rows(&self, changed: bool) -> Vec<Row> {
            (0..self.n)
                .filter(|id| !changed || id % self.gone.0 != self.gone.1)
                .chain(if changed {
                    self.n..self.n + self.new
                } else {
                    0..0
                })
                .map(|id| Row {
                    id,
                    v: if changed && id % self.negated == 0 {
                        -id
                    } else {
                        id
                    },
                })
                .collect()
        }

        /// The value of key `id` in the second version.
        fn expected(&self, id: i32) -> Option<i64> {
            match (
                id < self.n && id % self.gone.0 == self.gone.1,
                id % self.negated == 0,
            ) {
                (true, _) => None,
                (false, true) => Some(-id as i64),
                (false, false) => Some(id as i64),
            }
        }
    }

    /// Asserts that `index` holds one entry per ordinal of `records` (ascending) and no other,
    /// and counts its removed markers exactly.
    fn assert_one_entry_per_record(index: &super::PrimaryKeyIndex, records: &[u32]) {
        let table: Vec<u64> = (0..index.capacity)
            .map(|b| index.entry_at(b) & index.empty())
            .collect();
        let markers = table.iter().filter(|&&o| o == index.tombstone()).count();
        assert_eq!(index.tombstones, markers as u64, "markers counted exactly");
        let mut entries: Vec<u32> = (table.iter())
            .filter(|&&o| o != index.empty() && o != index.tombstone())
            .map(|&o| o as u32)
            .collect();
        entries.sort_unstable();
        assert!(
            entries == records,
            "one entry per record of the state, no other"
        );
    }

    /// Entries sorted packed in one word (types of up to 2^29 records) or as pairs (larger
    /// ones) give the same table, and find the same duplicate.
    #[test]
    fn packed_and_paired_builds_give_the_same_index() {
        let rows = (0..20_000).map(|id| Row { id, v: id % 7 });
        let (state, id) = state_of(rows.chain([Row { id: 4321, v: -1 }]));
        let packed = super::PrimaryKeyIndex::build_with(&state, id, true, 1, 0);
        let paired = super::PrimaryKeyIndex::build_with(&state, id, false, 1, 0);
        assert_eq!(packed.buckets.to_bytes(), paired.buckets.to_bytes());
        assert_eq!(packed.first_duplicate(), Some((4321, 20_000)));
        assert_eq!(paired.first_duplicate(), packed.first_duplicate());
        for k in [0, 17, 19_999, 4321] {
            assert!(packed.find(&k).unwrap().is_some());
        }
    }

    /// A table filled in regions at once holds the same entries as one filled front to back,
    /// entries pushed past a region's end (or the table's) included, and finds every key.
    #[test]
    fn a_table_filled_in_regions_finds_every_key() {
        let (state, id) = state_of((0..30_000).map(|id| Row {
            id: id * 3,
            v: id % 7,
        }));
        let entries = |index: &super::PrimaryKeyIndex| {
            let mut all: Vec<u64> = (0..index.capacity).map(|b| index.entry_at(b)).collect();
            all.sort_unstable();
            all
        };
        let whole = super::PrimaryKeyIndex::build_with(&state, id, true, 1, 0);
        for regions in [2, 7, 16, 1000] {
            let cut = super::PrimaryKeyIndex::build_with(&state, id, true, regions, 0);
            assert_eq!(entries(&cut), entries(&whole), "{regions} regions");
            assert!(matches!(cut.duplicates, super::Duplicates::Known(None)));
            for k in 0..30_000i64 {
                assert_eq!(cut.find(&(k * 3)).unwrap(), Some(k as u32), "key {k}");
                assert_eq!(cut.find(&(k * 3 + 1)).unwrap(), None);
            }
        }
        // A duplicate is found whichever region its key falls in.
        let rows = (0..30_000).map(|id| Row { id, v: 0 });
        let (state, id) = state_of(rows.chain([Row { id: 29_001, v: 1 }]));
        for regions in [1, 16] {
            let cut = super::PrimaryKeyIndex::build_with(&state, id, true, regions, 0);
            assert_eq!(
                cut.first_duplicate(),
                Some((29_001, 30_000)),
                "{regions} regions"
            );
        }
    }

    /// Saved indexes are read by later versions of the library only while keys hash to the
    /// same buckets: this pins the buckets of a table of int, string and composite keys. A
    /// change that fails it changes the index layout: bump
    /// `format::saved_indexes::LAYOUT_VERSION` and the expected value together.
    #[test]
    fn the_saved_layout_is_frozen() {
        #[derive(Serialize, Deserialize)]
        struct Pair {
            name: String,
            n: i64,
        }
        let schema = SchemaBuilder::new()
            .add::<Row>()
            .primary_key("Row", &["id"])
            .add::<Pair>()
            .primary_key("Pair", &["name", "n"])
            .build()
            .unwrap();
        let mut w = WriteState::new(schema);
        for id in -500..1500 {
            w.add(&Row { id, v: 0 }).unwrap();
            let name = format!("name {}", id % 37);
            w.add(&Pair { name, n: id as i64 }).unwrap();
        }
        let state = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
        let buckets = |t: &str| {
            let index = state.primary_key_index(t).unwrap();
            xxhash_rust::xxh3::xxh3_64(&index.buckets.to_bytes())
        };
        assert_eq!(
            (
                crate::format::saved_indexes::LAYOUT_VERSION,
                buckets("Row"),
                buckets("Pair")
            ),
            (2, 14249659659525681179, 11995668603855771722)
        );
    }

    /// Deltas of a few records write a few chunks of the table and share the rest with the
    /// state before; a delta of many copies it whole. Every key is found in every version.
    #[test]
    fn small_updates_share_the_chunks_they_do_not_write() {
        let schema = row_schema();
        let n = 30_000;
        let mut w = WriteState::new(schema);
        let mut v = vec![0; n as usize];
        let add = |w: &mut WriteState, v: &[i32]| {
            let rows: Vec<Row> = (0..n)
                .map(|id| Row {
                    id,
                    v: v[id as usize],
                })
                .collect();
            w.add_all(&rows).unwrap();
        };
        add(&mut w, &v);
        let mut states =
            vec![ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap()];
        w.commit_cycle().unwrap();
        // Three small deltas, then one that changes a record in 300: 200 writes, more than
        // the chunks.
        for version in 2..6u64 {
            let step = if version == 5 { 300 } else { 9_999 };
            for id in (version as usize..n as usize).step_by(step) {
                v[id] += 1;
            }
            add(&mut w, &v);
            let before = states.last().unwrap();
            let next = before.apply_delta(w.write_delta(version - 1, version).unwrap().into());
            states.push(next.unwrap());
            w.commit_cycle().unwrap();
        }
        fn index(s: &ReadState) -> &super::PrimaryKeyIndex {
            s.primary_key_index("Row").unwrap()
        }
        let (first, second) = (index(&states[0]), index(&states[1]));
        assert!(first.buckets.to_bytes() != second.buckets.to_bytes());
        // Three records changed: at most six chunks of ten written, the rest shared (the
        // state holds the first table's buffer and its own chunks); a hundred changed: a table
        // of its own, and the 100 entries written since the table before (8 bytes each: each
        // record's new version takes its old version's bucket, one write each).
        assert!(first.heap_bytes() < second.heap_bytes());
        assert!(second.heap_bytes() < first.heap_bytes() * 2);
        assert_eq!(index(&states[4]).heap_bytes(), first.heap_bytes() + 100 * 8);
        for (s, state) in states.iter().enumerate() {
            let index = index(state);
            let rows = state.object("Row").unwrap();
            let values = rows.int("v").unwrap();
            for id in 0..n {
                let o = index
                    .find(&id)
                    .unwrap()
                    .unwrap_or_else(|| panic!("{id} in {s}"));
                assert_eq!(rows.int("id").unwrap().get(o), Some(id as i64));
                let expected = (2..=s as i64 + 1)
                    .filter(|&version| {
                        let step = if version == 5 { 300 } else { 9_999 };
                        id as i64 >= version && (id as i64 - version) % step == 0
                    })
                    .count() as i64;
                assert_eq!(values.get(o), Some(expected), "row {id} in state {s}");
            }
            assert_eq!(index.find(&n).unwrap(), None);
        }
    }

    /// Records updated under their keys leave no removed markers behind (the new version
    /// takes its old version's bucket), so that an index following deltas that update a
    /// twentieth of the records each is updated every time, never rebuilt; removed keys
    /// still leave markers, counted exactly.
    #[test]
    fn updates_under_the_same_keys_leave_no_markers() {
        use super::Duplicates;
        let schema = row_schema();
        let n = 3_000i32;
        let mut values: Vec<i32> = vec![0; n as usize];
        let mut w = WriteState::new(schema);
        let add = |w: &mut WriteState, values: &[i32], skip: &[i32]| {
            let rows: Vec<Row> = (0..n)
                .filter(|id| !skip.contains(id))
                .map(|id| Row {
                    id,
                    v: values[id as usize],
                })
                .collect();
            w.add_all(&rows).unwrap();
        };
        add(&mut w, &values, &[]);
        let mut state = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
        w.commit_cycle().unwrap();
        let index = |s: &ReadState| s.primary_key_index("Row").unwrap() as *const _;
        for version in 2..42u64 {
            for id in (version as i32 % 20..n).step_by(20) {
                values[id as usize] += 1;
            }
            // The last delta also removes ten keys.
            let skip: Vec<i32> = match version {
                41 => (0..10).map(|k| k * 7 + 1).collect(),
                _ => Vec::new(),
            };
            add(&mut w, &values, &skip);
            let delta = w.write_delta(version - 1, version).unwrap();
            w.commit_cycle().unwrap();
            let next = state.apply_delta(delta.into()).unwrap();
            assert_ne!(index(&state), index(&next));
            state = next;
            let table = state.primary_key_index("Row").unwrap();
            assert!(
                !matches!(table.duplicates, Duplicates::Known(_)),
                "version {version}: the index was rebuilt"
            );
            assert_eq!(table.tombstones, if version == 41 { 10 } else { 0 });
            let rows = state.object("Row").unwrap();
            for id in 0..n {
                let found = table.find(&id).unwrap();
                match skip.contains(&id) {
                    true => assert_eq!(found, None),
                    false => {
                        let o = found.unwrap_or_else(|| panic!("{id} in version {version}"));
                        assert_eq!(
                            rows.int("v").unwrap().get(o),
                            Some(values[id as usize] as i64)
                        );
                    }
                }
            }
        }
    }

    /// A delta whose records need wider ordinals cannot update the table: the index is
    /// built for the state it reaches, every key found.
    #[test]
    fn a_delta_that_widens_the_ordinals_builds_the_index() {
        let rows = |n: i32| (0..n).map(|id| Row { id, v: -id }).collect::<Vec<_>>();
        let (v1, delta) = state_and_delta(&rows(100), &rows(5_000));
        let v2 = v1.apply_delta(delta).unwrap();
        let before = v1.primary_key_index("Row").unwrap();
        let index = v2.primary_key_index("Row").unwrap();
        assert!(index.ordinal_bits > before.ordinal_bits);
        assert!(
            matches!(index.duplicates, super::Duplicates::Known(_)),
            "built, not updated"
        );
        let values = v2.object("Row").unwrap().int("v").unwrap();
        for id in 0..5_000 {
            let found = index.find(&id).unwrap();
            assert_eq!(
                found.and_then(|o| values.get(o)),
                Some(-id as i64),
                "key {id}"
            );
        }
    }

    /// A delta large enough to have its removed keys marked while the types are patched
    /// (on a thread of its own) gives the index a fresh build would: every key found at its
    /// record, removed keys gone, added ones there.
    #[test]
    fn a_large_delta_marks_its_removed_keys_while_the_types_are_patched() {
        // Ordinals as wide after as before (changed records take new ones): 18 bits; and few
        // enough records removed for the table to take the update.
        let churn = Churn {
            n: 200_000,
            gone: (10, 3),
            negated: 5,
            new: 5_000,
        };
        let (v1, delta) = state_and_delta(&churn.rows(false), &churn.rows(true));
        let sections = crate::format::parse(delta.clone())
            .unwrap()
            .split_schema()
            .unwrap();
        let section = sections.sections.map(|s| s.data.len()).max().unwrap();
        assert!(section >= crate::read::EARLY_REMOVAL_BYTES, "{section}");
        let v2 = v1.apply_delta(delta).unwrap();
        let index = v2.primary_key_index("Row").unwrap();
        assert!(
            !matches!(index.duplicates, super::Duplicates::Known(_)),
            "updated, not built"
        );
        let rows = v2.object("Row").unwrap();
        let values = rows.int("v").unwrap();
        for id in 0..churn.n + churn.new {
            let found = index.find(&id).unwrap();
            assert!(
                found.is_none_or(|o| rows.contains(o)),
                "key {id} at a record gone"
            );
            assert_eq!(
                found.and_then(|o| values.get(o)),
                churn.expected(id),
                "key {id}"
            );
        }
        // A marker per key removed for good, less those new keys took.
        assert!(
            (15_000..=20_000).contains(&index.tombstones),
            "{}",
            index.tombstones
        );
        // No entry left behind: one per record, each at a record of the state.
        assert_one_entry_per_record(index, &rows.ordinals().collect::<Vec<_>>());
    }

    /// An update places each added entry at the first free bucket on its way, a removed
    /// record's entry included, and only then marks the removed entries left: every key is
    /// found where marking every removed entry first finds it, the removed keys are gone,
    /// the markers are counted exactly, and no entry is left of a removed record.
    #[test]
    fn added_entries_take_removed_ones_on_their_way() {
        // A tenth of the records updated, a fiftieth removed for good, as many keys new.
        let churn = Churn {
            n: 20_000,
            gone: (50, 7),
            negated: 10,
            new: 400,
        };
        let (v1, delta) = state_and_delta(&churn.rows(false), &churn.rows(true));
        let v2 = v1.apply_delta(delta).unwrap();
        let id = v1.schema().type_id("Row").unwrap();
        let ordinals =
            |s: &ReadState| -> Vec<u32> { s.object("Row").unwrap().ordinals().collect() };
        let (before, after) = (ordinals(&v1), ordinals(&v2));
        // Both ascending.
        let minus = |a: &[u32], b: &[u32]| -> Vec<u32> {
            (a.iter().copied())
                .filter(|o| b.binary_search(o).is_err())
                .collect()
        };
        let (removed, added) = (minus(&before, &after), minus(&after, &before));
        assert_eq!((removed.len(), added.len()), (2_399, 2_399));

        let index = v1.primary_key_index("Row").unwrap();
        let data = v2.type_data(id);
        let update = || {
            let keys = index.keys_to_add(&v2, id, &removed, &added).unwrap();
            let open = index
                .open_update(data.slot_count(), data.record_count, &removed, added.len())
                .unwrap();
            (keys, open)
        };
        let (keys, open) = update();
        let single_pass = open.finish(keys, &removed, &added).unwrap();
        let (keys, mut open) = update();
        open.mark_removed(&removed);
        assert_eq!(open.tombstones, 2_399, "every removed entry found");
        let marked_first = open.finish(keys, &removed, &added).unwrap();

        assert_one_entry_per_record(&single_pass, &after);
        assert_one_entry_per_record(&marked_first, &after);
        // The markers left are the keys removed for good, less those new keys took; and the
        // state's own index, updated the same way, is the same table.
        assert!(single_pass.tombstones <= 400, "{}", single_pass.tombstones);
        let own = v2.primary_key_index("Row").unwrap();
        assert!((0..own.capacity).all(|b| own.entry_at(b) == single_pass.entry_at(b)));
        let values = v2.object("Row").unwrap().int("v").unwrap();
        for key in 0..churn.n + churn.new {
            let found = single_pass.find(&key).unwrap();
            assert_eq!(found, marked_first.find(&key).unwrap(), "key {key}");
            assert_eq!(
                found.and_then(|o| values.get(o)),
                churn.expected(key),
                "key {key}"
            );
        }
    }

    /// An update that removes and adds the same ordinals (a delta no producer writes, since
    /// freed ordinals wait a cycle, but one a blob can say) marks the removed entries first:
    /// an added entry is never taken for a removed one.
    #[test]
    fn an_ordinal_removed_and_added_keeps_its_new_entry() {
        let n = 4_000;
        let (v1, id) = state_of((0..n).map(|k| Row { id: k, v: k }));
        // The first 1,000 ordinals hold new keys in the second state.
        let renamed = |o: i32| if o < 1_000 { o + 100_000 } else { o };
        let (v2, _) = state_of((0..n).map(|o| Row {
            id: renamed(o),
            v: o,
        }));
        let same: Vec<u32> = (0..1_000).collect();
        let index = v1.primary_key_index("Row").unwrap();
        let data = v2.type_data(id);
        let keys = index.keys_to_add(&v2, id, &same, &same).unwrap();
        let open =
            (index.open_update(data.slot_count(), data.record_count, &same, same.len())).unwrap();
        let updated = open.finish(keys, &same, &same).unwrap();
        for o in 0..n {
            assert_eq!(
                updated.find(&renamed(o)).unwrap(),
                Some(o as u32),
                "key {o}"
            );
        }
        for k in 0..1_000 {
            assert_eq!(updated.find(&k).unwrap(), None, "removed key {k}");
        }
    }

    /// A delta that adds more keys than the table can hold at the fill an update may leave is
    /// refused before any key is placed (the table is built for the state it reaches), not
    /// after filling it with ever longer probes.
    #[test]
    fn a_delta_adding_past_the_fill_limit_builds_the_index_at_once() {
        let rows = |n: i32| (0..n).map(|id| Row { id, v: id }).collect::<Vec<_>>();
        // 3,500 records: ordinals as wide, but past 85% of the 4,001 buckets.
        let (v1, delta) = state_and_delta(&rows(3_000), &rows(3_500));
        let v2 = v1.apply_delta(delta).unwrap();
        let before = v1.primary_key_index("Row").unwrap();
        let id = v1.schema().type_id("Row").unwrap();
        let data = v2.type_data(id);
        assert_eq!(before.capacity, 4_001);
        assert_eq!(
            super::PrimaryKeyIndex::ordinal_bits_for(data.slot_count()),
            before.ordinal_bits
        );
        let added: Vec<u32> = (3_000..3_500).collect();
        assert!(before.keys_to_add(&v2, id, &[], &added).is_none());
        assert!(before
            .open_update(data.slot_count(), data.record_count, &[], 500)
            .is_none());
        let index = v2.primary_key_index("Row").unwrap();
        assert!(
            matches!(index.duplicates, super::Duplicates::Known(_)),
            "built, not updated"
        );
        for key in 0..3_500 {
            assert_eq!(index.find(&key).unwrap(), Some(key as u32), "key {key}");
        }
    }

    /// A type growing by a fifth at every delta leaves a table sized for its records before
    /// fuller than an update may: the table is rebuilt with room to grow, a few times over
    /// fifteen deltas instead of at every one (15 before), every key found in every version.
    #[test]
    fn a_growing_type_rebuilds_its_table_a_few_times() {
        let schema = row_schema();
        let rows = |n: i32| (0..n).map(|id| Row { id, v: id }).collect::<Vec<_>>();
        let mut w = WriteState::new(schema);
        let mut n = 1_000;
        w.add_all(&rows(n)).unwrap();
        let mut state = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
        let mut rebuilds = 0;
        for version in 2..=16 {
            w.commit_cycle().unwrap();
            n += n / 5;
            w.add_all(&rows(n)).unwrap();
            let delta = w.write_delta(version - 1, version).unwrap();
            let next = state.apply_delta(delta.into()).unwrap();
            let before = state.primary_key_index("Row").unwrap();
            let index = next.primary_key_index("Row").unwrap();
            rebuilds += u32::from(index.capacity != before.capacity);
            assert!(index.records() * 100 <= index.capacity * super::MAX_FILL_PERCENT);
            for key in 0..n {
                assert_eq!(index.find(&key).unwrap(), Some(key as u32), "key {key}");
            }
            state = next;
        }
        assert_eq!(n, 15_390);
        assert!((1..=5).contains(&rebuilds), "{rebuilds} rebuilds");
    }

    /// A table built with room to grow is saved and read back beside a snapshot of the same
    /// records; a saved table larger than any build makes for them, or smaller, is refused.
    #[test]
    fn a_table_built_with_room_is_saved_and_read_back() {
        let rows = |n: i32| (0..n).map(|id| Row { id, v: id }).collect::<Vec<_>>();
        let (v1, delta) = state_and_delta(&rows(3_000), &rows(3_500));
        let v2 = v1.apply_delta(delta).unwrap();
        let id = v2.schema().type_id("Row").unwrap();
        let grown = v2.primary_key_index("Row").unwrap();
        assert!(grown.capacity > super::PrimaryKeyIndex::capacity_for(3_500));
        let table = grown.saved_table(id).expect("saved");
        let read = super::PrimaryKeyIndex::from_saved_table(&v2, id, table.clone()).unwrap();
        assert_eq!(read.capacity, grown.capacity);
        for key in 0..3_500 {
            assert_eq!(read.find(&key).unwrap(), Some(key as u32), "key {key}");
        }
        for capacity in [
            super::PrimaryKeyIndex::capacity_for(3_500) - 1,
            super::PrimaryKeyIndex::capacity_for(7_000) + 1,
        ] {
            let entry_bits = table.entry_bits as u64;
            let buckets = bytes::Bytes::from(vec![
                0xffu8;
                super::packed_len_bytes(capacity * entry_bits)
                    as usize
            ]);
            let odd = super::SavedTable {
                capacity,
                buckets,
                ..table.clone()
            };
            let e = super::PrimaryKeyIndex::from_saved_table(&v2, id, odd).unwrap_err();
            assert!(matches!(e, crate::Error::SavedIndexes(_)), "{e}");
        }
    }

    /// Whether keys are duplicated stays known through updates: a validator's question
    /// probes only for the records added since it was last known, never hashes them all.
    #[test]
    fn an_updated_index_knows_its_duplicates() {
        use super::Duplicates;
        let schema = row_schema();
        let rows = |changed: i32, v: i32| -> Vec<Row> {
            (0..2000)
                .map(|id| Row {
                    id,
                    v: if id == changed { v } else { id },
                })
                .collect()
        };
        let mut w = WriteState::new(schema);
        w.add_all(&rows(-1, 0)).unwrap();
        let v1 = ReadState::from_snapshot(w.write_snapshot(1).unwrap().into()).unwrap();
        w.commit_cycle().unwrap();
        fn index(state: &ReadState) -> &super::PrimaryKeyIndex {
            state.primary_key_index("Row").unwrap()
        }
        // The added ordinals waiting to be checked.
        let pending = |state: &ReadState| match &index(state).duplicates {
            Duplicates::UnlessAdded { added, found } => {
                (added.iter().map(|a| a.len()).sum(), found.get().copied())
            }
            other => panic!("{other:?}"),
        };
        assert!(matches!(index(&v1).duplicates, Duplicates::Known(None)));

        // One record replaced by another with the same key, one added with a new key.
        w.add_all(&rows(5, -5)).unwrap();
        w.add(&Row { id: 2000, v: 0 }).unwrap();
        let delta12 = w.write_delta(1, 2).unwrap();
        let v2 = v1.apply_delta(delta12.clone().into()).unwrap();
        assert_eq!(pending(&v2), (2, None));
        assert_eq!(index(&v2).first_duplicate(), None);
        assert_eq!(pending(&v2), (2, Some(None)), "the answer is kept");
        w.commit_cycle().unwrap();

        // A second record with key 9, at ordinal 5 (freed in cycle 2).
        w.add_all(&rows(5, -5)).unwrap();
        w.add(&Row { id: 9, v: -9 }).unwrap();
        let delta23 = w.write_delta(2, 3).unwrap();
        let v3 = v2.apply_delta(delta23.clone().into()).unwrap();
        assert_eq!(pending(&v3).0, 1, "only what cycle 3 added");
        assert_eq!(index(&v3).first_duplicate(), Some((5, 9)));

        // Unasked, the records added by both deltas wait together, the second update
        // sharing what the first added rather than copying it.
        let unasked = v1.apply_delta(delta12.into()).unwrap();
        let v3 = unasked.apply_delta(delta23.into()).unwrap();
        assert_eq!(pending(&v3).0, 3);
        let slices = |state: &ReadState| match &index(state).duplicates {
            Duplicates::UnlessAdded { added, .. } => added.clone(),
            other => panic!("{other:?}"),
        };
        let (before, after) = (slices(&unasked), slices(&v3));
        assert_eq!((before.len(), after.len()), (1, 2));
        assert!(std::sync::Arc::ptr_eq(&before[0], &after[0]));
        assert_eq!(index(&v3).first_duplicate(), Some((5, 9)));
    }

    /// An update adding more records than are kept pending leaves duplicates unknown: the
    /// first check hashes every record, and its answer is kept, so that the updates after it
    /// probe only for what they add (before, every later check hashed every record again).
    #[test]
    fn an_answer_found_by_hashing_every_record_is_kept_through_updates() {
        use super::Duplicates;
        let schema = row_schema();
        // `n` records, the first `changed` of them with new values (records added again).
        let rows = |n: i32, changed: i32| {
            let v = |id: i32| if id < changed { id ^ 1 } else { id };
            (0..n).map(|id| Row { id, v: v(id) }).collect::<Vec<_>>()
        };
        let mut w = WriteState::new(schema);
        let mut state = None::<ReadState>;
        // 1,500 records, then a fifth of them changed (past the eighth kept pending; at new
        // ordinals as wide), then one record more.
        for (version, n, changed) in [(1, 1_500, 0), (2, 1_500, 300), (3, 1_501, 300)] {
            w.add_all(&rows(n, changed)).unwrap();
            state = Some(
                match state {
                    None => ReadState::from_snapshot(w.write_snapshot(version).unwrap().into()),
                    Some(s) => s.apply_delta(w.write_delta(version - 1, version).unwrap().into()),
                }
                .unwrap(),
            );
            w.commit_cycle().unwrap();
            let index = state.as_ref().unwrap().primary_key_index("Row").unwrap();
            match version {
                1 => assert!(matches!(index.duplicates, Duplicates::Known(None))),
                2 => {
                    assert!(
                        matches!(&index.duplicates, Duplicates::Unknown(f) if f.get().is_none())
                    );
                    assert_eq!(index.first_duplicate(), None);
                    assert!(
                        matches!(&index.duplicates, Duplicates::Unknown(f) if f.get().is_some())
                    );
                }
                _ => match &index.duplicates {
                    Duplicates::UnlessAdded { added, .. } => {
                        assert_eq!(added.iter().map(|a| a.len()).sum::<usize>(), 1)
                    }
                    other => panic!("{other:?}"),
                },
            }
        }
        // The records changed back, and a second record with key 7: hashing them all finds it.
        w.add_all(&rows(1_501, 0)).unwrap();
        w.add(&Row { id: 7, v: -7 }).unwrap();
        let delta = w.write_delta(3, 4).unwrap();
        let v4 = state.unwrap().apply_delta(delta.into()).unwrap();
        let index = v4.primary_key_index("Row").unwrap();
        assert!(matches!(&index.duplicates, Duplicates::Unknown(_)));
        let (a, b) = index.first_duplicate().expect("a duplicate");
        let ids = v4.object("Row").unwrap().int("id").unwrap();
        assert_eq!((ids.get(a), ids.get(b)), (Some(7), Some(7)));
        assert!(a < b);
    }
}
