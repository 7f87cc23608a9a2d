//! `hollow`: look inside a dataset on any store the library works on.
//!
//! ```text
//! hollow versions /data/movies              # what is announced, what the store holds
//! hollow stats /data/movies --version 41    # which type takes the memory
//! hollow get s3://bucket/movies Movie 42    # a record as JSON
//! hollow diff file:///data/movies 40 41     # what changed
//! hollow verify /data/movies                # is the chain healthy (exit status 1 if not)
//! hollow explore /data/movies               # a web explorer on 127.0.0.1:7878
//! ```
//!
//! Exit status: 0 when the command did its job, 1 when it found a problem (`verify`) or
//! nothing (`get` of a key no record has), 2 on an error (a bad URL, a missing version).

mod commands;
mod dataset;
mod explore;
mod json;
mod keys;
mod progress;
mod size;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use dataset::Dataset;

/// Look inside a hollow dataset: its versions, schema, sizes, records, changes and health.
///
/// STORE is a folder path, a file:// URL, or s3://bucket/prefix (credentials, region and
/// endpoint from the usual AWS_* variables; AWS_ALLOW_HTTP=true for a plain-HTTP MinIO).
#[derive(Parser)]
#[command(name = "hollow", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The announced version, every state in the store with its blobs and sizes, and which
    /// states can be loaded (a snapshot and a chain of deltas).
    Versions {
        /// The dataset: a folder, file:///path or s3://bucket/prefix.
        store: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The schema of a version, in its readable text form.
    Schema {
        /// The dataset: a folder, file:///path or s3://bucket/prefix.
        store: String,
        /// The version (default: the announced one).
        #[arg(long, short)]
        version: Option<u64>,
    },
    /// Per type and field: records, bits per record, bytes, dictionaries, share of the total,
    /// and the primary key indexes.
    Stats {
        /// The dataset: a folder, file:///path or s3://bucket/prefix.
        store: String,
        /// The version (default: the announced one).
        #[arg(long, short)]
        version: Option<u64>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Records by primary key, as JSON. With a one-field key, each KEY is a record to look
    /// up; with a key of several fields, the KEYs are its fields in order.
    Get {
        /// The dataset: a folder, file:///path or s3://bucket/prefix.
        store: String,
        /// The record type (e.g. Movie).
        #[arg(value_name = "TYPE")]
        type_name: String,
        /// The key value(s).
        #[arg(required = true)]
        keys: Vec<String>,
        /// The version (default: the announced one).
        #[arg(long, short)]
        version: Option<u64>,
        /// How many references to other records to follow (default: all); the ones past it
        /// print as {"$ref": type, "$ordinal": n}.
        #[arg(long)]
        depth: Option<u32>,
    },
    /// Records whose fields have the given values (FIELD=VALUE, fields may be paths such as
    /// cast.id), found with a hash index built for the question. Prints a JSON array.
    Find {
        /// The dataset: a folder, file:///path or s3://bucket/prefix.
        store: String,
        /// The record type (e.g. Movie).
        #[arg(value_name = "TYPE")]
        type_name: String,
        /// One or more FIELD=VALUE; a record must match all of them.
        #[arg(required = true, value_name = "FIELD=VALUE")]
        conditions: Vec<String>,
        /// The version (default: the announced one).
        #[arg(long, short)]
        version: Option<u64>,
        /// How many references to follow (default: all).
        #[arg(long)]
        depth: Option<u32>,
        /// Print at most this many records.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// What changed from version V1 to V2, by primary key: records added, removed, and
    /// changed with their field-level differences.
    Diff {
        /// The dataset: a folder, file:///path or s3://bucket/prefix.
        store: String,
        /// The version to compare from.
        v1: u64,
        /// The version to compare to.
        v2: u64,
        /// Only this type.
        #[arg(long = "type", value_name = "TYPE")]
        type_name: Option<String>,
        /// Print JSON (every record) instead of text.
        #[arg(long)]
        json: bool,
        /// In text, list at most this many records of each kind of change per type.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Every retained version in which a record changed, and how.
    History {
        /// The dataset: a folder, file:///path or s3://bucket/prefix.
        store: String,
        /// The record type (e.g. Movie).
        #[arg(value_name = "TYPE")]
        type_name: String,
        /// The primary key's field value(s), in order.
        #[arg(required = true)]
        key: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Fetches every blob, checks its checksums and the states it names, replays the chains
    /// of deltas and reverse deltas, and compares the states they reach with the snapshots of
    /// those states. Exit status 1 on any problem.
    Verify {
        /// The dataset: a folder, file:///path or s3://bucket/prefix.
        store: String,
    },
    /// Every record of a type, streamed to stdout.
    Dump {
        /// The dataset: a folder, file:///path or s3://bucket/prefix.
        store: String,
        /// The record type (e.g. Movie).
        #[arg(value_name = "TYPE")]
        type_name: String,
        /// The version (default: the announced one).
        #[arg(long, short)]
        version: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = DumpFormat::Ndjson)]
        format: DumpFormat,
        /// How many references to follow (default: all).
        #[arg(long)]
        depth: Option<u32>,
    },
    /// Checks that a store does what hollow relies on before a dataset is trusted to it
    /// (create-only writes, compare-and-swap, conditional reads, listing, deletes, a producer
    /// and consumer round trip with racing producers). It writes only under
    /// PREFIX/hollow-conformance-<random>/ and deletes what it wrote. Exit status 1 on a failure.
    CheckStore {
        /// The store and prefix: a folder, file:///path or s3://bucket/prefix.
        store: String,
    },
    /// A read-only web explorer of the dataset that follows new announcements live.
    Explore {
        /// The dataset: a folder, file:///path or s3://bucket/prefix.
        store: String,
        /// The address to listen on (loopback by default: it serves anyone who can reach it).
        #[arg(long, default_value = "127.0.0.1:7878")]
        listen: SocketAddr,
    },
}

/// How `dump` writes records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DumpFormat {
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// A header of the type's fields, then one line per record (nested values as JSON).
    Csv,
}

/// How a command ended, when it did not fail.
pub enum Outcome {
    /// It did its job.
    Done,
    /// It found a problem or nothing (exit status 1), already reported.
    Found,
}

fn main() -> ExitCode {
    // A reader that stops early (`hollow diff ... | head`) ends the output quietly, as for
    // other command-line tools, instead of a panic at the next `println!`.
    #[cfg(unix)]
    // SAFETY: `signal` with SIG_DFL only restores SIGPIPE's default disposition (which Rust's
    // runtime set to ignore); it runs before any other thread exists, so nothing races with it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(cli.command)))
        .map_or_else(
            |e| {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            },
            |outcome| match outcome {
                Outcome::Done => ExitCode::SUCCESS,
                Outcome::Found => ExitCode::from(1),
            },
        )
}

async fn run(command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Versions { store, json } => {
            commands::versions::run(&Dataset::open(&store).await?, json).await
        }
        Command::Schema { store, version } => {
            let state = Dataset::open(&store).await?.state(version).await?;
            print!("{}", state.schema());
            Ok(Outcome::Done)
        }
        Command::Stats {
            store,
            version,
            json,
        } => {
            let state = Dataset::open(&store).await?.state(version).await?;
            commands::stats::run(&state, json)
        }
        Command::Get {
            store,
            type_name,
            keys,
            version,
            depth,
        } => {
            let state = Dataset::open(&store).await?.state(version).await?;
            commands::records::get(&state, &type_name, &keys, depth)
        }
        Command::Find {
            store,
            type_name,
            conditions,
            version,
            depth,
            limit,
        } => {
            let mut state = Dataset::open(&store).await?.state(version).await?;
            commands::records::find(&mut state, &type_name, &conditions, depth, limit)
        }
        Command::Diff {
            store,
            v1,
            v2,
            type_name,
            json,
            limit,
        } => {
            let dataset = Dataset::open(&store).await?;
            let options = commands::diff::Options {
                type_name,
                json,
                limit,
            };
            commands::diff::run(&dataset, v1, v2, &options).await
        }
        Command::History {
            store,
            type_name,
            key,
            json,
        } => commands::history::run(&Dataset::open(&store).await?, &type_name, &key, json).await,
        Command::Verify { store } => commands::verify::run(&Dataset::open(&store).await?).await,
        Command::Dump {
            store,
            type_name,
            version,
            format,
            depth,
        } => {
            let state = Dataset::open(&store).await?.state(version).await?;
            commands::records::dump(&state, &type_name, format, depth)
        }
        Command::CheckStore { store } => commands::check_store::run(&store).await,
        Command::Explore { store, listen } => {
            explore::serve(Dataset::open(&store).await?, listen).await?;
            Ok(Outcome::Done)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
