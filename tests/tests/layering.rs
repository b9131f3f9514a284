//! The module graph of every crate is a DAG: no two modules import each other,
//! directly or around a circle (issue 16, "no import circle remains").
//!
//! What it reads: every non-test `.rs` file under each crate's `src/`, its
//! `crate::...` paths (also inside `use crate::{a, b::c}` groups) and its
//! `super::...` paths, resolved to a module. For each module, its children
//! form a graph: an edge `a -> b` when code inside `a` (or below it) names
//! something inside sibling `b` (or below it). Every such graph must be
//! acyclic. A child naming its parent's own items (a `mod.rs` and its parts)
//! is the normal direction and is not an edge; a parent re-exporting its
//! children is not either.
//!
//! Approximations, chosen to err on the side of missing an edge rather than
//! inventing one: comments are skipped; a file's unit tests (from the first
//! `#[cfg(test)]` line followed by `mod`) are not read; a name reached through
//! a parent's `pub use` counts as the parent's.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The crates whose modules are checked, from the workspace root.
const SOURCE_ROOTS: &[&str] = &[
    "crates/core/src",
    "crates/proto/src",
    "crates/store/src",
    "server/src",
    "client/src",
];

#[test]
fn no_module_imports_in_a_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut failures = Vec::new();
    for src in SOURCE_ROOTS {
        let dir = root.join(src);
        let files = rust_files(&dir);
        assert!(!files.is_empty(), "no source files under {}", dir.display());
        let mut modules: BTreeSet<Vec<String>> = BTreeSet::new();
        let mut refs: Vec<(Vec<String>, Vec<String>)> = Vec::new();
        for file in &files {
            let module = module_path(&dir, file);
            modules.insert(module.clone());
            let text = fs::read_to_string(file).unwrap();
            for target in references(&module, &non_test_code(&text)) {
                refs.push((module.clone(), target));
            }
        }
        for cycle in cycles(&modules, &refs) {
            failures.push(format!("{src}: {}", cycle.join(" -> ")));
        }
    }
    assert!(
        failures.is_empty(),
        "modules that import each other in a circle (move the shared fact into a \
         module below both):\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_circle_is_found_and_a_chain_is_not() {
    let modules: BTreeSet<Vec<String>> = [vec![], v(&["a"]), v(&["b"]), v(&["c"])]
        .into_iter()
        .collect();
    let chain = vec![(v(&["a"]), v(&["b", "X"])), (v(&["b"]), v(&["c", "Y"]))];
    assert!(cycles(&modules, &chain).is_empty());
    let mut circle = chain.clone();
    circle.push((v(&["c"]), v(&["a", "Z"])));
    assert_eq!(cycles(&modules, &circle), vec![vec!["a", "b", "c", "a"]]);
    // `use crate::{b::X, c}` and `super::` are both read.
    let found = references(&v(&["a"]), "use crate::{b::X, c};\nsuper::d::f();\n");
    assert_eq!(found, vec![v(&["b", "X"]), v(&["c"]), v(&["d", "f"])]);
}

fn v(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `src/gc/mark.rs` -> `[gc, mark]`; `src/gc/mod.rs` -> `[gc]`; `lib.rs` -> `[]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

/// The file without comments and without its unit-test module.
fn non_test_code(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]")
            && lines
                .get(i + 1)
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line.split(" //").next().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Every module path the code names, as absolute paths from the crate root.
fn references(module: &[String], code: &str) -> Vec<Vec<String>> {
    // The module `super` names: the parent of this module.
    let parent: Vec<String> = module[..module.len().saturating_sub(1)].to_vec();
    let mut out = Vec::new();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue; // `$crate::` or `foo::crate::` (not a path we resolve)
            }
            for path in paths_at(rest) {
                let mut full = base.clone();
                full.extend(path);
                out.push(full);
            }
        }
    }
    out
}

/// The paths that start at the beginning of `s`: `a::b::C` or a group
/// `{a::b, c::{d, e}}`.
fn paths_at(s: &str) -> Vec<Vec<String>> {
    let s = s.trim_start();
    if let Some(inner) = s.strip_prefix('{') {
        let group = &inner[..matching_brace(inner)];
        return split_top_level(group)
            .into_iter()
            .flat_map(paths_at)
            .collect();
    }
    let mut path = Vec::new();
    let mut rest = s;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        path.push(rest[..end].to_string());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(next) if next.starts_with('{') => {
                return paths_at(next)
                    .into_iter()
                    .map(|tail| path.iter().cloned().chain(tail).collect())
                    .collect();
            }
            Some(next) => rest = next,
            None => break,
        }
    }
    if path.is_empty() || path[0] == "self" {
        Vec::new()
    } else {
        vec![path]
    }
}

fn matching_brace(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The cycles among siblings, each as `[a, b, ..., a]` named by the siblings'
/// full paths; one cycle per strongly connected group.
fn cycles(
    modules: &BTreeSet<Vec<String>>,
    refs: &[(Vec<String>, Vec<String>)],
) -> Vec<Vec<String>> {
    // For each parent, the edges among its children.
    let mut edges: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (from, target) in refs {
        // The longest module that is a prefix of the target.
        let to: Vec<String> = (0..=target.len())
            .rev()
            .map(|n| target[..n].to_vec())
            .find(|p| modules.contains(p))
            .unwrap_or_default();
        // The deepest common ancestor of `from` and `to`.
        let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
        if common == from.len() || common == to.len() {
            continue; // a module naming its own parts or its ancestors
        }
        let parent = from[..common].to_vec();
        edges
            .entry(parent)
            .or_default()
            .entry(from[common].clone())
            .or_default()
            .insert(to[common].clone());
    }
    let mut found = Vec::new();
    for (parent, graph) in &edges {
        let mut done: BTreeSet<String> = BTreeSet::new();
        for start in graph.keys() {
            if done.contains(start) {
                continue;
            }
            if let Some(cycle) = cycle_from(start, graph, &mut vec![], &mut done) {
                // One report per circle: its members are not started from again.
                done.extend(cycle.iter().cloned());
                let name = |m: &String| {
                    parent
                        .iter()
                        .chain(std::iter::once(m))
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("::")
                };
                found.push(cycle.iter().map(name).collect());
            }
        }
    }
    found
}

fn cycle_from(
    node: &String,
    graph: &BTreeMap<String, BTreeSet<String>>,
    stack: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(at) = stack.iter().position(|n| n == node) {
        let mut cycle = stack[at..].to_vec();
        cycle.push(node.clone());
        return Some(cycle);
    }
    if done.contains(node) {
        return None;
    }
    stack.push(node.clone());
    for next in graph.get(node).into_iter().flatten() {
        if let Some(cycle) = cycle_from(next, graph, stack, done) {
            return Some(cycle);
        }
    }
    stack.pop();
    done.insert(node.clone());
    None
}
