//! coze-core's layers, checked on its source tree: each top-level module (a folder of
//! `src/`, or `error.rs`) has a rank, and a module may name (`crate::X`) only modules of
//! its own rank or below; no two modules may depend on each other, neither at the top
//! level nor among the modules of one folder (`crate::auth::renew` and
//! `super::store` are edges between `auth`'s modules). A new top-level module must be
//! given a rank here.
//!
//! The ranks, bottom up: error and support 0 (the error type; time, random, say, redact,
//! url), wire 1 (SSE, JSON lines, json_pick), protocol 2 (the records), config 3 (the
//! environment, credentials, settings), http 4, auth 5, api 6, chat and workflow 7 (the
//! engines, which may not name each other in a circle), batch 8 (which may name only
//! wire and below: it runs any tool's items), cli 9.
//!
//! The source is read as text: comments are dropped, and `crate::a::{b, c::d}` names
//! `a::b` and `a::c`. `super::` is followed outside `#[cfg(test)]` modules (inside one
//! it names the file's own module).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The rank of each top-level module: it may name modules of its rank or below.
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("support", 0),
    ("wire", 1),
    ("protocol", 2),
    ("config", 3),
    ("http", 4),
    ("auth", 5),
    ("api", 6),
    ("chat", 7),
    ("workflow", 7),
    ("batch", 8),
    ("cli", 9),
];

/// One source file: its module path (`["auth", "store"]` for `auth/store/mod.rs`) and
/// its text.
struct Source {
    module: Vec<String>,
    text: String,
}

/// Modules that sit high but must stay generic: they may name only modules up to this
/// rank (besides their own). The batch engine runs any tool's items: it must not learn
/// about HTTP, tokens or chats, or the workflow tool could not share it.
const REACH: &[(&str, u8)] = &[("batch", 1)];

/// The highest rank `top` may name.
fn reach(top: &str) -> Option<u8> {
    REACH
        .iter()
        .find(|(m, _)| *m == top)
        .map(|(_, r)| *r)
        .or_else(|| rank(top))
}

fn rank(top: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == top).map(|(_, r)| *r)
}

/// Every `.rs` file under `src/` but `lib.rs`, with its module path.
fn sources(src: &Path) -> Vec<Source> {
    let mut out = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module == ["lib"] {
                continue;
            }
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            out.push(Source { module, text });
        }
    }
    out
}

/// The text without `//` comments (doc comments included).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths named after each `prefix` (`crate::`, `super::`): `a::b`, and for a group
/// `{b, c::d}` one path per member, as lists of segments.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        // `$crate::` is this crate too; `foo_crate::` or `x.super::` are not.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let mut found = Vec::new();
        parse_path(rest, Vec::new(), &mut found);
        out.extend(found);
    }
    out
}

