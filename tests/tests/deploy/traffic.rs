//! Who reaches the agent pods: Services must select them and target declared ports, and
//! NetworkPolicies must let probes, clients and peers through while naming real ports.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        core::v1::{Container, Service},
        networking::v1::{NetworkPolicyIngressRule, NetworkPolicyPeer},
    },
    apimachinery::pkg::util::intstr::IntOrString,
};

use crate::{
    agents::{self, Workload},
    render::Resources,
};

/// Whether `service` sends traffic to the pods of `workload`.
fn serves(service: &Service, workload: &Workload<'_>) -> bool {
    let selector = service
        .spec
        .as_ref()
        .and_then(|spec| spec.selector.clone())
        .unwrap_or_default();
    let labels = workload.labels();
    service.metadata.namespace.as_deref() == workload.namespace
        && !selector.is_empty()
        && selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
}

/// The container ports a Service sends traffic to in `container`.
pub fn service_targets(service: &Service, container: &Container) -> Vec<i32> {
    let ports = service.spec.as_ref().and_then(|spec| spec.ports.as_ref());
    ports
        .into_iter()
        .flatten()
        .filter_map(|port| {
            let target = port
                .target_port
                .clone()
                .unwrap_or(IntOrString::Int(port.port));
            agents::resolve_port(container, &target)
        })
        .collect()
}

/// Whether anything outside the pod connects to `port` of `container`: a probe (the
/// kubelet dials the pod IP) or a Service.
pub fn reached_from_outside(
    resources: &Resources,
    workload: &Workload<'_>,
    container: &Container,
    port: i64,
) -> bool {
    let probes = [
        &container.startup_probe,
        &container.readiness_probe,
        &container.liveness_probe,
    ];
    let probed = probes.into_iter().flatten().any(|probe| {
        let target = agents::probe_port(probe).ok();
        target
            .and_then(|target| agents::resolve_port(container, &target))
            .map(i64::from)
            == Some(port)
    });
    let served = resources
        .services
        .iter()
        .filter(|service| serves(service, workload))
        .any(|service| {
            service_targets(service, container)
                .into_iter()
                .any(|target| i64::from(target) == port)
        });
    probed || served
}

/// Services that select no pod or target a port their pods do not declare.
pub fn services(resources: &Resources) -> Vec<String> {
    let workloads = Workload::all(resources);
    let mut problems = Vec::new();
    for service in &resources.services {
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let selected: Vec<&Workload<'_>> =
            workloads.iter().filter(|w| serves(service, w)).collect();
        if selected.is_empty() {
            problems.push(format!("Service {name} selects no pods"));
        }
        let ports = service.spec.as_ref().and_then(|spec| spec.ports.as_ref());
        for port in ports.into_iter().flatten() {
            let target = port
                .target_port
                .clone()
                .unwrap_or(IntOrString::Int(port.port));
            for workload in &selected {
                let containers = workload.containers();
                if !containers
                    .iter()
                    .any(|(c, _)| agents::resolve_port(c, &target).is_some())
                {
                    problems.push(format!(
                        "Service {name} targets {target:?}, not a port of {}",
                        workload.describe()
                    ));
                }
            }
        }
    }
    problems
}

/// Whether a rule admits traffic to `port` (a container port of `container`).
fn admits_port(rule: &NetworkPolicyIngressRule, container: &Container, port: i32) -> bool {
    let ports = rule.ports.as_deref().unwrap_or_default();
    ports.is_empty()
        || ports.iter().any(|allowed| match &allowed.port {
            None => true,
            Some(target) => match (agents::resolve_port(container, target), allowed.end_port) {
                (Some(start), Some(end)) => (start..=end).contains(&port),
                (resolved, _) => resolved == Some(port),
            },
        })
}

/// Whether a rule admits pods labelled `labels` of the policy's namespace (namespace
/// selectors are taken to include it: the test cannot see namespace labels).
fn admits_pods(rule: &NetworkPolicyIngressRule, labels: &BTreeMap<String, String>) -> bool {
    let peers: &[NetworkPolicyPeer] = rule.from.as_deref().unwrap_or_default();
    peers.is_empty()
        || peers.iter().any(|peer| {
            peer.ip_block.is_none()
                && peer
                    .pod_selector
                    .as_ref()
                    .is_none_or(|s| agents::selects(s, labels))
        })
}

/// NetworkPolicies that select nothing, name ports their pods lack, block a port of a c19
/// container, or keep the agents from each other's peer port.
pub fn network_policies(resources: &Resources) -> Vec<String> {
    let workloads = Workload::all(resources);
    let mut problems = Vec::new();
    for policy in &resources.network_policies {
        let name = policy.metadata.name.as_deref().unwrap_or_default();
        let spec = policy.spec.clone().unwrap_or_default();
        let selector = spec.pod_selector.clone().unwrap_or_default();
        let selected: Vec<&Workload<'_>> = workloads
            .iter()
            .filter(|w| w.namespace == policy.metadata.namespace.as_deref())
            .filter(|w| agents::selects(&selector, &w.labels()))
            .collect();
        if selected.is_empty() {
            problems.push(format!("NetworkPolicy {name} selects no pods"));
        }
        let rules = spec.ingress.unwrap_or_default();
        for workload in &selected {
            let named = rules
                .iter()
                .flat_map(|rule| rule.ports.iter().flatten())
                .filter_map(|p| match &p.port {
                    Some(IntOrString::String(port_name)) => Some(port_name),
                    _ => None,
                });
            for port_name in named {
                if !workload
                    .containers()
                    .iter()
                    .any(|(c, _)| agents::named_port(c, port_name).is_some())
                {
                    problems.push(format!(
                        "NetworkPolicy {name} names port {port_name}, which {} lacks",
                        workload.describe()
                    ));
                }
            }
            for (container, _) in workload.agents() {
                for port in container.ports.iter().flatten() {
                    let admitting: Vec<&NetworkPolicyIngressRule> = rules
                        .iter()
                        .filter(|rule| admits_port(rule, container, port.container_port))
                        .collect();
                    if admitting.is_empty() {
                        problems.push(format!(
                            "NetworkPolicy {name} blocks port {} of {}",
                            port.container_port,
                            workload.describe()
                        ));
                    }
                    let peer_port = port.name.as_deref() == Some("c19-peer");
                    if peer_port
                        && !admitting
                            .iter()
                            .any(|rule| admits_pods(rule, &workload.labels()))
                    {
                        problems.push(format!(
                            "NetworkPolicy {name} keeps the agents of {} from each other's peer port",
                            workload.describe()
                        ));
                    }
                }
            }
        }
    }
    problems
}
