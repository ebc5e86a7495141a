//! The deployment files: the image (`c19-bin/Dockerfile`, `.dockerignore`) and the
//! Kubernetes kustomize tree (`configs/k8s/`).
//!
//! No Docker engine runs here, so the image is checked by reading its Dockerfile against
//! the workspace. Every overlay is rendered with `kubectl kustomize` (these tests print why
//! and pass when no kubectl is found; set `KUBECTL` to pick one), every resource is read
//! into its k8s-openapi type, and the references between them are checked: config, ports,
//! probes, labels, ServiceAccount and RBAC, and for the overlays with mutual TLS the
//! certificate Secret and cert-manager resources (read as JSON: k8s-openapi has no types
//! for them). Each c19 configuration must pass `c19 --check`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "deploy/agents.rs"]
mod agents;
#[path = "deploy/checks.rs"]
mod checks;
#[path = "deploy/dockerfile.rs"]
mod dockerfile;
#[path = "deploy/render.rs"]
mod render;
#[path = "deploy/repo.rs"]
mod repo;
#[path = "deploy/tls.rs"]
mod tls;
#[path = "deploy/traffic.rs"]
mod traffic;
#[path = "deploy/volumes.rs"]
mod volumes;

use std::{collections::BTreeSet, path::Path, process::Command};

use agents::Workload;
use serde_json::Value;

const DOCKERFILE: &str = "c19-bin/Dockerfile";
/// Where the image has the binary.
const BINARY_PATH: &str = "/usr/local/bin/c19";
/// Where the image reads its configuration.
const CONFIG_PATH: &str = "/etc/c19/config.yaml";

/// The final stage of the Dockerfile, as the manifests see the image.
fn image() -> checks::Image {
    let stages = dockerfile::parse(&repo::read(DOCKERFILE));
    let run = stages.last().unwrap();
    let user = run.last("USER").expect("the image sets a USER");
    let uid = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("USER {user} is not numeric"));
    let config_path = run
        .env()
        .get("C19_CONFIG")
        .cloned()
        .expect("the image sets C19_CONFIG");
    checks::Image {
        tag: repo::Workspace::load().version,
        uid,
        config_path,
    }
}

/// The ports of the base configuration (configs/k8s/base/config.yaml).
fn base_config_ports() -> BTreeSet<i64> {
    let config: Value =
        serde_saphyr::from_str(&repo::read("configs/k8s/base/config.yaml")).unwrap();
    agents::listeners(&config).into_values().collect()
}

#[test]
fn the_dockerfile_builds_the_c19_binary_into_a_minimal_non_root_image() {
    let workspace = repo::Workspace::load();
    let stages = dockerfile::parse(&repo::read(DOCKERFILE));
    assert!(
        stages.len() >= 2,
        "the Dockerfile must be multi-stage (build, then run)"
    );
    let (build, run) = (&stages[0], stages.last().unwrap());

    let (toolchain, tag) = build
        .image
        .split_once(':')
        .expect("the build image has a tag");
    assert_eq!(
        toolchain, "rust",
        "the build stage uses the Rust toolchain image"
    );
    let rust = &workspace.rust_version;
    assert!(
        tag == rust || tag.starts_with(&format!("{rust}-")) || tag.starts_with(&format!("{rust}.")),
        "the build image `{}` must be the workspace's rust-version {rust}",
        build.image
    );
    assert!(
        !run.image.starts_with("rust"),
        "the image must run on a minimal base, not {}",
        run.image
    );

    assert!(
        build
            .all("COPY")
            .iter()
            .any(|args| args.split_whitespace().next() == Some(".")),
        "the build stage copies the workspace (the context that .dockerignore filters)"
    );
    let cargo = build
        .all("RUN")
        .into_iter()
        .find(|args| args.contains("cargo build"))
        .expect("a cargo build step");
    let words: Vec<&str> = cargo.split_whitespace().collect();
    for (flag, value) in [
        ("-p", workspace.bin_package.as_str()),
        ("--bin", workspace.bin_name.as_str()),
    ] {
        assert!(
            words.windows(2).any(|pair| pair == [flag, value]),
            "the build must run with `{flag} {value}`: {cargo}"
        );
    }
    for flag in ["--release", "--locked"] {
        assert!(
            words.contains(&flag),
            "the build must run with {flag}: {cargo}"
        );
    }
    let built = format!("target/release/{}", workspace.bin_name);
    assert!(
        cargo.contains(&built),
        "the build step must take the binary from {built}: {cargo}"
    );

    let copy = run
        .all("COPY")
        .into_iter()
        .find(|args| args.starts_with("--from="))
        .expect("COPY --from the build stage");
    let copy: Vec<&str> = copy.split_whitespace().collect();
    let from = copy[0].trim_start_matches("--from=");
    assert!(
        build.name.as_deref() == Some(from) || from == "0",
        "COPY --from={from} must name the build stage"
    );
    let (source, destination) = (copy[1], copy[2]);
    assert!(
        cargo.contains(source),
        "the build step must produce {source}, which the final stage copies"
    );
    assert_eq!(
        Path::new(source).file_name().unwrap().to_str(),
        Some(workspace.bin_name.as_str()),
        "the copied binary must be the bin target {}",
        workspace.bin_name
    );
    assert_eq!(destination, BINARY_PATH);
    let entrypoint: Vec<String> =
        serde_json::from_str(run.last("ENTRYPOINT").expect("an ENTRYPOINT"))
            .expect("ENTRYPOINT in exec form, so the agent is PID 1 and gets SIGTERM");
    assert_eq!(entrypoint.first().map(String::as_str), Some(BINARY_PATH));

    assert_eq!(
        image().config_path,
        CONFIG_PATH,
        "the image reads its config from {CONFIG_PATH}"
    );
    let uid = image().uid;
    assert_ne!(uid, 0, "the image must not run as root");

    let exposed: BTreeSet<i64> = run
        .all("EXPOSE")
        .iter()
        .flat_map(|args| args.split_whitespace())
        .map(|port| port.trim_end_matches("/tcp").parse().unwrap())
        .collect();
    assert!(
        exposed.is_superset(&BTreeSet::from([3097, 4097])),
        "the image exposes the agent and peer ports"
    );
    assert_eq!(
        exposed,
        base_config_ports(),
        "EXPOSE and configs/k8s/base/config.yaml disagree"
    );
}

