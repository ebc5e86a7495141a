//! The `K8s` peer provider of c19: finds the peer agents through the Kubernetes API,
//! as the pods matching a label selector.
//!
//! ```yaml
//! peer_provider:
//!   kind: K8s
//!   selector: { app: c19 }   # labels that must all match; empty: every pod
//!   # or as `kubectl -l` reads it: selector: "app=c19,tier in (a,b),!legacy"
//!   namespace: default       # `:all` for every namespace (needs a ClusterRole)
//!   port: c19-peer           # optional: a port number or a container port name
//!   field_selector: spec.nodeName=node-1   # optional
//! ```
//!
//! It lists and watches the pods with kube's `watcher`, which re-lists after an expired
//! watch (410 Gone) and backs off after errors, and offers the pods that are Running,
//! Ready, have a pod IP and are not being deleted, except the agent's own pod (see
//! [`Identity`]), whose address it reports as `PeerProvider::itself` (so the Default
//! connection can place the agent on its ring of push targets). It connects like `kubectl`: `KUBECONFIG` or `~/.kube/config`, else the
//! in-cluster service account. When the API server is missing, down or hung (requests
//! time out, see [`ApiTimeouts`]), the agent keeps running on the peers it knows and
//! the provider retries, logging why.

mod config;
mod discovery;
mod error;
mod identity;
mod pods;
mod selector;
mod syntax;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use c19_core::{
    LayerContext, Peer, PeerError, PeerProvider, PeerProviderConfig, Shutdown,
    reexports::futures::future::{self, BoxFuture},
};
use kube::{Client, runtime::watcher};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use config::{ALL_NAMESPACES, FieldSelector, Namespace, PortSpec};
pub use error::{Error, Result};
pub use identity::{Identity, POD_IP, POD_NAME, POD_NAMESPACE};
pub use pods::Skip;
pub use selector::{Requirement, Selector};

pub use discovery::ApiTimeouts;

use discovery::Discovery;
use pods::PodFilter;

/// The configuration of the `K8s` provider: which pods are the peers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sPeerProviderConfig {
    /// Pod labels that must all match (`app: c19`), or a selector string in `kubectl -l`
    /// syntax (`app=c19,tier in (a,b),!legacy`); empty selects every pod.
    #[serde(default)]
    pub selector: Selector,
    /// The namespace to watch (default `default`); `:all` watches every namespace.
    #[serde(default)]
    pub namespace: Namespace,
    /// The port to dial on each peer: a number, or the name of a container port looked
    /// up in each pod (pods without it are skipped). Absent: the connection's
    /// `target_port`, else its `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSpec>,
    /// A field selector narrowing the pods further (`spec.nodeName=node-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_selector: Option<FieldSelector>,
}

impl K8sPeerProviderConfig {
    /// A provider watching the pods of `namespace` that match `selector`.
    pub fn new(selector: Selector, namespace: Namespace) -> Self {
        Self {
            selector,
            namespace,
            ..Self::default()
        }
    }

    /// Dials each peer on `port`.
    pub fn with_port(mut self, port: PortSpec) -> Self {
        self.port = Some(port);
        self
    }

    /// A builder of the live provider with these settings, for what configuration does
    /// not say (a client, an identity, time limits).
    pub fn builder(&self) -> K8sPeerProviderBuilder {
        K8sPeerProviderBuilder {
            config: self.clone(),
            client: None,
            kube_config: None,
            timeouts: ApiTimeouts::default(),
            identity: None,
        }
    }

    /// The list and watch parameters for the selectors.
    fn watcher_config(&self, timeouts: &ApiTimeouts) -> watcher::Config {
        // The API server ends each watch after this long, and it is resumed.
        let mut config = watcher::Config::default().timeout(timeouts.watch_seconds());
        let labels = self.selector.to_query();
        if !labels.is_empty() {
            config = config.labels(&labels);
        }
        if let Some(fields) = self
            .field_selector
            .as_ref()
            .filter(|f| !f.as_str().is_empty())
        {
            config = config.fields(fields.as_str());
        }
        config
    }
}

#[typetag::serde(name = "K8s")]
impl PeerProviderConfig for K8sPeerProviderConfig {
    fn build<'a>(
        &'a self,
        cx: &'a LayerContext,
    ) -> BoxFuture<'a, Result<Arc<dyn PeerProvider>, PeerError>> {
        let provider = self.builder().start(cx.shutdown());
        Box::pin(future::ready(Ok(provider as Arc<dyn PeerProvider>)))
    }
}

