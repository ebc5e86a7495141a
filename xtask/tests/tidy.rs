//! Repository rules, checked by an ordinary test so `cargo test` keeps them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    path::{Path, PathBuf},
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Every `.rs` file below `dir`, skipping build outputs.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn crate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.push(root().join("c19-bin"));
    dirs.sort();
    dirs
}

#[test]
fn the_top_level_holds_only_the_agreed_entries() {
    let allowed = [
        "Cargo.toml",
        "Cargo.lock",
        "crates",
        "c19-bin",
        "configs",
        "tests",
        "xtask",
        "README.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "clippy.toml",
        "rustfmt.toml",
        "target",
    ];
    for entry in fs::read_dir(root()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let tolerated = name.starts_with('.') || name.starts_with("target-");
        assert!(
            allowed.contains(&name.as_str()) || tolerated,
            "unexpected top-level entry `{name}`: the layout is Cargo.toml, crates/, c19-bin/, \
             configs/, tests/, xtask/, README.md plus licences and tool configs"
        );
    }
}

#[test]
fn every_rust_file_starts_with_module_docs() {
    let mut files = Vec::new();
    for dir in ["crates", "c19-bin", "tests", "xtask"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(!files.is_empty());
    for file in files {
        let text = read(&file);
        let first = text
            .lines()
            .find(|line| !line.trim().is_empty())
            .unwrap_or_default();
        assert!(
            first.starts_with("//!"),
            "{} must start with `//!` docs",
            file.display()
        );
    }
}

#[test]
fn publishable_crates_carry_crates_io_metadata_and_a_readme() {
    for dir in crate_dirs() {
        let manifest = read(&dir.join("Cargo.toml"));
        for field in ["description", "readme", "license", "repository", "keywords"] {
            assert!(
                manifest.lines().any(|line| line.starts_with(field)),
                "{}: missing `{field}`",
                dir.display()
            );
        }
        assert!(
            dir.join("README.md").is_file(),
            "{}: missing README.md",
            dir.display()
        );
    }
}

#[test]
fn every_member_uses_the_workspace_lints() {
    let mut dirs = crate_dirs();
    dirs.push(root().join("tests"));
    dirs.push(root().join("xtask"));
    for dir in dirs {
        let manifest = read(&dir.join("Cargo.toml"));
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "{}: add `[lints] workspace = true`",
            dir.display()
        );
    }
}

#[test]
fn internal_crates_are_not_published() {
    for dir in ["tests", "xtask"] {
        let manifest = read(&root().join(dir).join("Cargo.toml"));
        assert!(
            manifest.contains("publish = false"),
            "{dir} must be `publish = false`"
        );
    }
}

/// Whether a crate registers a layer kind with typetag.
fn registers_a_kind(dir: &Path) -> bool {
    fn walk(dir: &Path) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|entry| {
            let path = entry.path();
            if path.is_dir() {
                walk(&path)
            } else {
                path.extension().is_some_and(|ext| ext == "rs")
                    && read(&path).contains("#[typetag::serde(name")
            }
        })
    }
    walk(&dir.join("src"))
}

#[test]
fn every_layer_crate_is_a_feature_of_the_binary() {
    let bin = read(&root().join("c19-bin/Cargo.toml"));
    let lib = read(&root().join("c19-bin/src/lib.rs"));
    for dir in crate_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        // Support crates (the core traits, TLS) register no layer kind; the testkit's
        // `Mem` state is for tests, which link the testkit themselves.
        if name == "c19-core"
            || name == "c19-bin"
            || name == "c19-testkit"
            || !registers_a_kind(&dir)
        {
            continue;
        }
        assert!(
            bin.contains(&format!("[\"dep:{name}\"]")),
            "c19-bin has no feature for {name}"
        );
        // Without a `use`, the crate is not linked and its typetag registrations vanish.
        let module = name.replace('-', "_");
        assert!(
            lib.contains(&format!("use {module} as _;")),
            "c19-bin/src/lib.rs must `use {module} as _;`"
        );
    }
}

#[test]
fn no_openssl_in_the_dependency_tree() {
    let lock = read(&root().join("Cargo.lock"));
    for banned in ["name = \"openssl-sys\"", "name = \"native-tls\""] {
        assert!(
            !lock.contains(banned),
            "Cargo.lock contains {banned}: use rustls"
        );
    }
}

#[test]
fn source_files_stay_focused() {
    const MAX_LINES: usize = 800;
    let mut files = Vec::new();
    for dir in ["crates", "c19-bin", "xtask"] {
        rust_files(&root().join(dir), &mut files);
    }
    for file in files {
        let lines = read(&file).lines().count();
        assert!(
            lines <= MAX_LINES,
            "{} has {lines} lines (max {MAX_LINES}): split it",
            file.display()
        );
    }
}

