//! The live provider: the peers of the last round, read without waiting for DNS.

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use arc_swap::ArcSwap;
use c19_core::{
    LayerContext, Peer, PeerError, PeerProvider, PeerProviderConfig,
    reexports::futures::future::BoxFuture,
};

use crate::{DnsPeerProviderConfig, Error, POD_IP, refresh::Refresh, resolve::Lookups};

/// What the background task publishes and [`DnsPeers`] reads.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The peers, sorted and without duplicates.
    pub peers: ArcSwap<Vec<Peer>>,
    /// Whether the first round is done.
    pub discovered: AtomicBool,
    /// The rounds done.
    pub rounds: AtomicU64,
}

/// The running `Dns` provider, built by [`DnsPeerProviderConfig`]'s `build`.
///
/// [`PeerProvider::get`] returns a snapshot of the last round and never waits for DNS.
#[derive(Debug)]
pub struct DnsPeers {
    shared: Arc<Shared>,
    itself: Option<Peer>,
}

impl DnsPeers {
    /// Starts resolving `config`'s names in a task that stops with `cx`'s shutdown.
    ///
    /// It fails only when the resolver cannot be set up (the system's
    /// `/etc/resolv.conf` cannot be read); a name server that is down at start is
    /// retried each round. It must be called within a tokio runtime, which runs the
    /// task.
    pub fn start(config: &DnsPeerProviderConfig, cx: &LayerContext) -> Result<Arc<Self>, Error> {
        if config.names.is_empty() {
            return Err(Error::NoNames);
        }
        let lookups = Lookups::new(config)?;
        let own_ip = match config.own_ip {
            Some(ip) => ip,
            None => own_ip_from_env(),
        };
        let port = config.port.map(|port| port.get());
        let names: Vec<&str> = config.names.iter().map(|name| name.as_str()).collect();
        match own_ip {
            Some(ip) => tracing::info!(
                component = cx.component(),
                "resolving [{}] every {} ms, leaving out this agent's own address {ip}",
                names.join(", "),
                config.refresh_interval
            ),
            None => tracing::info!(
                component = cx.component(),
                "resolving [{}] every {} ms; {POD_IP} is not set, so this agent may be offered \
                 to itself as a peer (set {POD_IP} to its address to leave it out)",
                names.join(", "),
                config.refresh_interval
            ),
        }
        let shared = Arc::new(Shared::default());
        let refresh = Refresh {
            lookups,
            names: config.names.clone(),
            interval: config.refresh_interval(),
            own_ip,
            shared: Arc::clone(&shared),
        };
        tokio::spawn(refresh.run(cx.shutdown().clone()));
        Ok(Arc::new(Self {
            shared,
            itself: own_ip.map(|ip| Peer::ip(ip, port)),
        }))
    }

    /// How many rounds (every name resolved once, or failed) are done: for tests and
    /// diagnostics, to wait for a round without guessing how long it takes.
    pub fn rounds(&self) -> u64 {
        self.shared.rounds.load(Ordering::Acquire)
    }
}

/// `POD_IP`, when set to an IP address; see [`parse_own_ip`].
fn own_ip_from_env() -> Option<IpAddr> {
    parse_own_ip(std::env::var(POD_IP).ok())
}

/// The address in a `POD_IP` value: empty counts as unset, a malformed value is logged
/// and ignored.
fn parse_own_ip(value: Option<String>) -> Option<IpAddr> {
    let text = value?;
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match text.parse() {
        Ok(ip) => Some(ip),
        Err(_) => {
            tracing::warn!("{POD_IP}=`{text}` is not an IP address; ignoring it");
            None
        }
    }
}

impl PeerProvider for DnsPeers {
    fn get(&self) -> Vec<Peer> {
        self.shared.peers.load().as_ref().clone()
    }

    fn discovered(&self) -> bool {
        self.shared.discovered.load(Ordering::Acquire)
    }

    fn itself(&self) -> Option<Peer> {
        self.itself.clone()
    }
}

#[typetag::serde(name = "Dns")]
impl PeerProviderConfig for DnsPeerProviderConfig {
    fn build<'a>(
        &'a self,
        cx: &'a LayerContext,
    ) -> BoxFuture<'a, Result<Arc<dyn PeerProvider>, PeerError>> {
        Box::pin(async move {
            let peers =
                DnsPeers::start(self, cx).map_err(|error| PeerError::Other(error.into()))?;
            Ok(peers as Arc<dyn PeerProvider>)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_ip_is_read_when_it_is_an_address() {
        assert_eq!(
            parse_own_ip(Some(" 10.1.2.3 ".into())),
            Some("10.1.2.3".parse().unwrap())
        );
        assert_eq!(
            parse_own_ip(Some("fd00::7".into())),
            Some("fd00::7".parse().unwrap())
        );
        assert_eq!(parse_own_ip(Some(String::new())), None);
        assert_eq!(parse_own_ip(Some("not-an-ip".into())), None);
        assert_eq!(parse_own_ip(None), None);
    }
}
