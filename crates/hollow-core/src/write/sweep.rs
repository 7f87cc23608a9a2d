//! The end of an incremental cycle: records and dictionary entries stay present only if a
//! present record reaches them.

use super::{RowShape, TypeWriter, WriteState};
use crate::bitset::Bitset;
use crate::schema::{Kind, TypeDef, TypeId};

impl WriteState {
    /// Ends the changes of an incremental cycle: records of types that other types reference
    /// (and dictionary entries) stay present only if a present record reaches them.
    ///
    /// In an acyclic schema only what changed is read: the records the cycle added or removed
    /// and, type by type, parents first, those whose reference count crossed zero (see
    /// `reference_counts`; the first sweep after a start counts every record, in pieces on
    /// the machine's cores). A schema with cycles follows references one by one.
    pub fn sweep_unreachable(&mut self) {
        self.add_held_back();
        for tw in &mut self.types {
            tw.current_encodings = None;
        }
        if self.sweep_by_counts() {
            #[cfg(debug_assertions)]
            self.assert_sweep_by_counts_is_complete();
            return;
        }
        self.reference_counts = None;
        self.sweep_fully();
    }

    /// In debug builds, after a sweep by counts: a full sweep finds the same records and
    /// entries present (and so changes nothing).
    #[cfg(debug_assertions)]
    fn assert_sweep_by_counts_is_complete(&mut self) {
        let presence = |w: &Self| -> Vec<Vec<u64>> {
            w.types
                .iter()
                .map(|tw| {
                    std::iter::once(tw.records.present())
                        .chain(tw.dicts.iter().flatten().map(|d| d.present()))
                        .map(|b| b.fingerprint())
                        .collect()
                })
                .collect()
        };
        let by_counts = presence(self);
        self.sweep_fully();
        assert_eq!(
            presence(self),
            by_counts,
            "the sweep by reference counts missed a change"
        );
    }

    /// The sweep as a pass over every present record, reaching what each references.
    fn sweep_fully(&mut self) {
        let schema = self.schema.clone();
        let referenced = self.referenced_types();
        for (i, tw) in self.types.iter_mut().enumerate() {
            tw.dicts.iter_mut().flatten().for_each(|d| d.unmark_all());
            if referenced[i] {
                tw.records.unmark_all();
            }
        }
        let layout = self.layout.clone();
        match layout.types_children_first() {
            Some(order) => {
                for t in order.rev() {
                    let links = layout.linking_columns(t);
                    let def = schema.get(t);
                    let present = self.types[t.index()].records.present();
                    let reached: Vec<Bitset> = tally_links(&self.types, def, links, t, present);
                    for (&c, ordinals) in links.iter().zip(&reached) {
                        match def.columns()[c].ty.kind {
                            Kind::Reference(r) => self.types[r.index()].records.mark_all(ordinals),
                            _ => {
                                if let Some(d) = &mut self.types[t.index()].dicts[c] {
                                    d.mark_all(ordinals);
                                }
                            }
                        }
                    }
                }
            }
            None => {
                let mut work: Vec<(TypeId, u32)> = Vec::new();
                for (i, tw) in self.types.iter().enumerate() {
                    if !referenced[i] {
                        work.extend(
                            tw.records
                                .present()
                                .iter()
                                .map(|o| (TypeId(i as u32), o as u32)),
                        );
                    }
                }
                let mut record = Vec::new();
                while let Some((t, o)) = work.pop() {
                    self.types[t.index()].record(o, &mut record);
                    mark_referenced(
                        &mut self.types,
                        schema.get(t),
                        layout.linking_columns(t),
                        t,
                        &record,
                        |r, o| work.push((r, o)),
                    );
                }
            }
        };
    }
}

/// Below this many words of present ordinals (64 each), a type's rows are read on one thread.
const PARALLEL_WORDS: usize = 1 << 10;

/// What a pass over records gathers of the values their linking columns hold: which (a
/// [`Bitset`]) or how many times each (a [`LinkCounts`]).
pub(super) trait Tally: Send {
    /// An empty tally of values below `len`.
    fn with_len(len: u64) -> Self;
    /// Notes `value`.
    fn add(&mut self, value: u64);
    /// Adds what `other` noted.
    fn merge(&mut self, other: &Self);
}

impl Tally for Bitset {
    fn with_len(len: u64) -> Self {
        Bitset::with_len(len)
    }
    fn add(&mut self, value: u64) {
        self.insert(value);
    }
    fn merge(&mut self, other: &Self) {
        self.union_with(other);
    }
}

/// How many times each value was noted.
pub(super) struct LinkCounts(pub(super) Vec<u32>);

impl Tally for LinkCounts {
    fn with_len(len: u64) -> Self {
        LinkCounts(vec![0; len as usize])
    }
    fn add(&mut self, value: u64) {
        let v = value as usize;
        if v >= self.0.len() {
            self.0.resize(v + 1, 0);
        }
        self.0[v] += 1;
    }
    fn merge(&mut self, other: &Self) {
        if other.0.len() > self.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        self.0.iter_mut().zip(&other.0).for_each(|(a, b)| *a += b);
    }
}

