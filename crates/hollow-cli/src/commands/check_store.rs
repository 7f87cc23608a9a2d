//! `hollow check-store`: the conformance suite on the user's store.

use std::collections::BTreeSet;
use std::path::Path;

use crate::dataset::store_of;
use crate::Outcome;

pub async fn run(location: &str) -> anyhow::Result<Outcome> {
    let store = store_of(location)?;
    let folder = store.dataset_folder();
    let before = folder.as_deref().map(entries).unwrap_or_default();
    let report =
        hollow_conformance::check_store(store.object_store().clone(), store.prefix().as_ref())
            .await;
    println!("{report}");
    if let Some(folder) = &folder {
        // The suite deleted the files it wrote; the folders they were in are left empty.
        for created in entries(folder).difference(&before) {
            remove_empty_folders(&folder.join(created));
        }
        if !report.supports_compare_and_swap() {
            println!(
                "hollow does not need conditional updates in a local folder: it announces there \
                 under a lock file ({}), so producers of one machine may share the folder (not \
                 machines sharing it over a network file system).",
                hollow_store::layout::FOLDER_LOCK
            );
        }
    }
    Ok(if report.passed() {
        Outcome::Done
    } else {
        Outcome::Found
    })
}

/// The names in `folder`.
fn entries(folder: &Path) -> BTreeSet<String> {
    std::fs::read_dir(folder)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes `folder` and the folders below it, as long as they hold no file (a file is never
/// removed: `remove_dir` refuses a folder that is not empty).
fn remove_empty_folders(folder: &Path) {
    if let Ok(children) = std::fs::read_dir(folder) {
        for child in children.flatten() {
            if child.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_folders(&child.path());
            }
        }
    }
    let _ = std::fs::remove_dir(folder);
}
