//! The c19 agents of a rendered overlay: which containers run the c19 image, the
//! configuration each reads (its ConfigMap plus its `C19_SPEC__*` environment overrides),
//! and what that configuration must agree with: container ports, probes, labels, RBAC.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Container, PodSpec, PodTemplateSpec, Probe},
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use serde_json::Value;

use crate::render::Resources;

/// The image repository of c19 in the manifests.
pub const IMAGE: &str = "ghcr.io/c19-rs/c19";

/// Values the downward API would give, for resolving `fieldRef` variables.
const POD_IP: &str = "10.1.2.3";

/// A pod-creating resource.
#[derive(Debug)]
pub struct Workload<'a> {
    /// `Deployment`, `DaemonSet` or `StatefulSet`.
    pub kind: &'static str,
    /// Its name.
    pub name: &'a str,
    /// Its namespace, as rendered.
    pub namespace: Option<&'a str>,
    /// `spec.replicas` (`None` for a DaemonSet).
    pub replicas: Option<i32>,
    /// The pods it creates.
    pub template: &'a PodTemplateSpec,
}

impl<'a> Workload<'a> {
    /// Every workload of an overlay.
    pub fn all(resources: &'a Resources) -> Vec<Self> {
        let mut all = Vec::new();
        for item in &resources.deployments {
            let spec = &item.spec;
            all.push(Self::new(
                "Deployment",
                &item.metadata,
                spec.replicas.or(Some(1)),
                &spec.template,
            ));
        }
        for item in &resources.stateful_sets {
            let spec = &item.spec;
            all.push(Self::new(
                "StatefulSet",
                &item.metadata,
                spec.replicas.or(Some(1)),
                &spec.template,
            ));
        }
        for item in &resources.daemon_sets {
            all.push(Self::new(
                "DaemonSet",
                &item.metadata,
                None,
                &item.spec.template,
            ));
        }
        all
    }

    fn new(
        kind: &'static str,
        metadata: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        replicas: Option<i32>,
        template: &'a PodTemplateSpec,
    ) -> Self {
        Self {
            kind,
            name: metadata.name.as_deref().unwrap_or("<unnamed>"),
            namespace: metadata.namespace.as_deref(),
            replicas,
            template,
        }
    }

    /// `Deployment example-app`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }

    /// The pod template's labels.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let metadata = self.template.metadata.as_ref();
        metadata
            .and_then(|metadata| metadata.labels.clone())
            .unwrap_or_default()
    }

    /// The pod spec.
    pub fn pod(&self) -> &'a PodSpec {
        self.template.spec.as_ref().unwrap()
    }

    /// Every container (init containers included), with whether it is an init container.
    pub fn containers(&self) -> Vec<(&'a Container, bool)> {
        let pod = self.pod();
        let init = pod
            .init_containers
            .iter()
            .flatten()
            .map(|container| (container, true));
        pod.containers
            .iter()
            .map(|container| (container, false))
            .chain(init)
            .collect()
    }

    /// The containers that run the c19 image.
    pub fn agents(&self) -> Vec<(&'a Container, bool)> {
        self.containers()
            .into_iter()
            .filter(|(container, _)| {
                container
                    .image
                    .as_deref()
                    .is_some_and(|image| image.starts_with(&format!("{IMAGE}:")))
            })
            .collect()
    }
}

