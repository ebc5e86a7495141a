//! Resolving one entry of `names` into peers: A and AAAA lookups, or an SRV lookup and
//! the addresses of its targets, all within the `timeout`.

use std::{collections::BTreeSet, net::IpAddr, time::Duration};

use c19_core::{Peer, reexports::futures::future::join_all};
use hickory_resolver::{
    TokioResolver,
    config::{NameServerConfig, ResolverConfig},
    net::{NetError, runtime::TokioRuntimeProvider},
    proto::rr::{Name, RData},
};

use crate::{DnsName, DnsPeerProviderConfig, Error, Result};

/// Looks names up with one resolver.
#[derive(Debug, Clone)]
pub(crate) struct Lookups {
    resolver: TokioResolver,
    timeout: Duration,
    port: Option<u16>,
}

impl Lookups {
    /// A resolver for `config`: its `nameservers`, else the system's configuration.
    ///
    /// The resolver's cache is off (each round asks again: the refresh interval, not
    /// the records' TTL, decides how fresh peers are), and one query's timeout is at
    /// most the name's `timeout`.
    pub(crate) fn new(config: &DnsPeerProviderConfig) -> Result<Self> {
        let timeout = config.timeout();
        let mut builder = if config.nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(Error::SystemConfig)?
        } else {
            let servers = config
                .nameservers
                .iter()
                .map(|server| {
                    let mut server_config = NameServerConfig::udp_and_tcp(server.0.ip());
                    for connection in &mut server_config.connections {
                        connection.port = server.0.port();
                    }
                    server_config
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        let options = builder.options_mut();
        options.cache_size = 0;
        options.positive_max_ttl = Some(Duration::ZERO);
        options.negative_max_ttl = Some(Duration::ZERO);
        options.timeout = options.timeout.min(timeout);
        let resolver = builder.build().map_err(Error::Resolver)?;
        Ok(Self {
            resolver,
            timeout,
            port: config.port.map(|port| port.get()),
        })
    }

    /// The peers `name` gives now, sorted and without duplicates; an error when any
    /// lookup failed other than by a definitive "no such name" or "no such records"
    /// (those give no peers), or when it all took longer than the timeout.
    pub(crate) async fn resolve(&self, name: &DnsName) -> Result<BTreeSet<Peer>> {
        match tokio::time::timeout(self.timeout, self.resolve_now(name)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                name: name.to_string(),
                timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    async fn resolve_now(&self, name: &DnsName) -> Result<BTreeSet<Peer>> {
        if !name.is_srv() {
            let ips = self.addresses(name.name()).await?;
            return Ok(ips.into_iter().map(|ip| Peer::ip(ip, self.port)).collect());
        }
        let targets = match self.resolver.srv_lookup(name.name().clone()).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    // A target of `.` means "no service here" (RFC 2782).
                    RData::SRV(srv) if !srv.target.is_root() => {
                        Some((srv.target.clone(), srv.port))
                    }
                    _ => None,
                })
                .collect::<BTreeSet<_>>(),
            Err(error) if error.is_no_records_found() => BTreeSet::new(),
            Err(source) => {
                return Err(Error::Lookup {
                    name: name.to_string(),
                    source,
                });
            }
        };
        let addresses = join_all(targets.iter().map(|(target, _)| self.addresses(target))).await;
        let mut peers = BTreeSet::new();
        for ((_, port), ips) in targets.iter().zip(addresses) {
            peers.extend(ips?.into_iter().map(|ip| Peer::ip(ip, Some(*port))));
        }
        Ok(peers)
    }

    /// The A and AAAA addresses of `name`, asked in parallel.
    async fn addresses(&self, name: &Name) -> Result<BTreeSet<IpAddr>> {
        let (v4, v6) = tokio::join!(
            self.resolver.ipv4_lookup(name.clone()),
            self.resolver.ipv6_lookup(name.clone())
        );
        let mut ips = BTreeSet::new();
        for answer in [v4, v6] {
            match answer {
                Ok(lookup) => {
                    ips.extend(
                        lookup
                            .answers()
                            .iter()
                            .filter_map(|record| match &record.data {
                                RData::A(a) => Some(IpAddr::V4(a.0)),
                                RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                                _ => None,
                            }),
                    );
                }
                Err(error) if is_definitive(&error) => {}
                Err(source) => {
                    return Err(Error::Lookup {
                        name: name.to_string(),
                        source,
                    });
                }
            }
        }
        Ok(ips)
    }
}

/// Whether `error` is an answer ("no such name", "no records of that type") rather than
/// a failure to get one.
fn is_definitive(error: &NetError) -> bool {
    error.is_no_records_found()
}
