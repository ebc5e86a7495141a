//! The K8s provider against the peer provider conformance suite of `c19-testkit`, with
//! a scripted API server that lists three pods (one of them the agent's own) and holds
//! every watch open.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use c19_core::{LayerContext, PeerProvider};
use c19_peer_provider_k8s::{Identity, K8sPeerProviderConfig};
use c19_testkit::conformance::peer_provider;
use common::{ApiServer, pod};
use http::{Request, Response};
use kube::client::Body;
use serde_json::json;

/// A provider discovering through a scripted API server that answers until `cx` stops.
fn provider(cx: &LayerContext) -> Arc<dyn PeerProvider> {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let config: K8sPeerProviderConfig =
        serde_json::from_value(json!({ "selector": { "app": "c19" } })).unwrap();
    let provider = config
        .builder()
        .with_client(client)
        .with_identity(Identity::named("self", Some("default")))
        .start(cx.shutdown());
    let mut api = ApiServer::new(handle);
    let shutdown = cx.shutdown().clone();
    tokio::spawn(async move {
        let pods = [
            pod("a", "10.0.0.1", 1),
            pod("b", "10.0.0.2", 2),
            pod("self", "10.0.0.3", 3),
        ];
        // Watches are held open (unanswered) until shutdown.
        let mut watches = Vec::new();
        loop {
            let call = tokio::select! {
                () = shutdown.cancelled() => return,
                call = api.next_or_end() => call,
            };
            match call {
                None => return,
                Some(call) if call.is_watch() => watches.push(call),
                Some(call) => call.pods("10", &pods),
            }
        }
    });
    provider
}

#[tokio::test]
async fn the_k8s_provider_keeps_the_peer_provider_contract() {
    let report = peer_provider::run(|cx| async move { provider(&cx) }).await;
    assert!(report.skipped.is_empty(), "{report:?}");
}
