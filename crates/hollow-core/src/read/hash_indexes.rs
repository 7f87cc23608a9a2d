//! The hash indexes a state keeps: added on demand, carried (updated) to the states deltas
//! reach from it.

use std::sync::Arc;

use super::ReadState;
use crate::error::{Error, Result};
use crate::hash_index::{HashIndex, IndexedChanges, Patched};
use crate::schema::TypeId;

impl ReadState {
    /// Builds the hash index of `type_name` on `fields` (paths such as `country` or `cast.id`)
    /// and keeps it with the state (indexes the schema declares are built on load without
    /// asking); states reached from this one by deltas carry it, updated.
    /// Adding an index the state has already does nothing.
    pub fn add_hash_index(&mut self, type_name: &str, fields: &[&str]) -> Result<()> {
        if self.hash_indexes.iter().any(|i| i.is(type_name, fields)) {
            return Ok(());
        }
        let index = HashIndex::build(self, type_name, fields)?;
        self.hash_indexes.push(Arc::new(index));
        Ok(())
    }

    /// Builds the hash indexes the schema declares (see
    /// [`SchemaBuilder::hash_index`](crate::SchemaBuilder::hash_index)) that the state does not
    /// have yet.
    pub(crate) fn add_declared_hash_indexes(&mut self) -> Result<()> {
        let schema = self.schema().clone();
        for def in schema.types() {
            for fields in def.hash_indexes() {
                let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
                self.add_hash_index(def.name(), &fields)?;
            }
        }
        Ok(())
    }

    /// The hash index of `type_name` on `fields`, added with [`ReadState::add_hash_index`] or
    /// declared by the schema.
    pub fn hash_index(&self, type_name: &str, fields: &[&str]) -> Result<&HashIndex> {
        self.hash_indexes
            .iter()
            .find(|i| i.is(type_name, fields))
            .map(|i| &**i)
            .ok_or_else(|| Error::NoHashIndex {
                type_name: type_name.to_string(),
                fields: fields.iter().map(|f| f.to_string()).collect(),
            })
    }

    /// The hash indexes of this state, carried to `next` (reached by a delta that changed the
    /// records in `patched` per type): updated where the indexed type changed, rebuilt where
    /// that cannot be done.
    pub(crate) fn carry_hash_indexes(
        &self,
        next: &ReadState,
        patched: &[(TypeId, Patched)],
    ) -> Result<Vec<Arc<HashIndex>>> {
        let mut out = Vec::with_capacity(self.hash_indexes.len());
        let unchanged_records = self.unchanged_records_in(next, patched);
        for index in &self.hash_indexes {
            let fields: Vec<&str> = index.fields.iter().map(String::as_str).collect();
            let id = next.schema().type_id(&index.type_name);
            let same_type = id.and_then(|b| next.schema().counterpart_in(b, self.schema()));
            let changes = id.and_then(|b| patched.iter().find(|p| p.0 == b));
            let carried = match (same_type, changes) {
                // A delta that keeps the schema shares it (see apply_delta).
                (Some(_), None) if Arc::ptr_eq(next.schema(), self.schema()) => Some(index.clone()),
                (Some(_), Some((_, (removed, added)))) => {
                    let changes = IndexedChanges {
                        removed,
                        added,
                        unchanged_records: &unchanged_records,
                    };
                    index.updated(self, next, &changes).map(Arc::new)
                }
                _ => None,
            };
            out.push(match carried {
                Some(i) => i,
                None => Arc::new(HashIndex::build(next, &index.type_name, &fields)?),
            });
        }
        Ok(out)
    }

    /// Per type of `next` (reached from this state by a delta that changed the records in
    /// `patched` per type): true when every record whose ordinal is in both states is the
    /// same record in both. So it is for a type the delta left alone, and for one it patched
    /// without removing and adding the same ordinal; not for one it carried whole.
    fn unchanged_records_in(&self, next: &ReadState, patched: &[(TypeId, Patched)]) -> Vec<bool> {
        let schema = next.schema();
        (0..schema.len())
            .map(|t| {
                let id = TypeId(t as u32);
                let Some(origin) = schema.counterpart_in(id, self.schema()) else {
                    return false;
                };
                if Arc::ptr_eq(&next.types[t], &self.types[origin.index()]) {
                    return true;
                }
                (patched.iter().find(|p| p.0 == id))
                    .is_some_and(|(_, (removed, added))| !share_an_ordinal(removed, added))
            })
            .collect()
    }
}

/// True when the ascending lists `removed` and `added` have an ordinal in common: a record
/// replaced by another at the same ordinal.
fn share_an_ordinal(removed: &[u32], added: &[u32]) -> bool {
    let mut added = added.iter().peekable();
    removed.iter().any(|r| {
        while added.next_if(|&a| a < r).is_some() {}
        added.peek() == Some(&r)
    })
}

#[cfg(test)]
mod tests {
    use super::share_an_ordinal;

    #[test]
    fn an_ordinal_removed_and_added_again_is_found() {
        assert!(!share_an_ordinal(&[], &[1, 2]));
        assert!(!share_an_ordinal(&[1, 3, 5], &[0, 2, 4, 6]));
        assert!(share_an_ordinal(&[1, 3, 5], &[0, 2, 5, 6]));
        assert!(share_an_ordinal(&[7], &[7]));
        assert!(!share_an_ordinal(&[9, 10], &[1, 2, 3]));
    }
}
