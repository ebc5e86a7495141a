//! The PeerProvider suite on a tiny fixed-list provider, and on broken providers,
//! which it must fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use c19_core::{LayerContext, Peer, PeerProvider};
use c19_testkit::conformance::peer_provider::{self, Options};
use futures::FutureExt;

/// A fixed list of peers, and optionally itself.
#[derive(Debug)]
struct Fixed {
    peers: Vec<Peer>,
    itself: Option<Peer>,
}

impl PeerProvider for Fixed {
    fn get(&self) -> Vec<Peer> {
        self.peers.clone()
    }
    fn itself(&self) -> Option<Peer> {
        self.itself.clone()
    }
}

fn peers(list: &[&str]) -> Vec<Peer> {
    list.iter().map(|peer| peer.parse().unwrap()).collect()
}

fn fixed(list: &[&str], itself: Option<&str>) -> Arc<dyn PeerProvider> {
    Arc::new(Fixed {
        peers: peers(list),
        itself: itself.map(|peer| peer.parse().unwrap()),
    })
}

#[tokio::test]
async fn a_fixed_list_keeps_the_peer_provider_contract() {
    let report = peer_provider::run(|_| async {
        fixed(
            &["127.0.0.1:4097", "10.0.0.2", "c19-0.c19.svc:4097"],
            Some("127.0.0.1:4098"),
        )
    })
    .await;
    assert_eq!(report.checked.len(), 5, "{report:?}");
    assert!(report.skipped.is_empty(), "{report:?}");
}

/// A provider that discovers in a background task, holding itself until shutdown.
#[derive(Debug)]
struct Discovering {
    found: std::sync::Mutex<Vec<Peer>>,
    discovered: std::sync::atomic::AtomicBool,
}

impl PeerProvider for Discovering {
    fn get(&self) -> Vec<Peer> {
        self.found.lock().unwrap().clone()
    }
    fn discovered(&self) -> bool {
        self.discovered.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn discovering(cx: &LayerContext) -> Arc<dyn PeerProvider> {
    let provider = Arc::new(Discovering {
        found: Default::default(),
        discovered: Default::default(),
    });
    let task = provider.clone();
    let shutdown = cx.shutdown().clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        *task.found.lock().unwrap() = peers(&["10.0.0.1", "10.0.0.2"]);
        task.discovered
            .store(true, std::sync::atomic::Ordering::SeqCst);
        shutdown.cancelled().await;
    });
    provider
}

#[tokio::test]
async fn a_provider_with_a_background_task_keeps_the_contract() {
    peer_provider::run(|cx| async move { discovering(&cx) }).await;
}

async fn failure<F, Fut>(options: Options, make: F) -> String
where
    F: FnMut(LayerContext) -> Fut,
    Fut: Future<Output = Arc<dyn PeerProvider>>,
{
    let outcome = AssertUnwindSafe(peer_provider::run_with(options, make))
        .catch_unwind()
        .await;
    let panic = outcome.expect_err("the suite passed a broken provider");
    panic.downcast_ref::<String>().cloned().unwrap_or_default()
}

#[tokio::test]
async fn duplicates_and_itself_fail_the_suite() {
    let message = failure(Options::default(), |_| async {
        fixed(&["10.0.0.1", "10.0.0.1"], None)
    })
    .await;
    assert!(message.contains("twice"), "{message}");
    let message = failure(Options::default(), |_| async {
        fixed(&["10.0.0.1", "10.0.0.2"], Some("10.0.0.2"))
    })
    .await;
    assert!(message.contains("itself"), "{message}");
}

/// Blocks in `get`, as a provider asking its backend synchronously would.
#[derive(Debug)]
struct Blocking;

impl PeerProvider for Blocking {
    fn get(&self) -> Vec<Peer> {
        std::thread::sleep(Duration::from_millis(300));
        Vec::new()
    }
}

/// Never stops its task.
fn leaking(_: &LayerContext) -> Arc<dyn PeerProvider> {
    let provider = fixed(&["10.0.0.1"], None);
    let task = provider.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = task.get();
        }
    });
    provider
}

#[tokio::test]
async fn blocking_and_leaking_fail_the_suite() {
    let message = failure(Options::default(), |_| async {
        Arc::new(Blocking) as Arc<dyn PeerProvider>
    })
    .await;
    assert!(message.contains("without blocking"), "{message}");
    let options = Options::default().discovery(Duration::from_millis(500));
    let message = failure(options, |cx| async move { leaking(&cx) }).await;
    assert!(message.contains("after shutdown"), "{message}");
}