/// Reads `a::b::{c, d::e}` at the start of `text` after the segments `base`.
fn parse_path(text: &str, mut base: Vec<String>, out: &mut Vec<Vec<String>>) {
    let text = text.trim_start();
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    parse_path(&group[start..i], base.clone(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parse_path(&group[start..i], base.clone(), out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let ident = &text[..end];
    if ident.is_empty() {
        if !base.is_empty() {
            out.push(base);
        }
        return;
    }
    base.push(ident.to_owned());
    match text[end..].strip_prefix("::") {
        Some(more) => parse_path(more, base, out),
        None => out.push(base),
    }
}

/// The code before the file's `#[cfg(test)]` module (`mod tests`), where `super::`
/// means the parent module.
fn outside_tests(code: &str) -> &str {
    let mut from = 0;
    while let Some(i) = code[from..].find("#[cfg(test)]") {
        let at = from + i;
        let next = code[at..].lines().nth(1).unwrap_or_default();
        if next.contains("mod tests") {
            return &code[..at];
        }
        from = at + 1;
    }
    code
}

/// The first cycle in `graph`, as the modules along it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut found = path[i..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

/// What is wrong with the layering of `sources`, one line each.
fn problems(sources: &[Source]) -> Vec<String> {
    let mut problems = Vec::new();
    let tops: BTreeSet<&str> = sources.iter().map(|s| s.module[0].as_str()).collect();
    for top in &tops {
        if rank(top).is_none() {
            problems.push(format!("{top} has no rank in the layer table"));
        }
    }
    // Second-level modules of each folder, for the edges among them.
    let children: BTreeSet<(String, String)> = sources
        .iter()
        .filter(|s| s.module.len() >= 2)
        .map(|s| (s.module[0].clone(), s.module[1].clone()))
        .collect();
    let mut top_graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut inner: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for s in sources {
        let file = s.module.join("/");
        let top = &s.module[0];
        let code = code(&s.text);
        for path in paths_after(&code, "crate::") {
            let Some(target) = path.first() else { continue };
            if !tops.contains(target.as_str()) {
                continue; // a re-export at the root (`crate::Error`)
            }
            if let (Some(from), Some(limit), Some(to)) = (rank(top), reach(top), rank(target)) {
                if to > limit && target != top {
                    let reach = if limit < from {
                        format!(", which may name rank {limit} at most")
                    } else {
                        String::new()
                    };
                    problems.push(format!(
                        "{file} names crate::{} (rank {to}) from {top} (rank {from}{reach})",
                        path.join("::")
                    ));
                }
            }
            if target != top {
                top_graph
                    .entry(top.clone())
                    .or_default()
                    .insert(target.clone());
            } else if let (Some(from), Some(to)) = (s.module.get(1), path.get(1)) {
                if from != to && children.contains(&(top.clone(), to.clone())) {
                    let edges = inner.entry(top.clone()).or_default();
                    edges.entry(from.clone()).or_default().insert(to.clone());
                }
            }
        }
        // `super::x` from a module of a folder names its sibling x.
        if let Some(from) = s.module.get(1) {
            let parent = &s.module[..s.module.len() - 1];
            for path in paths_after(outside_tests(&code), "super::") {
                let resolved: Vec<&String> = parent.iter().chain(path.iter()).collect();
                if let Some(to) = resolved.get(1) {
                    if *to != from && children.contains(&(top.clone(), (*to).clone())) {
                        let edges = inner.entry(top.clone()).or_default();
                        edges.entry(from.clone()).or_default().insert((*to).clone());
                    }
                }
            }
        }
    }
    if let Some(c) = cycle(&top_graph) {
        problems.push(format!("a cycle between modules: {}", c.join(" -> ")));
    }
    for (top, graph) in &inner {
        if let Some(c) = cycle(graph) {
            problems.push(format!("a cycle in {top}/: {}", c.join(" -> ")));
        }
    }
    problems
}

#[test]
fn layers_import_only_downward_and_nothing_depends_on_itself() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let sources = sources(&src);
    assert!(sources.len() > 20, "read {} files", sources.len());
    let problems = problems(&sources);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every top-level module of lib.rs is in the table, and every one in the table that
/// exists is declared.
#[test]
fn every_module_of_lib_rs_has_a_rank() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let lib = code(&lib);
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';'))
        .collect();
    assert!(declared.len() >= 9, "{declared:?}");
    for m in declared {
        assert!(rank(m).is_some(), "{m} has no rank in the layer table");
    }
}

/// The check itself finds an import from a higher layer, a cycle between two layers'
/// modules, and one between two modules of a folder.
#[test]
fn the_check_finds_upward_imports_and_cycles() {
    let file = |module: &str, text: &str| Source {
        module: module.split('/').map(str::to_owned).collect(),
        text: text.to_owned(),
    };
    let clean = [
        file("error", "use std::fmt;"),
        file("config/env", "use crate::error::Error;"),
        file(
            "chat/state",
            "use crate::{config::Env, error::{Error, Result}};",
        ),
        file("chat/stream", "use super::state::ChatState;"),
        file("chat", "mod state;\npub use state::ChatState;"),
        file(
            "chat/poll",
            "// not this: crate::cli::run\nuse super::stream;",
        ),
    ];
    assert_eq!(problems(&clean), Vec::<String>::new());

    let upward = [
        file("error", ""),
        file("config/env", "use crate::{error::Error, chat::ChatState};"),
        file("chat/state", ""),
    ];
    assert_eq!(
        problems(&upward),
        ["config/env names crate::chat::ChatState (rank 7) from config (rank 3)"]
    );

    let between = [
        file("http/agent", "fn f() { crate::support::say::warn(\"x\"); }"),
        file("support/say", "pub fn warn() { crate::http::agent::f() }"),
    ];
    let found = problems(&between);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("a cycle between modules: ")),
        "{found:?}"
    );

    let inside = [
        file("auth/renew", "use super::store::TokenStore;"),
        file("auth/store", "mod lock;\nuse crate::error::Error;"),
        file("auth/store/lock", "use crate::auth::renew::Renewer;"),
    ];
    assert_eq!(
        problems(&inside),
        ["a cycle in auth/: renew -> store -> renew"]
    );

    let generic = [
        file("batch/engine", "use crate::{wire::jsonl, chat::Active};"),
        file("chat/active", ""),
        file("wire/jsonl", ""),
    ];
    assert_eq!(
        problems(&generic),
        ["batch/engine names crate::chat::Active (rank 7) from batch (rank 8, which may name rank 1 at most)"]
    );

    let unknown = [file("extra/thing", "")];
    assert_eq!(problems(&unknown), ["extra has no rank in the layer table"]);
}
