//! The small dataset the unit tests of this crate publish.

use hollow_core::{Schema, SchemaBuilder};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub(crate) struct Row {
    pub(crate) id: i64,
    pub(crate) name: String,
}

pub(crate) fn schema() -> Schema {
    SchemaBuilder::new()
        .add::<Row>()
        .primary_key("Row", &["id"])
        .build()
        .unwrap()
}
