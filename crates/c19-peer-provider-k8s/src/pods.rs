//! Which pods are peers, and at which address.
//!
//! A pod is offered only when it can take traffic now: it is Running, its Ready
//! condition is True, it has a pod IP, it is not being deleted, and it is not the
//! agent's own pod.

use std::{fmt, net::IpAddr};

use c19_core::Peer;
use k8s_openapi::api::core::v1::{Container, Pod};

use crate::{PortSpec, identity::Identity};

/// Why a pod is not offered as a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// It is the agent's own pod.
    Own,
    /// It has a deletion timestamp: it is shutting down.
    Deleting,
    /// Its phase is not `Running` (the phase, or `None` when it has no status yet).
    NotRunning(Option<String>),
    /// Its `Ready` condition is not `True`.
    NotReady,
    /// It has no pod IP yet.
    NoIp,
    /// Its pod IP does not parse.
    BadIp(String),
    /// None of its containers declares the named port.
    NoNamedPort(String),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Own => f.write_str("it is this agent's own pod"),
            Self::Deleting => f.write_str("it is being deleted"),
            Self::NotRunning(Some(phase)) => write!(f, "its phase is {phase}, not Running"),
            Self::NotRunning(None) => f.write_str("it has no phase yet"),
            Self::NotReady => f.write_str("it is not Ready"),
            Self::NoIp => f.write_str("it has no pod IP yet"),
            Self::BadIp(ip) => write!(f, "its pod IP `{ip}` does not parse"),
            Self::NoNamedPort(name) => {
                write!(f, "none of its containers has a port named `{name}`")
            }
        }
    }
}

/// Turns pods into peers.
#[derive(Debug, Clone)]
pub(crate) struct PodFilter {
    /// The agent's own pod, never offered.
    pub identity: Identity,
    /// The port to give each peer; `None` leaves the connection's default.
    pub port: Option<PortSpec>,
}

impl PodFilter {
    /// The address peers dial for `pod` when it is the agent's own pod (running or not).
    pub fn own_peer(&self, pod: &Pod) -> Option<Peer> {
        let ip = pod
            .status
            .as_ref()
            .and_then(|status| status.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<IpAddr>().ok())?;
        let meta = &pod.metadata;
        if !self
            .identity
            .is_own(meta.namespace.as_deref(), meta.name.as_deref(), Some(ip))
        {
            return None;
        }
        Some(Peer::ip(ip, self.port_of(pod).ok()?))
    }

    /// The port to dial on `pod`: `None` leaves the connection's default.
    fn port_of(&self, pod: &Pod) -> Result<Option<u16>, Skip> {
        match &self.port {
            None => Ok(None),
            Some(PortSpec::Number(port)) => Ok(Some(*port)),
            Some(PortSpec::Name(name)) => named_port(pod, name)
                .map(Some)
                .ok_or_else(|| Skip::NoNamedPort(name.clone())),
        }
    }

    /// The peer that `pod` is, or why it is none.
    pub fn peer_of(&self, pod: &Pod) -> Result<Peer, Skip> {
        let status = pod.status.as_ref();
        let pod_ip = status
            .and_then(|status| status.pod_ip.as_deref())
            .filter(|ip| !ip.is_empty());
        let ip = pod_ip.map(|ip| ip.parse::<IpAddr>().map_err(|_| Skip::BadIp(ip.to_owned())));
        let own_ip = ip.clone().and_then(Result::ok);
        let meta = &pod.metadata;
        if self
            .identity
            .is_own(meta.namespace.as_deref(), meta.name.as_deref(), own_ip)
        {
            return Err(Skip::Own);
        }
        if meta.deletion_timestamp.is_some() {
            return Err(Skip::Deleting);
        }
        let phase = status.and_then(|status| status.phase.clone());
        if phase.as_deref() != Some("Running") {
            return Err(Skip::NotRunning(phase));
        }
        let ready = status
            .and_then(|status| status.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|condition| condition.type_ == "Ready" && condition.status == "True");
        if !ready {
            return Err(Skip::NotReady);
        }
        let ip = ip.ok_or(Skip::NoIp)??;
        Ok(Peer::ip(ip, self.port_of(pod)?))
    }
}

