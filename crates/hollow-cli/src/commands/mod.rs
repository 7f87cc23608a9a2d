//! One module per subcommand.

pub mod check_store;
pub mod diff;
pub mod history;
pub mod records;
pub mod stats;
pub mod verify;
pub mod versions;
