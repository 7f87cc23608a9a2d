//! Walking a field path (see [`FieldPath`]) from a record of a state: zero or more values.

use crate::index::{stored_part, KeyPart};
use crate::schema::FieldPath;
use crate::type_data::{StateTypes, TypeData};

impl FieldPath {
    /// Calls `f` with each value the path reaches from record `ordinal` of its root type (nulls
    /// are left out).
    #[inline]
    pub(crate) fn for_each<'s, S: StateTypes>(
        &self,
        state: &'s S,
        ordinal: u32,
        f: &mut impl FnMut(KeyPart<'s>),
    ) {
        let kind = self.kind;
        self.walk(
            state,
            0,
            self.hops.len(),
            ordinal as u64,
            &mut |data, column, v| {
                f(stored_part(kind, v, |e| {
                    data.dicts[column].as_ref()?.get(e)
                }))
            },
        );
    }

    /// Calls `f` with the ordinal of each record of the type read by hop `end` that the first
    /// `end` hops reach from record `ordinal` (nulls left out): for `cast.id`, with `end` 2, the
    /// movie's actors.
    #[inline]
    pub(crate) fn for_each_reached<S: StateTypes>(
        &self,
        state: &S,
        ordinal: u32,
        end: usize,
        f: &mut impl FnMut(u64),
    ) {
        self.walk(state, 0, end, ordinal as u64, &mut |_, _, v| f(v));
    }

    /// Follows hops `hop..end` from `ordinal` (a record of hop `hop`'s type), calling `f` with
    /// each non-null value read by hop `end - 1`, its records and its column.
    fn walk<'s, S: StateTypes>(
        &self,
        state: &'s S,
        hop: usize,
        end: usize,
        ordinal: u64,
        f: &mut impl FnMut(&'s TypeData, usize, u64),
    ) {
        let Some(h) = self.hops.get(hop).filter(|_| hop < end) else {
            return;
        };
        let data = &**state.type_data(h.ty);
        let rows = if h.collection {
            data.row_range(ordinal)
        } else if ordinal < data.slot_count() {
            ordinal..ordinal + 1
        } else {
            return;
        };
        for row in rows {
            let Some(v) = data.value(row, h.column) else {
                continue;
            };
            if hop + 1 == end {
                f(data, h.column, v);
            } else {
                self.walk(state, hop + 1, end, v, f);
            }
        }
    }
}