#[test]
fn the_build_context_holds_the_workspace_sources_and_no_build_outputs() {
    let ignore = dockerfile::Ignore::parse(&repo::read(".dockerignore"));
    let mut needed = vec!["Cargo.toml".to_owned(), "Cargo.lock".to_owned()];
    for member in repo::Workspace::load().members {
        needed.extend(repo::files_below(&member));
    }
    for path in &needed {
        assert!(
            !ignore.excludes(path),
            ".dockerignore leaves out {path}, which the build needs"
        );
    }
    for path in [
        "target/release/c19",
        "target-deploy/debug/c19",
        "crates/c19-core/target/x",
        ".git/HEAD",
    ] {
        assert!(ignore.excludes(path), ".dockerignore must leave out {path}");
    }
}

#[test]
fn every_kustomization_is_reached_from_an_overlay() {
    let names: BTreeSet<String> = render::overlay_names().into_iter().collect();
    for strategy in [
        "sidecar",
        "daemonset",
        "standalone",
        "hybrid",
        "all-namespaces",
    ] {
        assert!(
            names.contains(strategy),
            "configs/k8s/overlays/{strategy} is missing"
        );
    }
    let unreachable = render::unreachable_kustomizations();
    assert!(
        unreachable.is_empty(),
        "no overlay uses (so no test renders) {unreachable:?}"
    );
}

