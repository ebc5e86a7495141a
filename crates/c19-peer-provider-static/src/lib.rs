//! The `Static` peer provider of c19: a fixed list of peers from configuration.
//!
//! ```yaml
//! peer_provider:
//!   kind: Static
//!   peers: [127.0.0.1, "10.0.0.2:4097", "[::1]:4097", "c19-0.c19.svc:4097"]
//! ```
//!
//! Entries are `IP`, `IP:port`, `[IPv6]:port`, `host` or `host:port`; a malformed entry
//! fails configuration loading with a message naming it. Host names are resolved by the
//! connection layer each time it dials, so a peer that moves is followed.

use c19_core::{
    Peer, PeerError, PeerProvider, Shutdown,
    reexports::futures::future::{self, BoxFuture},
};
use serde::{Deserialize, Serialize};

/// A fixed list of peers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticPeerProvider {
    /// The peers: `IP`, `IP:port`, `[IPv6]:port`, `host` or `host:port`. A peer without
    /// a port is dialled on the connection's `target_port`, else its `port`.
    #[serde(default)]
    pub peers: Vec<Peer>,
}

#[typetag::serde(name = "Static")]
impl PeerProvider for StaticPeerProvider {
    fn init(&self, _shutdown: Shutdown) -> BoxFuture<'_, Result<(), PeerError>> {
        Box::pin(future::ready(Ok(())))
    }

    fn get(&self) -> Vec<Peer> {
        self.peers.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_the_configured_peers() {
        let provider: StaticPeerProvider =
            serde_json::from_str(r#"{"peers": ["127.0.0.1", "[::1]:4097", "c19-0.c19.svc:4097"]}"#)
                .unwrap();
        let peers: Vec<String> = provider.get().iter().map(ToString::to_string).collect();
        assert_eq!(peers, ["127.0.0.1", "[::1]:4097", "c19-0.c19.svc:4097"]);
    }

    #[test]
    fn a_malformed_entry_is_named() {
        let error = serde_json::from_str::<StaticPeerProvider>(r#"{"peers": ["1.2.3.4:x"]}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`1.2.3.4:x`"), "{error}");
    }
}