/// What the records `records` of type `t` (defined by `def`, whose linking columns are
/// `links`) hold: per linking column, a tally of its values (ordinals of the type it
/// references, or of its dictionary). The rows are read in pieces spread over the machine's
/// cores, each piece tallying on its own; the pieces' tallies are then merged.
pub(super) fn tally_links<S: Tally>(
    types: &[TypeWriter],
    def: &TypeDef,
    links: &[usize],
    t: TypeId,
    records: &Bitset,
) -> Vec<S> {
    if links.is_empty() {
        return Vec::new();
    }
    let tw = &types[t.index()];
    let RowShape {
        mask_words,
        row_words,
    } = tw.shape;
    let empty_tallies = || -> Vec<S> {
        links
            .iter()
            .map(|&c| {
                let len = match def.columns()[c].ty.kind {
                    Kind::Reference(r) => types[r.index()].records.ordinal_count(),
                    _ => tw.dicts[c].as_ref().map_or(0, |d| d.ordinal_count()),
                };
                S::with_len(len as u64)
            })
            .collect()
    };
    let words = records.word_count();
    let piece_count = if words < PARALLEL_WORDS {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let ranges: Vec<std::ops::Range<usize>> = (0..piece_count)
        .map(|i| words * i / piece_count..words * (i + 1) / piece_count)
        .collect();
    let mut pieces = crate::parallel::map_balanced(
        ranges,
        |r| r.len() as u64,
        0,
        |range| {
            let mut tallies = empty_tallies();
            let mut words = Vec::new();
            for o in records.iter_words(range) {
                for row in tw.record(o as u32, &mut words).chunks_exact(row_words) {
                    for (tally, &c) in tallies.iter_mut().zip(links) {
                        if mask_words == 0 || row[c / 64] >> (c % 64) & 1 == 0 {
                            tally.add(row[mask_words + c]);
                        }
                    }
                }
            }
            tallies
        },
    )
    .into_iter();
    let mut all = pieces.next().unwrap_or_else(empty_tallies);
    for piece in pieces {
        for (all, some) in all.iter_mut().zip(&piece) {
            all.merge(some);
        }
    }
    all
}

/// Marks present what the rows of `record` (of type `t`, defined by `def`, whose linking
/// columns are `links`) reference: records of other types (`newly` hears of each one not
/// present before) and entries of `t`'s dictionaries.
fn mark_referenced(
    types: &mut [TypeWriter],
    def: &TypeDef,
    links: &[usize],
    t: TypeId,
    record: &[u64],
    mut newly: impl FnMut(TypeId, u32),
) {
    let RowShape {
        mask_words,
        row_words,
    } = types[t.index()].shape;
    for row in record.chunks_exact(row_words) {
        for &c in links {
            if mask_words > 0 && row[c / 64] >> (c % 64) & 1 == 1 {
                continue;
            }
            let v = row[mask_words + c] as u32;
            match def.columns()[c].ty.kind {
                Kind::Reference(r) if types[r.index()].records.mark(v) => newly(r, v),
                k if k.is_var_length() => {
                    if let Some(d) = &mut types[t.index()].dicts[c] {
                        d.mark(v);
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use crate::{SchemaBuilder, WriteState};

    #[derive(Serialize, Deserialize, Clone)]
    struct Person {
        name: String,
    }

    #[derive(Serialize, Deserialize, Clone)]
    struct Doc {
        id: i64,
        tags: Vec<String>,
        authors: Vec<Person>,
    }

    #[derive(Serialize, Deserialize, Clone)]
    struct Tree {
        label: String,
        children: Vec<Tree>,
    }

    /// The roots of a schema with a cycle: records of a type no other type references.
    #[derive(Serialize, Deserialize, Clone)]
    struct Forest {
        id: i64,
        trees: Vec<Tree>,
    }

    fn doc(id: i64) -> Doc {
        Doc {
            id,
            tags: (0..id % 3).map(|t| format!("t{}", (id + t) % 5)).collect(),
            authors: (0..id % 4)
                .map(|a| Person {
                    name: format!("p{}", (id * 7 + a) % 11),
                })
                .collect(),
        }
    }

    fn tree(id: i64, depth: u32) -> Tree {
        Tree {
            label: format!("n{}", id % 9),
            children: (0..if depth == 0 { 0 } else { id % 3 })
                .map(|c| tree(id * 5 + c, depth - 1))
                .collect(),
        }
    }

    /// State 1 holds the first two thirds of `all`; an incremental cycle removes its first 10
    /// records and adds the last third. Sweeping leaves the state that a full cycle of the
    /// final records builds: same snapshot, same delta.
    fn incremental_equals_full<T: Serialize>(schema: crate::Schema, root: &str, all: &[T]) {
        let (before, added) = all.split_at(all.len() * 2 / 3);
        let (removed, kept) = before.split_at(10);
        let mut full = WriteState::new(schema.clone());
        let mut incremental = WriteState::new(schema);
        for w in [&mut full, &mut incremental] {
            w.add_all(before).unwrap();
            w.write_snapshot(1).unwrap();
            w.commit_cycle().unwrap();
        }
        full.add_all(kept.iter().chain(added)).unwrap();

        incremental.begin_incremental().unwrap();
        for r in removed {
            let o = incremental.add(r).unwrap();
            incremental.remove(root, o).unwrap();
        }
        incremental.add_all(added).unwrap();
        incremental.sweep_unreachable();

        assert_eq!(
            incremental.write_snapshot(2).unwrap(),
            full.write_snapshot(2).unwrap()
        );
        assert_eq!(
            incremental.write_delta(1, 2).unwrap(),
            full.write_delta(1, 2).unwrap()
        );
    }

    #[test]
    fn sweeping_an_acyclic_schema_level_by_level() {
        let schema = SchemaBuilder::new().add::<Doc>().build().unwrap();
        let docs: Vec<Doc> = (0..300).map(doc).collect();
        incremental_equals_full(schema, "Doc", &docs);
    }

    /// Enough records that their rows are read in pieces on several threads.
    #[test]
    fn sweeping_a_large_type_in_pieces() {
        let schema = SchemaBuilder::new().add::<Doc>().build().unwrap();
        let n = 3 * 64 * super::PARALLEL_WORDS as i64 / 2;
        let docs: Vec<Doc> = (0..n).map(doc).collect();
        incremental_equals_full(schema, "Doc", &docs);
    }

    #[test]
    fn sweeping_a_recursive_schema_reference_by_reference() {
        let schema = SchemaBuilder::new().add::<Forest>().build().unwrap();
        let forests: Vec<Forest> = (0..300)
            .map(|i| Forest {
                id: i,
                trees: (0..i % 3)
                    .map(|t| tree(i * 3 + t, 1 + (i % 4) as u32))
                    .collect(),
            })
            .collect();
        incremental_equals_full(schema, "Forest", &forests);
    }

    /// Per type, its records as values, sorted (ordinals aside).
    fn content(w: &mut WriteState, version: u64) -> Vec<Vec<String>> {
        let state =
            crate::ReadState::from_snapshot(w.write_snapshot(version).unwrap().into()).unwrap();
        state
            .schema()
            .types()
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let data = state.type_data(crate::schema::TypeId(i as u32));
                let mut values: Vec<String> = data
                    .population
                    .iter()
                    .map(|o| {
                        let v = state.get_as::<crate::Value>(t.name(), o as u32).unwrap();
                        format!("{v:?}")
                    })
                    .collect();
                values.sort();
                values
            })
            .collect()
    }

    /// Reference counts carry from one incremental cycle to the next, so that a sweep reads
    /// only what changed; every cycle's state is the one a full cycle of the same records
    /// builds. Counts made for a cycle that is abandoned, or changed after its sweep, are
    /// dropped, and the next sweep counts afresh.
    #[test]
    fn counts_carry_across_cycles_and_are_dropped_when_they_no_longer_fit() {
        let schema = SchemaBuilder::new().add::<Doc>().build().unwrap();
        let mut w = WriteState::new(schema.clone());
        let mut live: std::collections::BTreeMap<i64, Doc> =
            (0..200).map(|i| (i, doc(i))).collect();
        w.add_all(live.values()).unwrap();
        w.commit_cycle().unwrap();
        assert!(w.reference_counts.is_none(), "a full cycle keeps no counts");
        let mut version = 1;
        for cycle in 0..6i64 {
            w.begin_incremental().unwrap();
            // Replace some docs (another id's tags and authors), delete others, add new ones.
            for i in (cycle..200).step_by(9) {
                if let Some(old) = live.get(&i) {
                    let old = w.add(old).unwrap();
                    w.remove("Doc", old).unwrap();
                }
                let mut d = doc(i + 1000 * (cycle + 1));
                d.id = i;
                w.add(&d).unwrap();
                live.insert(i, d);
            }
            for i in (cycle + 3..200).step_by(31) {
                if let Some(d) = live.remove(&i) {
                    let o = w.add(&d).unwrap();
                    w.remove("Doc", o).unwrap();
                }
            }
            w.sweep_unreachable();
            assert!(w
                .reference_counts
                .as_ref()
                .is_some_and(|c| c.pending.is_some()));
            let mut full = WriteState::new(schema.clone());
            full.add_all(live.values()).unwrap();
            version += 1;
            assert_eq!(content(&mut w, version), content(&mut full, version));
            w.commit_cycle().unwrap();
            assert!(w
                .reference_counts
                .as_ref()
                .is_some_and(|c| c.pending.is_none()));
        }
        // Abandoned after its sweep: the counts of that cycle are dropped.
        w.begin_incremental().unwrap();
        w.add(&doc(5000)).unwrap();
        w.sweep_unreachable();
        w.abandon_cycle();
        assert!(w.reference_counts.is_none());
        // Counted afresh, then a record added after the sweep: the commit drops them.
        w.begin_incremental().unwrap();
        w.sweep_unreachable();
        w.add(&doc(5001)).unwrap();
        w.commit_cycle().unwrap();
        assert!(w.reference_counts.is_none());
    }
}
