//! Link-level fault injection: a small TCP proxy per directed link between two agents.
//!
//! Each agent's static peer list points at its own outgoing proxies, so cutting the
//! proxies from and to an agent isolates it from its peers while its agent port still
//! takes writes. A cut link refuses new connections and breaks open ones; a healed link
//! forwards again.
//!
//! Proxies run as tasks of the test's Tokio runtime and stop when dropped.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use c19_core::shutdown::CancellationToken;
use tokio::net::{TcpListener, TcpStream};

/// What the accept loop and the connections of one proxy share.
#[derive(Debug, Default)]
struct Control {
    cut: AtomicBool,
    /// Cancelled when the link is cut: ends the connections open at that moment.
    open: Mutex<CancellationToken>,
    /// Connections forwarded so far.
    forwarded: AtomicU64,
}

/// A TCP proxy from a free port on 127.0.0.1 to one target.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    control: Arc<Control>,
    stop: CancellationToken,
}

impl Proxy {
    /// Starts a proxy to `target`. Must be called inside a Tokio runtime.
    pub fn start(target: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let listener = TcpListener::from_std(listener).unwrap();
        let control = Arc::new(Control::default());
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, target, control.clone(), stop.clone()));
        Self {
            port,
            control,
            stop,
        }
    }

    /// The port to dial instead of the target.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cuts the link: open connections break, new ones are closed at once.
    pub fn cut(&self) {
        self.control.cut.store(true, Ordering::SeqCst);
        let open = std::mem::take(&mut *self.control.open.lock().unwrap());
        open.cancel();
    }

    /// Heals the link.
    pub fn heal(&self) {
        self.control.cut.store(false, Ordering::SeqCst);
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        self.control.cut.load(Ordering::SeqCst)
    }

    /// How many connections were forwarded so far.
    pub fn forwarded(&self) -> u64 {
        self.control.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    control: Arc<Control>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((mut inbound, _)) = accepted else {
            continue;
        };
        if control.cut.load(Ordering::SeqCst) {
            // Reset rather than close politely, as an unreachable host would.
            let _ = inbound.set_zero_linger();
            drop(inbound);
            continue;
        }
        let open = control.open.lock().unwrap().clone();
        control.forwarded.fetch_add(1, Ordering::SeqCst);
        let stop = stop.clone();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(target).await else {
                return;
            };
            let _ = outbound.set_nodelay(true);
            tokio::select! {
                () = open.cancelled() => {}
                () = stop.cancelled() => {}
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
            }
        });
    }
}

/// One proxy per directed link of a cluster of `n` nodes.
#[derive(Debug)]
pub struct Links {
    /// `proxies[from][to]`, `None` on the diagonal.
    proxies: Vec<Vec<Option<Proxy>>>,
}

impl Links {
    /// Proxies for every ordered pair of distinct nodes, to the given peer ports on
    /// 127.0.0.1. Must be called inside a Tokio runtime.
    pub fn start(peer_ports: &[u16]) -> Self {
        let proxies = (0..peer_ports.len())
            .map(|from| {
                peer_ports
                    .iter()
                    .enumerate()
                    .map(|(to, &port)| {
                        (from != to).then(|| Proxy::start(SocketAddr::from(([127, 0, 0, 1], port))))
                    })
                    .collect()
            })
            .collect();
        Self { proxies }
    }

    /// The ports node `from` dials to reach each other node.
    pub fn outgoing_ports(&self, from: usize) -> Vec<u16> {
        self.proxies[from]
            .iter()
            .flatten()
            .map(Proxy::port)
            .collect()
    }

    /// The proxy from `from` to `to`.
    pub fn link(&self, from: usize, to: usize) -> &Proxy {
        self.proxies[from][to]
            .as_ref()
            .expect("no link from a node to itself")
    }

    fn touching(&self, node: usize) -> impl Iterator<Item = &Proxy> {
        self.proxies
            .iter()
            .enumerate()
            .flat_map(move |(from, row)| {
                row.iter()
                    .enumerate()
                    .filter(move |(to, _)| from == node || *to == node)
                    .filter_map(|(_, proxy)| proxy.as_ref())
            })
    }

    /// Cuts every link from and to `node`.
    pub fn cut(&self, node: usize) {
        self.touching(node).for_each(Proxy::cut);
    }

    /// Heals every link from and to `node`.
    pub fn heal(&self, node: usize) {
        self.touching(node).for_each(Proxy::heal);
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// An echo server; returns its address.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    async fn round_trip(port: u16) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
            return false;
        };
        if stream.write_all(b"ping").await.is_err() {
            return false;
        }
        let mut buf = [0; 4];
        matches!(
            tokio::time::timeout(
                std::time::Duration::from_secs(5),
                stream.read_exact(&mut buf)
            )
            .await,
            Ok(Ok(_))
        ) && &buf == b"ping"
    }

    #[tokio::test]
    async fn forwards_until_cut_and_again_once_healed() {
        let proxy = Proxy::start(echo().await);
        assert!(round_trip(proxy.port()).await);
        let mut open = TcpStream::connect(("127.0.0.1", proxy.port()))
            .await
            .unwrap();
        open.write_all(b"x").await.unwrap();
        let mut buf = [0; 1];
        open.read_exact(&mut buf).await.unwrap();

        proxy.cut();
        assert!(
            !round_trip(proxy.port()).await,
            "a cut link forwards nothing"
        );
        let broken =
            tokio::time::timeout(std::time::Duration::from_secs(5), open.read(&mut buf)).await;
        assert!(
            matches!(broken, Ok(Ok(0)) | Ok(Err(_))),
            "open connections break: {broken:?}"
        );

        proxy.heal();
        assert!(round_trip(proxy.port()).await);
        assert_eq!(proxy.forwarded(), 3);
    }

    #[tokio::test]
    async fn cutting_a_node_cuts_exactly_its_links() {
        let links = Links::start(&[1, 2, 3]);
        links.cut(1);
        for (from, to, cut) in [
            (0, 1, true),
            (1, 0, true),
            (1, 2, true),
            (2, 1, true),
            (0, 2, false),
            (2, 0, false),
        ] {
            assert_eq!(links.link(from, to).is_cut(), cut, "{from} -> {to}");
        }
        assert_eq!(links.outgoing_ports(0).len(), 2);
        links.heal(1);
        assert!(!links.link(0, 1).is_cut());
    }
}
