//! The names the serializer has matched to the schema before, remembered by address.

use crate::schema::TypeId;

/// Struct and field names the serializer has matched to the schema before, by address: serde
/// names are `&'static str`, so a name at a known address and length is known without comparing
/// its text.
#[derive(Debug, Default)]
pub(crate) struct KnownNames {
    /// The struct name and Rust type name of the last root record, and its type.
    root: Option<(NameAddress, NameAddress, TypeId)>,
    /// Per type: its struct name.
    structs: Vec<Option<NameAddress>>,
    /// Per type, per column: its field name.
    fields: Vec<Vec<Option<NameAddress>>>,
}

type NameAddress = (usize, usize);

fn address(name: &'static str) -> NameAddress {
    (name.as_ptr() as usize, name.len())
}

impl KnownNames {
    pub(super) fn root(&self, name: &'static str, rust_name: &'static str) -> Option<TypeId> {
        self.root
            .filter(|(a, r, _)| *a == address(name) && *r == address(rust_name))
            .map(|(_, _, t)| t)
    }

    pub(super) fn is_struct(&self, t: TypeId, name: &'static str) -> bool {
        self.structs.get(t.index()) == Some(&Some(address(name)))
    }

    /// Learns that struct name `name` is type `t`; for a root record, of Rust type `root`.
    pub(super) fn learn_struct(
        &mut self,
        t: TypeId,
        name: &'static str,
        root: Option<&'static str>,
    ) {
        if self.structs.len() <= t.index() {
            self.structs.resize(t.index() + 1, None);
        }
        self.structs[t.index()] = Some(address(name));
        if let Some(rust_name) = root {
            self.root = Some((address(name), address(rust_name), t));
        }
    }

    pub(super) fn is_field(&self, t: TypeId, column: usize, key: &'static str) -> bool {
        self.fields
            .get(t.index())
            .and_then(|f| f.get(column))
            .is_some_and(|a| *a == Some(address(key)))
    }

    pub(super) fn learn_field(&mut self, t: TypeId, column: usize, key: &'static str) {
        if self.fields.len() <= t.index() {
            self.fields.resize_with(t.index() + 1, Vec::new);
        }
        let fields = &mut self.fields[t.index()];
        if fields.len() <= column {
            fields.resize(column + 1, None);
        }
        fields[column] = Some(address(key));
    }
}