#[test]
fn every_overlay_renders_typed_resources_for_its_strategy() {
    let Some(overlays) = render::overlays("every_overlay_renders_typed_resources_for_its_strategy")
    else {
        return;
    };
    for overlay in overlays {
        let r = &overlay.resources;
        let name = &overlay.name;
        // One namespace, created by the overlay, holding every namespaced resource.
        assert_eq!(
            r.namespaces.len(),
            1,
            "overlay {name} creates one Namespace"
        );
        let namespace = r.namespaces[0].metadata.name.as_deref();
        let namespaced = r
            .service_accounts
            .iter()
            .map(|x| &x.metadata)
            .chain(r.config_maps.iter().map(|x| &x.metadata))
            .chain(r.services.iter().map(|x| &x.metadata))
            .chain(r.deployments.iter().map(|x| &x.metadata))
            .chain(r.daemon_sets.iter().map(|x| &x.metadata))
            .chain(r.stateful_sets.iter().map(|x| &x.metadata))
            .chain(r.disruption_budgets.iter().map(|x| &x.metadata))
            .chain(r.network_policies.iter().map(|x| &x.metadata))
            .chain(r.roles.iter().map(|x| &x.metadata))
            .chain(r.role_bindings.iter().map(|x| &x.metadata));
        for metadata in namespaced {
            assert_eq!(
                metadata.namespace.as_deref(),
                namespace,
                "overlay {name}: {:?} is outside its namespace",
                metadata.name
            );
        }
        for resource in r
            .cert_manager
            .iter()
            .filter(|r| r["kind"] != "ClusterIssuer")
        {
            assert_eq!(
                resource["metadata"]["namespace"].as_str(),
                namespace,
                "overlay {name}: {} {} is outside its namespace",
                resource["kind"],
                resource["metadata"]["name"]
            );
        }

        let workloads = Workload::all(r);
        let sidecar = workloads.iter().any(|w| {
            w.agents().iter().any(|(_, init)| *init) && w.containers().len() > w.agents().len()
        });
        let daemonset = workloads
            .iter()
            .any(|w| w.kind == "DaemonSet" && !w.agents().is_empty());
        let standalone = workloads.iter().any(|w| {
            w.kind != "DaemonSet"
                && !w.agents().is_empty()
                && w.containers().len() == w.agents().len()
                && r.services
                    .iter()
                    .any(|s| s.metadata.name.as_deref() == Some(w.name))
        });
        let expected = match name.as_str() {
            "sidecar" | "all-namespaces" => (true, false, false),
            "daemonset" | "daemonset-persistent" => (false, true, false),
            "standalone" | "standalone-tls" | "standalone-persistent" | "standalone-dns" => {
                (false, false, true)
            }
            "hybrid" => (true, false, true),
            other => panic!("overlay {other}: add its strategy to this test"),
        };
        assert_eq!(
            (sidecar, daemonset, standalone),
            expected,
            "overlay {name}: (sidecar, daemonset, standalone) workloads"
        );
    }
}

