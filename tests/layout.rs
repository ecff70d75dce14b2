//! The shape of the source tree, checked from the code itself (ARCHITECTURE.md, "Invariants").
//!
//! Every file under `src/` is a module; every `crate::` and `super::` path in its code (in `use`
//! lines, grouped or not, and written inline) names the module it reaches. Inside each folder the
//! modules beside each other must not import each other in a loop: a folder's `mod.rs` is the
//! folder itself, so a child reading its parent's items is no loop. Unit-test modules (what
//! follows a file's `#[cfg(test)]`) are left out: a test may build its fixtures from a module
//! above the one it tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path from the crate root: `["study", "spec", "search"]`; the root is `[]`.
type Module = Vec<String>;

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/study/spec/mod.rs` is `study::spec`, `src/study/space.rs` is `study::space`, `src/lib.rs`
/// and `src/main.rs` the root.
fn module_of(src: &Path, file: &Path) -> Module {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The code before the file's unit tests, without comments.
fn library_code(text: &str) -> String {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    code.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// `a::{b::C, d::{E, F}}` as `a::b::C`, `a::d::E`, `a::d::F`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else { return vec![tree.to_string()] };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).flat_map(|p| expand(&format!("{prefix}{}", p.trim()))).collect()
}

/// Whether `text` (what follows `use `, up to its `;`) reads as a path tree and not as prose.
fn is_use_tree(text: &str) -> bool {
    text.chars().all(|c| c.is_alphanumeric() || "_:{},* \n\t".contains(c))
}

/// Every path the code names through `crate::` or `super::`, resolved from `module`, as segments.
fn named_paths(module: &Module, code: &str) -> Vec<Vec<String>> {
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut paths = Vec::new();
    // `use` statements first (their groups expanded), then inline paths in what is left.
    let (mut rest, mut inline) = (code, String::new());
    while let Some(at) = rest.find("use ") {
        let after = &rest[at + 4..];
        let statement = after.find(';').map(|end| &after[..end]);
        match statement {
            Some(tree) if (at == 0 || !is_ident(rest.as_bytes()[at - 1])) && is_use_tree(tree) => {
                inline.push_str(&rest[..at]);
                paths.extend(expand(&tree.replace(char::is_whitespace, "")));
                rest = &after[tree.len() + 1..];
            }
            _ => {
                inline.push_str(&rest[..at + 4]);
                rest = after;
            }
        }
    }
    inline.push_str(rest);
    let bytes = inline.as_bytes();
    let starts = inline.match_indices("crate::").chain(inline.match_indices("super::")).map(|(i, _)| i);
    for start in starts.filter(|&i| i == 0 || !(is_ident(bytes[i - 1]) || bytes[i - 1] == b':')) {
        let end = inline[start..].find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).map_or(inline.len(), |e| start + e);
        paths.push(inline[start..end].trim_end_matches(':').to_string());
    }
    paths
        .into_iter()
        .filter_map(|path| {
            let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            // `super` is the parent of the file's module (of `spec` for src/study/spec/mod.rs).
            let mut resolved = match *segments.first()? {
                "crate" => Vec::new(),
                "super" => module[..module.len().saturating_sub(1)].to_vec(),
                _ => return None,
            };
            for segment in &segments[1..] {
                if *segment == "super" {
                    resolved.pop();
                } else {
                    resolved.push(segment.to_string());
                }
            }
            Some(resolved)
        })
        .collect()
}

/// The longest prefix of `path` that is a module of the tree.
fn deepest_module(modules: &BTreeSet<Module>, path: &[String]) -> Module {
    (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|m| modules.contains(m)).unwrap_or_default()
}

/// The loops among the modules beside each other in each folder, one line each:
/// `src/study: space, spec` (the modules of one loop, each reaching every other).
fn loops(edges: &BTreeMap<Module, BTreeMap<String, BTreeSet<String>>>) -> Vec<String> {
    let mut found = BTreeSet::new();
    for (folder, graph) in edges {
        // The folders are small: reachability from each node is enough (no Tarjan needed).
        let reach = |from: &String| {
            let (mut stack, mut seen) = (vec![from.clone()], BTreeSet::new());
            while let Some(n) = stack.pop() {
                for next in graph.get(&n).into_iter().flatten() {
                    if seen.insert(next.clone()) {
                        stack.push(next.clone());
                    }
                }
            }
            seen
        };
        let reached: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|n| (n, reach(n))).collect();
        for (node, seen) in &reached {
            let in_loop: Vec<&String> = seen.iter().filter(|other| reached.get(other).is_some_and(|back| back.contains(*node))).collect();
            if !in_loop.is_empty() {
                let name = if folder.is_empty() { "src".to_string() } else { format!("src/{}", folder.join("/")) };
                let members: BTreeSet<&String> = in_loop.into_iter().chain([*node]).collect();
                found.insert(format!("{name}: {}", members.into_iter().cloned().collect::<Vec<_>>().join(", ")));
            }
        }
    }
    found.into_iter().collect()
}

#[test]
fn no_folder_has_modules_that_import_each_other_in_a_loop() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let modules: BTreeSet<Module> = files.iter().map(|f| module_of(&src, f)).collect();
    assert!(modules.contains(&vec!["study".to_string(), "space".to_string()]), "the tree was read: {modules:?}");

    let mut edges: BTreeMap<Module, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut named = 0;
    for file in &files {
        let from = module_of(&src, file);
        let code = library_code(&std::fs::read_to_string(file).unwrap());
        for path in named_paths(&from, &code) {
            let to = deepest_module(&modules, &path);
            named += 1;
            // The folder both live in, and the child of it that holds each.
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if from.len() > common && to.len() > common {
                edges.entry(from[..common].to_vec()).or_default().entry(from[common].clone()).or_default().insert(to[common].clone());
            }
        }
    }
    assert!(named > 200, "only {named} crate:: and super:: paths were found: the reader is broken");
    assert!(
        edges.get(&vec!["study".to_string()]).is_some_and(|g| g.get("tpe").is_some_and(|t| t.contains("space"))),
        "study::tpe's imports of study::space were seen"
    );
    let found = loops(&edges);
    assert!(found.is_empty(), "modules in a loop (each folder's files should import one way):\n{}", found.join("\n"));
}

#[test]
fn the_reader_expands_groups_and_resolves_super() {
    assert_eq!(
        expand("crate::study::{history::Point, space::{Space, same_value}}"),
        ["crate::study::history::Point", "crate::study::space::Space", "crate::study::space::same_value"]
    );
    let module: Module = vec!["study".into(), "spec".into(), "search".into()];
    let paths = named_paths(&module, "use super::{Domain, Trial};\nfn f() { crate::util::x(); } // we use this; it is\n");
    assert_eq!(paths, [vec!["study", "spec", "Domain"], vec!["study", "spec", "Trial"], vec!["util", "x"]]);
    let folder: Module = vec!["study".into(), "spec".into()];
    assert_eq!(named_paths(&folder, "use super::space::Space;"), [vec!["study", "space", "Space"]]);
    // A loop is reported, a one-way chain is not.
    let mut edges: BTreeMap<Module, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let graph = edges.entry(vec!["study".into()]).or_default();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    assert!(loops(&edges).is_empty());
    edges.get_mut(&vec!["study".to_string()]).unwrap().entry("c".into()).or_default().insert("a".into());
    assert_eq!(loops(&edges), ["src/study: a, b, c"]);
}
