//! Facts about the repository that the deployment files must agree with, read from the
//! workspace and `c19-bin` manifests.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The text of a file below the root.
pub fn read(relative: &str) -> String {
    let path = root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// What the workspace manifests say.
#[derive(Debug)]
pub struct Workspace {
    /// `workspace.package.version`: the release the image tags carry.
    pub version: String,
    /// `workspace.package.rust-version`: the toolchain the image is built with.
    pub rust_version: String,
    /// `workspace.members`, as paths from the root.
    pub members: Vec<String>,
    /// The package that holds the binary (`c19-bin`).
    pub bin_package: String,
    /// The binary's target name (`c19`).
    pub bin_name: String,
}

impl Workspace {
    /// Reads the root `Cargo.toml` and `c19-bin/Cargo.toml`.
    pub fn load() -> Self {
        let root: toml::Table = read("Cargo.toml").parse().unwrap();
        let workspace = &root["workspace"];
        let package = &workspace["package"];
        let members = workspace["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|member| member.as_str().unwrap().to_owned())
            .collect();
        let bin: toml::Table = read("c19-bin/Cargo.toml").parse().unwrap();
        let bins = bin["bin"]
            .as_array()
            .expect("c19-bin declares its [[bin]] target");
        assert_eq!(bins.len(), 1, "c19-bin has one binary target");
        Self {
            version: package["version"].as_str().unwrap().to_owned(),
            rust_version: package["rust-version"].as_str().unwrap().to_owned(),
            members,
            bin_package: bin["package"]["name"].as_str().unwrap().to_owned(),
            bin_name: bins[0]["name"].as_str().unwrap().to_owned(),
        }
    }
}

/// Every file below `dir` (relative to the root), as root-relative paths with `/`,
/// skipping build outputs.
pub fn files_below(dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![root().join(dir)];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|name| name != "target") {
                    pending.push(path);
                }
            } else {
                let relative = path.strip_prefix(root()).unwrap();
                out.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}
