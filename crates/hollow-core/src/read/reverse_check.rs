//! Checking a reverse delta against the delta it undoes, in time proportional to what the two
//! change rather than to the size of the types they touch.
//!
//! A producer checks each cycle that the state it announces plus the cycle's reverse delta is
//! the state before. Patching every touched type back and comparing it whole costs a copy and a
//! comparison of each such type: most of a small cycle at a million records. But the state
//! checked was itself just reached from the state before by the forward delta, which copied
//! every record it did not add. So when neither delta changes a type's encodings, the records
//! that can differ are few:
//!
//! - the records the reverse delta adds, which must be the earlier state's, bit for bit;
//! - the records the forward delta added and the reverse delta keeps, which must equal the
//!   earlier state's records at the same ordinals;
//! - the populations, which the reverse delta must bring back exactly;
//!
//! and the same for the entries of each dictionary. Every other record is a bit copy of the
//! earlier state's in both states. This check says "leads back" only when all of that holds;
//! anything else (a changed encoding or schema, a type replaced whole, a malformed delta, a
//! difference) it leaves to the full comparison, which also reports the errors.

use bytes::Bytes;

use super::apply::patch_population;
use super::ReadState;
use crate::format::delta_section::{DictDelta, TypeDelta};
use crate::format::SectionKind;
use crate::packed::{same_bits, PackedArray, PackedBits};
use crate::schema::{TypeDef, TypeId};
use crate::type_data::{Dictionary, TypeData};

/// True when `reverse` certainly leads from `forward` back to `previous`, where `forward` is
/// `previous` plus `delta`. False when that is not sure (the full comparison decides then).
pub(super) fn undoes(
    previous: &ReadState,
    forward: &ReadState,
    delta: Bytes,
    reverse: Bytes,
) -> bool {
    let (Ok(d), Ok(r)) = (previous.plan_delta(delta), forward.plan_delta(reverse)) else {
        return false;
    };
    let schema = &previous.schema;
    if *d.schema != **schema || *r.schema != **schema || r.tags != *previous.tags {
        return false;
    }
    let type_ids = |sections: &[crate::format::Section]| -> Option<Vec<u32>> {
        (sections.iter())
            .map(|s| (s.kind == SectionKind::TypeData).then_some(s.type_id))
            .collect()
    };
    match (type_ids(&d.sections), type_ids(&r.sections)) {
        (Some(a), Some(b)) if a == b => {}
        _ => return false,
    }
    d.sections.iter().zip(&r.sections).all(|(ds, rs)| {
        let t = TypeId(ds.type_id);
        let def = schema.get(t);
        let (Ok(dd), Ok(rd)) = (
            TypeDelta::decode(ds.data.clone(), ds.offset, def),
            TypeDelta::decode(rs.data.clone(), rs.offset, def),
        ) else {
            return false;
        };
        type_undone(
            &previous.types[t.index()],
            &forward.types[t.index()],
            &dd,
            &rd,
            def,
        )
    })
}

/// Whether `r` patches type `f` (which is `p` patched by `d`) back into `p`, bit for bit.
fn type_undone(p: &TypeData, f: &TypeData, d: &TypeDelta, r: &TypeDelta, def: &TypeDef) -> bool {
    let encodings = || p.columns.iter().map(|c| c.encoding);
    if !encodings().eq(d.encodings.iter().copied()) || !encodings().eq(r.encodings.iter().copied())
    {
        return false;
    }
    let Ok(population) = patch_population(
        &f.population,
        r.slot_count,
        &r.removed,
        &r.added,
        def.name(),
    ) else {
        return false;
    };
    if population != p.population || population.len() != p.population.len() {
        return false;
    }
    let mut kept_changes = kept_changes(&d.added, &p.population, &r.added);
    let rows_undone = match def.is_collection() {
        false => {
            let row_bits = p.row_bits;
            let Some(added) = PackedBits::new(r.rows.clone(), r.row_count * row_bits) else {
                return false;
            };
            let same_row = |(rows, at): (&PackedBits, u64), o: u32| {
                let (theirs, their_at) = p.row_at(o as u64);
                same_bits(rows, at, theirs, their_at, row_bits)
            };
            (r.added.iter().enumerate()).all(|(i, &o)| same_row((&added, i as u64 * row_bits), o))
                && kept_changes.all(|o| same_row(f.row_at(o as u64), o))
        }
        true => collection_rows_undone(p, f, r, &mut kept_changes),
    };
    if !rows_undone {
        return false;
    }
    let (mut d_dicts, mut r_dicts) = (d.dicts.iter(), r.dicts.iter());
    (p.dicts.iter().zip(&f.dicts)).all(|dicts| match dicts {
        (None, None) => true,
        (Some(pd), Some(fd)) => match (d_dicts.next(), r_dicts.next()) {
            (Some(dd), Some(rd)) => dictionary_undone(pd, fd, dd, rd),
            _ => false,
        },
        _ => false,
    })
}

