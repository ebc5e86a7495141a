//! Which pod is the agent's own, so that it is never offered as a peer.
//!
//! The Kubernetes downward API gives the agent its pod's name, namespace and IP as
//! environment variables:
//!
//! ```yaml
//! env:
//!   - name: POD_NAME
//!     valueFrom: { fieldRef: { fieldPath: metadata.name } }
//!   - name: POD_NAMESPACE
//!     valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
//!   - name: POD_IP
//!     valueFrom: { fieldRef: { fieldPath: status.podIP } }
//! ```
//!
//! The name is the surest: several pods can share an IP (`hostNetwork`), never a name
//! in one namespace. So `POD_NAME` decides when set; else `POD_IP`; else the hostname,
//! which Kubernetes sets to the pod name (except with `hostNetwork`).

use std::net::IpAddr;

/// The environment variable holding the agent's pod name.
pub const POD_NAME: &str = "POD_NAME";
/// The environment variable holding the agent's pod namespace.
pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
/// The environment variable holding the agent's pod IP.
pub const POD_IP: &str = "POD_IP";

/// The agent's own pod, as far as it knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The pod name (`POD_NAME`, else the hostname when `POD_IP` is unset too).
    pub name: Option<String>,
    /// The pod namespace (`POD_NAMESPACE`); when unknown, a name matches in any namespace.
    pub namespace: Option<String>,
    /// The pod IP (`POD_IP`); used only when the name is unknown.
    pub ip: Option<IpAddr>,
}

impl Identity {
    /// An identity known by pod name (and namespace, when given).
    pub fn named(name: impl Into<String>, namespace: Option<&str>) -> Self {
        Self {
            name: Some(name.into()),
            namespace: namespace.map(str::to_owned),
            ip: None,
        }
    }

    /// An identity known by pod IP only.
    pub fn with_ip(ip: IpAddr) -> Self {
        Self {
            ip: Some(ip),
            ..Self::default()
        }
    }

    /// Reads `POD_NAME`, `POD_NAMESPACE` and `POD_IP` from the process environment,
    /// falling back to the hostname.
    pub fn from_env() -> Self {
        Self::from_lookup(
            |name| std::env::var(name).ok(),
            || {
                hostname::get()
                    .ok()
                    .and_then(|name| name.into_string().ok())
            },
        )
    }

    /// Builds the identity from `var` (an environment lookup) and `hostname`, which is
    /// asked only when neither `POD_NAME` nor a valid `POD_IP` is set. Empty values
    /// count as unset; an unparsable `POD_IP` is logged and ignored.
    pub fn from_lookup(
        var: impl Fn(&str) -> Option<String>,
        hostname: impl FnOnce() -> Option<String>,
    ) -> Self {
        let var = |name: &str| {
            var(name)
                .map(|value| value.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let ip = var(POD_IP).and_then(|text| match text.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                tracing::warn!("{POD_IP}=`{text}` is not an IP address; ignoring it");
                None
            }
        });
        let mut name = var(POD_NAME);
        if name.is_none() && ip.is_none() {
            name = hostname().filter(|name| !name.is_empty());
        }
        Self {
            name,
            namespace: var(POD_NAMESPACE),
            ip,
        }
    }

    /// Whether nothing identifies the agent's pod, so it may be offered to itself.
    pub fn is_unknown(&self) -> bool {
        self.name.is_none() && self.ip.is_none()
    }

    /// Whether the pod `namespace`/`name` with `ip` is the agent's own.
    pub fn is_own(&self, namespace: Option<&str>, name: Option<&str>, ip: Option<IpAddr>) -> bool {
        match (&self.name, self.ip) {
            (Some(own), _) => {
                name == Some(own.as_str())
                    && match (&self.namespace, namespace) {
                        (Some(own), Some(theirs)) => own == theirs,
                        _ => true,
                    }
            }
            (None, Some(own)) => ip == Some(own),
            (None, None) => false,
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.name, &self.namespace, self.ip) {
            (Some(name), Some(namespace), _) => write!(f, "pod {namespace}/{name}"),
            (Some(name), None, _) => write!(f, "pod {name}"),
            (None, _, Some(ip)) => write!(f, "pod IP {ip}"),
            (None, _, None) => f.write_str("unknown pod"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn identity(vars: &[(&str, &str)], hostname: Option<&str>) -> Identity {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Identity::from_lookup(
            |name| vars.get(name).cloned(),
            || hostname.map(str::to_owned),
        )
    }

    #[test]
    fn the_downward_api_variables_are_read() {
        let id = identity(
            &[
                (POD_NAME, "c19-0"),
                (POD_NAMESPACE, "team"),
                (POD_IP, "10.1.2.3"),
            ],
            Some("host"),
        );
        assert_eq!(id.name.as_deref(), Some("c19-0"));
        assert_eq!(id.namespace.as_deref(), Some("team"));
        assert_eq!(id.ip, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(id.to_string(), "pod team/c19-0");
    }

    #[test]
    fn the_hostname_is_the_last_resort() {
        assert_eq!(identity(&[], Some("c19-7")).name.as_deref(), Some("c19-7"));
        // With POD_IP set, the hostname (a node name under hostNetwork) is not trusted.
        let id = identity(&[(POD_IP, "10.0.0.9")], Some("node-1"));
        assert_eq!(id.name, None);
        // Empty and malformed values count as unset.
        let id = identity(&[(POD_NAME, " "), (POD_IP, "not-an-ip")], Some("c19-8"));
        assert_eq!(id.name.as_deref(), Some("c19-8"));
        assert!(identity(&[], None).is_unknown());
    }

    #[test]
    fn the_name_decides_when_known() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let id = Identity {
            ip: Some(ip),
            ..Identity::named("c19-0", Some("team"))
        };
        assert!(id.is_own(Some("team"), Some("c19-0"), None));
        assert!(!id.is_own(Some("other"), Some("c19-0"), Some(ip)));
        // Same IP, other name: a hostNetwork neighbour, still a peer.
        assert!(!id.is_own(Some("team"), Some("c19-1"), Some(ip)));
        // Without a known namespace, the name matches in any.
        assert!(Identity::named("c19-0", None).is_own(Some("x"), Some("c19-0"), None));
    }

    #[test]
    fn the_ip_decides_without_a_name() {
        let ip: IpAddr = "fd00::5".parse().unwrap();
        let id = Identity::with_ip(ip);
        assert!(id.is_own(Some("team"), Some("anything"), Some(ip)));
        assert!(!id.is_own(
            Some("team"),
            Some("anything"),
            Some("fd00::6".parse().unwrap())
        ));
        assert!(!Identity::default().is_own(None, Some("c19-0"), Some(ip)));
    }
}
