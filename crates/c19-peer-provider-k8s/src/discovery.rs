//! The background task: connect to the API server, list and watch the pods, and keep
//! the peer list current.
//!
//! kube's `watcher` does the list-then-watch protocol and recovers by itself: a watch
//! that ends is resumed from the last resourceVersion and an expired one (410 Gone) is
//! re-listed. After every error this task waits with kube's default exponential
//! back-off (0.8 s doubling to 30 s, with jitter), reset only once pods were read again.
//! (kube's `default_backoff()` stream adaptor would also reset on the `Init` event that
//! precedes every list attempt, so a failing list would be retried every 0.8 s for ever.)
//! Requests have time limits ([`ApiTimeouts`]): a hung API server fails them in bounded
//! time, like a refused connection, and the same back-off applies.
//! Every failure is logged, so an outage is never silent. Meanwhile the last known peers
//! stay on offer: gossip with a departed peer times out harmlessly, while an empty list
//! would cut the agent off.

use std::{
    collections::{BTreeSet, HashMap},
    pin::pin,
    sync::Arc,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use c19_core::{Peer, Shutdown, peer::added_and_removed};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    runtime::{
        utils::Backoff,
        watcher::{self, DefaultBackoff, Event},
    },
};
use tokio::sync::watch;

use crate::{Error, Namespace, Result, pods::PodFilter};

/// The longest wait between two attempts, should the back-off run dry.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// The time limits on requests to the Kubernetes API, so that a hung API server (one
/// that accepts connections and never answers) fails a request in bounded time and the
/// watch is retried with back-off, instead of waiting for minutes or for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiTimeouts {
    /// How long connecting (TCP and TLS) may take: 10 s.
    pub connect: Duration,
    /// How long a request may wait for the next byte of its response (or take to be
    /// written): 30 s. Each byte read and each request written starts it again, so it
    /// bounds silence, not the length of a watch.
    pub read: Duration,
    /// How long the API server keeps one watch open before it ends it and the watch is
    /// resumed from where it was (`timeoutSeconds`, whole seconds): 20 s. Shorter than
    /// `read`, so a quiet watch ends before it could pass for a hung server.
    pub watch: Duration,
}

impl Default for ApiTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            read: Duration::from_secs(30),
            watch: Duration::from_secs(20),
        }
    }
}

