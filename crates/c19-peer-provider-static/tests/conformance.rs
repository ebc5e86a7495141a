//! The Static provider against the peer provider conformance suite of `c19-testkit`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use c19_core::PeerProviderConfig;
use c19_peer_provider_static::StaticPeerProviderConfig;
use c19_testkit::conformance::peer_provider;

#[tokio::test]
async fn the_static_provider_keeps_the_peer_provider_contract() {
    let config: Box<dyn PeerProviderConfig> = serde_json::from_str(
        r#"{"kind": "Static", "peers": ["127.0.0.1", "[::1]:4097", "c19-0.c19.svc:4097"]}"#,
    )
    .unwrap();
    let report = peer_provider::run_config(config.as_ref()).await;
    assert!(report.skipped.is_empty(), "{report:?}");
}

#[tokio::test]
async fn an_empty_static_list_keeps_the_peer_provider_contract() {
    peer_provider::run_config(&StaticPeerProviderConfig::default()).await;
}
