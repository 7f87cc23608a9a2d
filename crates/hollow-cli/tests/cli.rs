//! The `hollow` command against a dataset the producer made: every subcommand's output and
//! exit status, bad URLs, missing versions and damaged blobs.

mod support;

use support::{blob_files, dataset, run};

#[tokio::test]
async fn versions_lists_every_state_and_the_announced_one() {
    let d = dataset().await;
    let (code, out, err) = run(&["versions", &d.arg()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("announced: version 3"), "{out}");
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with(['1', '2', '3']))
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows[2].ends_with("announced") && rows[0].ends_with("retained"),
        "{out}"
    );
    let (code, out, _) = run(&["versions", &d.arg(), "--json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["announced"]["version"], 3);
    assert_eq!(json["states"].as_array().unwrap().len(), 3);
    assert!(json["states"][0]["snapshot_bytes"].as_u64().unwrap() > 0);
    assert_eq!(json["states"][0]["reachable"], true);
}

/// A producer that lost the race for version 4 left that version's blobs behind: `versions`
/// marks its state as not announced, and neither `history` nor `--version 4` reads it.
#[tokio::test]
async fn a_state_never_announced_is_marked_and_never_read() {
    let mut d = dataset().await;
    let store = std::sync::Arc::new(
        hollow::object_store::local::LocalFileSystem::new_with_prefix(d.dir.path()).unwrap(),
    );
    let mut winner = hollow::producer::ProducerBuilder::new(store, "movies", support::schema())
        .build()
        .await
        .unwrap();
    let mut won = support::versions()[2].clone();
    won[0].year = 1999;
    winner
        .run_cycle(|w| won.iter().try_for_each(|m| w.add(m).map(|_| ())))
        .await
        .unwrap();
    let mut lost = won.clone();
    lost[0].year = 1777;
    let lost_race = d
        .producer
        .run_cycle(|w| lost.iter().try_for_each(|m| w.add(m).map(|_| ())))
        .await;
    assert!(lost_race.is_err(), "{lost_race:?}");

    let (code, out, err) = run(&["versions", &d.arg()]);
    assert_eq!(code, 0, "{err}");
    let fours: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with('4'))
        .collect();
    assert_eq!(fours.len(), 2, "{out}");
    assert!(
        fours.iter().any(|l| l.ends_with("announced"))
            && fours
                .iter()
                .any(|l| l.ends_with("not on the announced line")),
        "{out}"
    );
    let (code, out, _) = run(&["history", &d.arg(), "Movie", "1"]);
    assert_eq!(code, 0);
    assert!(out.contains("1999") && !out.contains("1777"), "{out}");
    let (code, out, err) = run(&["get", &d.arg(), "Movie", "1", "--version", "4"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1999"), "{out}");
}

#[tokio::test]
async fn schema_prints_the_text_form() {
    let d = dataset().await;
    let (code, out, _) = run(&["schema", &d.arg(), "--version", "1"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "Movie @PrimaryKey(id) {\n    id: i64\n    title: string\n    year: i32\n    genres: ListOfString\n    studio: Studio\n}\nListOfString = List<string>\nStudio {\n    name: string\n}\n"
    );
}

#[tokio::test]
async fn stats_adds_up_per_type_and_field() {
    let d = dataset().await;
    let (code, out, _) = run(&["stats", &d.arg(), "--json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let movie = &json["types"][0];
    assert_eq!(
        (movie["name"].as_str(), movie["records"].as_u64()),
        (Some("Movie"), Some(4))
    );
    assert!(movie["primary_key_index_bytes"].as_u64().unwrap() > 0);
    let title = &movie["fields"][1];
    assert_eq!(title["dictionary"]["entries"], 4);
    let shares: f64 = json["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["share"].as_f64().unwrap())
        .sum();
    assert!((shares - 1.0).abs() < 1e-9, "{shares}");
    let (code, out, _) = run(&["stats", &d.arg()]);
    assert_eq!(code, 0);
    assert!(
        out.contains("(primary key index)") && out.contains("title"),
        "{out}"
    );
}

#[tokio::test]
async fn get_prints_records_by_key_and_fails_on_a_missing_one() {
    let d = dataset().await;
    let (code, out, _) = run(&["get", &d.arg(), "Movie", "1"]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!({"id": 1, "title": "Heat", "year": 1995, "genres": ["Drama"], "studio": {"name": "Regency"}})
    );
    // An older version, and references not followed.
    let (code, out, _) = run(&[
        "get",
        &d.arg(),
        "Movie",
        "1",
        "--version",
        "2",
        "--depth",
        "0",
    ]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["studio"]["$ref"], "Studio");
    assert!(json["studio"]["$ordinal"].is_u64());
    let (code, _, err) = run(&["get", &d.arg(), "Movie", "3"]);
    assert_eq!(code, 1);
    assert!(err.contains("no Movie with key 3 in version 3"), "{err}");
    let (code, _, err) = run(&["get", &d.arg(), "Movie", "abc"]);
    assert_eq!(code, 2);
    assert!(err.contains("field id holds integers"), "{err}");
    let (code, _, err) = run(&["get", &d.arg(), "Studio", "x"]);
    assert_eq!(code, 2);
    assert!(err.contains("Studio has no primary key"), "{err}");
}

#[tokio::test]
async fn find_uses_fields_and_paths() {
    let d = dataset().await;
    let (code, out, err) = run(&["find", &d.arg(), "Movie", "studio.name=Toho"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["title"], "Ran");
    let (code, out, _) = run(&["find", &d.arg(), "Movie", "genres=Drama", "--limit", "2"]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (code, _, _) = run(&["find", &d.arg(), "Movie", "year=1900"]);
    assert_eq!(code, 1);
    let (code, _, err) = run(&["find", &d.arg(), "Movie", "nope=1"]);
    assert_eq!(code, 2);
    assert!(err.contains("nope"), "{err}");
}

#[tokio::test]
async fn diff_shows_added_removed_and_changed_fields() {
    let d = dataset().await;
    let (code, out, err) = run(&["diff", &d.arg(), "1", "2"]);
    assert_eq!(code, 0, "{err}");
    let body: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(
        body.join("\n"),
        "\nMovie (matched by primary key): 1 added, 1 removed, 1 changed, 2 unchanged\n  + id=5\n  - id=3\n  ~ id=2\n      year: 1985 → 1986\n\nStudio (no primary key: a changed record is removed and added): 1 added, 1 removed, 0 changed, 3 unchanged\n  + {\"name\":\"Universal\"}\n  - {\"name\":\"Pixar\"}"
    );
    // Across two deltas, one type, as JSON; a change deep in a referenced record.
    let (code, out, _) = run(&["diff", &d.arg(), "1", "3", "--type", "Movie", "--json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let movie = &json["types"][0];
    assert_eq!(movie["added"][0]["title"], "Jaws");
    assert_eq!(movie["removed"][0]["title"], "Up");
    let changed: Vec<(String, String)> = movie["changed"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| {
            c["differences"].as_array().unwrap().iter().map(move |d| {
                (
                    c["key"].as_str().unwrap().to_string(),
                    d["path"].as_str().unwrap().to_string(),
                )
            })
        })
        .collect();
    assert_eq!(
        changed,
        [
            ("id=1".to_string(), "studio.name".to_string()),
            ("id=2".into(), "year".into())
        ]
    );
    // Backwards works too (by reverse deltas), and no change is no change.
    let (code, out, _) = run(&["diff", &d.arg(), "3", "2", "--type", "Movie"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("studio.name: \"Regency\" → \"Warner\""),
        "{out}"
    );
    let (_, out, _) = run(&["diff", &d.arg(), "2", "2"]);
    assert!(out.contains("2 other types: no change"), "{out}");
}

#[tokio::test]
async fn history_tells_when_a_record_changed() {
    let d = dataset().await;
    let (code, out, _) = run(&["history", &d.arg(), "Movie", "2"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("version 1: present"), "{out}");
    assert_eq!(&lines[1..], ["version 2: changed", "    year: 1985 → 1986"]);
    let (_, out, _) = run(&["history", &d.arg(), "Movie", "3", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json[1]["event"], "removed");
    assert_eq!(json[1]["version"], 2);
    let (_, out, _) = run(&["history", &d.arg(), "Movie", "5"]);
    assert!(out.starts_with("version 2: added"), "{out}");
}

#[tokio::test]
async fn dump_streams_every_record_in_three_formats() {
    let d = dataset().await;
    let (code, out, _) = run(&["dump", &d.arg(), "Movie"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 4);
    for line in out.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    let (_, out, _) = run(&[
        "dump",
        &d.arg(),
        "Movie",
        "--format",
        "json",
        "--version",
        "1",
    ]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let (_, out, _) = run(&["dump", &d.arg(), "Movie", "--format", "csv"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "id,title,year,genres,studio");
    assert_eq!(
        lines[1],
        "1,Heat,1995,\"[\"\"Drama\"\"]\",\"{\"\"name\"\":\"\"Regency\"\"}\""
    );
    assert_eq!(lines.len(), 5);
}

#[tokio::test]
async fn verify_passes_a_healthy_store_and_reports_a_damaged_blob() {
    let d = dataset().await;
    let (code, out, err) = run(&["verify", &d.arg()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("0 problems") && out.contains("7 checked"),
        "{out}"
    );
    // A flipped byte in the middle of a delta.
    let delta = &blob_files(&d.path(), "delta")[0];
    let mut bytes = std::fs::read(delta).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(delta, bytes).unwrap();
    let (code, out, _) = run(&["verify", &d.arg()]);
    assert_eq!(code, 1, "{out}");
    let name = delta.file_name().unwrap().to_str().unwrap();
    assert!(
        out.lines()
            .any(|l| l.starts_with("problem:") && l.contains(name)),
        "{out}"
    );
    // The announced state's snapshot gone, with the delta into it damaged: it cannot be loaded.
    for s in blob_files(&d.path(), "snapshot") {
        std::fs::remove_file(s).unwrap();
    }
    let (code, out, _) = run(&["verify", &d.arg()]);
    assert_eq!(code, 1);
    assert!(
        out.contains("the announced state") && out.contains("cannot be loaded"),
        "{out}"
    );
}

#[tokio::test]
async fn bad_stores_and_versions_are_clear_errors() {
    let d = dataset().await;
    let parent = d.dir.path().display().to_string();
    let (code, _, err) = run(&["versions", &parent]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no dataset at") && err.contains(&d.arg()),
        "{err}"
    );
    let (code, _, err) = run(&["versions", "/no/such/folder"]);
    assert_eq!(code, 2);
    assert!(err.contains("/no/such/folder is not a folder"), "{err}");
    let (code, _, err) = run(&["versions", "ftp://host/x"]);
    assert_eq!(code, 2);
    assert!(err.contains("ftp://host/x"), "{err}");
    let url = format!("file://{}", d.arg());
    let (code, _, err) = run(&["get", &url, "Movie", "1", "--version", "9"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("version 9") && err.contains("hollow versions"),
        "{err}"
    );
    let (code, _, err) = run(&["get", &url, "Film", "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("Film"), "{err}");
    let (code, _, err) = run(&["diff", &url]);
    assert_eq!(code, 2);
    assert!(err.contains("Usage"), "{err}");
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        "versions",
        "schema",
        "stats",
        "get",
        "find",
        "diff",
        "history",
        "verify",
        "dump",
        "check-store",
        "explore",
    ] {
        let (code, out, _) = run(&[sub, "--help"]);
        assert_eq!(code, 0, "{sub}");
        assert!(
            out.contains("Usage: hollow") && out.contains("STORE"),
            "{sub}: {out}"
        );
    }
}

#[tokio::test]
async fn output_cut_short_by_a_reader_ends_quietly() {
    let d = dataset().await;
    // Far more output than a pipe holds (5,000 records), so that the writer meets the
    // closed pipe.
    let keys = vec!["1"; 5000].join(" ");
    let script = format!(
        "{} get {} Movie {keys} | head -c 10 >/dev/null; echo \"${{PIPESTATUS[0]}}\"",
        env!("CARGO_BIN_EXE_hollow"),
        d.arg()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Ended by SIGPIPE (141 in bash), as other tools are; never a panic (101).
    let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(status, "141");
}

#[test]
fn check_store_in_a_folder_leaves_it_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mine.txt"), "not the tool's").unwrap();
    let (code, out, err) = run(&["check-store", &dir.path().display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("a dataset published and read back"), "{out}");
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["mine.txt"]);
}
