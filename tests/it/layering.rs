//! The layering rule that `src/lib.rs` states, checked over the source: every `crate::<module>`
//! path in `src/` must name a module of its own layer or of a layer below, and the imports inside
//! one layer must not form a circle. The layers are read from the `text` block in lib.rs's docs,
//! so the documentation is the rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The layers, top first, from the first ```text block of lib.rs's `//!` docs: each line lists
/// modules, separated by commas, before its description (two or more spaces).
fn layers(lib: &str) -> Vec<Vec<String>> {
    let docs: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let start = docs
        .iter()
        .position(|l| l.trim() == "```text")
        .expect("lib.rs docs state the layers in a ```text block");
    docs[start + 1..]
        .iter()
        .take_while(|l| l.trim() != "```")
        .map(|l| {
            let modules = l.split("  ").next().unwrap_or("");
            modules
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect()
        })
        .collect()
}

/// `pub mod x;` / `mod x;` lines of lib.rs.
fn declared_modules(lib: &str) -> BTreeSet<String> {
    lib.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect()
}

/// The source without comments and string literals, so that prose mentioning `crate::x` does
/// not count as an import.
fn code_only(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        '\n' => out.push('\n'),
                        _ => {}
                    }
                }
                out.push_str("\"\"");
            }
            // A char literal such as '"' would otherwise open a string; lifetimes ('a) are
            // left alone because their second character is not a closing quote.
            '\'' => {
                let ahead: String = chars.clone().take(3).collect();
                let skip = if ahead.starts_with('\\') {
                    ahead.find('\'').map(|i| i + 1).unwrap_or(0)
                } else if ahead.chars().nth(1) == Some('\'') {
                    2
                } else {
                    0
                };
                for _ in 0..skip {
                    chars.next();
                }
                out.push('\'');
            }
            c => out.push(c),
        }
    }
    out
}

/// The top-level modules named by `crate::` paths, with the line they are on. A group
/// (`crate::{a::X, b}`) names each of its members.
fn imports(code: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    let mut rest = code;
    let mut offset = 0;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        let at = offset + i + "crate::".len();
        let tail = &code[at..];
        let line = code[..at].matches('\n').count() + 1;
        // `$crate::` and `berth_crate::` are not this crate's paths.
        if !matches!(before, Some(c) if c.is_alphanumeric() || c == '_' || c == '$') {
            if let Some(group) = tail.strip_prefix('{') {
                let mut depth = 1;
                let mut start_of_item = true;
                let mut name = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                if !name.is_empty() {
                                    found.push((std::mem::take(&mut name), line));
                                }
                                break;
                            }
                        }
                        ',' if depth == 1 => start_of_item = true,
                        c if start_of_item && (c.is_alphanumeric() || c == '_') => name.push(c),
                        _ => {
                            if !name.is_empty() {
                                found.push((std::mem::take(&mut name), line));
                            }
                            if !c.is_whitespace() {
                                start_of_item = false;
                            }
                        }
                    }
                }
            } else {
                let name: String = tail
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push((name, line));
            }
        }
        rest = &rest[i + "crate::".len()..];
        offset += i + "crate::".len();
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`http` for `src/http/oci/mod.rs`).
fn owner(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Every import edge between two top-level modules: (from, to) -> "file:line" examples.
fn edges() -> BTreeMap<(String, String), Vec<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for file in files {
        let from = owner(&file);
        if from == "lib" || from == "main" {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(&file).unwrap());
        for (to, line) in imports(&code) {
            if to != from {
                let at = format!(
                    "{}:{line}",
                    file.strip_prefix(src().parent().unwrap())
                        .unwrap()
                        .display()
                );
                edges.entry((from.clone(), to)).or_default().push(at);
            }
        }
    }
    edges
}

#[test]
fn the_stated_layers_cover_every_module_once() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let layers = layers(&lib);
    assert!(
        layers.len() >= 5,
        "too few layers read from lib.rs: {layers:?}"
    );
    let listed: Vec<&String> = layers.iter().flatten().collect();
    let unique: BTreeSet<String> = listed.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "a module is listed twice: {layers:?}"
    );
    assert_eq!(
        unique,
        declared_modules(&lib),
        "lib.rs's layers and its `mod` lines disagree"
    );
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let layer_of: BTreeMap<String, usize> = layers(&lib)
        .into_iter()
        .enumerate()
        .flat_map(|(i, modules)| modules.into_iter().map(move |m| (m, i)))
        .collect();
    let mut upward = Vec::new();
    for ((from, to), at) in edges() {
        let (Some(f), Some(t)) = (layer_of.get(&from), layer_of.get(&to)) else {
            panic!("{from} -> {to} ({at:?}): a module missing from lib.rs's layers");
        };
        if t < f {
            upward.push(format!("{from} -> {to} at {}", at.join(", ")));
        }
    }
    assert!(
        upward.is_empty(),
        "imports from a higher layer (see the rule in src/lib.rs):\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_import_circle_between_top_level_modules() {
    let edges = edges();
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        graph.entry(from).or_default().insert(to);
    }
    // Depth-first search for a back edge; the path to it is the circle.
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(i) = path.iter().position(|n| *n == node) {
            let mut circle = path[i..].to_vec();
            circle.push(node);
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(circle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            let hops: Vec<String> = circle
                .windows(2)
                .map(|w| {
                    let at = &edges[&(w[0].to_string(), w[1].to_string())];
                    format!("{} -> {} ({})", w[0], w[1], at[0])
                })
                .collect();
            panic!("import circle: {}", hops.join(", "));
        }
    }
}

#[test]
fn the_checker_sees_grouped_and_nested_imports() {
    let code = code_only(
        "use crate::{access::{Access, Caller}, meta::Meta, oci};\n\
         // use crate::ops::Nothing;\n\
         let s = \"crate::http\"; let c = '\"'; fn f<'a>() {}\n\
         crate::service::Registry::new(); $crate::error::Error",
    );
    let names: Vec<String> = imports(&code).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["access", "meta", "oci", "service"]);
}
