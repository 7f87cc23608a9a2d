//! Walking a field path (see [`FieldPath`]) from a record of a state: zero or more values.

use crate::index::{stored_part, KeyPart};
use crate::schema::FieldPath;
use crate::type_data::StateTypes;

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
        self.walk(state, 0, ordinal as u64, f);
    }

    fn walk<'s, S: StateTypes>(
        &self,
        state: &'s S,
        hop: usize,
        ordinal: u64,
        f: &mut impl FnMut(KeyPart<'s>),
    ) {
        let Some(h) = self.hops.get(hop) else {
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
        let last = hop + 1 == self.hops.len();
        for row in rows {
            let Some(v) = data.value(row, h.column) else {
                continue;
            };
            if last {
                f(stored_part(self.kind, v, |e| {
                    data.dicts[h.column].as_ref()?.get(e)
                }));
            } else {
                self.walk(state, hop + 1, v, f);
            }
        }
    }
}
