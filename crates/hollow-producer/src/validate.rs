//! Validators: checks a new state must pass before it is announced.

use hollow_core::ReadState;

/// What a validator looks at.
#[derive(Debug)]
pub struct ValidationContext<'a> {
    /// The version about to be announced.
    pub version: u64,
    /// Its state.
    pub state: &'a ReadState,
    /// The announced state it follows, if any.
    pub previous: Option<&'a ReadState>,
}

/// A check of a new state before it is announced. Return `Err` with a message to stop the cycle:
/// nothing is announced, and the producer stays at its last announced state.
pub trait Validator: Send + Sync {
    /// A short name for errors and metrics.
    fn name(&self) -> String;
    /// Checks the state.
    fn validate(&self, ctx: &ValidationContext<'_>) -> Result<(), String>;
}

/// Every record of every type with a primary key has a key no other record has.
#[derive(Debug, Default, Clone, Copy)]
pub struct DuplicatePrimaryKeys;

impl Validator for DuplicatePrimaryKeys {
    fn name(&self) -> String {
        "duplicate-primary-keys".into()
    }

    fn validate(&self, ctx: &ValidationContext<'_>) -> Result<(), String> {
        for def in ctx.state.schema().types() {
            if def.primary_key().is_empty() {
                continue;
            }
            let index = ctx
                .state
                .primary_key_index(def.name())
                .map_err(|e| e.to_string())?;
            if let Some((a, b)) = index.first_duplicate() {
                return Err(format!(
                    "{}: ordinals {a} and {b} have the same primary key",
                    def.name()
                ));
            }
        }
        Ok(())
    }
}

/// A state with no records at all never follows one that had some: publishing an empty dataset
/// over a full one is almost always a broken input (an empty file, a failed query), and every
/// consumer would serve nothing. On by default; a producer that means to empty its dataset is
/// built [`without_default_validators`](crate::ProducerBuilder::without_default_validators).
#[derive(Debug, Default, Clone, Copy)]
pub struct NotEmptied;

impl Validator for NotEmptied {
    fn name(&self) -> String {
        "not-emptied".into()
    }

    fn validate(&self, ctx: &ValidationContext<'_>) -> Result<(), String> {
        let records = |state: &ReadState| -> u64 {
            state
                .schema()
                .types()
                .iter()
                .filter_map(|t| state.record_count(t.name()).ok())
                .sum()
        };
        match ctx.previous.map(records) {
            Some(before) if before > 0 && records(ctx.state) == 0 => Err(format!(
                "the new state is empty where the announced one had {before} records"
            )),
            _ => Ok(()),
        }
    }
}

/// The record count of a type changes by at most `max_percent` from one version to the next.
#[derive(Debug, Clone)]
pub struct RecordCountChange {
    /// The type to watch.
    pub type_name: String,
    /// The largest change allowed, in percent of the previous count.
    pub max_percent: f64,
}

impl Validator for RecordCountChange {
    fn name(&self) -> String {
        format!("record-count-change({})", self.type_name)
    }

    fn validate(&self, ctx: &ValidationContext<'_>) -> Result<(), String> {
        let Some(previous) = ctx.previous else {
            return Ok(());
        };
        let before = previous
            .record_count(&self.type_name)
            .map_err(|e| e.to_string())? as f64;
        let after = ctx
            .state
            .record_count(&self.type_name)
            .map_err(|e| e.to_string())? as f64;
        let change = if before == 0.0 {
            if after == 0.0 {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            (after - before).abs() * 100.0 / before
        };
        if change > self.max_percent {
            return Err(format!(
                "{} records went from {before} to {after} ({change:.1}% > {}%)",
                self.type_name, self.max_percent
            ));
        }
        Ok(())
    }
}
