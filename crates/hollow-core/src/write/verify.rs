//! Checking a state reached by a delta against the write state that wrote the delta, in time
//! proportional to the change rather than the dataset: for a cycle whose snapshot is neither
//! published nor written.

use super::{TypeWriter, WriteState};
use crate::bitset::Bitset;
use crate::parallel::map_difference;
use crate::read::ReadState;
use crate::schema::{TypeDef, TypeId};
use crate::type_data::TypeData;

/// Records checked at least, for the check to spread over the machine's cores.
const PARALLEL_RECORDS: u64 = 20_000;

impl WriteState {
    /// Checks `state` (the committed state with this cycle's delta applied) against the current
    /// state: the same schema and tags, every type's population, and every record added in this
    /// cycle (all records of a type the cycle replaced) value by value, strings by content. The
    /// records that carried over are not compared: the reverse delta's check covers the path
    /// back, and a full comparison with a snapshot runs whenever one is written. Returns what
    /// differs first.
    pub fn verify_changes_in(&self, state: &ReadState) -> Result<(), String> {
        if **state.schema() != *self.schema {
            return Err("the schema differs".into());
        }
        if *state.tags() != self.tags {
            return Err("the tags differ".into());
        }
        for (i, (def, tw)) in self.schema.types().iter().zip(&self.types).enumerate() {
            let data = state.type_data(TypeId(i as u32));
            let name = def.name();
            let present = tw.records.present();
            if *present != data.population {
                return Err(format!(
                    "{name}: the populations differ ({} records written, {} read)",
                    present.iter().count(),
                    data.population.iter().count()
                ));
            }
            let none = Bitset::default();
            let carried = if self.replaced[i] {
                &none
            } else {
                tw.records.previous()
            };
            let checked = map_difference(present, carried, PARALLEL_RECORDS, |words| {
                let mut scratch = Vec::new();
                (present.iter_words_minus(carried, words))
                    .try_for_each(|o| verify_record(def, tw, data, o as u32, &mut scratch))
            });
            checked.into_iter().collect::<Result<(), String>>()?;
        }
        Ok(())
    }
}

/// Checks the record at `ordinal` of a type (`def`, written in `tw`) against the same ordinal
/// of the state read (`data`), value by value and strings by content.
fn verify_record(
    def: &TypeDef,
    tw: &TypeWriter,
    data: &TypeData,
    ordinal: u32,
    scratch: &mut Vec<u64>,
) -> Result<(), String> {
    let name = def.name();
    let record = tw.record(ordinal, scratch);
    let rows = data.row_range(ordinal as u64);
    let words = tw.shape.row_words.max(1);
    if (rows.end - rows.start) as usize * words != record.len() {
        return Err(format!("{name} {ordinal}: the number of rows differs"));
    }
    for (row, written) in rows.zip(record.chunks(words)) {
        for c in 0..data.columns.len() {
            let null = tw.shape.mask_words > 0 && (written[c / 64] >> (c % 64)) & 1 == 1;
            let value = written.get(tw.shape.mask_words + c).copied();
            let same = match (data.value(row, c), null, &data.dicts[c]) {
                (None, true, _) => true,
                (Some(read), false, None) => Some(read) == value,
                (Some(read), false, Some(dict)) => {
                    let bytes = tw.dicts[c]
                        .as_ref()
                        .zip(value)
                        .map(|(d, e)| d.get(e as u32));
                    dict.get(read) == bytes
                }
                _ => false,
            };
            if !same {
                return Err(format!(
                    "{name} {ordinal}: column {} differs",
                    def.columns()[c].name
                ));
            }
        }
    }
    Ok(())
}
