//! The layers stay one way: the top-level modules of `src/` (read from the
//! sources' `crate::` paths, test code left out) form no cycle. The same
//! rules as `module-cycles` (ARCHITECTURE.md, "Layers").

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level modules each top-level module names through `crate::`.
fn module_graph(src: &Path) -> Graph {
    let modules: BTreeSet<String> = std::fs::read_dir(src)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let name = path.file_stem()?.to_str()?.to_owned();
            let module = path.is_dir() || path.extension()? == "rs";
            (module && name != "main" && name != "lib").then_some(name)
        })
        .collect();
    let mut graph = Graph::new();
    for module in &modules {
        let mut files = Vec::new();
        let file = src.join(format!("{module}.rs"));
        if file.is_file() {
            files.push(file);
        }
        collect_rs(&src.join(module), &mut files);
        let uses = graph.entry(module.clone()).or_default();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for name in crate_paths(production_code(&text)) {
                if &name != module && modules.contains(&name) {
                    uses.insert(name);
                }
            }
        }
    }
    graph
}

/// `.rs` files under `dir`, but `tests/` folders and `tests.rs` files.
fn collect_rs(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.map(|e| e.unwrap().path()) {
        let name = path.file_name().unwrap().to_str().unwrap();
        if path.is_dir() && name != "tests" {
            collect_rs(&path, files);
        } else if name.ends_with(".rs") && name != "tests.rs" {
            files.push(path);
        }
    }
}

/// The text before a `#[cfg(test)] mod tests {`.
fn production_code(text: &str) -> &str {
    let mut rest = text;
    let mut end = 0;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        if after.starts_with("mod tests") {
            return &text[..end + at];
        }
        end += at + 1;
        rest = &rest[at + 1..];
    }
    text
}

/// The first segment of every `crate::` path, `crate::{a, b::c}` included.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut start) = (1, 0);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' | ',' if depth == 1 => {
                        names.insert(ident(&group[start..i]));
                        start = i + 1;
                        if c == '}' {
                            break;
                        }
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
        } else {
            names.insert(ident(rest));
        }
    }
    names.remove("");
    names
}

/// The strongly connected components with more than one module (Tarjan).
fn cycles(graph: &Graph) -> BTreeSet<Vec<String>> {
    struct Walk<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: BTreeSet<Vec<String>>,
    }
    fn visit<'a>(walk: &mut Walk<'a>, v: &'a str) {
        let n = walk.index.len();
        walk.index.insert(v, n);
        walk.low.insert(v, n);
        walk.stack.push(v);
        for w in walk.graph.get(v).into_iter().flatten() {
            if !walk.index.contains_key(w.as_str()) {
                visit(walk, w);
                let low = walk.low[v].min(walk.low[w.as_str()]);
                walk.low.insert(v, low);
            } else if walk.stack.contains(&w.as_str()) {
                let low = walk.low[v].min(walk.index[w.as_str()]);
                walk.low.insert(v, low);
            }
        }
        if walk.low[v] == walk.index[v] {
            let mut component = Vec::new();
            while let Some(w) = walk.stack.pop() {
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                walk.found.insert(component);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: BTreeSet::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            visit(&mut walk, v);
        }
    }
    walk.found
}

#[test]
fn the_top_level_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    assert_eq!(cycles(&graph), BTreeSet::new(), "module graph: {graph:#?}");
    // The graph is read at all: the app layer uses the domains.
    assert!(graph["app"].contains("automation"), "{graph:#?}");
}

#[test]
fn the_cycle_finder_finds_cycles_and_crate_paths() {
    let graph: Graph = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
        ("e", vec!["d"]),
    ]
    .into_iter()
    .map(|(m, uses)| (m.into(), uses.into_iter().map(Into::into).collect()))
    .collect();
    let found: Vec<Vec<String>> = cycles(&graph).into_iter().collect();
    assert_eq!(found, [["a", "b", "c"]]);
    let paths =
        crate_paths("use crate::{app::X, db}; crate::tags::name; let x = crate::error::f();");
    assert_eq!(
        paths.into_iter().collect::<Vec<_>>(),
        ["app", "db", "error", "tags"]
    );
    assert_eq!(
        production_code("a\n#[cfg(test)]\nmod tests { crate::x }"),
        "a\n"
    );
}