impl ApiTimeouts {
    /// The watch timeout in whole seconds, at least one.
    pub(crate) fn watch_seconds(&self) -> u32 {
        u32::try_from(self.watch.as_secs())
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// Sets these limits on a client configuration.
    fn apply(&self, config: &mut kube::Config) {
        config.connect_timeout = Some(self.connect);
        config.read_timeout = Some(self.read);
        config.write_timeout = Some(self.read);
        // Count from the request, not from when its pooled connection went idle.
        config.reset_reader_on_write = true;
    }
}

/// Everything the background task needs, owned.
pub(crate) struct Discovery {
    /// Where to watch.
    pub namespace: Namespace,
    /// Label and field selectors.
    pub watcher_config: watcher::Config,
    /// Which pods are peers.
    pub filter: PodFilter,
    /// A client given by the caller (tests); `None` builds one.
    pub client: Option<Client>,
    /// The configuration to build the client from; `None` infers one like `kubectl`.
    pub kube_config: Option<kube::Config>,
    /// The time limits set on the client built.
    pub timeouts: ApiTimeouts,
    /// Where the peer list is published.
    pub peers: Arc<watch::Sender<Vec<Peer>>>,
    /// Set once the first list of pods answered (see `PeerProvider::discovered`).
    pub listed: Arc<AtomicBool>,
    /// The agent's own pod as peers dial it, once seen (see `PeerProvider::itself`).
    pub itself: Arc<watch::Sender<Option<Peer>>>,
}

impl Discovery {
    /// Runs until `shutdown` is cancelled.
    pub async fn run(self, shutdown: Shutdown) {
        let client = match self.client.clone() {
            Some(client) => client,
            None => match connect(self.kube_config.as_ref(), self.timeouts, &shutdown).await {
                Some(client) => client,
                None => return,
            },
        };
        let api: Api<Pod> = match &self.namespace {
            Namespace::All => Api::all(client),
            Namespace::Named(namespace) => Api::namespaced(client, namespace),
        };
        let mut events = pin!(kube::runtime::watcher(api, self.watcher_config.clone()));
        let mut backoff = DefaultBackoff::default();
        let mut pods = PodPeers::default();
        let mut failing = false;
        loop {
            let event = tokio::select! {
                // Shutdown first: nothing is applied once it is asked for.
                biased;
                () = shutdown.cancelled() => return,
                event = events.next() => event,
            };
            match event {
                Some(Ok(event)) => {
                    // `Init` comes before a list is even tried: no sign of a working API.
                    if !matches!(event, Event::Init) {
                        backoff.reset();
                        if failing {
                            tracing::info!("Kubernetes API reachable again");
                            failing = false;
                        }
                    }
                    let listed = matches!(event, Event::InitDone);
                    if pods.apply(event, &self.filter) {
                        self.publish(pods.peers());
                    }
                    if let Some(own) = pods.own() {
                        self.itself.send_if_modified(|known| {
                            let changed = known.as_ref() != Some(own);
                            *known = Some(own.clone());
                            changed
                        });
                    }
                    if listed {
                        self.listed.store(true, Ordering::Release);
                    }
                }
                Some(Err(error)) => {
                    let delay = backoff.next().unwrap_or(MAX_DELAY);
                    let known = self.peers.borrow().len();
                    failing |= log_watch_error(&error, known, &self.namespace, delay);
                    tokio::select! {
                        biased;
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                None => {
                    // kube's watcher never ends by itself; say so if it ever does.
                    tracing::error!("the pod watch ended; the peer list will not change any more");
                    return;
                }
            }
        }
    }

    /// Replaces the published peers with `peers`, logging what changed.
    fn publish(&self, peers: Vec<Peer>) {
        let mut summary = None;
        self.peers.send_if_modified(|current| {
            if *current == peers {
                return false;
            }
            // Both lists are sorted.
            summary = Some(added_and_removed(current, &peers));
            *current = peers.clone();
            true
        });
        if let Some((added, removed)) = summary {
            let list: Vec<String> = peers.iter().map(ToString::to_string).collect();
            tracing::info!(
                count = peers.len(),
                added,
                removed,
                peers = list.join(","),
                "peers from Kubernetes changed"
            );
        }
    }
}

/// Logs a watcher error before a retry in `delay`; returns whether it means the API is
/// failing (rather than a routine re-list).
fn log_watch_error(
    error: &watcher::Error,
    known: usize,
    namespace: &Namespace,
    delay: Duration,
) -> bool {
    let status = match error {
        watcher::Error::WatchError(status) => Some(status.as_ref()),
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => Some(status.as_ref()),
        _ => None,
    };
    match status.map(|status| status.code) {
        Some(410) => {
            tracing::info!("the pod watch expired (410 Gone); re-listing pods in {delay:.1?}");
            false
        }
        Some(401 | 403) => {
            let role = match namespace {
                Namespace::All => "a ClusterRole and ClusterRoleBinding".to_owned(),
                Namespace::Named(namespace) => format!("a Role and RoleBinding in `{namespace}`"),
            };
            tracing::error!(
                "Kubernetes API refused to list or watch pods: {error}; the service account needs \
                 get, list and watch on pods ({role}); retrying in {delay:.1?}, keeping the {known} \
                 peers known so far"
            );
            true
        }
        _ => {
            tracing::warn!(
                "Kubernetes API unavailable: {error}; retrying in {delay:.1?}, keeping the {known} \
                 peers known so far"
            );
            true
        }
    }
}

/// Builds a client from `given`, else like `kubectl` (kubeconfig, else in-cluster
/// service account), with `timeouts`, retrying with back-off until it works or
/// `shutdown` is cancelled.
async fn connect(
    given: Option<&kube::Config>,
    timeouts: ApiTimeouts,
    shutdown: &Shutdown,
) -> Option<Client> {
    let mut backoff = DefaultBackoff::default();
    loop {
        match try_connect(given.cloned(), timeouts).await {
            Ok(client) => return Some(client),
            Err(error) => {
                let delay = backoff.next().unwrap_or(MAX_DELAY);
                tracing::error!(
                    "cannot reach Kubernetes to discover peers: {error}; retrying in {delay:.1?} \
                     (set KUBECONFIG or run in a pod with a service account)"
                );
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// One attempt at building a client.
async fn try_connect(given: Option<kube::Config>, timeouts: ApiTimeouts) -> Result<Client> {
    // kube's TLS uses rustls' process-wide provider; ring is the one this build has.
    // An error only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = match given {
        Some(config) => config,
        None => kube::Config::infer().await.map_err(Error::InferConfig)?,
    };
    timeouts.apply(&mut config);
    tracing::info!(
        "discovering peers through the Kubernetes API at {} (timeouts: connect {:?}, read {:?}, \
         watch {:?})",
        config.cluster_url,
        timeouts.connect,
        timeouts.read,
        timeouts.watch,
    );
    Client::try_from(config).map_err(Error::Client)
}

/// The peers among the watched pods, by pod.
#[derive(Debug, Default)]
pub(crate) struct PodPeers {
    /// The peer of each eligible pod, by namespace and name.
    live: HashMap<(String, String), Peer>,
    /// Pods seen since a re-list began, replacing `live` when it completes.
    relisting: Option<HashMap<(String, String), Peer>>,
    /// The agent's own pod as peers dial it, once seen.
    own: Option<Peer>,
}

impl PodPeers {
    /// Applies a watcher event; returns whether the set of live pods may have changed.
    pub fn apply(&mut self, event: Event<Pod>, filter: &PodFilter) -> bool {
        match event {
            Event::Init => {
                self.relisting = Some(HashMap::new());
                false
            }
            Event::InitApply(pod) => {
                self.note_own(&pod, filter);
                let (key, peer) = judge(&pod, filter);
                if let (Some(relisting), Some(peer)) = (&mut self.relisting, peer) {
                    relisting.insert(key, peer);
                }
                false
            }
            Event::InitDone => match self.relisting.take() {
                Some(listed) => {
                    self.live = listed;
                    true
                }
                None => false,
            },
            Event::Apply(pod) => {
                self.note_own(&pod, filter);
                let (key, peer) = judge(&pod, filter);
                match peer {
                    Some(peer) => self.live.insert(key, peer.clone()) != Some(peer),
                    None => self.live.remove(&key).is_some(),
                }
            }
            Event::Delete(pod) => self.live.remove(&key_of(&pod)).is_some(),
        }
    }

    /// The agent's own pod as peers dial it, once seen.
    pub fn own(&self) -> Option<&Peer> {
        self.own.as_ref()
    }

    fn note_own(&mut self, pod: &Pod, filter: &PodFilter) {
        if let Some(own) = filter.own_peer(pod) {
            self.own = Some(own);
        }
    }

    /// The distinct peers, sorted.
    pub fn peers(&self) -> Vec<Peer> {
        let peers: BTreeSet<&Peer> = self.live.values().collect();
        peers.into_iter().cloned().collect()
    }
}

/// The pod's key, and its peer if it is one (logging why not).
fn judge(pod: &Pod, filter: &PodFilter) -> ((String, String), Option<Peer>) {
    let key = key_of(pod);
    let peer = filter
        .peer_of(pod)
        .inspect_err(|skip| tracing::debug!("pod {}/{} is not a peer: {skip}", key.0, key.1))
        .ok();
    (key, peer)
}

/// A pod's namespace and name.
fn key_of(pod: &Pod) -> (String, String) {
    let meta = &pod.metadata;
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Identity;

    fn pod(name: &str, ip: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": name, "namespace": "default", "resourceVersion": "1" },
            "status": {
                "phase": "Running",
                "podIP": ip,
                "conditions": [{ "type": "Ready", "status": "True" }],
            },
        }))
        .unwrap()
    }

    fn shown(pods: &PodPeers) -> Vec<String> {
        pods.peers().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn pods_sharing_an_address_are_one_peer() {
        let filter = PodFilter {
            identity: Identity::default(),
            port: None,
        };
        let mut pods = PodPeers::default();
        assert!(pods.apply(Event::Apply(pod("a", "10.0.0.1")), &filter));
        assert!(pods.apply(Event::Apply(pod("b", "10.0.0.1")), &filter));
        assert_eq!(shown(&pods), ["10.0.0.1"]);
        assert!(pods.apply(Event::Delete(pod("a", "10.0.0.1")), &filter));
        assert_eq!(shown(&pods), ["10.0.0.1"]);
        // An update that changes nothing is no change.
        assert!(!pods.apply(Event::Apply(pod("b", "10.0.0.1")), &filter));
    }

    #[test]
    fn a_relist_replaces_the_pods_only_when_complete() {
        let filter = PodFilter {
            identity: Identity::default(),
            port: None,
        };
        let mut pods = PodPeers::default();
        pods.apply(Event::Apply(pod("a", "10.0.0.1")), &filter);
        assert!(!pods.apply(Event::Init, &filter));
        assert!(!pods.apply(Event::InitApply(pod("b", "10.0.0.2")), &filter));
        assert_eq!(shown(&pods), ["10.0.0.1"]);
        assert!(pods.apply(Event::InitDone, &filter));
        assert_eq!(shown(&pods), ["10.0.0.2"]);
    }
}