/// The elements of the records `r` adds are those of `p`, and so are those of `kept_changes`
/// in `f`: with the populations equal, the elements are then laid out as `p`'s.
fn collection_rows_undone(
    p: &TypeData,
    f: &TypeData,
    r: &TypeDelta,
    kept_changes: &mut impl Iterator<Item = u32>,
) -> bool {
    let row_bits = p.row_bits;
    let Some((width, sizes)) = r.sizes.clone() else {
        return false;
    };
    let Some(sizes) = PackedArray::new(sizes, r.added.len() as u64, width) else {
        return false;
    };
    let Some(added) = PackedBits::new(r.rows.clone(), r.row_count.saturating_mul(row_bits)) else {
        return false;
    };
    let mut at = 0u64;
    for (i, &o) in r.added.iter().enumerate() {
        let n = sizes.get(i as u64);
        let rows = p.row_range(o as u64);
        let fits = at.checked_add(n).is_some_and(|end| end <= r.row_count);
        if !fits
            || rows.end - rows.start != n
            || !same_span(&added, at * row_bits, p, rows.start, n)
        {
            return false;
        }
        at += n;
    }
    at == r.row_count
        && kept_changes.all(|o| {
            let (mine, theirs) = (f.row_range(o as u64), p.row_range(o as u64));
            let n = theirs.end - theirs.start;
            mine.end - mine.start == n
                && (n == 0 || {
                    let (rows, at) = f.row_at(mine.start);
                    same_span(rows, at, p, theirs.start, n)
                })
        })
}

/// Whether the `n` rows of `rows` from bit `at` on hold the bits of `p`'s rows from `p_row`
/// on (a span of one record's rows: all on one side of an overlay).
fn same_span(rows: &PackedBits, at: u64, p: &TypeData, p_row: u64, n: u64) -> bool {
    let row_bits = p.row_bits;
    if n == 0 {
        return true;
    }
    let (theirs, their_at) = p.row_at(p_row);
    same_bits(rows, at, theirs, their_at, n * row_bits)
}

/// Whether `r` patches dictionary `f` (which is `p` patched by `d`) back into `p`.
fn dictionary_undone(p: &Dictionary, f: &Dictionary, d: &DictDelta, r: &DictDelta) -> bool {
    let Ok(population) = patch_population(&f.population, r.slot_count, &r.removed, &r.added, "")
    else {
        return false;
    };
    if population != p.population || population.len() != p.population.len() {
        return false;
    }
    let Some(lengths) = PackedArray::new(r.lengths.clone(), r.added.len() as u64, r.lengths_width)
    else {
        return false;
    };
    let mut at = 0usize;
    for (i, &e) in r.added.iter().enumerate() {
        let len = lengths.get(i as u64) as usize;
        let entry = at.checked_add(len).and_then(|end| r.pool.get(at..end));
        if entry.is_none() || entry != p.get(e as u64) {
            return false;
        }
        at += len;
    }
    at == r.pool.len()
        && kept_changes(&d.added, &p.population, &r.added)
            .all(|e| f.get(e as u64) == p.get(e as u64))
}

