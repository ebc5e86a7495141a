//! The errors of the Dns peer provider.

use hickory_resolver::net::NetError;

/// Result with this crate's [`Error`] as default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the Dns peer provider: a configuration value it refuses, a
/// resolver it cannot set up, or a lookup that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `names` is empty: there is nothing to resolve.
    #[error("`names` is empty: give at least one DNS name to resolve")]
    NoNames,
    /// An entry of `names` is not a DNS name.
    #[error("invalid DNS name `{name}` in `names`: {reason}")]
    Name {
        /// The name as written.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An entry of `nameservers` is not `IP` or `IP:port`.
    #[error("invalid name server `{entry}` in `nameservers`: expected IP, IP:port or [IPv6]:port")]
    NameServer {
        /// The entry as written.
        entry: String,
    },
    /// The system's resolver configuration (`/etc/resolv.conf`) cannot be read.
    #[error("cannot read the system's DNS configuration (/etc/resolv.conf): {0}")]
    SystemConfig(#[source] NetError),
    /// The resolver cannot be built from its configuration.
    #[error("cannot build the DNS resolver: {0}")]
    Resolver(#[source] NetError),
    /// A lookup of a name failed (no answer, a server failure, a refused query); the
    /// name keeps its last good answer.
    #[error("lookup of `{name}` failed: {source}")]
    Lookup {
        /// The name looked up (an entry of `names`, or an SRV target).
        name: String,
        /// Why it failed.
        #[source]
        source: NetError,
    },
    /// A name's lookups (with those of its SRV targets) took longer than `timeout`.
    #[error("lookup of `{name}` timed out after {timeout_ms} ms")]
    Timeout {
        /// The entry of `names`.
        name: String,
        /// The limit, in milliseconds.
        timeout_ms: u64,
    },
}
