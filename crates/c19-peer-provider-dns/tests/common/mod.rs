//! A name server for the tests: answers A, AAAA and SRV queries on 127.0.0.1 from
//! records the test sets and changes, and can be told to stop answering.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use c19_core::{LayerContext, Peer, PeerProvider, Shutdown};
use c19_peer_provider_dns::{DnsName, DnsPeerProviderConfig, DnsPeers, NameServer};
use hickory_proto::{
    op::{Message, ResponseCode},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{A, AAAA, SRV},
    },
};
use tokio::{net::UdpSocket, task::JoinHandle};

type Records = HashMap<(Name, RecordType), Vec<RData>>;

/// A name server on 127.0.0.1 (a free port) answering from a table.
pub struct DnsServer {
    addr: SocketAddr,
    records: Arc<Mutex<Records>>,
    silent: Arc<AtomicBool>,
    silent_names: Arc<Mutex<Vec<Name>>>,
    queries: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

fn name(text: &str) -> Name {
    let mut name = Name::from_utf8(text).unwrap().to_lowercase();
    name.set_fqdn(true);
    name
}

impl DnsServer {
    /// Starts a server with no records.
    pub async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let records = Arc::new(Mutex::new(Records::new()));
        let silent = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicU64::new(0));
        let silent_names = Arc::new(Mutex::new(Vec::<Name>::new()));
        let task = tokio::spawn({
            let (records, silent, queries) = (records.clone(), silent.clone(), queries.clone());
            let silent_names = silent_names.clone();
            async move {
                let mut buffer = vec![0; 4096];
                loop {
                    let Ok((len, from)) = socket.recv_from(&mut buffer).await else {
                        return;
                    };
                    queries.fetch_add(1, Ordering::SeqCst);
                    if silent.load(Ordering::SeqCst) {
                        continue;
                    }
                    let Ok(request) = Message::from_vec(&buffer[..len]) else {
                        continue;
                    };
                    let ignored = silent_names.lock().unwrap().clone();
                    if request
                        .queries
                        .iter()
                        .any(|query| ignored.contains(&query.name.to_lowercase()))
                    {
                        continue;
                    }
                    let response = answer(&request, &records.lock().unwrap());
                    let _ = socket.send_to(&response.to_vec().unwrap(), from).await;
                }
            }
        });
        Self {
            addr,
            records,
            silent,
            silent_names,
            queries,
            task,
        }
    }

    /// Where it listens, as `nameservers` names it.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the A and AAAA records of `host` to `ips` (none: the name is gone).
    pub fn set_ips(&self, host: &str, ips: &[&str]) {
        let ips: Vec<IpAddr> = ips.iter().map(|ip| ip.parse().unwrap()).collect();
        let v4 = ips
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(ip) => Some(RData::A(A(*ip))),
                IpAddr::V6(_) => None,
            })
            .collect();
        let v6 = ips
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V6(ip) => Some(RData::AAAA(AAAA(*ip))),
                IpAddr::V4(_) => None,
            })
            .collect();
        self.set(host, RecordType::A, v4);
        self.set(host, RecordType::AAAA, v6);
    }

    /// Sets the SRV records of `service` to `targets` (host, port).
    pub fn set_srv(&self, service: &str, targets: &[(&str, u16)]) {
        let srv = targets
            .iter()
            .map(|(target, port)| RData::SRV(SRV::new(10, 50, *port, name(target))))
            .collect();
        self.set(service, RecordType::SRV, srv);
    }

    fn set(&self, host: &str, record_type: RecordType, data: Vec<RData>) {
        let mut records = self.records.lock().unwrap();
        if data.is_empty() {
            records.remove(&(name(host), record_type));
        } else {
            records.insert((name(host), record_type), data);
        }
    }

    /// Stops answering (queries are read and dropped, so lookups time out), or answers
    /// again.
    pub fn set_silent(&self, silent: bool) {
        self.silent.store(silent, Ordering::SeqCst);
    }

    /// Stops answering queries for `host` only.
    pub fn ignore(&self, host: &str) {
        self.silent_names.lock().unwrap().push(name(host));
    }

    /// How many queries it received.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The answer to `request` from `records`: the records of the name and type asked,
/// NOERROR without answers when the name has records of other types only, NXDOMAIN
/// when it has none.
fn answer(request: &Message, records: &Records) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = true;
    let mut known = false;
    for query in &request.queries {
        let asked = query.name.to_lowercase();
        known |= records.keys().any(|(name, _)| *name == asked);
        if let Some(data) = records.get(&(asked, query.query_type)) {
            for rdata in data {
                response.add_answer(Record::from_rdata(query.name.clone(), 0, rdata.clone()));
            }
        }
        response.add_query(query.clone());
    }
    if !known {
        response.metadata.response_code = ResponseCode::NXDomain;
    }
    response
}

/// A provider configuration resolving `names` on `server`, refreshing every 50 ms with
/// lookups limited to 300 ms, without an own address.
pub fn config(server: &DnsServer, names: &[&str]) -> DnsPeerProviderConfig {
    let mut config =
        DnsPeerProviderConfig::new(names.iter().map(|name| name.parse::<DnsName>().unwrap()))
            .with_own_ip(None);
    config.nameservers = vec![NameServer(server.addr())];
    config.refresh_interval = 50.try_into().unwrap();
    config.timeout = 300.try_into().unwrap();
    config
}

/// A context for a peer provider, with its shutdown.
pub fn context() -> LayerContext {
    LayerContext::new("connection.peer_provider", Shutdown::new())
}

/// Starts the provider of `config`.
pub fn start(config: &DnsPeerProviderConfig, cx: &LayerContext) -> Arc<DnsPeers> {
    DnsPeers::start(config, cx).unwrap()
}

/// The peers on offer, as strings.
pub fn peers(provider: &dyn PeerProvider) -> Vec<String> {
    provider.get().iter().map(Peer::to_string).collect()
}

/// Waits until `condition` holds, for at most 10 s.
pub async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let held = c19_testkit::wait_until(Duration::from_secs(10), || {
        let holds = condition();
        async move { holds }
    })
    .await;
    assert!(held, "timed out waiting for {what}");
}

/// Waits until `provider` has done `count` more rounds than now.
pub async fn rounds(provider: &DnsPeers, count: u64) {
    let target = provider.rounds() + count;
    until(&format!("{count} more rounds"), || {
        provider.rounds() >= target
    })
    .await;
}
