//! Mutual TLS between the agents of an overlay: the files `spec.connection.tls` names are
//! mounted read-only from a Secret under the keys cert-manager and `c19 certs issue`
//! write, the overlays that use `components/tls` turn it on for every agent, and when
//! cert-manager makes the Secret, its Certificate is issued by an Issuer of the overlay
//! for the `server_name` peers verify, for server and client auth.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Container;
use serde_json::Value;

use crate::{
    agents::{AgentConfig, Workload},
    render::{self, CERT_MANAGER_USAGES, Resources},
    repo,
};

/// The component that turns TLS on, relative to `configs/k8s/`.
pub const COMPONENT: &str = "components/tls";

/// The Secret key each file of `spec.connection.tls` must come from.
const KEYS: [(&str, &str); 3] = [("cert", "tls.crt"), ("key", "tls.key"), ("ca", "ca.crt")];

/// How one agent uses TLS.
#[derive(Debug)]
pub struct TlsUse {
    /// The agent's namespace.
    pub namespace: Option<String>,
    /// The Secrets its certificate files come from.
    pub secrets: BTreeSet<String>,
    /// `spec.connection.tls.server_name`.
    pub server_name: Option<String>,
}

/// Whether overlay `name` lists [`COMPONENT`] in its `components:`.
pub fn uses_component(name: &str) -> bool {
    let path = format!("{}/overlays/{name}/kustomization.yaml", render::K8S_DIR);
    let kustomization: Value = serde_saphyr::from_str(&repo::read(&path)).unwrap();
    kustomization["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|entry| entry.trim_end_matches('/') == format!("../../{COMPONENT}"))
}

/// The problems of one agent's TLS files, and how it uses TLS (`None`: it does not).
pub fn agent(
    workload: &Workload<'_>,
    container: &Container,
    config: &AgentConfig,
) -> (Vec<String>, Option<TlsUse>) {
    let tls = &config.effective["spec"]["connection"]["tls"];
    if !tls.is_object() {
        return (Vec::new(), None);
    }
    let mut problems = Vec::new();
    let mut secrets = BTreeSet::new();
    for (field, expected_key) in KEYS {
        let Some(path) = tls[field].as_str() else {
            problems.push(format!("spec.connection.tls.{field} is not set"));
            continue;
        };
        match secret_file(workload, container, path) {
            Err(problem) => problems.push(format!("tls.{field} {path}: {problem}")),
            Ok((secret, key)) => {
                if key != expected_key {
                    problems.push(format!(
                        "tls.{field} {path} is key `{key}` of Secret {secret}, but cert-manager and `c19 certs issue` write it as `{expected_key}`"
                    ));
                }
                secrets.insert(secret);
            }
        }
    }
    let server_name = tls["server_name"].as_str().map(str::to_owned);
    if server_name.is_none() {
        problems.push(
            "spec.connection.tls.server_name is not set: peers are dialled by pod IP, so they must be told the name their certificates carry".into(),
        );
    }
    let use_ = TlsUse {
        namespace: workload.namespace.map(str::to_owned),
        secrets,
        server_name,
    };
    (problems, Some(use_))
}

/// The Secret and key that the file `path` of `container` comes from.
fn secret_file(
    workload: &Workload<'_>,
    container: &Container,
    path: &str,
) -> Result<(String, String), String> {
    // The deepest mount holding the file, as in the container's file system.
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .filter(|mount| match &mount.sub_path {
            Some(_) => mount.mount_path == path,
            None => path.starts_with(&format!("{}/", mount.mount_path.trim_end_matches('/'))),
        })
        .max_by_key(|mount| mount.mount_path.len())
        .ok_or("no volume is mounted there")?;
    if mount.read_only != Some(true) {
        return Err(format!(
            "the mount of volume `{}` is not readOnly",
            mount.name
        ));
    }
    let volume = workload
        .pod()
        .volumes
        .iter()
        .flatten()
        .find(|volume| volume.name == mount.name)
        .ok_or_else(|| format!("volume `{}` is mounted but not declared", mount.name))?;
    let secret = volume
        .secret
        .as_ref()
        .ok_or_else(|| format!("volume `{}` is not a Secret", mount.name))?;
    if secret.optional == Some(true) {
        return Err(format!(
            "Secret volume `{}` is optional: the agent would start without its certificate",
            mount.name
        ));
    }
    let name = secret
        .secret_name
        .clone()
        .ok_or_else(|| format!("Secret volume `{}` names no secretName", mount.name))?;
    let file = match &mount.sub_path {
        Some(sub_path) => sub_path.clone(),
        None => path[mount.mount_path.trim_end_matches('/').len() + 1..].to_owned(),
    };
    let key = match &secret.items {
        Some(items) => items
            .iter()
            .find(|item| item.path == file)
            .map(|item| item.key.clone())
            .ok_or_else(|| format!("Secret volume `{}` has no item for {file}", mount.name))?,
        None if file.contains('/') => {
            return Err(format!("{file} is below a directory of Secret {name}"));
        }
        None => file,
    };
    Ok((name, key))
}

/// The cert-manager resources of `kind` in the overlay.
fn of_kind<'a>(resources: &'a Resources, kind: &'a str) -> impl Iterator<Item = &'a Value> {
    resources
        .cert_manager
        .iter()
        .filter(move |resource| resource["kind"] == kind)
}

fn describe(resource: &Value) -> String {
    format!(
        "{} {}",
        resource["kind"].as_str().unwrap_or_default(),
        resource["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// The cross-references of the cert-manager resources, and of the agents using TLS with
/// the Certificates that fill their Secrets.
pub fn cert_manager(resources: &Resources, uses: &[(String, TlsUse)]) -> Vec<String> {
    let mut problems = Vec::new();
    let namespace = |resource: &Value| {
        resource["metadata"]["namespace"]
            .as_str()
            .map(str::to_owned)
    };
    let name = |resource: &Value| {
        resource["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let certificates: Vec<&Value> = of_kind(resources, "Certificate").collect();

    for certificate in &certificates {
        let at = describe(certificate);
        let spec = &certificate["spec"];
        let reference = &spec["issuerRef"];
        let group = reference["group"].as_str().unwrap_or("cert-manager.io");
        let kind = reference["kind"].as_str().unwrap_or("Issuer");
        let issuer = reference["name"].as_str().unwrap_or_default();
        let found = group == "cert-manager.io"
            && of_kind(resources, kind).any(|candidate| {
                name(candidate) == issuer
                    && (kind == "ClusterIssuer" || namespace(candidate) == namespace(certificate))
            });
        if !found {
            problems.push(format!(
                "{at}: issuerRef names {group} {kind} `{issuer}`, which the overlay does not create"
            ));
        }
        if spec["secretName"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("{at}: no secretName"));
        }
        for usage in spec["usages"].as_array().into_iter().flatten() {
            if !usage
                .as_str()
                .is_some_and(|usage| CERT_MANAGER_USAGES.contains(&usage))
            {
                problems.push(format!("{at}: usage {usage} is not one cert-manager knows"));
            }
        }
        let same_secret = certificates.iter().filter(|other| {
            namespace(other) == namespace(certificate)
                && other["spec"]["secretName"] == spec["secretName"]
        });
        if same_secret.count() > 1 {
            problems.push(format!(
                "{at}: another Certificate writes Secret {}",
                spec["secretName"]
            ));
        }
    }
    for issuer in of_kind(resources, "Issuer").chain(of_kind(resources, "ClusterIssuer")) {
        let Some(secret) = issuer["spec"]["ca"]["secretName"].as_str() else {
            continue;
        };
        let made = certificates.iter().any(|certificate| {
            certificate["spec"]["secretName"] == secret
                && certificate["spec"]["isCA"] == true
                && (issuer["kind"] == "ClusterIssuer"
                    || namespace(certificate) == namespace(issuer))
        });
        if !made {
            problems.push(format!(
                "{}: signs with Secret {secret}, which no CA Certificate (isCA: true) of the overlay makes",
                describe(issuer)
            ));
        }
    }

    for (at, use_) in uses {
        for secret in &use_.secrets {
            let certificate = certificates.iter().find(|certificate| {
                certificate["spec"]["secretName"] == secret.as_str()
                    && namespace(certificate) == use_.namespace
            });
            let Some(certificate) = certificate else {
                if !certificates.is_empty() {
                    problems.push(format!(
                        "{at}: mounts Secret {secret}, which no Certificate of the overlay makes"
                    ));
                }
                continue;
            };
            let spec = &certificate["spec"];
            let what = describe(certificate);
            if spec["isCA"] == true {
                problems.push(format!(
                    "{at}: Secret {secret} holds the CA ({what}), not an agent certificate"
                ));
            }
            let names: Vec<&str> = spec["dnsNames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if let Some(server_name) = &use_.server_name
                && !names.contains(&server_name.as_str())
            {
                problems.push(format!(
                    "{at}: peers verify the name {server_name}, but {what} is for {names:?}"
                ));
            }
            let usages: Vec<&str> = spec["usages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for needed in ["server auth", "client auth"] {
                if !usages.contains(&needed) {
                    problems.push(format!(
                        "{at}: {what} lacks the usage `{needed}`: every agent is both a TLS server and a TLS client"
                    ));
                }
            }
            if spec["privateKey"]["rotationPolicy"] != "Always" {
                problems.push(format!(
                    "{at}: {what} keeps its private key when renewed (privateKey.rotationPolicy is not Always)"
                ));
            }
        }
    }
    problems
}
