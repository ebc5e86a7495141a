//! The HTTP serving stack of the c19 layers that serve HTTP: the agent API
//! (`c19-agent-http`) and the peer port of the Default connection
//! (`c19-connection-default`).
//!
//! - [`Server`] serves a tower service per connection with hyper (HTTP/1.1): at most
//!   `max_connections` open (the rest wait in the kernel backlog), an idle timeout on
//!   both sides of each connection ([`listener`]; a watch stream is exempt from the read
//!   side through its [`StreamControl`]), an optional header read timeout, optional TLS
//!   with each handshake on its own task and refusals reported to the caller, and a
//!   graceful shutdown on a [`c19_core::Shutdown`], within an optional grace.
//! - [`body::read`] reads a request body whole within a byte limit and a time limit.
//! - [`status`] holds the HTTP status of each [`c19_core::StateError`], for each side.

use std::time::Duration;

pub mod body;
pub mod listener;
mod server;
pub mod status;

pub use body::Received;
pub use listener::{Connection, LimitedListener, StreamControl};
pub use server::Server;
pub use status::{Side, StateKind};

/// Why a request body could not be read whole ([`body::read`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body exceeds the limit.
    #[error("the body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
        /// The bytes read before giving up.
        read: usize,
    },
    /// The body did not arrive in time.
    #[error("the body did not arrive within {timeout:?}")]
    TimedOut {
        /// The time allowed.
        timeout: Duration,
        /// The bytes read before giving up.
        read: usize,
    },
    /// The body could not be read (the client went away, sent a broken stream, or the
    /// connection timed out: see [`Error::is_connection_timeout`]).
    #[error("cannot read the body: {source}")]
    Failed {
        /// What failed.
        source: axum::Error,
        /// The bytes read before the failure.
        read: usize,
    },
}

impl Error {
    /// How many bytes of the body were read before giving up.
    pub fn read(&self) -> usize {
        match self {
            Self::TooLarge { read, .. }
            | Self::TimedOut { read, .. }
            | Self::Failed { read, .. } => *read,
        }
    }

    /// The same error, having read `bytes`.
    pub(crate) fn after(mut self, bytes: usize) -> Self {
        match &mut self {
            Self::TooLarge { read, .. }
            | Self::TimedOut { read, .. }
            | Self::Failed { read, .. } => {
                *read = bytes;
            }
        }
        self
    }

    /// Whether the read failed because the connection's own idle timeout closed it.
    pub fn is_connection_timeout(&self) -> bool {
        let Self::Failed { source, .. } = self else {
            return false;
        };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
        while let Some(error) = cause {
            if let Some(io) = error.downcast_ref::<std::io::Error>() {
                return io.kind() == std::io::ErrorKind::TimedOut;
            }
            cause = error.source();
        }
        false
    }
}
