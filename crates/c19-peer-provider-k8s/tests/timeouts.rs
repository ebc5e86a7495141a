//! A hung API server, one that accepts connections and never answers: requests time
//! out within the provider's limits and discovery retries, instead of waiting for ever.
//! A real TCP listener and the real clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use c19_core::{PeerProvider, Shutdown};
use c19_peer_provider_k8s::{ApiTimeouts, Identity, K8sPeerProviderConfig};
use tokio::{net::TcpListener, sync::mpsc, time::Instant};

/// Listens on a loopback port, accepts every connection and never answers; reports the
/// time of each connection.
async fn hung_api_server() -> (String, mpsc::UnboundedReceiver<Instant>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (accepted, connections) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            // Held open and never read or written.
            held.push(socket);
            if accepted.send(Instant::now()).is_err() {
                return;
            }
        }
    });
    (url, connections)
}

#[tokio::test]
async fn a_hung_api_server_fails_the_list_within_the_read_timeout_and_it_is_retried() {
    let (url, mut connections) = hung_api_server().await;
    let timeouts = ApiTimeouts {
        connect: Duration::from_secs(2),
        read: Duration::from_millis(500),
        watch: Duration::from_secs(1),
    };
    let shutdown = Shutdown::new();
    let provider = K8sPeerProviderConfig::default()
        .builder()
        .with_kube_config(kube::Config::new(url.parse().unwrap()))
        .with_timeouts(timeouts)
        .with_identity(Identity::named("self", Some("default")))
        .start(&shutdown);

    let deadline = Duration::from_secs(20);
    let first = tokio::time::timeout(deadline, connections.recv())
        .await
        .expect("the provider never connected")
        .unwrap();
    // The list hangs; only a timeout ends it, and the retry opens a new connection
    // (after the first back-off step, 0.8 s with jitter).
    let second = tokio::time::timeout(deadline, connections.recv())
        .await
        .expect("the hung request was never given up")
        .unwrap();
    let waited = second - first;
    assert!(
        waited >= timeouts.read,
        "retried after {waited:?}, before the read timeout"
    );
    assert!(waited < Duration::from_secs(5), "retried after {waited:?}");
    assert!(provider.get().is_empty());
    shutdown.cancel();
}

#[test]
fn the_default_limits_are_the_documented_ones() {
    let timeouts = ApiTimeouts::default();
    assert_eq!(timeouts.connect, Duration::from_secs(10));
    assert_eq!(timeouts.read, Duration::from_secs(30));
    assert_eq!(timeouts.watch, Duration::from_secs(20));
    assert!(timeouts.watch < timeouts.read);
}
