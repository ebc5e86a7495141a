//! The Dns provider against the peer provider conformance suite of `c19-testkit`, with a
//! name server on 127.0.0.1 answering for its names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use c19_core::PeerProviderConfig;
use c19_testkit::conformance::peer_provider;
use common::{DnsServer, config};

#[tokio::test]
async fn the_dns_provider_keeps_the_peer_provider_contract() {
    let server = DnsServer::start().await;
    server.set_ips("c19.test", &["10.0.0.2", "10.0.0.1"]);
    server.set_srv("_c19._tcp.c19.test", &[("c19.test", 4097)]);
    let config = config(&server, &["c19.test", "_c19._tcp.c19.test"]);
    let report = peer_provider::run_config(&config as &dyn PeerProviderConfig).await;
    assert!(report.skipped.is_empty(), "{report:?}");
}

#[tokio::test]
async fn a_name_nobody_answers_for_keeps_the_contract_too() {
    let server = DnsServer::start().await;
    let config = config(&server, &["nobody.test"]);
    peer_provider::run_config(&config as &dyn PeerProviderConfig).await;
}