/// The crate-level modules that the code of module `module` (its file and its
/// sub-modules, tests left out) names through `crate::`.
fn crate_references(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let lines: Vec<&str> = code
        .lines()
        .map(str::trim_start)
        .take_while(|line| !line.starts_with("#[cfg(test)]"))
        .filter(|line| !line.starts_with("//"))
        .collect();
    let text = lines.join("\n");
    let mut rest = text.as_str();
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
        rest = &rest[at + "crate::".len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::b, c}`: the first segment of each top-level item.
            let mut depth = 0;
            let mut item_start = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ => {
                        if item_start && !name.is_empty() {
                            names.push(std::mem::take(&mut name));
                            item_start = false;
                        }
                    }
                }
            }
            if !name.is_empty() {
                names.push(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}

#[test]
fn modules_import_each_other_without_circles() {
    let mut circles = Vec::new();
    let mut dirs = crate_dirs();
    dirs.push(root().join("c19-bin"));
    for dir in dirs {
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        // Crate-level module -> the crate-level modules it names.
        let mut graph: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            Default::default();
        for file in files {
            let relative = file.strip_prefix(&src).unwrap();
            let first = relative.components().next().unwrap();
            let module = first
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            if ["lib", "main", "tests", "bin"].contains(&module.as_str()) {
                continue;
            }
            let references = crate_references(&read(&file));
            let edges = graph.entry(module.clone()).or_default();
            edges.extend(references.into_iter().filter(|name| *name != module));
        }
        let modules: Vec<String> = graph.keys().cloned().collect();
        for start in &modules {
            // A path back to `start` through modules that sort after it reports each
            // circle once, from its smallest module.
            let mut stack = vec![(start.clone(), vec![start.clone()])];
            let mut seen = std::collections::BTreeSet::new();
            while let Some((module, path)) = stack.pop() {
                for next in graph.get(&module).into_iter().flatten() {
                    if next == start {
                        circles.push(format!(
                            "{}: {} -> {start}",
                            dir.file_name().unwrap().to_string_lossy(),
                            path.join(" -> ")
                        ));
                    } else if next > start && graph.contains_key(next) && seen.insert(next.clone())
                    {
                        let mut longer = path.clone();
                        longer.push(next.clone());
                        stack.push((next.clone(), longer));
                    }
                }
            }
        }
    }
    assert!(
        circles.is_empty(),
        "modules that import each other (move what both need into a third module):\n{}",
        circles.join("\n")
    );
}

/// `impl <Trait> for <Type>` pairs in `code`, for the traits in `traits`.
fn impls<'a>(code: &'a str, traits: &[&str]) -> Vec<(String, &'a str)> {
    let mut found = Vec::new();
    for line in code.lines() {
        let line = line.trim_start();
        let Some(rest) = line.strip_prefix("impl ") else {
            continue;
        };
        let Some((tr, ty)) = rest.split_once(" for ") else {
            continue;
        };
        let tr = tr.rsplit("::").next().unwrap_or(tr).trim();
        if traits.contains(&tr) {
            let ty: String = ty
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push((ty, line));
        }
    }
    found
}

/// The attributes written just above `struct <name>` or `enum <name>` in `code`.
fn attributes_of(code: &str, name: &str) -> Option<String> {
    let lines: Vec<&str> = code.lines().collect();
    let at = lines.iter().position(|line| {
        let line = line.trim_start();
        let line = line
            .strip_prefix("pub(crate) ")
            .or_else(|| line.strip_prefix("pub "))
            .unwrap_or(line);
        [
            format!("struct {name} "),
            format!("struct {name}{{"),
            format!("struct {name};"),
            format!("struct {name}<"),
            format!("struct {name}("),
            format!("enum {name} "),
        ]
        .iter()
        .any(|start| line.starts_with(start.as_str()))
    })?;
    let mut attributes = Vec::new();
    for line in lines[..at].iter().rev() {
        let line = line.trim_start();
        if line.starts_with("#[") || line.starts_with("///") || line.starts_with("//") {
            attributes.push(line);
        } else {
            break;
        }
    }
    Some(attributes.join("\n"))
}

#[test]
fn live_layers_hold_no_configuration_and_configurations_refuse_unknown_fields() {
    const LIVE: [&str; 5] = ["State", "Agent", "Connection", "PeerProvider", "DataSeeder"];
    const CONFIG: [&str; 5] = [
        "StateConfig",
        "AgentConfig",
        "ConnectionConfig",
        "PeerProviderConfig",
        "DataSeederConfig",
    ];
    let mut problems = Vec::new();
    for dir in crate_dirs() {
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        let code: Vec<(PathBuf, String)> = files
            .into_iter()
            .map(|file| {
                let text = read(&file);
                // Test modules may do as they like.
                let text = text.split("\n#[cfg(test)]").next().unwrap_or("").to_owned();
                (file, text)
            })
            .collect();
        let definition = |name: &str| code.iter().find_map(|(_, text)| attributes_of(text, name));
        for (file, text) in &code {
            for (ty, line) in impls(text, &LIVE) {
                if let Some(attributes) = definition(&ty)
                    && (attributes.contains("Deserialize") || attributes.contains("#[serde"))
                {
                    problems.push(format!(
                        "{}: `{line}`: a live layer type is built by a config type and \
                         carries no serde attributes",
                        file.display()
                    ));
                }
            }
            for (ty, line) in impls(text, &CONFIG) {
                if let Some(attributes) = definition(&ty)
                    && !attributes.contains("deny_unknown_fields")
                {
                    problems.push(format!(
                        "{}: `{line}`: a layer's config type has #[serde(deny_unknown_fields)]",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