/// Builds a live [`K8sPeerProvider`] with what configuration does not say; see
/// [`K8sPeerProviderConfig::builder`].
pub struct K8sPeerProviderBuilder {
    config: K8sPeerProviderConfig,
    /// A client to use instead of inferring one.
    client: Option<Client>,
    /// A client configuration to use instead of inferring one.
    kube_config: Option<kube::Config>,
    /// The time limits on API requests.
    timeouts: ApiTimeouts,
    /// An identity to use instead of reading the environment.
    identity: Option<Identity>,
}

impl std::fmt::Debug for K8sPeerProviderBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K8sPeerProviderBuilder")
            .field("config", &self.config)
            .field("client", &self.client.is_some())
            .field("timeouts", &self.timeouts)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl K8sPeerProviderBuilder {
    /// Uses `client` instead of one inferred from the environment.
    pub fn with_client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Builds the client from `config` (with this provider's time limits) instead of
    /// inferring one from the environment.
    pub fn with_kube_config(mut self, config: kube::Config) -> Self {
        self.kube_config = Some(config);
        self
    }

    /// Sets the time limits on API requests, instead of [`ApiTimeouts::default`]. The
    /// `read` and `connect` limits apply to a client this provider builds, not to one
    /// given with [`K8sPeerProviderBuilder::with_client`].
    pub fn with_timeouts(mut self, timeouts: ApiTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Uses `identity` as the agent's own pod instead of reading `POD_NAME`,
    /// `POD_NAMESPACE`, `POD_IP` and the hostname.
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Starts discovery, which runs until `shutdown`, and returns the live provider.
    /// An API server that is missing or down is retried in the background.
    pub fn start(self, shutdown: &Shutdown) -> Arc<K8sPeerProvider> {
        let identity = self.identity.unwrap_or_else(Identity::from_env);
        if identity.is_unknown() {
            tracing::warn!(
                "cannot tell which pod is this agent's own (set {POD_NAME} and {POD_NAMESPACE} \
                 from the downward API); it may be offered to itself as a peer"
            );
        }
        let selector = self.config.selector.to_query();
        tracing::info!(
            "discovering peers among the pods of namespace {} matching `{}`, never {identity}",
            self.config.namespace,
            if selector.is_empty() {
                "(all pods)"
            } else {
                &selector
            },
        );
        let provider = Arc::new(K8sPeerProvider {
            peers: Arc::new(watch::Sender::new(Vec::new())),
            listed: Arc::default(),
            itself: Arc::new(watch::Sender::new(None)),
        });
        let discovery = Discovery {
            namespace: self.config.namespace.clone(),
            watcher_config: self.config.watcher_config(&self.timeouts),
            filter: PodFilter {
                identity,
                port: self.config.port.clone(),
            },
            client: self.client,
            kube_config: self.kube_config,
            timeouts: self.timeouts,
            peers: Arc::clone(&provider.peers),
            listed: Arc::clone(&provider.listed),
            itself: Arc::clone(&provider.itself),
        };
        tokio::spawn(discovery.run(shutdown.clone()));
        provider
    }
}

/// The live `K8s` provider: the pods that match its selector, as discovery last saw
/// them.
#[derive(Debug)]
pub struct K8sPeerProvider {
    /// The current peers.
    peers: Arc<watch::Sender<Vec<Peer>>>,
    /// Whether the first list of pods answered.
    listed: Arc<AtomicBool>,
    /// The agent's own pod as peers dial it, once seen.
    itself: Arc<watch::Sender<Option<Peer>>>,
}

impl K8sPeerProvider {
    /// Follows the peer list as it changes.
    pub fn subscribe(&self) -> watch::Receiver<Vec<Peer>> {
        self.peers.subscribe()
    }
}

impl PeerProvider for K8sPeerProvider {
    fn get(&self) -> Vec<Peer> {
        self.peers.borrow().clone()
    }

    fn discovered(&self) -> bool {
        self.listed.load(Ordering::Acquire)
    }

    fn itself(&self) -> Option<Peer> {
        self.itself.borrow().clone()
    }
}
