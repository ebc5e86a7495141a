//! Peers and the peer providers that list them.

use std::{
    fmt::{self, Debug, Display},
    net::{IpAddr, Ipv6Addr},
    str::FromStr,
    sync::Arc,
};

use futures::future::BoxFuture;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{BoxError, layer::LayerContext};

/// Why a peer provider failed, or a peer address was refused.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// A peer address is malformed.
    #[error(
        "invalid peer `{entry}`: {reason} (expected IP, IP:port, [IPv6]:port, host or host:port)"
    )]
    Invalid {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A failure specific to the provider implementation (for example, its API is down).
    #[error("{0}")]
    Other(#[source] BoxError),
}

/// Where a peer is: an IP address or a host name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A DNS name, resolved each time the peer is dialled.
    Name(String),
}

/// A peer to exchange the state with, as a peer provider offers it.
///
/// It parses from and prints as `IP`, `IP:port`, `[IPv6]:port`, `host` or `host:port`.
/// A peer without a port is dialled on the connection layer's default port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peer {
    /// The address or name.
    pub host: Host,
    /// The port, if the peer names one.
    pub port: Option<u16>,
}

impl Peer {
    /// A peer at an IP address.
    pub fn ip(ip: IpAddr, port: Option<u16>) -> Self {
        Self {
            host: Host::Ip(ip),
            port,
        }
    }

    /// The `host:port` authority to dial, with `default_port` when the peer has none;
    /// IPv6 addresses are bracketed.
    pub fn authority(&self, default_port: u16) -> String {
        let port = self.port.unwrap_or(default_port);
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
            Host::Ip(IpAddr::V4(ip)) => format!("{ip}:{port}"),
            Host::Name(name) => format!("{name}:{port}"),
        }
    }
}

impl Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, self.port) {
            (Host::Ip(IpAddr::V6(ip)), Some(port)) => write!(f, "[{ip}]:{port}"),
            (Host::Ip(ip), Some(port)) => write!(f, "{ip}:{port}"),
            (Host::Ip(ip), None) => write!(f, "{ip}"),
            (Host::Name(name), Some(port)) => write!(f, "{name}:{port}"),
            (Host::Name(name), None) => write!(f, "{name}"),
        }
    }
}

impl FromStr for Peer {
    type Err = PeerError;

    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| PeerError::Invalid {
            entry: entry.to_owned(),
            reason,
        };
        let s = entry.trim();
        if s.is_empty() {
            return Err(invalid("it is empty"));
        }
        // A bare IPv6 address has several colons and no brackets.
        if let Ok(ip) = s.parse::<Ipv6Addr>() {
            return Ok(Peer::ip(IpAddr::V6(ip), None));
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (ip, after) = rest
                .split_once(']')
                .ok_or_else(|| invalid("`[` without a closing `]`"))?;
            let ip: Ipv6Addr = ip
                .parse()
                .map_err(|_| invalid("not an IPv6 address in brackets"))?;
            let port = match after {
                "" => None,
                after => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| invalid("unexpected text after `]`"))?,
                ),
            };
            (Host::Ip(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = match s.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (s, None),
            };
            let host = match host.parse::<IpAddr>() {
                Ok(ip) => Host::Ip(ip),
                Err(_) if is_host_name(host) => Host::Name(host.to_ascii_lowercase()),
                Err(_) => return Err(invalid("not an IP address or host name")),
            };
            (host, port)
        };
        let port = match port {
            None => None,
            Some(port) => match port.parse::<u16>() {
                Ok(0) | Err(_) => return Err(invalid("the port is not a number from 1 to 65535")),
                Ok(port) => Some(port),
            },
        };
        Ok(Peer { host, port })
    }
}

/// Whether `s` is a syntactically valid DNS host name (RFC 1123 labels).
fn is_host_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        // All-numeric dotted names are malformed IPv4 addresses, not hosts.
        && !s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

