//! The errors of the Default connection.

use c19_core::StateError;

/// Result with this crate's [`Error`] as default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an exchange with a peer, or the start of the connection, failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// A peer's host name could not be resolved.
    #[error("cannot resolve `{peer}`: {source}")]
    Resolve {
        /// The peer as `host:port`.
        peer: String,
        /// What the resolver said.
        #[source]
        source: std::io::Error,
    },
    /// A peer's host name resolved to no address.
    #[error("`{peer}` resolved to no address")]
    NoAddress {
        /// The peer as `host:port`.
        peer: String,
    },
    /// The peer is this agent itself.
    #[error("`{peer}` is this agent itself")]
    IsSelf {
        /// The peer as `host:port`.
        peer: String,
    },
    /// The request did not complete: connection refused or reset, timeout, ...
    #[error("request failed: {0}")]
    Request(#[source] reqwest::Error),
    /// A message did not reach the peer over a transport other than HTTP (the
    /// simulator's network: lost, cut off by a partition, or the peer is down).
    #[error("`{peer}` is unreachable: {reason}")]
    Unreachable {
        /// The peer as `host:port`.
        peer: String,
        /// Why.
        reason: String,
    },
    /// The peer answered with an unexpected status (a server error, usually).
    #[error("unexpected HTTP status {status}: {message}")]
    Status {
        /// The status code.
        status: u16,
        /// The start of the response body.
        message: String,
    },
    /// The peer is busy merging earlier pushes (HTTP 503) and asked to be left alone for
    /// `retry_after`: it is healthy, and the data waits for a later round.
    #[error("busy (HTTP 503), retry after {retry_after:?}: {message}")]
    Busy {
        /// How long to leave the peer alone.
        retry_after: std::time::Duration,
        /// The start of the response body.
        message: String,
    },
    /// The peer refused what was sent (HTTP 4xx): it is up, but did not take the data.
    #[error("refused with HTTP status {status}: {message}")]
    Refused {
        /// The status code.
        status: u16,
        /// The start of the response body.
        message: String,
    },
    /// The peer has no anti-entropy exchanges (HTTP 404 or 405: a 0.1 agent), or its
    /// state cannot take part (501).
    #[error("the peer does not take part in anti-entropy exchanges (HTTP {status})")]
    NoExchange {
        /// The status code.
        status: u16,
    },
    /// The peer's answer could not be decoded (its content coding).
    #[error("cannot decode the peer's answer: {0}")]
    Decode(String),
    /// The peer sent a body larger than `body_limit`.
    #[error("the response body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The state refused the data the peer sent.
    #[error("the state refused the peer's data: {0}")]
    State(#[from] StateError),
    /// Blocking work (merging or serialising the state) panicked or was cancelled.
    #[error("state task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Error {
    /// Whether the peer is alive but refused the data, so retrying it soon is pointless
    /// and backing off is not warranted.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Error::Refused { .. } | Error::State(_))
    }
}
