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

use std::sync::Arc;

use c19_core::{
    LayerContext, Peer, PeerError, PeerProvider, PeerProviderConfig,
    reexports::futures::future::{self, BoxFuture},
};
use serde::{Deserialize, Serialize};

/// The configuration of the `Static` provider: a fixed list of peers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticPeerProviderConfig {
    /// The peers: `IP`, `IP:port`, `[IPv6]:port`, `host` or `host:port`. A peer without
    /// a port is dialled on the connection's `target_port`, else its `port`.
    #[serde(default)]
    pub peers: Vec<Peer>,
}

#[typetag::serde(name = "Static")]
impl PeerProviderConfig for StaticPeerProviderConfig {
    fn build<'a>(
        &'a self,
        _cx: &'a LayerContext,
    ) -> BoxFuture<'a, Result<Arc<dyn PeerProvider>, PeerError>> {
        let provider = StaticPeerProvider {
            peers: self.peers.clone(),
        };
        Box::pin(future::ready(Ok(
            Arc::new(provider) as Arc<dyn PeerProvider>
        )))
    }
}

/// A fixed list of peers.
#[derive(Debug, Clone, Default)]
pub struct StaticPeerProvider {
    /// The peers.
    pub peers: Vec<Peer>,
}

impl PeerProvider for StaticPeerProvider {
    fn get(&self) -> Vec<Peer> {
        self.peers.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_the_configured_peers() {
        let config: StaticPeerProviderConfig =
            serde_json::from_str(r#"{"peers": ["127.0.0.1", "[::1]:4097", "c19-0.c19.svc:4097"]}"#)
                .unwrap();
        let provider = StaticPeerProvider {
            peers: config.peers,
        };
        let peers: Vec<String> = provider.get().iter().map(ToString::to_string).collect();
        assert_eq!(peers, ["127.0.0.1", "[::1]:4097", "c19-0.c19.svc:4097"]);
    }

    #[test]
    fn a_malformed_entry_is_named() {
        let error = serde_json::from_str::<StaticPeerProviderConfig>(r#"{"peers": ["1.2.3.4:x"]}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`1.2.3.4:x`"), "{error}");
    }
}
