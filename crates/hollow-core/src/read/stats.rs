//! Where a state's memory goes, type by type and field by field.

use super::ReadState;
use crate::schema::TypeKind;
use crate::type_data::TypeData;

/// The size of one type of a state ([`ReadState::type_stats`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TypeStats {
    /// The type's name.
    pub name: String,
    /// Object, list, set, map or enum.
    pub kind: TypeKind,
    /// Records of the type.
    pub records: u64,
    /// Rows: one per record of an object or enum type, one per element or entry of a
    /// collection type.
    pub rows: u64,
    /// Bits of one row (every column packed side by side).
    pub bits_per_row: u64,
    /// Bytes the type holds: its rows, the ends of its collections, its dictionaries and its
    /// population bitset.
    pub bytes: usize,
    /// Bytes of the ends of its records' rows (collection types).
    pub ends_bytes: usize,
    /// Its columns.
    pub fields: Vec<FieldStats>,
    /// Bytes of the type's primary key index, if it has one.
    pub primary_key_index_bytes: Option<usize>,
}

/// The size of one column of a type.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldStats {
    /// The field's name (`element`, `key`, `value` for collections).
    pub name: String,
    /// Its type, as in the schema's text form (`i64`, `string?`, `ListOfActor`).
    pub type_name: String,
    /// Bits per row.
    pub bits: u8,
    /// Bytes of its packed values in the rows, plus its dictionary.
    pub bytes: usize,
    /// The dictionary of a string, bytes or 128-bit integer column: distinct values and bytes.
    pub dictionary: Option<DictionaryStats>,
}

/// The dictionary of one column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DictionaryStats {
    /// Distinct values.
    pub entries: u64,
    /// Bytes: values, their ends and population.
    pub bytes: usize,
}

impl ReadState {
    /// The size of every type and field of the state, in schema order: records, bits per row,
    /// bytes, dictionaries, and the primary key index. The types' bytes add up to
    /// [`ReadState::heap_bytes`] except for the blob's headers and schema.
    pub fn type_stats(&self) -> Vec<TypeStats> {
        self.schema
            .types()
            .iter()
            .enumerate()
            .map(|(i, def)| {
                let data: &TypeData = &self.types[i];
                let fields = def
                    .columns()
                    .iter()
                    .zip(&data.columns)
                    .zip(&data.dicts)
                    .map(|((column, layout), dict)| {
                        let dictionary = dict.as_ref().map(|d| DictionaryStats {
                            entries: d.population.count(),
                            bytes: d.heap_bytes(),
                        });
                        let packed = (data.row_count * layout.encoding.width as u64).div_ceil(8);
                        FieldStats {
                            name: column.name.clone(),
                            type_name: self.schema.type_name(column.ty),
                            bits: layout.encoding.width,
                            bytes: packed as usize + dictionary.map_or(0, |d| d.bytes),
                            dictionary,
                        }
                    })
                    .collect();
                TypeStats {
                    name: def.name().to_string(),
                    kind: def.kind(),
                    records: data.record_count,
                    rows: data.row_count,
                    bits_per_row: data.row_bits,
                    bytes: data.heap_bytes(),
                    ends_bytes: data.ends.as_ref().map_or(0, |e| e.heap_bytes()),
                    fields,
                    primary_key_index_bytes: self
                        .indexes
                        .get(i)
                        .and_then(|x| x.as_ref())
                        .map(|x| x.heap_bytes()),
                }
            })
            .collect()
    }
}
