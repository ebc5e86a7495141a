//! The cross-references of a rendered overlay, each check returning the problems it found
//! as sentences that name the resource, so one run lists everything that is wrong.

use k8s_openapi::api::{core::v1::Container, rbac::v1::PolicyRule};

use crate::{
    agents::{self, AgentConfig, IMAGE, Workload},
    render::Resources,
    traffic,
};

/// What the image says, for the manifests to agree with.
#[derive(Debug)]
pub struct Image {
    /// The tag the manifests must use (the workspace version).
    pub tag: String,
    /// The uid the image runs as.
    pub uid: i64,
    /// The config file the image reads when given none.
    pub config_path: String,
}

/// Everything wrong with one c19 container and the configuration it runs with.
pub fn agent(
    resources: &Resources,
    workload: &Workload<'_>,
    container: &Container,
    init: bool,
    config: &AgentConfig,
    image: &Image,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut problem = |text: String| problems.push(text);
    let spec = &config.effective["spec"];

    let expected_image = format!("{IMAGE}:{}", image.tag);
    if container.image.as_deref() != Some(expected_image.as_str()) {
        problem(format!(
            "image is {:?}, expected {expected_image} (the workspace version)",
            container.image
        ));
    }
    if init && container.restart_policy.as_deref() != Some("Always") {
        problem("an init container without `restartPolicy: Always` would block the pod: c19 never exits".into());
    }
    for (layer, kind) in [("agent", "Default"), ("connection", "Default")] {
        if spec[layer]["kind"] != kind {
            problem(format!(
                "spec.{layer}.kind is {}, expected {kind}",
                spec[layer]["kind"]
            ));
        }
    }

    // Ports: the named container ports are the ports c19 listens on, and nothing else.
    let listeners = agents::listeners(&config.effective);
    for (name, section) in [
        ("c19-agent", "agent"),
        ("c19-peer", "connection"),
        ("c19-telemetry", "telemetry"),
    ] {
        let declared = agents::named_port(container, name).map(i64::from);
        if declared != listeners.get(section).copied() {
            problem(format!(
                "container port `{name}` is {declared:?}, but c19 listens on {:?}",
                listeners.get(section)
            ));
        }
    }
    for port in container.ports.iter().flatten() {
        if !listeners
            .values()
            .any(|listener| *listener == i64::from(port.container_port))
        {
            problem(format!(
                "container port {} is not a port c19 listens on ({listeners:?})",
                port.container_port
            ));
        }
    }
    // Peers dial the peer port and the kubelet and Prometheus the telemetry port on the pod
    // IP; the agent port may stay on loopback when only the pod's own app uses it.
    for (layer, port) in &listeners {
        let address = spec[layer.as_str()]["address"]
            .as_str()
            .unwrap_or("0.0.0.0");
        let loopback = address.starts_with("127.") || address == "::1" || address == "localhost";
        let outside = layer != "agent"
            || traffic::reached_from_outside(resources, workload, container, *port);
        if loopback && outside {
            problem(format!(
                "spec.{layer}.address {address} is loopback, but {layer} port {port} is dialled from outside the pod"
            ));
        }
    }

    // Peers: the provider finds the agents of the mesh, the port dialled is the peer port.
    let provider = &spec["connection"]["peer_provider"];
    let connection_port = listeners["connection"];
    let found = match provider["kind"].as_str() {
        Some("K8s") => k8s_provider(resources, workload, container, provider),
        Some("Dns") => dns_provider(resources, workload, container, provider, connection_port),
        _ => vec![format!(
            "peer_provider.kind is {}, expected K8s or Dns",
            provider["kind"]
        )],
    };
    found.into_iter().for_each(&mut problem);
    let dialled = match &provider["port"] {
        serde_json::Value::Null => {
            agents::number(&spec["connection"]["target_port"]).or(Some(connection_port))
        }
        serde_json::Value::String(name) => agents::named_port(container, name).map(i64::from),
        other => agents::number(other),
    };
    if dialled != Some(connection_port) {
        problem(format!(
            "peers are dialled on {dialled:?}, but they listen on {connection_port}"
        ));
    }

    // Probes hit a declared port that c19 listens on.
    let probes = [
        ("startupProbe", &container.startup_probe),
        ("readinessProbe", &container.readiness_probe),
        ("livenessProbe", &container.liveness_probe),
    ];
    for (name, probe) in probes {
        let Some(probe) = probe else {
            if name != "startupProbe" {
                problem(format!("no {name}"));
            }
            continue;
        };
        match agents::probe_port(probe) {
            Err(error) => problem(format!("{name}: {error}")),
            Ok(port) => match agents::resolve_port(container, &port) {
                None => problem(format!(
                    "{name} probes {port:?}, which is not a port of the container"
                )),
                Some(number) if !listeners.values().any(|l| *l == i64::from(number)) => problem(
                    format!("{name} probes port {number}, where c19 does not listen"),
                ),
                Some(_) => {}
            },
        }
    }

    problems.extend(hygiene(workload, container, config, image));
    problems
}