/// Whether `selector` selects pods with `labels` (an empty selector selects everything).
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_label = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let by_expression = selector
        .match_expressions
        .iter()
        .flatten()
        .all(|expression| {
            let value = labels.get(&expression.key);
            let values = expression.values.as_deref().unwrap_or_default();
            match expression.operator.as_str() {
                "In" => value.is_some_and(|value| values.contains(value)),
                "NotIn" => value.is_none_or(|value| !values.contains(value)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        });
    by_label && by_expression
}

/// The configuration one agent container runs with.
#[derive(Debug)]
pub struct AgentConfig {
    /// The file the container reads.
    pub path: String,
    /// The file's text, from the ConfigMap mounted there.
    pub yaml: String,
    /// The container's `C19_SPEC__*` variables, `fieldRef`s resolved.
    pub overrides: Vec<(String, String)>,
    /// The YAML with the overrides applied: what the agent will use.
    pub effective: Value,
}

/// Finds the configuration of `container` in `workload`: the path it reads (`--config`,
/// else `C19_CONFIG`, else the image's default), the ConfigMap key mounted at that path,
/// and the overrides in its environment.
pub fn config(
    resources: &Resources,
    workload: &Workload<'_>,
    container: &Container,
    image_default: &str,
) -> Result<AgentConfig, String> {
    let args = container.args.as_deref().unwrap_or_default();
    let from_args = args
        .iter()
        .enumerate()
        .find_map(|(index, arg)| match arg.as_str() {
            "--config" | "-c" => args.get(index + 1).cloned(),
            _ => arg.strip_prefix("--config=").map(str::to_owned),
        });
    let from_env = env_value(container, "C19_CONFIG");
    let path = from_args
        .or(from_env)
        .unwrap_or_else(|| image_default.to_owned());

    let pod = workload.pod();
    let (volume_name, key) = container
        .volume_mounts
        .iter()
        .flatten()
        .find_map(|mount| match &mount.sub_path {
            Some(sub_path) if mount.mount_path == path => {
                Some((mount.name.clone(), sub_path.clone()))
            }
            None => path
                .strip_prefix(&format!("{}/", mount.mount_path.trim_end_matches('/')))
                .filter(|rest| !rest.contains('/'))
                .map(|rest| (mount.name.clone(), rest.to_owned())),
            Some(_) => None,
        })
        .ok_or_else(|| format!("no volume is mounted at the config file {path}"))?;
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|volume| volume.name == volume_name)
        .ok_or_else(|| format!("volume `{volume_name}` is mounted but not declared"))?;
    let source = volume
        .config_map
        .as_ref()
        .ok_or_else(|| format!("volume `{volume_name}` holding {path} is not a ConfigMap"))?;
    let key = match &source.items {
        Some(items) => items
            .iter()
            .find(|item| item.path == key)
            .map(|item| item.key.clone())
            .ok_or_else(|| format!("ConfigMap volume `{volume_name}` has no item for {key}"))?,
        None => key,
    };
    let config_map = resources
        .config_maps
        .iter()
        .find(|map| {
            map.metadata.name.as_deref() == Some(&source.name)
                && map.metadata.namespace.as_deref() == workload.namespace
        })
        .ok_or_else(|| {
            format!(
                "ConfigMap `{}` (mounted for {path}) is not in the overlay",
                source.name
            )
        })?;
    let yaml = config_map
        .data
        .as_ref()
        .and_then(|data| data.get(&key))
        .ok_or_else(|| {
            format!(
                "ConfigMap `{}` has no key `{key}` (the file {path})",
                source.name
            )
        })?
        .clone();

    if container.env_from.is_some() {
        return Err(
            "envFrom may set C19_SPEC__ overrides this test cannot see: use env".to_owned(),
        );
    }
    let mut overrides = Vec::new();
    for var in container
        .env
        .iter()
        .flatten()
        .filter(|var| var.name.starts_with("C19_SPEC__"))
    {
        let value = match (
            &var.value,
            var.value_from
                .as_ref()
                .and_then(|from| from.field_ref.as_ref()),
        ) {
            (Some(value), _) => value.clone(),
            (None, Some(field)) => downward(workload, &field.field_path)?,
            _ => return Err(format!("cannot resolve the value of {}", var.name)),
        };
        overrides.push((var.name.clone(), value));
    }
    let mut effective: Value =
        serde_saphyr::from_str(&yaml).map_err(|error| format!("{path} is not YAML: {error}"))?;
    for (name, value) in &overrides {
        apply_override(&mut effective, name, value);
    }
    Ok(AgentConfig {
        path,
        yaml,
        overrides,
        effective,
    })
}

