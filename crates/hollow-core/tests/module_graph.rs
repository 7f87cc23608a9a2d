//! The modules of hollow-core import each other without circles: each one can be read, tested
//! and changed knowing only the ones below it. Test code (after `#[cfg(test)]`) is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level module of each source file and the `crate::<module>` paths it names.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut todo = vec![src.clone()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let first = relative
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            if module == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let uses = graph.entry(module.clone()).or_default();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (i, _) in line.match_indices("crate::") {
                    let name: String = line[i + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != module {
                        uses.insert(name);
                    }
                }
            }
        }
    }
    graph
}

/// A circle of imports through `from`, if there is one.
fn circle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(at) = path.iter().position(|m| m == from) {
        let mut found = path[at..].to_vec();
        found.push(from.to_string());
        return Some(found);
    }
    if !done.insert(from.to_string()) {
        return None;
    }
    path.push(from.to_string());
    for next in graph.get(from).into_iter().flatten() {
        if graph.contains_key(next) {
            if let Some(found) = circle(graph, next, path, done) {
                return Some(found);
            }
        }
    }
    path.pop();
    None
}

#[test]
fn modules_import_each_other_without_circles() {
    let graph = imports();
    assert!(
        graph.contains_key("read") && graph["read"].contains("index"),
        "{graph:?}"
    );
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        let found = circle(&graph, module, &mut Vec::new(), &mut done);
        assert!(
            found.is_none(),
            "an import circle: {}",
            found.unwrap().join(" -> ")
        );
    }
}

#[test]
fn the_check_sees_a_circle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["a".to_string()])),
    ]
    .into();
    let found = circle(&graph, "a", &mut Vec::new(), &mut BTreeSet::new());
    assert_eq!(found.unwrap(), ["a", "b", "a"]);
}