/// What the K8s provider needs: a selector matching the pod's own labels, its namespace,
/// a ServiceAccount allowed to watch pods, and the downward API variables.
fn k8s_provider(
    resources: &Resources,
    workload: &Workload<'_>,
    container: &Container,
    provider: &serde_json::Value,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut problem = |text: String| problems.push(text);
    let selector = provider["selector"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let labels = workload.labels();
    if selector.is_empty() {
        problem("peer_provider.selector is empty: it would offer every pod as a peer".into());
    }
    for (key, value) in &selector {
        if labels.get(key).map(String::as_str) != value.as_str() {
            problem(format!(
                "peer_provider.selector {key}={value} does not match the pod's labels {labels:?}"
            ));
        }
    }

    // Namespace and RBAC.
    let namespace = provider["namespace"].as_str().unwrap_or("default");
    let everywhere = namespace == ":all";
    if !everywhere && Some(namespace) != workload.namespace {
        problem(format!(
            "peer_provider.namespace is {namespace}, but the pods are in {:?}",
            workload.namespace
        ));
    }
    match workload.pod().service_account_name.as_deref() {
        None | Some("default") => {
            problem("runs as the `default` ServiceAccount: give it the c19 one".into())
        }
        Some(account) => {
            let exists = resources.service_accounts.iter().any(|sa| {
                sa.metadata.name.as_deref() == Some(account)
                    && sa.metadata.namespace.as_deref() == workload.namespace
            });
            if !exists {
                problem(format!("ServiceAccount {account} is not in the overlay"));
            }
            if !can_watch_pods(
                resources,
                account,
                workload.namespace.unwrap_or_default(),
                everywhere,
            ) {
                let scope = if everywhere {
                    "in every namespace (ClusterRoleBinding)"
                } else {
                    "in its namespace"
                };
                problem(format!(
                    "ServiceAccount {account} may not get/list/watch pods {scope}"
                ));
            }
        }
    }

    // The downward API variables the K8s provider reads to leave its own pod out.
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_IP", "status.podIP"),
    ] {
        let var = container.env.iter().flatten().find(|var| var.name == name);
        let source = var
            .and_then(|var| var.value_from.as_ref())
            .and_then(|from| from.field_ref.as_ref());
        if source.map(|field_ref| field_ref.field_path.as_str()) != Some(field) {
            problem(format!(
                "env {name} must come from the downward API fieldRef {field}"
            ));
        }
    }
    problems
}

/// The headless Service a Dns provider's entry of `names` resolves to in the pod's
/// namespace: `svc`, `svc.<namespace>`, `svc.<namespace>.svc…`, or an SRV name
/// `_port._tcp.` followed by one of these.
pub fn dns_service<'a>(
    resources: &'a Resources,
    workload: &Workload<'_>,
    name: &str,
) -> Result<&'a k8s_openapi::api::core::v1::Service, String> {
    let mut labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    if name.starts_with('_') {
        labels.drain(..labels.len().min(2));
    }
    let (service, namespace) = (labels.first().copied(), labels.get(1).copied());
    if namespace.is_some_and(|namespace| Some(namespace) != workload.namespace) {
        return Err(format!(
            "peer_provider name {name} is in namespace {namespace:?}, but the pods are in {:?}",
            workload.namespace
        ));
    }
    resources
        .services
        .iter()
        .find(|s| {
            s.metadata.name.as_deref() == service
                && s.metadata.namespace.as_deref() == workload.namespace
        })
        .ok_or_else(|| format!("peer_provider name {name} is not a Service of the overlay"))
}

