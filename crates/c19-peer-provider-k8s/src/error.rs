//! The errors of the K8s peer provider.

/// Result with this crate's [`Error`] as default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the K8s peer provider: a configuration value it refuses, or a
/// Kubernetes client it cannot build.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key or value of `selector` is not valid Kubernetes label syntax.
    #[error("invalid label {part} `{text}` in `selector`: {reason}")]
    Label {
        /// `key` or `value`.
        part: &'static str,
        /// The key or value as written.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `selector`, written as a string, is not valid label selector syntax.
    #[error("invalid `selector` `{selector}`: {reason}")]
    Selector {
        /// The selector as written.
        selector: String,
        /// What is wrong with it, and where.
        reason: String,
    },
    /// `namespace` is empty or not a valid namespace name.
    #[error("invalid namespace `{namespace}`: {reason}")]
    Namespace {
        /// The namespace as written.
        namespace: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `port` is neither a port number nor a container port name.
    #[error("invalid port `{port}`: {reason}")]
    Port {
        /// The port as written.
        port: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A term of `field_selector` is malformed.
    #[error("invalid field selector term `{term}`: {reason}")]
    FieldSelector {
        /// The term as written.
        term: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No Kubernetes client configuration was found: neither a kubeconfig
    /// (`KUBECONFIG`, `~/.kube/config`) nor the in-cluster service account.
    #[error("no Kubernetes configuration found: {0}")]
    InferConfig(#[source] kube::config::InferConfigError),
    /// The Kubernetes client could not be built from the configuration found.
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}