/// The literal value of an environment variable of `container`.
pub fn env_value(container: &Container, name: &str) -> Option<String> {
    container
        .env
        .iter()
        .flatten()
        .find(|var| var.name == name)
        .and_then(|var| var.value.clone())
}

/// The value the downward API gives `fieldPath` in a pod of `workload`.
fn downward(workload: &Workload<'_>, field_path: &str) -> Result<String, String> {
    match field_path {
        "metadata.name" => Ok(format!("{}-0", workload.name)),
        "metadata.namespace" => workload.namespace.map(str::to_owned).ok_or_else(|| {
            "metadata.namespace of a resource rendered without a namespace".to_owned()
        }),
        "status.podIP" => Ok(POD_IP.to_owned()),
        other => Err(format!("fieldRef {other} is not resolved by this test")),
    }
}

/// Sets the field named by `C19_SPEC__A__B` (`spec.a.b`) as c19's loader does: lower-cased
/// path, `__` between parts, numbers and booleans parsed.
fn apply_override(tree: &mut Value, name: &str, value: &str) {
    let path = name.strip_prefix("C19_").unwrap().to_ascii_lowercase();
    let mut node = tree;
    for part in path.split("__") {
        if !node.is_object() {
            *node = Value::Object(Default::default());
        }
        node = node
            .as_object_mut()
            .unwrap()
            .entry(part)
            .or_insert(Value::Null);
    }
    *node = serde_json::from_str::<Value>(value)
        .ok()
        .filter(|parsed| parsed.is_number() || parsed.is_boolean())
        .unwrap_or_else(|| Value::String(value.to_owned()));
}

/// The ports c19 listens on, by section of `spec`, with the defaults of the agent (3097),
/// the connection (4097) and telemetry (9097, unless `enabled: false`).
pub fn listeners(effective: &Value) -> BTreeMap<String, i64> {
    let mut ports = BTreeMap::from([
        ("agent".to_owned(), 3097),
        ("connection".to_owned(), 4097),
        ("telemetry".to_owned(), 9097),
    ]);
    for (section, config) in effective["spec"].as_object().into_iter().flatten() {
        if let Some(port) = number(&config["port"]) {
            ports.insert(section.clone(), port);
        }
    }
    let telemetry = &effective["spec"]["telemetry"]["enabled"];
    if *telemetry == Value::Bool(false) || *telemetry == "false" {
        ports.remove("telemetry");
    }
    ports
}

/// A number written as a number or a string.
pub fn number(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
}

/// The container port named `name`.
pub fn named_port(container: &Container, name: &str) -> Option<i32> {
    let ports = container.ports.iter().flatten();
    ports
        .clone()
        .find(|port| port.name.as_deref() == Some(name))
        .map(|port| port.container_port)
}

/// The container port that `port` (a number or a port name) designates in `container`.
pub fn resolve_port(container: &Container, port: &IntOrString) -> Option<i32> {
    match port {
        IntOrString::String(name) => named_port(container, name),
        IntOrString::Int(number) => container
            .ports
            .iter()
            .flatten()
            .any(|p| p.container_port == *number)
            .then_some(*number),
    }
}

/// The port a probe connects to; `Err` for probes c19's image cannot answer (exec: no shell).
pub fn probe_port(probe: &Probe) -> Result<IntOrString, String> {
    if let Some(tcp) = &probe.tcp_socket {
        Ok(tcp.port.clone())
    } else if let Some(http) = &probe.http_get {
        Ok(http.port.clone())
    } else if let Some(grpc) = &probe.grpc {
        Ok(IntOrString::Int(grpc.port))
    } else {
        Err("exec probes cannot run in the c19 image (no shell); probe a port".to_owned())
    }
}
