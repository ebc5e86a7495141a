//! Renders the kustomize overlays under `configs/k8s/overlays/` with `kubectl kustomize`
//! and reads every resource into its k8s-openapi type.

use std::{
    collections::BTreeSet,
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use k8s_openapi::{
    api::{
        apps::v1::{DaemonSet, Deployment, StatefulSet},
        core::v1::{ConfigMap, Namespace, Service, ServiceAccount},
        networking::v1::NetworkPolicy,
        policy::v1::PodDisruptionBudget,
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    },
    serde::{Serialize, de::DeserializeOwned},
};
use serde_json::Value;

use crate::repo;

/// The kustomize tree, relative to the repository root.
pub const K8S_DIR: &str = "configs/k8s";

/// Every resource of one rendered overlay, by type.
#[derive(Debug, Default)]
pub struct Resources {
    /// Namespaces.
    pub namespaces: Vec<Namespace>,
    /// ServiceAccounts.
    pub service_accounts: Vec<ServiceAccount>,
    /// ConfigMaps.
    pub config_maps: Vec<ConfigMap>,
    /// Services.
    pub services: Vec<Service>,
    /// Deployments.
    pub deployments: Vec<Deployment>,
    /// DaemonSets.
    pub daemon_sets: Vec<DaemonSet>,
    /// StatefulSets.
    pub stateful_sets: Vec<StatefulSet>,
    /// PodDisruptionBudgets.
    pub disruption_budgets: Vec<PodDisruptionBudget>,
    /// NetworkPolicies.
    pub network_policies: Vec<NetworkPolicy>,
    /// Roles.
    pub roles: Vec<Role>,
    /// RoleBindings.
    pub role_bindings: Vec<RoleBinding>,
    /// ClusterRoles.
    pub cluster_roles: Vec<ClusterRole>,
    /// ClusterRoleBindings.
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    /// cert-manager resources (`Issuer`, `ClusterIssuer`, `Certificate`), which
    /// k8s-openapi has no types for, as JSON checked against [`CERT_MANAGER_FIELDS`].
    pub cert_manager: Vec<Value>,
}

/// The cert-manager API group and version the manifests use.
pub const CERT_MANAGER_API: &str = "cert-manager.io/v1";

/// The fields of the cert-manager kinds the manifests may hold, by kind and JSON path
/// (`spec.privateKey`): a misspelt field is an error, as for the typed resources. Paths
/// not listed (`spec.selfSigned`) are not looked into.
pub const CERT_MANAGER_FIELDS: &[(&str, &str, &[&str])] = &[
    ("Issuer", "", &["apiVersion", "kind", "metadata", "spec"]),
    (
        "Issuer",
        "spec",
        &["selfSigned", "ca", "acme", "vault", "venafi"],
    ),
    (
        "Issuer",
        "spec.ca",
        &[
            "secretName",
            "crlDistributionPoints",
            "ocspServers",
            "issuingCertificateURLs",
        ],
    ),
    (
        "ClusterIssuer",
        "",
        &["apiVersion", "kind", "metadata", "spec"],
    ),
    (
        "ClusterIssuer",
        "spec",
        &["selfSigned", "ca", "acme", "vault", "venafi"],
    ),
    (
        "Certificate",
        "",
        &["apiVersion", "kind", "metadata", "spec"],
    ),
    (
        "Certificate",
        "spec",
        &[
            "secretName",
            "secretTemplate",
            "issuerRef",
            "commonName",
            "dnsNames",
            "ipAddresses",
            "uris",
            "emailAddresses",
            "otherNames",
            "subject",
            "literalSubject",
            "duration",
            "renewBefore",
            "renewBeforePercentage",
            "usages",
            "privateKey",
            "isCA",
            "keystores",
            "revisionHistoryLimit",
            "additionalOutputFormats",
            "encodeUsagesInRequest",
            "nameConstraints",
            "signatureAlgorithm",
        ],
    ),
    (
        "Certificate",
        "spec.privateKey",
        &["algorithm", "size", "encoding", "rotationPolicy"],
    ),
    ("Certificate", "spec.issuerRef", &["name", "kind", "group"]),
];

/// The values cert-manager accepts in a Certificate's `spec.usages`.
pub const CERT_MANAGER_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// One rendered overlay.
#[derive(Debug)]
pub struct Overlay {
    /// The overlay's directory name (`sidecar`).
    pub name: String,
    /// What `kubectl kustomize` rendered.
    pub resources: Resources,
}

/// The overlays, rendered once per test process; `None` (after printing why) when no
/// kubectl with kustomize is available, so the caller skips its checks.
pub fn overlays(test: &str) -> Option<&'static [Overlay]> {
    static RENDERED: OnceLock<Result<Vec<Overlay>, String>> = OnceLock::new();
    let rendered = RENDERED.get_or_init(|| {
        let kubectl = kubectl()?;
        Ok(overlay_names()
            .iter()
            .map(|name| render(&kubectl, name))
            .collect())
    });
    match rendered {
        Ok(overlays) => Some(overlays),
        Err(reason) => {
            // Straight to stderr: the test harness hides captured output of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {reason}. Install kubectl (with kustomize built in, 1.24 or \
                 newer) or set KUBECTL to check the Kubernetes manifests."
            );
            None
        }
    }
}