#[test]
fn every_agent_pod_agrees_with_its_config_rbac_and_image() {
    let Some(overlays) = render::overlays("every_agent_pod_agrees_with_its_config_rbac_and_image")
    else {
        return;
    };
    let image = image();
    let mut problems = Vec::new();
    let mut namespaces_seen = BTreeSet::new();
    for overlay in overlays {
        let resources = &overlay.resources;
        let mut mesh = Vec::new();
        let mut kinds = BTreeSet::new();
        let mut agents_found = 0;
        for workload in Workload::all(resources) {
            for (container, init) in workload.agents() {
                agents_found += 1;
                let at = format!(
                    "overlay {}: {} container {}",
                    overlay.name,
                    workload.describe(),
                    container.name
                );
                let config =
                    match agents::config(resources, &workload, container, &image.config_path) {
                        Ok(config) => config,
                        Err(error) => {
                            problems.push(format!("{at}: {error}"));
                            continue;
                        }
                    };
                let found = checks::agent(resources, &workload, container, init, &config, &image);
                problems.extend(found.into_iter().map(|problem| format!("{at}: {problem}")));
                let provider = &config.effective["spec"]["connection"]["peer_provider"];
                namespaces_seen.insert(provider["namespace"] == ":all");
                kinds.insert(provider["kind"].as_str().unwrap_or_default().to_owned());
                // The pods a provider finds: the K8s selector, or the selector of the
                // Services a Dns provider's names resolve to.
                let selector = if provider["kind"] == "Dns" {
                    let names = provider["names"].as_array().cloned().unwrap_or_default();
                    let selectors: Vec<Value> = names
                        .iter()
                        .filter_map(Value::as_str)
                        .filter_map(|name| checks::dns_service(resources, &workload, name).ok())
                        .filter_map(|service| service.spec.as_ref()?.selector.clone())
                        .map(|selector| serde_json::to_value(selector).unwrap())
                        .collect();
                    // One Service of the overlay is how a Dns mesh is written here.
                    selectors.first().cloned().unwrap_or(Value::Null)
                } else {
                    provider["selector"].clone()
                };
                mesh.push((at, workload.labels(), selector));
            }
        }
        if agents_found == 0 {
            problems.push(format!("overlay {}: runs no c19 container", overlay.name));
        }
        // The agents of an overlay form one mesh: each finds all the others.
        for (at, _, selector) in &mesh {
            for (other, labels, _) in &mesh {
                let all = selector.as_object().into_iter().flatten();
                if !all
                    .clone()
                    .all(|(key, value)| labels.get(key).map(String::as_str) == value.as_str())
                {
                    problems.push(format!("{at}: its peer selector does not find {other}"));
                }
            }
        }
        // A mesh that finds its peers through DNS needs no identity for the API at all.
        if kinds.len() == 1 && kinds.contains("Dns") {
            let rbac = resources.service_accounts.len()
                + resources.roles.len()
                + resources.role_bindings.len()
                + resources.cluster_roles.len()
                + resources.cluster_role_bindings.len();
            if rbac > 0 {
                problems.push(format!(
                    "overlay {}: its agents all use the Dns provider, yet it creates {rbac} \
                     ServiceAccounts, Roles or bindings",
                    overlay.name
                ));
            }
        }
        let at = |problem: String| format!("overlay {}: {problem}", overlay.name);
        problems.extend(checks::binding_subjects(resources).into_iter().map(at));
        problems.extend(traffic::services(resources).into_iter().map(at));
        problems.extend(checks::disruption_budgets(resources).into_iter().map(at));
        problems.extend(traffic::network_policies(resources).into_iter().map(at));
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert_eq!(
        namespaces_seen,
        BTreeSet::from([false, true]),
        "overlays cover both namespaced and \":all\" meshes"
    );
}

#[test]
fn every_tls_agent_reads_its_certificates_from_the_secret_cert_manager_fills() {
    let Some(overlays) = render::overlays(
        "every_tls_agent_reads_its_certificates_from_the_secret_cert_manager_fills",
    ) else {
        return;
    };
    let image = image();
    let mut problems = Vec::new();
    let mut tls_overlays = BTreeSet::new();
    for overlay in overlays {
        let resources = &overlay.resources;
        let mut uses = Vec::new();
        let mut plain = Vec::new();
        for workload in Workload::all(resources) {
            for (container, _) in workload.agents() {
                let at = format!("{} container {}", workload.describe(), container.name);
                let Ok(config) =
                    agents::config(resources, &workload, container, &image.config_path)
                else {
                    continue; // reported by every_agent_pod_agrees_with_its_config_rbac_and_image
                };
                let (found, use_) = tls::agent(&workload, container, &config);
                problems.extend(
                    found
                        .into_iter()
                        .map(|problem| format!("overlay {}: {at}: {problem}", overlay.name)),
                );
                match use_ {
                    Some(use_) => uses.push((at, use_)),
                    None => plain.push(at),
                }
            }
        }
        if tls::uses_component(&overlay.name) && !plain.is_empty() {
            problems.push(format!(
                "overlay {} uses {} but these agents have no spec.connection.tls: {plain:?}",
                overlay.name,
                tls::COMPONENT
            ));
        } else if !uses.is_empty() && !plain.is_empty() {
            problems.push(format!(
                "overlay {}: one mesh of TLS and plain agents, which cannot talk: {plain:?}",
                overlay.name
            ));
        }
        if !uses.is_empty() {
            tls_overlays.insert(overlay.name.as_str());
        }
        problems.extend(
            tls::cert_manager(resources, &uses)
                .into_iter()
                .map(|problem| format!("overlay {}: {problem}", overlay.name)),
        );
    }
    assert!(
        tls_overlays.contains("standalone-tls"),
        "no overlay runs agents with TLS: {tls_overlays:?}"
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_persisting_agent_keeps_its_database_on_a_volume_that_outlives_the_pod() {
    let Some(overlays) = render::overlays(
        "every_persisting_agent_keeps_its_database_on_a_volume_that_outlives_the_pod",
    ) else {
        return;
    };
    let image = image();
    let mut problems = Vec::new();
    let mut persisting = BTreeSet::new();
    for overlay in overlays {
        let resources = &overlay.resources;
        for workload in Workload::all(resources) {
            for (container, _) in workload.agents() {
                let Ok(config) =
                    agents::config(resources, &workload, container, &image.config_path)
                else {
                    continue; // reported by every_agent_pod_agrees_with_its_config_rbac_and_image
                };
                let (found, storage) =
                    volumes::agent(resources, &workload, container, &config.effective, &image);
                let at = format!("overlay {}: {}", overlay.name, workload.describe());
                problems.extend(found.into_iter().map(|problem| format!("{at}: {problem}")));
                if let Some(storage) = storage {
                    persisting.insert((overlay.name.as_str(), workload.kind, storage));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // Persistence is opt-in: only the overlays made for it turn it on.
    assert_eq!(
        persisting,
        BTreeSet::from([
            (
                "daemonset-persistent",
                "DaemonSet",
                volumes::Storage::HostPath
            ),
            (
                "standalone-persistent",
                "StatefulSet",
                volumes::Storage::Claim
            ),
        ])
    );
}

/// For a configuration with peer TLS, the `C19_SPEC__CONNECTION__TLS__*` overrides that
/// point `cert`, `key` and `ca` at files of the same names made by `c19 certs` in `dir`
/// (a CA and a certificate for the configured `server_name`).
fn tls_stand_ins(binary: &Path, effective: &Value, dir: &Path) -> Vec<(String, String)> {
    let tls = &effective["spec"]["connection"]["tls"];
    if !tls.is_object() {
        return Vec::new();
    }
    let name = tls["server_name"].as_str().unwrap_or("c19");
    let (ca, out) = (dir.join("ca"), dir.join(format!("tls-{name}")));
    let run = |args: &[&std::ffi::OsStr]| {
        let output = Command::new(binary)
            .arg("certs")
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "c19 certs {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    if !ca.join("ca.crt").exists() {
        run(&["ca".as_ref(), "--out".as_ref(), ca.as_os_str()]);
    }
    if !out.join("tls.crt").exists() {
        run(&[
            "issue".as_ref(),
            "--ca".as_ref(),
            ca.as_os_str(),
            "--name".as_ref(),
            name.as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ]);
    }
    ["cert", "key", "ca"]
        .into_iter()
        .filter_map(|field| {
            let file = Path::new(tls[field].as_str()?).file_name()?.to_owned();
            Some((
                format!("C19_SPEC__CONNECTION__TLS__{}", field.to_uppercase()),
                out.join(file).to_string_lossy().into_owned(),
            ))
        })
        .collect()
}

#[test]
fn every_agent_config_passes_c19_check() {
    let Some(overlays) = render::overlays("every_agent_config_passes_c19_check") else {
        return;
    };
    let binary = c19_tests::agent_bin!();
    let image = image();
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut problems = Vec::new();
    for overlay in overlays {
        for workload in Workload::all(&overlay.resources) {
            for (container, _) in workload.agents() {
                let at = format!(
                    "overlay {}: {} container {}",
                    overlay.name,
                    workload.describe(),
                    container.name
                );
                let config =
                    agents::config(&overlay.resources, &workload, container, &image.config_path)
                        .unwrap();
                let file = dir.path().join("config.yaml");
                std::fs::write(&file, &config.yaml).unwrap();
                let mut command = Command::new(&binary);
                command.arg("--config").arg(&file).arg("--check");
                for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("C19_")) {
                    command.env_remove(name);
                }
                // `--check` reads the TLS files: stand in for the Secret's mount with
                // files `c19 certs` makes, at the same names.
                let tls_paths = tls_stand_ins(&binary, &config.effective, dir.path());
                let output = command
                    .envs(config.overrides.iter().cloned())
                    .envs(tls_paths.iter().cloned())
                    .output()
                    .unwrap();
                checked += 1;
                if !output.status.success() {
                    let error = String::from_utf8_lossy(&output.stderr);
                    problems.push(format!(
                        "{at}: `c19 --check` with {:?} failed: {}",
                        config.overrides,
                        error.trim()
                    ));
                    continue;
                }
                let effective: Value = serde_json::from_slice(&output.stdout).unwrap();
                let (ours, theirs) = (
                    agents::listeners(&config.effective),
                    agents::listeners(&effective),
                );
                if ours != theirs {
                    problems.push(format!(
                        "{at}: c19 listens on {theirs:?}, the manifests expect {ours:?}"
                    ));
                }
                let path = |tree: &Value, field: &str| {
                    tree["spec"]["connection"]["peer_provider"][field].clone()
                };
                for field in ["kind", "selector", "namespace"] {
                    let (ours, theirs) = (path(&config.effective, field), path(&effective, field));
                    if ours != theirs {
                        problems.push(format!("{at}: c19 uses peer_provider.{field} {theirs}, the manifests expect {ours}"));
                    }
                }
                // The TLS settings the manifests give, as c19 read them.
                let tls = |tree: &Value| tree["spec"]["connection"]["tls"].clone();
                for (field, ours) in tls(&config.effective).as_object().into_iter().flatten() {
                    let mut theirs = tls(&effective)[field].clone();
                    if let Some((_, stand_in)) = tls_paths
                        .iter()
                        .find(|(_, path)| Some(path.as_str()) == theirs.as_str())
                    {
                        // Compare where the manifests put the file, not the stand-in.
                        let name = Path::new(stand_in).file_name().unwrap().to_string_lossy();
                        let manifest = ours.as_str().unwrap_or_default();
                        theirs = if manifest.ends_with(&format!("/{name}")) {
                            ours.clone()
                        } else {
                            Value::String(stand_in.clone())
                        };
                    }
                    let theirs = &theirs;
                    if ours != theirs {
                        problems.push(format!(
                            "{at}: c19 uses tls.{field} {theirs}, the manifests expect {ours}"
                        ));
                    }
                }
            }
        }
    }
    assert!(checked > 0, "no c19 container found in the overlays");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