impl Serialize for Peer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Peer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How many peers `new` has that `old` had not, and how many of `old` it lacks; both
/// lists sorted. What a provider logs when its list changes.
pub fn added_and_removed(old: &[Peer], new: &[Peer]) -> (usize, usize) {
    let missing_from = |list: &[Peer], peers: &[Peer]| {
        peers
            .iter()
            .filter(|peer| list.binary_search(peer).is_err())
            .count()
    };
    (missing_from(old, new), missing_from(new, old))
}

/// The configuration of a peer provider kind, selected in YAML by `kind:`.
///
/// It is plain data; [`PeerProviderConfig::build`] makes the live [`PeerProvider`].
#[typetag::serde(tag = "kind")]
pub trait PeerProviderConfig: Debug + Send + Sync {
    /// Builds the provider and starts its discovery (watches, timers), which runs until
    /// the context's shutdown is cancelled.
    ///
    /// It must not fail because a discovery backend is unreachable at start: it logs
    /// and retries, and [`PeerProvider::get`] returns what is known meanwhile. It fails
    /// for what retrying cannot mend (a malformed setting).
    fn build<'a>(
        &'a self,
        cx: &'a LayerContext,
    ) -> BoxFuture<'a, Result<Arc<dyn PeerProvider>, PeerError>>;
}

/// The live peer provider: tells a connection layer whom it can talk to.
pub trait PeerProvider: Debug + Send + Sync {
    /// The peers known now.
    fn get(&self) -> Vec<Peer>;

    /// Whether discovery has given its first answer, so that [`PeerProvider::get`]
    /// returning no peer means there is none (rather than none known yet). A connection
    /// waiting for its first sync uses it: an agent that sees no peer turns ready at
    /// once, and must not do so before its provider has looked. A fixed list is known at
    /// once (the default); a provider that asks a backend says `false` until the first
    /// answer.
    fn discovered(&self) -> bool {
        true
    }

    /// This agent as its peers see it (the address they dial), when the provider knows
    /// it: a provider that leaves the agent out of [`PeerProvider::get`] can still say
    /// where it is, so a connection can place it among its peers (the Default
    /// connection's ring of push targets). `None` (the default): not known.
    fn itself(&self) -> Option<Peer> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Peer, PeerError> {
        s.parse()
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(parse("127.0.0.1").unwrap().to_string(), "127.0.0.1");
        assert_eq!(parse("10.0.0.2:4097").unwrap().port, Some(4097));
        assert_eq!(parse("[::1]:4097").unwrap().authority(1), "[::1]:4097");
        assert_eq!(parse("::1").unwrap().authority(4097), "[::1]:4097");
        assert_eq!(parse("[fe80::1]").unwrap().port, None);
        let named = parse("c19-0.c19.svc:4097").unwrap();
        assert_eq!(named.host, Host::Name("c19-0.c19.svc".into()));
        assert_eq!(named.authority(1), "c19-0.c19.svc:4097");
        assert_eq!(
            parse("localhost").unwrap().authority(4097),
            "localhost:4097"
        );
    }

    #[test]
    fn counts_what_a_new_list_adds_and_removes() {
        let list =
            |peers: &[&str]| -> Vec<Peer> { peers.iter().map(|p| parse(p).unwrap()).collect() };
        let old = list(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        let new = list(&["10.0.0.2", "10.0.0.4"]);
        assert_eq!(added_and_removed(&old, &new), (1, 2));
        assert_eq!(added_and_removed(&new, &new), (0, 0));
    }

    #[test]
    fn refuses_malformed_entries_naming_them() {
        for bad in [
            "",
            "1.2.3.4:",
            "1.2.3.4:0",
            "1.2.3.4:99999",
            "1.2.3",
            "[::1",
            "[zz]:1",
            "a b",
            "host:port",
            "-bad.example",
        ] {
            let error = parse(bad).expect_err(bad).to_string();
            assert!(error.contains(&format!("`{}`", bad)), "{error}");
        }
    }
}