/// The number of the container port called `name`, in the containers or in native
/// sidecars (init containers), as c19 may run as either.
fn named_port(pod: &Pod, name: &str) -> Option<u16> {
    let spec = pod.spec.as_ref()?;
    let init_containers: &[Container] = spec.init_containers.as_deref().unwrap_or_default();
    spec.containers
        .iter()
        .chain(init_containers)
        .flat_map(|container| container.ports.iter().flatten())
        .find(|port| port.name.as_deref() == Some(name))
        .and_then(|port| u16::try_from(port.container_port).ok())
        .filter(|port| *port != 0)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// A Running, Ready pod as the API server sends it, with this `spec`.
    fn pod(name: &str, ip: &str, spec: Value) -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": name, "namespace": "default", "resourceVersion": "1" },
            "spec": spec,
            "status": {
                "phase": "Running",
                "podIP": ip,
                "conditions": [{ "type": "Ready", "status": "True" }],
            },
        }))
        .unwrap()
    }

    fn filter(port: Option<PortSpec>) -> PodFilter {
        PodFilter {
            identity: Identity::named("self", None),
            port,
        }
    }

    #[test]
    fn the_own_pod_is_never_a_peer_but_its_address_is_known() {
        let spec = json!({"containers": [{ "name": "c19", "ports": [{ "name": "c19-peer", "containerPort": 4097 }] }]});
        let named = filter(Some(PortSpec::Name("c19-peer".into())));
        let own = pod("self", "10.0.0.9", spec.clone());
        assert_eq!(named.peer_of(&own), Err(Skip::Own));
        assert_eq!(
            named.own_peer(&own),
            Some(Peer::ip("10.0.0.9".parse().unwrap(), Some(4097)))
        );
        assert_eq!(named.own_peer(&pod("other", "10.0.0.2", spec)), None);
        assert_eq!(
            filter(None).own_peer(&own),
            Some(Peer::ip("10.0.0.9".parse().unwrap(), None))
        );
    }

    #[test]
    fn a_named_port_is_found_in_containers_and_native_sidecars() {
        let named = filter(Some(PortSpec::Name("c19-peer".into())));
        let sidecar = pod(
            "a",
            "10.0.0.1",
            json!({
                "containers": [{ "name": "app", "ports": [{ "name": "http", "containerPort": 80 }] }],
                "initContainers": [{
                    "name": "c19",
                    "restartPolicy": "Always",
                    "ports": [{ "name": "c19-peer", "containerPort": 4100 }],
                }],
            }),
        );
        assert_eq!(
            named.peer_of(&sidecar).unwrap().to_string(),
            "10.0.0.1:4100"
        );
        let plain = pod(
            "b",
            "10.0.0.2",
            json!({ "containers": [{ "name": "c19", "ports": [{ "name": "c19-peer", "containerPort": 4200 }] }] }),
        );
        assert_eq!(named.peer_of(&plain).unwrap().to_string(), "10.0.0.2:4200");
        let without = pod(
            "c",
            "10.0.0.3",
            json!({ "containers": [{ "name": "app" }] }),
        );
        assert_eq!(
            named.peer_of(&without),
            Err(Skip::NoNamedPort("c19-peer".into()))
        );
        // Without a `port`, the peer has none: the connection picks its default.
        assert_eq!(filter(None).peer_of(&without).unwrap().port, None);
    }

    #[test]
    fn each_reason_to_skip_a_pod_is_told() {
        let base = || pod("a", "10.0.0.1", json!({ "containers": [] }));
        let mut own = base();
        own.metadata.name = Some("self".into());
        assert_eq!(filter(None).peer_of(&own), Err(Skip::Own));
        let mut bad_ip = base();
        bad_ip.status.as_mut().unwrap().pod_ip = Some("10.0.0".into());
        assert_eq!(
            filter(None).peer_of(&bad_ip),
            Err(Skip::BadIp("10.0.0".into()))
        );
        let mut no_status = base();
        no_status.status = None;
        assert_eq!(
            filter(None).peer_of(&no_status),
            Err(Skip::NotRunning(None))
        );
        assert_eq!(Skip::NotRunning(None).to_string(), "it has no phase yet");
    }
}