/// What the forward delta added (`added`) at ordinals the earlier state held (`previous`) and
/// the reverse delta keeps (not in `readded`): the only kept records (or dictionary entries)
/// that need not be copies of the earlier state's.
fn kept_changes<'a>(
    added: &'a [u32],
    previous: &'a crate::bitset::Bitset,
    readded: &'a [u32],
) -> impl Iterator<Item = u32> + 'a {
    (added.iter().copied())
        .filter(|&o| previous.contains(o as u64) && readded.binary_search(&o).is_err())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::undoes;
    use crate::format::delta_section::TypeDelta;
    use crate::format::SectionKind;
    use crate::packed::PackedBits;
    use crate::schema::TypeId;
    use crate::{ReadState, SchemaBuilder, WriteState};

    #[derive(Serialize, Deserialize)]
    struct Item {
        id: i64,
        name: String,
        price: i32,
        tags: Vec<String>,
    }

    /// A dataset: per item id, what its name, price and tags are made from.
    type Items = BTreeMap<i64, [u8; 3]>;

    fn item(id: i64, [name, price, tags]: [u8; 3]) -> Item {
        Item {
            id,
            name: format!("name {name}"),
            price: price.into(),
            tags: (0..tags % 3)
                .map(|t| format!("tag {}", (tags + t) % 4))
                .collect(),
        }
    }

    /// The snapshot of `first`, and the delta and reverse delta from `first` to `second`.
    fn blobs(first: &Items, second: &Items) -> (ReadState, Bytes, Bytes) {
        let schema = SchemaBuilder::new()
            .add::<Item>()
            .primary_key("Item", &["id"])
            .build()
            .unwrap();
        let mut w = WriteState::new(schema);
        for (&id, &fields) in first {
            w.add(&item(id, fields)).unwrap();
        }
        let snapshot = w.write_snapshot(1).unwrap();
        w.commit_cycle().unwrap();
        for (&id, &fields) in second {
            w.add(&item(id, fields)).unwrap();
        }
        let delta = w.write_delta(1, 2).unwrap();
        let reverse = w.write_reverse_delta(2, 1).unwrap();
        let state = ReadState::from_snapshot(Bytes::from(snapshot)).unwrap();
        (state, Bytes::from(delta), Bytes::from(reverse))
    }

    fn same_encodings(a: &ReadState, b: &ReadState) -> bool {
        a.types.iter().zip(&b.types).all(|(x, y)| {
            (x.columns.iter().map(|c| c.encoding)).eq(y.columns.iter().map(|c| c.encoding))
        })
    }

    fn items() -> impl Strategy<Value = Items> {
        let fields = (0u8..20, 0u8..7, 0u8..12).prop_map(|(n, p, t)| [n, p, t]);
        proptest::collection::btree_map(0i64..30, fields, 0..30)
    }

    /// `delta` (a delta or reverse delta of `on`) with the section of type `t` edited.
    fn forged(on: &ReadState, delta: &Bytes, t: u32, edit: impl FnOnce(&mut TypeDelta)) -> Bytes {
        use crate::format::{self, BlobHeader, BlobWriter};
        let kind = format::parse(delta.clone()).unwrap().header.kind;
        let plan = on.plan_delta(delta.clone()).unwrap();
        let mut blob = BlobWriter::new(BlobHeader {
            kind,
            origin: on.id(),
            destination: plan.destination,
        });
        blob.schema_section(&plan.schema);
        format::tags_section(&plan.tags, &mut blob);
        let mut edit = Some(edit);
        for s in plan.sections {
            let def = plan.schema.get(TypeId(s.type_id));
            let mut section = TypeDelta::decode(s.data, s.offset, def).unwrap();
            if s.type_id == t {
                (edit.take().unwrap())(&mut section);
            }
            let mut w = crate::byte_io::ByteWriter::new();
            section.encode(&mut w);
            blob.section(SectionKind::TypeData, s.type_id, w);
        }
        Bytes::from(blob.finish())
    }

    /// A forward delta that replaces a record at an ordinal it keeps (which this library's
    /// writer never does: it hands out freed ordinals only in a later cycle): the reverse
    /// delta, which does not know of it, does not lead back, and the check sees it.
    #[test]
    fn a_record_the_forward_delta_replaced_in_place_is_compared() {
        let first: Items = (1..=10)
            .filter(|&id| id != 9)
            .map(|id| (id, [id as u8, id as u8 % 3, 0]))
            .collect();
        let mut second = first.clone();
        second.insert(9, [3, 2, 0]);
        let (previous, delta, reverse) = blobs(&first, &second);
        let item = previous.schema().type_id("Item").unwrap();
        let row_bits = previous.types[item.index()].row_bits;
        // Ordinal 5 is replaced by the record the delta adds (item 9's row).
        let delta = forged(&previous, &delta, item.0, |d| {
            assert_eq!(d.added.len(), 1);
            d.removed.insert(d.removed.partition_point(|&o| o < 5), 5);
            d.added.insert(0, 5);
            let row = PackedBits::new(d.rows.clone(), row_bits).unwrap();
            let mut rows = crate::packed::BitWriter::with_bits(2 * row_bits);
            rows.copy_bits(0, &row, 0, row_bits);
            rows.copy_bits(row_bits, &row, 0, row_bits);
            d.rows = rows.into_bytes();
            d.row_count = 2;
        });
        let forward = previous.apply_delta(delta.clone()).unwrap();
        assert!(
            same_encodings(&previous, &forward),
            "the quick check applies"
        );
        assert!(!undoes(&previous, &forward, delta.clone(), reverse.clone()));
        let (_, back) = previous
            .apply_delta_checking_reverse(delta, reverse)
            .unwrap();
        assert!(!back);
    }

    /// A reverse delta that brings back the same records and dictionary entry ordinals, but
    /// another string at one of them: the check compares the entries' bytes.
    #[test]
    fn a_dictionary_entry_brought_back_is_compared() {
        let first: Items = [(1, [1, 0, 0]), (2, [2, 0, 0]), (4, [5, 0, 0])].into();
        let other_first: Items = [(1, [3, 0, 0]), (2, [2, 0, 0]), (4, [5, 0, 0])].into();
        let second: Items = [(2, [2, 0, 0]), (3, [4, 0, 0]), (4, [5, 0, 0])].into();
        let (previous, delta, _) = blobs(&first, &second);
        let (_, _, other_reverse) = blobs(&other_first, &second);
        let forward = previous.apply_delta(delta.clone()).unwrap();
        assert!(
            same_encodings(&previous, &forward),
            "the quick check applies"
        );
        let elsewhere = forward.apply_delta(other_reverse.clone()).unwrap();
        assert!(!elsewhere.same_content_as(&previous));
        assert!(!undoes(&previous, &forward, delta, other_reverse));
    }

    /// A reverse delta that leaves out a record the delta removed, or brings back a list with
    /// another element: the check sees both.
    #[test]
    fn a_record_left_out_or_brought_back_otherwise_is_seen() {
        let first: Items = (1..=6).map(|id| (id, [id as u8, 0, id as u8])).collect();
        let mut second = first.clone();
        second.insert(2, [2, 0, 0]); // item 2 loses its tags: its list leaves
        let (previous, delta, reverse) = blobs(&first, &second);
        let forward = previous.apply_delta(delta.clone()).unwrap();
        assert!(
            same_encodings(&previous, &forward),
            "the quick check applies"
        );
        assert!(undoes(&previous, &forward, delta.clone(), reverse.clone()));
        let schema = previous.schema();
        let (item, list) = (
            schema.type_id("Item").unwrap(),
            schema.type_id("ListOfString").unwrap(),
        );

        let left_out = forged(&forward, &reverse, item.0, |r| {
            let row_bits = r.encodings.iter().map(|e| e.width as u64).sum::<u64>();
            let rows = PackedBits::new(r.rows.clone(), r.row_count * row_bits).unwrap();
            let mut kept = crate::packed::BitWriter::with_bits((r.row_count - 1) * row_bits);
            kept.copy_bits(0, &rows, row_bits, (r.row_count - 1) * row_bits);
            r.added.remove(0);
            r.rows = kept.into_bytes();
            r.row_count -= 1;
        });
        assert!(!undoes(&previous, &forward, delta.clone(), left_out));

        let other_element = forged(&forward, &reverse, list.0, |r| {
            assert_eq!(r.added.len(), 1);
            let row_bits = r.encodings.iter().map(|e| e.width as u64).sum::<u64>();
            let rows = PackedBits::new(r.rows.clone(), r.row_count * row_bits).unwrap();
            let mut w =
                crate::packed::BitWriter::from_le_bytes(rows.bytes(), r.row_count * row_bits);
            w.set(0, 1, w.get(0, 1) ^ 1);
            r.rows = w.into_bytes();
        });
        assert!(!undoes(&previous, &forward, delta, other_element));
    }

    proptest! {
        /// The reverse delta of a cycle is recognised without patching whenever no encoding
        /// changed; and a reverse delta of another history (same versions, another first
        /// state) is never taken for one that leads back unless it does.
        #[test]
        fn recognises_exactly_the_reverse_deltas_that_lead_back(
            first in items(),
            tweaks in proptest::collection::btree_map(0i64..30, 0usize..3, 0..4),
            second in items(),
        ) {
            // Another first state with the same ids, one field changed in a few of them: its
            // ordinals are mostly the same, so its reverse delta has mostly the same shape and
            // some other records.
            let mut other_first = first.clone();
            for (id, field) in tweaks {
                if let Some(fields) = other_first.get_mut(&id) {
                    fields[field] = fields[field].wrapping_add(1);
                }
            }
            let (previous, delta, reverse) = blobs(&first, &second);
            let forward = previous.apply_delta(delta.clone()).unwrap();
            prop_assert!(forward.delta_leads_to(reverse.clone(), &previous).unwrap());
            let quick = undoes(&previous, &forward, delta.clone(), reverse.clone());
            prop_assert!(quick || !same_encodings(&previous, &forward));

            let (_, _, other_reverse) = blobs(&other_first, &second);
            if undoes(&previous, &forward, delta.clone(), other_reverse.clone()) {
                let back = forward.apply_delta(other_reverse);
                prop_assert!(back.is_ok_and(|back| back.same_content_as(&previous)));
            }
            let (checked, back) = previous
                .apply_delta_checking_reverse(delta, reverse)
                .unwrap();
            prop_assert!(back);
            prop_assert!(checked.same_content_as(&forward));
        }
    }
}
