//! The `Dns` provider's configuration: which names to resolve, how often, how long a
//! lookup may take, which port to dial, and which name servers to ask.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    num::{NonZeroU16, NonZeroU64},
    str::FromStr,
    time::Duration,
};

use hickory_resolver::proto::rr::Name;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_with::{DisplayFromStr, PickFirst, serde_as};

use crate::Error;

/// The default `refresh_interval`: 5 s.
pub const DEFAULT_REFRESH_INTERVAL_MS: u64 = 5_000;

/// The default `timeout`: 2 s.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;

/// The port a name server is asked on when an entry of `nameservers` names none.
pub const DNS_PORT: u16 = 53;

/// Finds peers by resolving DNS names; see the [crate docs](crate).
///
/// ```yaml
/// peer_provider:
///   kind: Dns
///   names: ["c19-headless.default.svc.cluster.local"]
///   refresh_interval: 5000
///   port: 4097
/// ```
#[serde_as]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsPeerProviderConfig {
    /// The names to resolve, at least one. A name whose first label starts with `_`
    /// (`_c19._tcp.c19.default.svc.cluster.local`) is an SRV name: each SRV target's
    /// A/AAAA addresses are peers, with the SRV record's port. Any other name's A and
    /// AAAA addresses are peers, with `port`. Names without a final `.` go through the
    /// system's search domains, as with any resolver.
    #[serde(deserialize_with = "non_empty_names")]
    pub names: Vec<DnsName>,
    /// How often (ms) every name is resolved again (default 5000).
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: NonZeroU64,
    /// How long (ms) resolving one name may take, SRV targets included (default 2000);
    /// a name that takes longer has failed this round and keeps its last good answer.
    #[serde_as(as = "PickFirst<(_, DisplayFromStr)>")]
    #[serde(default = "default_timeout")]
    pub timeout: NonZeroU64,
    /// The port to dial on the addresses of A/AAAA names (SRV answers bring their own).
    /// Absent: the peers have no port, and the connection dials its `target_port`,
    /// else its `port`.
    #[serde_as(as = "Option<PickFirst<(_, DisplayFromStr)>>")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<NonZeroU16>,
    /// The name servers to ask, as `IP` (port 53) or `IP:port`, instead of those of the
    /// system's `/etc/resolv.conf` (the default, when empty). Mostly for tests and
    /// special setups (a Consul agent on `127.0.0.1:8600`); with it, the system's
    /// search domains do not apply either.
    #[serde_as(as = "Vec<DisplayFromStr>")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<NameServer>,
    /// The agent's own IP, given in code instead of read from `POD_IP`; not
    /// configuration.
    #[serde(skip)]
    pub(crate) own_ip: Option<Option<IpAddr>>,
}

fn default_refresh_interval() -> NonZeroU64 {
    NonZeroU64::new(DEFAULT_REFRESH_INTERVAL_MS).unwrap_or(NonZeroU64::MIN)
}

fn default_timeout() -> NonZeroU64 {
    NonZeroU64::new(DEFAULT_TIMEOUT_MS).unwrap_or(NonZeroU64::MIN)
}

fn non_empty_names<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<DnsName>, D::Error> {
    let names = Vec::<DnsName>::deserialize(deserializer)?;
    if names.is_empty() {
        return Err(serde::de::Error::custom(Error::NoNames));
    }
    Ok(names)
}

impl DnsPeerProviderConfig {
    /// A provider resolving `names`, with the defaults for everything else.
    pub fn new(names: impl IntoIterator<Item = DnsName>) -> Self {
        Self {
            names: names.into_iter().collect(),
            refresh_interval: default_refresh_interval(),
            timeout: default_timeout(),
            port: None,
            nameservers: Vec::new(),
            own_ip: None,
        }
    }

    /// Uses `ip` as the agent's own address (left out of the peers, reported as
    /// `itself`), or none with `None`, instead of reading the `POD_IP` variable: for
    /// tests and for programs that embed the agent and know their address.
    pub fn with_own_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.own_ip = Some(ip);
        self
    }

    /// The refresh interval as a duration.
    pub fn refresh_interval(&self) -> Duration {
        Duration::from_millis(self.refresh_interval.get())
    }

    /// The lookup timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout.get())
    }
}

/// An entry of `names`: a DNS name, checked when the configuration loads.
#[derive(Clone, PartialEq, Eq)]
pub struct DnsName {
    written: String,
    name: Name,
}

impl DnsName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// The name to look up.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// Whether it is an SRV name: its first label starts with `_`.
    pub fn is_srv(&self) -> bool {
        self.written.starts_with('_')
    }
}

impl FromStr for DnsName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| Error::Name {
            name: s.to_owned(),
            reason: reason.to_owned(),
        };
        let written = s.trim();
        if written.is_empty() || written == "." {
            return Err(invalid("it is empty"));
        }
        if written.parse::<IpAddr>().is_ok() {
            return Err(invalid(
                "it is an IP address, not a name (list fixed addresses with the Static provider)",
            ));
        }
        let name = Name::from_utf8(written).map_err(|error| invalid(&error.to_string()))?;
        Ok(Self {
            written: written.to_owned(),
            name,
        })
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl fmt::Debug for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.written)
    }
}

impl Serialize for DnsName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.written)
    }
}

impl<'de> Deserialize<'de> for DnsName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An entry of `nameservers`: where a name server listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameServer(pub SocketAddr);

impl FromStr for NameServer {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let entry = s.trim();
        if let Ok(ip) = entry.parse::<IpAddr>() {
            return Ok(Self(SocketAddr::new(ip, DNS_PORT)));
        }
        entry
            .parse::<SocketAddr>()
            .ok()
            .filter(|addr| addr.port() != 0)
            .map(Self)
            .ok_or_else(|| Error::NameServer {
                entry: s.to_owned(),
            })
    }
}

impl fmt::Display for NameServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        let srv: DnsName = "_c19._tcp.c19.default.svc.cluster.local".parse().unwrap();
        assert!(srv.is_srv());
        let plain: DnsName = " c19-headless.default.svc ".parse().unwrap();
        assert!(!plain.is_srv());
        assert_eq!(plain.as_str(), "c19-headless.default.svc");
        for bad in ["", ".", "10.0.0.1", "::1", "a..b"] {
            let error = bad.parse::<DnsName>().unwrap_err().to_string();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
        }
    }

    #[test]
    fn name_servers_default_to_port_53() {
        let server: NameServer = "10.0.0.10".parse().unwrap();
        assert_eq!(server.0, "10.0.0.10:53".parse().unwrap());
        let server: NameServer = "[::1]:5353".parse().unwrap();
        assert_eq!(server.0.port(), 5353);
        for bad in ["", "dns.example", "1.2.3.4:0", "1.2.3.4:x"] {
            assert!(bad.parse::<NameServer>().is_err(), "{bad}");
        }
    }
}