/// The kubectl to render with: `$KUBECTL`, else `kubectl` from the PATH, provided its
/// built-in kustomize knows `components` (kustomize 3.7, kubectl 1.21; Debian's
/// `kubernetes-client` 1.20 is older).
fn kubectl() -> Result<PathBuf, String> {
    let program =
        std::env::var_os("KUBECTL").map_or_else(|| PathBuf::from("kubectl"), PathBuf::from);
    let output = Command::new(&program)
        .args(["version", "--client"])
        .output()
        .map_err(|error| format!("cannot run `{}`: {error}", program.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text
        .lines()
        .find_map(|line| line.strip_prefix("Kustomize Version: v"))
        .ok_or_else(|| {
            format!(
                "`{} version --client` names no built-in kustomize (kubectl 1.24 or newer has it)",
                program.display()
            )
        })?;
    let numbers: Vec<u32> = version
        .split(|c: char| !c.is_ascii_digit())
        .take(2)
        .map(|part| part.parse().unwrap_or(0))
        .collect();
    if numbers < vec![3, 7] {
        return Err(format!(
            "{}'s built-in kustomize is v{version}, older than the v3.7 that `components` need",
            program.display()
        ));
    }
    Ok(program)
}

/// The names of the directories under `configs/k8s/overlays/`, sorted.
pub fn overlay_names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(repo::root().join(K8S_DIR).join("overlays"))
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Renders one overlay and types every resource in it.
fn render(kubectl: &Path, name: &str) -> Overlay {
    let dir = repo::root().join(K8S_DIR).join("overlays").join(name);
    let output = Command::new(kubectl)
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "`kubectl kustomize {}` failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|error| panic!("overlay {name}: rendered YAML does not parse: {error}"));
    assert!(!documents.is_empty(), "overlay {name} renders nothing");
    let mut resources = Resources::default();
    for document in &documents {
        let what = format!(
            "overlay {name}: {} {}",
            document["kind"].as_str().unwrap_or("<no kind>"),
            document["metadata"]["name"].as_str().unwrap_or("<no name>")
        );
        let r = &mut resources;
        let typed = take(document, &what, &mut r.namespaces)
            || take(document, &what, &mut r.service_accounts)
            || take(document, &what, &mut r.config_maps)
            || take(document, &what, &mut r.services)
            || take(document, &what, &mut r.deployments)
            || take(document, &what, &mut r.daemon_sets)
            || take(document, &what, &mut r.stateful_sets)
            || take(document, &what, &mut r.disruption_budgets)
            || take(document, &what, &mut r.network_policies)
            || take(document, &what, &mut r.roles)
            || take(document, &what, &mut r.role_bindings)
            || take(document, &what, &mut r.cluster_roles)
            || take(document, &what, &mut r.cluster_role_bindings)
            || take_cert_manager(document, &what, &mut r.cert_manager);
        assert!(
            typed,
            "{what}: apiVersion {} kind {} is not a type this test knows; add it to render.rs",
            document["apiVersion"], document["kind"]
        );
    }
    Overlay {
        name: name.to_owned(),
        resources,
    }
}

/// Reads `document` as a `T` when its apiVersion and kind are `T`'s. Fails when a field
/// of the document is not in `T`'s schema: k8s-openapi ignores unknown fields, so a
/// misspelt or misplaced field would otherwise pass unnoticed (and be dropped by the API
/// server).
fn take<T>(document: &Value, what: &str, into: &mut Vec<T>) -> bool
where
    T: k8s_openapi::Resource + DeserializeOwned + Serialize,
{
    if document["apiVersion"] != T::API_VERSION || document["kind"] != T::KIND {
        return false;
    }
    let typed: T = serde_json::from_value(document.clone())
        .unwrap_or_else(|error| panic!("{what} is not a valid {}: {error}", T::KIND));
    let round_trip = serde_json::to_value(&typed).unwrap();
    if let Some(field) = dropped_field(document, &round_trip, "") {
        panic!(
            "{what}: field `{field}` is not part of the {} schema (misspelt or misplaced?)",
            T::KIND
        );
    }
    into.push(typed);
    true
}

/// Keeps `document` when it is a cert-manager kind whose fields are all known.
fn take_cert_manager(document: &Value, what: &str, into: &mut Vec<Value>) -> bool {
    let kind = document["kind"].as_str().unwrap_or_default();
    if document["apiVersion"] != CERT_MANAGER_API
        || !CERT_MANAGER_FIELDS.iter().any(|(k, _, _)| *k == kind)
    {
        return false;
    }
    for (_, path, allowed) in CERT_MANAGER_FIELDS.iter().filter(|(k, _, _)| *k == kind) {
        let node = path
            .split('.')
            .filter(|part| !part.is_empty())
            .fold(document, |node, part| &node[part]);
        for field in node.as_object().into_iter().flatten().map(|(key, _)| key) {
            assert!(
                allowed.contains(&field.as_str()),
                "{what}: field `{path}.{field}` is not part of the cert-manager {kind} schema (misspelt or misplaced?)"
            );
        }
    }
    assert!(
        document["metadata"]["name"].is_string(),
        "{what}: no metadata.name"
    );
    into.push(document.clone());
    true
}

/// The first field of `source` that `typed` (its typed round trip) lost.
fn dropped_field(source: &Value, typed: &Value, path: &str) -> Option<String> {
    match (source, typed) {
        (Value::Object(source), Value::Object(typed)) => source.iter().find_map(|(key, value)| {
            let path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match typed.get(key) {
                None if !value.is_null() => Some(path),
                None => None,
                Some(typed) => dropped_field(value, typed, &path),
            }
        }),
        (Value::Array(source), Value::Array(typed)) if source.len() == typed.len() => source
            .iter()
            .zip(typed)
            .enumerate()
            .find_map(|(index, (source, typed))| {
                dropped_field(source, typed, &format!("{path}[{index}]"))
            }),
        (Value::Array(_), _) => Some(path.to_owned()),
        _ => None,
    }
}

/// Every kustomization directory under `configs/k8s/` (relative to it) that no overlay
/// reaches through `resources:` or `components:`: files the rendering checks never see.
pub fn unreachable_kustomizations() -> BTreeSet<String> {
    let k8s = repo::root().join(K8S_DIR);
    let mut all = BTreeSet::new();
    for file in repo::files_below(K8S_DIR) {
        if let Some(dir) = file.strip_suffix("/kustomization.yaml") {
            all.insert(
                dir.trim_start_matches(K8S_DIR)
                    .trim_start_matches('/')
                    .to_owned(),
            );
        }
    }
    let mut pending: Vec<PathBuf> = overlay_names()
        .iter()
        .map(|name| k8s.join("overlays").join(name))
        .collect();
    while let Some(dir) = pending.pop() {
        let relative = relative_to(&dir, &k8s);
        if !all.remove(&relative) {
            continue;
        }
        let text = fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
        let kustomization: Value = serde_saphyr::from_str(&text).unwrap();
        for field in ["resources", "components"] {
            for entry in kustomization[field].as_array().into_iter().flatten() {
                let target = dir.join(entry.as_str().unwrap());
                if target.join("kustomization.yaml").is_file() {
                    pending.push(target);
                }
            }
        }
    }
    all
}

/// `dir` relative to `base`, with `..` resolved, `/`-separated.
fn relative_to(dir: &Path, base: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for component in dir.strip_prefix(base).unwrap().components() {
        match component {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}
