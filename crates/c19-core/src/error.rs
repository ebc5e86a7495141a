//! The errors of the core crate.

pub use crate::BoxError;
use crate::{config::ConfigError, peer::PeerError, seeder::SeedError, state::StateError};

/// Result with the core [`Error`] as default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop an agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The state could not be initialised.
    #[error("state: {0}")]
    State(#[from] StateError),
    /// The agent layer failed.
    #[error("agent: {0}")]
    Agent(#[source] LayerError),
    /// The connection layer failed.
    #[error("connection: {0}")]
    Connection(#[source] LayerError),
    /// The telemetry endpoints could not be served.
    #[error("telemetry: {0}")]
    Telemetry(#[source] LayerError),
    /// A layer returned although no shutdown was requested.
    #[error("the {0} layer stopped unexpectedly")]
    Stopped(&'static str),
}

/// Why an agent or connection layer stopped.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// An I/O error while serving.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The peer provider failed.
    #[error("peer provider: {0}")]
    Peers(#[from] PeerError),
    /// The data seeder failed.
    #[error("data seeder: {0}")]
    Seed(#[from] SeedError),
    /// A failure specific to the layer implementation.
    #[error("{0}")]
    Other(#[source] BoxError),
}

impl LayerError {
    /// Wraps any error as [`LayerError::Other`].
    pub fn other(error: impl Into<BoxError>) -> Self {
        Self::Other(error.into())
    }
}