/// What the Dns provider needs: names that are headless Services listing the agents even
/// before they are ready, POD_IP from the downward API, and no access to the API.
fn dns_provider(
    resources: &Resources,
    workload: &Workload<'_>,
    container: &Container,
    provider: &serde_json::Value,
    connection_port: i64,
) -> Vec<String> {
    let mut problems = Vec::new();
    let names = provider["names"].as_array().cloned().unwrap_or_default();
    if names.is_empty() {
        problems.push("peer_provider.names is empty".into());
    }
    for name in names.iter().filter_map(serde_json::Value::as_str) {
        let service = match dns_service(resources, workload, name) {
            Ok(service) => service,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let spec = service.spec.clone().unwrap_or_default();
        if spec.cluster_ip.as_deref() != Some("None") {
            problems.push(format!(
                "Service {name} is not headless (clusterIP: None): DNS would give its virtual IP, not the agents"
            ));
        }
        if spec.publish_not_ready_addresses != Some(true) {
            problems.push(format!(
                "Service {name} lacks publishNotReadyAddresses: true: agents turn ready only after \
                 their first sync, so they must find each other before"
            ));
        }
        if !traffic::service_targets(service, container)
            .into_iter()
            .any(|port| i64::from(port) == connection_port)
        {
            problems.push(format!(
                "Service {name} does not target the peer port {connection_port}"
            ));
        }
        let selector = spec.selector.unwrap_or_default();
        let labels = workload.labels();
        if selector.is_empty()
            || selector
                .iter()
                .any(|(key, value)| labels.get(key) != Some(value))
        {
            problems.push(format!(
                "Service {name} does not select {}",
                workload.describe()
            ));
        }
    }
    let var = container
        .env
        .iter()
        .flatten()
        .find(|var| var.name == "POD_IP");
    let source = var
        .and_then(|var| var.value_from.as_ref())
        .and_then(|from| from.field_ref.as_ref());
    if source.map(|field_ref| field_ref.field_path.as_str()) != Some("status.podIP") {
        problems.push(
            "env POD_IP must come from the downward API fieldRef status.podIP: the Dns provider \
             leaves that address out"
                .into(),
        );
    }
    if workload.pod().automount_service_account_token != Some(false) {
        problems.push(
            "mounts a ServiceAccount token, which the Dns provider does not need \
             (automountServiceAccountToken: false)"
                .into(),
        );
    }
    problems
}

/// Resources, user and file system of a c19 container.
fn hygiene(
    workload: &Workload<'_>,
    container: &Container,
    config: &AgentConfig,
    image: &Image,
) -> Vec<String> {
    let mut problems = Vec::new();
    let resources = container.resources.as_ref();
    for (section, list, names) in [
        (
            "requests",
            resources.and_then(|r| r.requests.as_ref()),
            &["cpu", "memory"][..],
        ),
        (
            "limits",
            resources.and_then(|r| r.limits.as_ref()),
            &["memory"][..],
        ),
    ] {
        for name in names {
            if !list.is_some_and(|list| list.contains_key(*name)) {
                problems.push(format!("no resources.{section}.{name}"));
            }
        }
    }
    let pod = workload.pod().security_context.as_ref();
    let own = container.security_context.as_ref();
    let non_root = own
        .and_then(|c| c.run_as_non_root)
        .or(pod.and_then(|p| p.run_as_non_root));
    if non_root != Some(true) {
        problems.push("runAsNonRoot is not set".into());
    }
    let user = own
        .and_then(|c| c.run_as_user)
        .or(pod.and_then(|p| p.run_as_user));
    if user.is_some_and(|user| user != image.uid) {
        problems.push(format!(
            "runAsUser {user:?} differs from the image's USER {}",
            image.uid
        ));
    }
    if own.and_then(|c| c.read_only_root_filesystem) != Some(true) {
        problems.push("readOnlyRootFilesystem is not true".into());
    }
    if own.and_then(|c| c.allow_privilege_escalation) != Some(false) {
        problems.push("allowPrivilegeEscalation is not false".into());
    }
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|mount| config.path.starts_with(&mount.mount_path));
    if mount.and_then(|mount| mount.read_only) != Some(true) {
        problems.push(format!("the mount of {} is not readOnly", config.path));
    }
    problems
}

