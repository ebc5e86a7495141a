//! The `Dns` peer provider of c19: finds the peer agents by resolving DNS names, such
//! as a Kubernetes headless Service, a Docker Compose service, or a Consul or Nomad
//! service name. It needs no API access and no RBAC.
//!
//! ```yaml
//! peer_provider:
//!   kind: Dns
//!   names: ["c19-headless.default.svc.cluster.local"]   # one or more
//!   # an SRV name (first label starting with `_`) gives targets with their ports:
//!   # names: ["_c19._tcp.c19-headless.default.svc.cluster.local"]
//!   refresh_interval: 5000   # ms, default 5000
//!   timeout: 2000            # ms per name and round, default 2000
//!   port: 4097               # optional: the port of A/AAAA answers
//!   nameservers: ["127.0.0.1:5353"]   # optional: instead of /etc/resolv.conf
//! ```
//!
//! Every `refresh_interval` a background task resolves every name: the A and AAAA
//! addresses of a plain name (with `port`, else without a port, so that the connection
//! dials its `target_port`), or, for an SRV name, the A and AAAA addresses of each SRV
//! target with the record's port. The peers are the union over all names, sorted and
//! without duplicates; [`c19_core::PeerProvider::get`] reads the last round's list and
//! never waits for DNS. The resolver's cache is off: each round asks the name server.
//!
//! Each name's lookups are bounded by `timeout`. A name that fails (a timeout, SERVFAIL,
//! a refused query) keeps its last good answer, logged at warn (at most once a minute
//! while it keeps failing) and at info once when it resolves again; "no such name" and
//! "no records" are answers, and give no peers. `discovered()` turns true after the
//! first round, when every name has answered or failed, so an agent alone in DNS turns
//! ready instead of waiting for ever.
//!
//! ## The agent itself
//!
//! A name usually lists this agent too. Addresses of the host's own interfaces do not
//! tell which answer is this agent (several agents may share a host), so the provider
//! uses the `POD_IP` environment variable (in Kubernetes, from the downward API:
//! `valueFrom: { fieldRef: { fieldPath: status.podIP } }`): every answer with that
//! address is left out, and [`c19_core::PeerProvider::itself`] is that address (with
//! `port` when set). Without `POD_IP` the agent may be offered to itself. Agents that
//! share one address (host networking, SRV records with one port each) must not set
//! `POD_IP`, or they would leave each other out. Code that embeds the provider can give
//! the address with [`DnsPeerProviderConfig::with_own_ip`] instead.

mod config;
mod error;
mod provider;
mod refresh;
mod resolve;

pub use config::{
    DEFAULT_REFRESH_INTERVAL_MS, DEFAULT_TIMEOUT_MS, DNS_PORT, DnsName, DnsPeerProviderConfig,
    NameServer,
};
pub use error::{Error, Result};
pub use provider::DnsPeers;
pub use refresh::WARN_EVERY;

/// The environment variable holding the agent's own IP address, left out of the peers.
pub const POD_IP: &str = "POD_IP";
