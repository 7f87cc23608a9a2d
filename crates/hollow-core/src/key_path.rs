//! Walking a field path (see [`FieldPath`]) from records of a state: zero or more values each.

use crate::index::{stored_part, KeyPart};
use crate::schema::FieldPath;
use crate::type_data::{StateTypes, TypeData};

impl FieldPath {
    /// Calls `f` with each value the path reaches from each of the records `ordinals` of its
    /// root type, with the record's position in `ordinals` (nulls left out; records in order,
    /// a record's values in path order).
    pub(crate) fn for_each_in_batch<'s, S: StateTypes>(
        &self,
        state: &'s S,
        ordinals: &[u32],
        f: &mut impl FnMut(usize, KeyPart<'s>),
    ) {
        let kind = self.kind;
        self.walk_in_batch(
            state,
            ordinals,
            self.hops.len(),
            &mut |i, data, column, v| {
                f(
                    i,
                    stored_part(kind, v, |e| data.dicts[column].as_ref()?.get(e)),
                )
            },
        );
    }

    /// Calls `f` with the ordinal of each record of the type read by hop `end` that the first
    /// `end` hops reach from each of the records `ordinals`, with the record's position in
    /// `ordinals` (records in order): for `cast.id`, with `end` 2, each movie's actors.
    pub(crate) fn for_each_reached_in_batch<S: StateTypes>(
        &self,
        state: &S,
        ordinals: &[u32],
        end: usize,
        f: &mut impl FnMut(usize, u64),
    ) {
        self.walk_in_batch(state, ordinals, end, &mut |i, _, _, v| f(i, v));
    }

    /// Follows hops `..end` from each of the records `ordinals`, calling `f` with the record's
    /// position, and each non-null value read by hop `end - 1` with its records and column.
    /// The records are walked breadth first, a hop for all of them at a time: the reads of one
    /// hop are independent, so their cache misses overlap instead of following each other.
    fn walk_in_batch<'s, S: StateTypes>(
        &self,
        state: &'s S,
        ordinals: &[u32],
        end: usize,
        f: &mut impl FnMut(usize, &'s TypeData, usize, u64),
    ) {
        let mut frontier: Vec<(u32, u64)> = (0..ordinals.len() as u32)
            .zip(ordinals.iter().map(|&o| o as u64))
            .collect();
        let mut next = Vec::with_capacity(frontier.len());
        for (n, h) in self.hops[..end.min(self.hops.len())].iter().enumerate() {
            let data = &**state.type_data(h.ty);
            for &(i, ordinal) in &frontier {
                let rows = if h.collection {
                    data.row_range(ordinal)
                } else if ordinal < data.slot_count() {
                    ordinal..ordinal + 1
                } else {
                    continue;
                };
                for row in rows {
                    let Some(v) = data.value(row, h.column) else {
                        continue;
                    };
                    if n + 1 == end {
                        f(i as usize, data, h.column, v);
                    } else {
                        next.push((i, v));
                    }
                }
            }
            std::mem::swap(&mut frontier, &mut next);
            next.clear();
        }
    }
}