/// Whether a rule lets its holder get, list and watch every pod.
fn grants_pod_watch(rule: &PolicyRule) -> bool {
    let has = |list: &Option<Vec<String>>, wanted: &str| {
        list.iter()
            .flatten()
            .any(|item| item == wanted || item == "*")
    };
    has(&rule.api_groups, "")
        && has(&rule.resources, "pods")
        && ["get", "list", "watch"]
            .iter()
            .all(|verb| rule.verbs.iter().any(|v| v == verb || v == "*"))
        && rule.resource_names.iter().flatten().next().is_none()
}

/// Whether ServiceAccount `account` of `namespace` may get/list/watch pods in its namespace,
/// or in every namespace when `everywhere`.
pub fn can_watch_pods(
    resources: &Resources,
    account: &str,
    namespace: &str,
    everywhere: bool,
) -> bool {
    let is_subject = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|subject| {
            subject.kind == "ServiceAccount"
                && subject.name == account
                && subject.namespace.as_deref() == Some(namespace)
        })
    };
    let cluster_role_grants = |name: &str| {
        resources.cluster_roles.iter().any(|role| {
            role.metadata.name.as_deref() == Some(name)
                && role.rules.iter().flatten().any(grants_pod_watch)
        })
    };
    let cluster_wide = resources.cluster_role_bindings.iter().any(|binding| {
        is_subject(&binding.subjects)
            && binding.role_ref.kind == "ClusterRole"
            && cluster_role_grants(&binding.role_ref.name)
    });
    if cluster_wide || everywhere {
        return cluster_wide;
    }
    resources.role_bindings.iter().any(|binding| {
        binding.metadata.namespace.as_deref() == Some(namespace)
            && is_subject(&binding.subjects)
            && match binding.role_ref.kind.as_str() {
                "Role" => resources.roles.iter().any(|role| {
                    role.metadata.name.as_deref() == Some(binding.role_ref.name.as_str())
                        && role.metadata.namespace.as_deref() == Some(namespace)
                        && role.rules.iter().flatten().any(grants_pod_watch)
                }),
                "ClusterRole" => cluster_role_grants(&binding.role_ref.name),
                _ => false,
            }
    })
}

/// Bindings whose ServiceAccount subjects lack a namespace or are not in the overlay.
pub fn binding_subjects(resources: &Resources) -> Vec<String> {
    let role_bindings = resources
        .role_bindings
        .iter()
        .map(|b| (&b.metadata, &b.subjects));
    let cluster_bindings = resources
        .cluster_role_bindings
        .iter()
        .map(|b| (&b.metadata, &b.subjects));
    let mut problems = Vec::new();
    for (metadata, subjects) in role_bindings.chain(cluster_bindings) {
        for subject in subjects
            .iter()
            .flatten()
            .filter(|subject| subject.kind == "ServiceAccount")
        {
            let exists = resources.service_accounts.iter().any(|sa| {
                sa.metadata.name.as_deref() == Some(subject.name.as_str())
                    && sa.metadata.namespace == subject.namespace
            });
            if !exists {
                problems.push(format!(
                    "binding {:?} names ServiceAccount {} in namespace {:?}, which the overlay does not create",
                    metadata.name, subject.name, subject.namespace
                ));
            }
        }
    }
    problems
}

/// Disruption budgets that select nothing, and replicated c19 workloads without one.
pub fn disruption_budgets(resources: &Resources) -> Vec<String> {
    let workloads = Workload::all(resources);
    let mut problems = Vec::new();
    let covers = |budget: &k8s_openapi::api::policy::v1::PodDisruptionBudget,
                  workload: &Workload<'_>| {
        let selector = budget.spec.as_ref().and_then(|spec| spec.selector.as_ref());
        budget.metadata.namespace.as_deref() == workload.namespace
            && selector
                .is_some_and(|s| s != &Default::default() && agents::selects(s, &workload.labels()))
    };
    for budget in &resources.disruption_budgets {
        if !workloads.iter().any(|workload| covers(budget, workload)) {
            problems.push(format!(
                "PodDisruptionBudget {:?} selects no workload",
                budget.metadata.name
            ));
        }
    }
    for workload in &workloads {
        let replicated = workload.replicas.is_some_and(|replicas| replicas > 1);
        if replicated
            && !workload.agents().is_empty()
            && !resources
                .disruption_budgets
                .iter()
                .any(|b| covers(b, workload))
        {
            problems.push(format!(
                "{} runs c19 on {:?} replicas without a PodDisruptionBudget",
                workload.describe(),
                workload.replicas
            ));
        }
    }
    problems
}
