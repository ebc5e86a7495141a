//! `cargo xtask ci`: everything CI checks, in the order that fails fastest.

use std::path::Path;

use std::process::Command;

use crate::util::{output, root, run as step};

/// `cargo` as CI runs it: a build from scratch gains nothing from incremental
/// compilation, and line tables keep panics' backtraces readable at a fraction of the
/// cost of full debug info (less to compile, link and write).
fn cargo() -> Command {
    let mut command = crate::util::cargo();
    command
        .env("CARGO_INCREMENTAL", "0")
        .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only");
    command
}

/// The crates published to crates.io. They are packaged in one `cargo package` call,
/// so each is verified against the others as a local registry (none is published yet).
pub const PUBLISHED: &[&str] = &[
    "c19-core",
    "c19-tls",
    "c19-serve",
    "c19-state-default",
    "c19-connection-default",
    "c19-agent-http",
    "c19-peer-provider-static",
    "c19-peer-provider-k8s",
    "c19-peer-provider-dns",
    "c19-data-seeder-file",
    "c19-testkit",
    "c19-bin",
];

/// A `c19-bin` feature set and the kinds its binary must list per layer.
struct FeatureSet {
    features: &'static str,
    kinds: &'static [(&'static str, &'static str)],
}

/// Builds checked besides the default one: none, each layer alone, and the usual laptop set.
const FEATURE_SETS: &[FeatureSet] = &[
    FeatureSet {
        features: "",
        kinds: &[],
    },
    FeatureSet {
        features: "state-default",
        kinds: &[("state", "Default")],
    },
    FeatureSet {
        features: "agent-http",
        kinds: &[("agent", "Default")],
    },
    FeatureSet {
        features: "connection-default",
        kinds: &[("connection", "Default")],
    },
    FeatureSet {
        features: "peer-provider-static",
        kinds: &[("peer_provider", "Static")],
    },
    FeatureSet {
        features: "peer-provider-k8s",
        kinds: &[("peer_provider", "K8s")],
    },
    FeatureSet {
        features: "peer-provider-dns",
        kinds: &[("peer_provider", "Dns")],
    },
    FeatureSet {
        features: "data-seeder-file",
        kinds: &[("data_seeder", "File")],
    },
    FeatureSet {
        features: "state-default,agent-http,connection-default,peer-provider-static,data-seeder-file",
        kinds: &[
            ("state", "Default"),
            ("agent", "Default"),
            ("connection", "Default"),
            ("peer_provider", "Static"),
            ("data_seeder", "File"),
        ],
    },
];

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(unknown) = args.first() {
        return Err(format!("ci takes no arguments (got `{unknown}`)"));
    }
    step(
        "formatting",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    step(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    tests()?;
    for set in FEATURE_SETS {
        feature_build(set)?;
    }
    clear_unpacked_local_crates()?;
    clear_built_local_crates()?;
    let mut package = cargo();
    package.args(["package", "--allow-dirty"]);
    for krate in PUBLISHED {
        package.args(["-p", krate]);
    }
    step("packaging", &mut package)?;
    eprintln!("\nxtask ci: all checks passed");
    Ok(())
}

/// The workspace's tests. With cargo-nextest (on this project's machines) every test
/// binary runs side by side instead of one after the other, which is most of the time the
/// multi-process tests take; its profile in `.config/nextest.toml` ends a hung test.
/// nextest does not run doctests, so they run after it. Without nextest, `cargo test`.
fn tests() -> Result<(), String> {
    let nextest = cargo()
        .args(["nextest", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !nextest {
        eprintln!("\ncargo-nextest is not installed: the tests run with cargo test");
        return step(
            "tests",
            cargo().args(["test", "--workspace", "--no-fail-fast"]),
        );
    }
    step(
        "tests",
        cargo().args([
            "nextest",
            "run",
            "--workspace",
            "--no-fail-fast",
            "--profile",
            "ci",
        ]),
    )?;
    step(
        "doctests",
        cargo().args(["test", "--workspace", "--doc", "--no-fail-fast"]),
    )
}

/// Builds `c19` with only `set`'s features and checks that `c19 --kinds` lists exactly
/// the layers those features link (a linked-but-unnamed crate would list nothing).
fn feature_build(set: &FeatureSet) -> Result<(), String> {
    let label = if set.features.is_empty() {
        "no layers"
    } else {
        set.features
    };
    step(
        &format!("build c19 with {label}"),
        cargo().args([
            "build",
            "-p",
            "c19-bin",
            "--no-default-features",
            "--features",
            set.features,
        ]),
    )?;
    let binary = target_dir().join("debug").join("c19");
    let listing = output("c19 --kinds", Command::new(&binary).arg("--kinds"))?;
    for line in listing.lines() {
        let Some((layer, kinds)) = line.split_once(": ") else {
            continue;
        };
        let mut expected: Vec<&str> = set
            .kinds
            .iter()
            .filter(|(l, _)| *l == layer)
            .map(|(_, kind)| *kind)
            .collect();
        expected.sort_unstable();
        let expected = if expected.is_empty() {
            "(none)".to_owned()
        } else {
            expected.join(", ")
        };
        if kinds != expected {
            return Err(format!(
                "c19 built with [{label}] lists {layer} kinds `{kinds}`, expected `{expected}`"
            ));
        }
    }
    Ok(())
}

fn target_dir() -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => dir.into(),
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// Removes our crates' unpacked copies from cargo's local-registry source cache.
///
/// `cargo package` verifies each crate against the others through a temporary local
/// registry, and cargo reuses an unpacked copy of a crate with the same name and version
/// from an earlier run, so verification would build stale sources. Only directories of
/// local registries (named `-<hash>`) and only our crates are touched.
fn clear_unpacked_local_crates() -> Result<(), String> {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    let Some(sources) = home.map(|home| home.join("registry").join("src")) else {
        return Ok(());
    };
    let Ok(registries) = std::fs::read_dir(&sources) else {
        return Ok(());
    };
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(crates) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for krate in crates.flatten() {
            let name = krate.file_name().to_string_lossy().into_owned();
            if PUBLISHED
                .iter()
                .any(|published| name.starts_with(&format!("{published}-")))
            {
                std::fs::remove_dir_all(krate.path()).map_err(|error| {
                    format!("cannot remove {}: {error}", krate.path().display())
                })?;
            }
        }
    }
    Ok(())
}

/// Removes the build artifacts of our crates from the debug target directory.
///
/// The packaged copies of our crates come from a registry, and cargo does not rebuild a
/// registry crate whose name and version it has built before, so verification would link
/// an earlier build. Workspace builds of the same crates simply rebuild afterwards.
fn clear_built_local_crates() -> Result<(), String> {
    let debug = target_dir().join("debug");
    for (dir, prefix) in [(".fingerprint", ""), ("deps", "lib")] {
        let Ok(entries) = std::fs::read_dir(debug.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = PUBLISHED.iter().any(|krate| {
                let stem = if prefix.is_empty() {
                    krate.to_string()
                } else {
                    krate.replace('-', "_")
                };
                name.starts_with(&format!("{prefix}{stem}-"))
            });
            if ours {
                let path = entry.path();
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(|error| format!("cannot remove {}: {error}", path.display()))?;
            }
        }
    }
    Ok(())
}
