//! The module graphs stay one-way: no source file of the library or of a workspace
//! crate (`crates/*/src`) imports one that imports it back, and no stage imports the
//! configuration.
//!
//! The graph is read the way `../shared/tools/module-cycles.py` reads it: every
//! `crate::`, `super::` and `self::` path in a file of `src/` (comments removed) is an
//! edge to the file of the longest module prefix it names; an edge from a module to one of
//! its own descendants (a parent declaring or re-exporting its children) is not counted.
//! A strongly connected component of more than one file is a cycle, and fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn root() -> PathBuf {
    workspace().join("src")
}

/// The `src/` folder of every crate of the workspace besides the root package: those
/// under `crates/`, and the Python binding's (`python/src`).
fn crate_roots() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(workspace().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out.push(workspace().join("python/src"));
    out
}

/// Every `.rs` file under `src/`, by module path (`mod.rs`, `lib.rs`, `main.rs` stand for
/// their folder).
fn files(dir: &Path, base: &Path, out: &mut BTreeMap<Module, PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, base, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let rel = p.strip_prefix(base).unwrap().with_extension("");
            let mut m: Module = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            if matches!(m.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                m.pop();
            }
            out.insert(m, p);
        }
    }
}

fn strip_comments(src: &str) -> String {
    src.lines().map(|l| l.find("//").map_or(l, |i| &l[..i])).collect::<Vec<_>>().join("\n")
}

/// The `(kind, segments)` of every `crate::a::b`, `super::a` and `self::a` path.
fn paths(src: &str) -> Vec<(&str, Vec<&str>)> {
    let bytes = src.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = Vec::new();
    for kind in ["crate", "super", "self"] {
        let mut from = 0;
        while let Some(i) = src[from..].find(kind).map(|i| i + from) {
            from = i + kind.len();
            if (i > 0 && word(bytes[i - 1])) || !src[from..].starts_with("::") {
                continue;
            }
            let mut segs = Vec::new();
            let mut j = from;
            while src[j..].starts_with("::") {
                let start = j + 2;
                let end = start + src[start..].bytes().take_while(|&b| word(b)).count();
                if end == start {
                    break;
                }
                segs.push(&src[start..end]);
                j = end;
            }
            if !segs.is_empty() {
                out.push((kind, segs));
            }
        }
    }
    out
}

fn graph(src_dir: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut modules = BTreeMap::new();
    files(src_dir, src_dir, &mut modules);
    let resolve =
        |path: &[String]| (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|m| modules.contains_key(m));
    let mut edges = BTreeMap::new();
    for (m, file) in &modules {
        let src = strip_comments(&std::fs::read_to_string(file).unwrap());
        let mut to = BTreeSet::new();
        for (kind, segs) in paths(&src) {
            let mut base: Module = match kind {
                "crate" => Vec::new(),
                "self" => m.clone(),
                // `super` of a folder's mod.rs is the folder's parent, as for a file.
                _ => m[..m.len().saturating_sub(1)].to_vec(),
            };
            base.extend(segs.iter().map(|s| s.to_string()));
            let Some(target) = resolve(&base) else { continue };
            if target == *m || target.starts_with(m) {
                continue;
            }
            to.insert(target);
        }
        edges.insert(m.clone(), to);
    }
    edges
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(g: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        g: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on.insert(v);
        for w in &s.g[v] {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "lib".into()
    } else {
        m.join("/")
    }
}

/// Fails naming every cycle of the module graph of `src_dir`.
fn assert_acyclic(src_dir: &Path, g: &BTreeMap<Module, BTreeSet<Module>>) {
    eprintln!(
        "{}: {} files, {} import edges",
        src_dir.display(),
        g.len(),
        g.values().map(BTreeSet::len).sum::<usize>()
    );
    let found = cycles(g);
    let text: Vec<String> = found
        .iter()
        .map(|c| c.iter().map(name).collect::<Vec<_>>().join(", "))
        .map(|c| format!("cycle: {c}"))
        .collect();
    assert!(found.is_empty(), "import cycles between source files of {}:\n{}", src_dir.display(), text.join("\n"));
}

#[test]
fn the_module_graph_has_no_cycles() {
    let g = graph(&root());
    assert!(g.len() > 40, "read {} modules: is src/ where it should be?", g.len());
    assert_acyclic(&root(), &g);
}

#[test]
fn the_workspace_crates_have_no_cycles() {
    let roots = crate_roots();
    assert!(roots.len() >= 3, "found {} crates: is the workspace where it should be?", roots.len());
    for dir in roots {
        assert_acyclic(&dir, &graph(&dir));
    }
}

#[test]
fn stages_do_not_import_the_configuration_or_what_runs_them() {
    let g = graph(&root());
    for (m, to) in &g {
        if m.first().map(String::as_str) != Some("stage") {
            continue;
        }
        for t in to {
            let top = t.first().map(String::as_str).unwrap_or("lib");
            assert!(
                !matches!(top, "config" | "plan" | "run" | "output" | "eval"),
                "{} imports {}: a stage knows only the stages before it and plain types",
                name(m),
                name(t)
            );
        }
    }
}

#[test]
fn the_reader_finds_a_cycle_when_there_is_one() {
    // The check itself: two modules importing each other are found.
    let mut g = BTreeMap::new();
    let (a, b, c): (Module, Module, Module) = (vec!["a".into()], vec!["b".into()], vec!["c".into()]);
    g.insert(a.clone(), BTreeSet::from([b.clone()]));
    g.insert(b.clone(), BTreeSet::from([a.clone(), c.clone()]));
    g.insert(c.clone(), BTreeSet::new());
    assert_eq!(cycles(&g), vec![vec![a, b]]);
    let src = strip_comments("use crate::stage::maps::{A, B};\nlet x = super::y::z(); // crate::no\nfoo_crate::bar");
    let p = paths(&src);
    assert_eq!(p, vec![("crate", vec!["stage", "maps"]), ("super", vec!["y", "z"])]);
}
